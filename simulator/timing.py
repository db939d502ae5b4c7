"""Records for timing benchmarks: when output switched, when each request was fully received.

Timestamps are ``time.perf_counter()`` (CLOCK_MONOTONIC on Linux, so comparable across
processes on one machine) so the controller's emergency-stop benchmark can subtract its own
send time. ``link_ms`` and ``sim_ms`` place the record on the simulator's own clocks.
"""

from __future__ import annotations

from typing import NamedTuple


class OutputTransition(NamedTuple):
    """The output stage was switched on or off."""

    perf_s: float
    link_ms: float
    sim_ms: int
    on: bool
    #: Why: the request or condition that caused it (``"ESTOP"``, ``"HOLD"``, ``"step end"``...).
    cause: str


class RequestReceipt(NamedTuple):
    """A host frame that passed the CRC, with the time its last byte was read."""

    perf_s: float
    link_ms: float
    seq: int
    type: int
