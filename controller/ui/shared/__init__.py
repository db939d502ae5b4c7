"""What both roles' screens share: help, footer, formatting, the simulator banner, confirmations."""
