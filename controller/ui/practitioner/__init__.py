"""The practitioner's screens and widgets: home, new session, run, end, device, training."""
