"""Benchmarks (``make bench``): figures, not tests. Each module has ``run() -> dict``."""
