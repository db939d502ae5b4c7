"""Link health: counters kept by the link's threads and an immutable snapshot for readers.

The session engine and the UI read :meth:`HealthRecorder.snapshot` at any time. Counters are
updated under one short lock that nothing else holds while doing I/O, so reading health never
waits for the port; the percentile work happens on a copy, outside the lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from controller.link.states import LinkState
from controller.wire.codec import DropCounters

#: RTT percentiles are computed over this many recent requests.
RTT_WINDOW = 200


@dataclass(frozen=True)
class LinkHealth:
    """A consistent snapshot of the link's counters (all counts since the link was created)."""

    state: LinkState
    requests_sent: int
    replies_received: int
    retransmissions: int
    reply_timeouts: int
    requests_given_up: int
    duplicate_replies: int
    late_replies: int
    stray_replies: int
    heartbeats_sent: int
    estops_sent: int
    frames_received: int
    crc_errors: int
    cobs_errors: int
    short_frames: int
    overlong_runs: int
    malformed_frames: int
    unknown_type_frames: int
    telemetry_received: int
    telemetry_lost: int
    dseq_gaps: int
    events_received: int
    device_restarts: int
    link_losses: int
    port_failures: int
    reconnect_attempts: int
    reconnects: int
    rtt_p50_ms: float | None
    rtt_p99_ms: float | None
    rtt_samples: int
    last_frame_age_s: float | None
    device_rx_crc_errors: int | None
    device_rx_frame_errors: int | None
    listener_errors: int
    telemetry_dropped: int = 0
    """Telemetry frames dropped because the listener fell behind (bounded dispatch backlog)."""
    unidentified_frames: int = 0
    """Device frames ignored before the unit on a (re)opened port was identified, or from
    another unit."""
    stale_commands: int = 0
    """Commands refused because they were decided on an earlier connection epoch."""
    abandoned_requests: int = 0
    """Requests abandoned (never re-sent) because an ESTOP went out after them."""
    supervision_stalls: int = 0
    """Times the link stopped its own frames because the supervision had not checked in."""
    epoch: int = 0
    """The connection epoch: every loss, reconnect and re-handshake starts a new one."""

    @property
    def frames_dropped(self) -> int:
        """Frames from the device that were dropped for any reason."""
        return (
            self.crc_errors
            + self.cobs_errors
            + self.short_frames
            + self.overlong_runs
            + self.malformed_frames
            + self.unknown_type_frames
        )


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted, non-empty list."""
    if not sorted_values:
        raise ValueError("no values")
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


class HealthRecorder:
    """Mutable counters behind :class:`LinkHealth`; every method is thread-safe."""

    _COUNTERS = (
        "requests_sent",
        "replies_received",
        "retransmissions",
        "reply_timeouts",
        "requests_given_up",
        "duplicate_replies",
        "late_replies",
        "stray_replies",
        "heartbeats_sent",
        "estops_sent",
        "malformed_frames",
        "unknown_type_frames",
        "telemetry_received",
        "telemetry_lost",
        "dseq_gaps",
        "events_received",
        "device_restarts",
        "link_losses",
        "port_failures",
        "reconnect_attempts",
        "reconnects",
        "listener_errors",
        "telemetry_dropped",
        "unidentified_frames",
        "stale_commands",
        "abandoned_requests",
        "supervision_stalls",
    )

    def __init__(self, decoder_counters: DropCounters) -> None:
        self._lock = threading.Lock()
        self._decoder = decoder_counters
        self._counts: dict[str, int] = dict.fromkeys(self._COUNTERS, 0)
        self._rtt: deque[float] = deque(maxlen=RTT_WINDOW)
        self._last_frame: float | None = None
        self._device_crc: int | None = None
        self._device_frame: int | None = None

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def count(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def rtt(self, seconds: float) -> None:
        with self._lock:
            self._rtt.append(seconds)

    def frame_seen(self, at: float) -> None:
        with self._lock:
            self._last_frame = at

    def device_counters(self, rx_crc_errors: int, rx_frame_errors: int) -> None:
        with self._lock:
            self._device_crc = rx_crc_errors
            self._device_frame = rx_frame_errors

    def snapshot(self, state: LinkState, now: float | None = None, epoch: int = 0) -> LinkHealth:
        with self._lock:
            counts = dict(self._counts)
            rtts = list(self._rtt)
            last = self._last_frame
            dev_crc, dev_frame = self._device_crc, self._device_frame
            dec = self._decoder
            # The reader thread updates these ints; reading an int is atomic in CPython.
            frames, crc, cobs_err = dec.frames, dec.crc, dec.cobs
            short, overlong = dec.too_short, dec.overlong
        rtts.sort()
        now = time.monotonic() if now is None else now
        return LinkHealth(
            state=state,
            frames_received=frames,
            crc_errors=crc,
            cobs_errors=cobs_err,
            short_frames=short,
            overlong_runs=overlong,
            rtt_p50_ms=percentile(rtts, 0.50) * 1000 if rtts else None,
            rtt_p99_ms=percentile(rtts, 0.99) * 1000 if rtts else None,
            rtt_samples=len(rtts),
            last_frame_age_s=None if last is None else max(0.0, now - last),
            device_rx_crc_errors=dev_crc,
            device_rx_frame_errors=dev_frame,
            epoch=epoch,
            **counts,
        )
