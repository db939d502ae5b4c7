"""Seeded mutation fuzzing of epm's input boundaries: ``python -m benchmarks.fuzz``."""
