"""Fixtures for the device client tests (shared with tests/link)."""

from tests.wire_fakes.fixtures import fakes, links, no_leaked_threads

__all__ = ["fakes", "links", "no_leaked_threads"]
