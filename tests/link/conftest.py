"""Fixtures for the link tests (shared with tests/device)."""

from tests.wire_fakes.fixtures import fakes, links, no_leaked_threads

__all__ = ["fakes", "links", "no_leaked_threads"]
