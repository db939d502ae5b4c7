"""The app's screens, one per file (the practitioner's: home, new session, run, end, device)."""
