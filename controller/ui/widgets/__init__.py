"""Widgets and modals of the practitioner's screens, one component per file."""
