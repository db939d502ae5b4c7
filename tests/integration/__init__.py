"""End-to-end tests of sessions against the simulator (engine, headless runs, crash safety)."""
