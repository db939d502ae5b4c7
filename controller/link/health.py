"""Link health: counters kept by the link's threads and an immutable snapshot for readers.

The session engine and the UI read :meth:`HealthRecorder.snapshot` at any time. Counters are
updated under one short lock that nothing else holds while doing I/O, so reading health never
waits for the port; the percentile work happens on a copy, outside the lock.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

from controller.link.states import LinkState
from controller.wire.codec import DropCounters

#: RTT percentiles are computed over this many recent requests.
RTT_WINDOW = 200
#: Retransmissions closer together than this belong to one burst (one service-log entry).
BURST_QUIET_S = 2.0
#: A burst that goes on is written at least this often.
BURST_MAX_S = 30.0
#: The health watch looks at the counters at most this often.
WATCH_POLL_S = 0.1
#: Frame-error counters are written when they change, at most this often.
ERRORS_EVERY_S = 10.0
#: The counters :meth:`HealthRecorder.error_counts` returns, in the order they are written.
ERROR_COUNTERS = (
    "crc_errors",
    "cobs_errors",
    "short_frames",
    "overlong_runs",
    "malformed_frames",
    "unknown_type_frames",
    "telemetry_lost",
    "dseq_gaps",
    "device_rx_crc_errors",
    "device_rx_frame_errors",
)

log = logging.getLogger("epm.link")


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

    def error_counts(self) -> dict[str, int]:
        """The frame-error counters (:data:`ERROR_COUNTERS`), cheaply: no RTT percentiles.
        The device's own counters are absent until a STATUS reported them."""
        with self._lock:
            counts = {
                "malformed_frames": self._counts["malformed_frames"],
                "unknown_type_frames": self._counts["unknown_type_frames"],
                "telemetry_lost": self._counts["telemetry_lost"],
                "dseq_gaps": self._counts["dseq_gaps"],
            }
            dev_crc, dev_frame = self._device_crc, self._device_frame
            dec = self._decoder
            counts.update(
                crc_errors=dec.crc,
                cobs_errors=dec.cobs,
                short_frames=dec.too_short,
                overlong_runs=dec.overlong,
            )
        if dev_crc is not None and dev_frame is not None:
            counts.update(device_rx_crc_errors=dev_crc, device_rx_frame_errors=dev_frame)
        return {name: counts[name] for name in ERROR_COUNTERS if name in counts}

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


def worth_logging(attempt: int) -> bool:
    """Whether the ``attempt``-th failed reconnect attempt gets its own service-log entry:
    the first three, then the 4th, 8th, 16th... and every 100th (a long outage stays a few
    lines)."""
    return attempt <= 3 or attempt & (attempt - 1) == 0 or attempt % 100 == 0


class HealthWatch:
    """Turns the link's counters into service-log entries (logger ``epm.link``), so a flaky
    line tells its story without one entry per frame:

    * retransmissions in **bursts**: one entry per burst (retransmissions closer together than
      :data:`BURST_QUIET_S`), with its count, its span and the total so far; a burst that
      goes on is written every :data:`BURST_MAX_S`;
    * **frame errors** (CRC, COBS, short, overlong, malformed, unknown type, telemetry lost,
      and the device's own receive counters): an entry when they changed, at most every
      :data:`ERRORS_EVERY_S`, with the totals and what is new.

    :meth:`poll` is called by the link's ticker with the time (it reads a few counters under
    the recorder's short lock and never does I/O itself: the service log's handler only queues
    the entry); :meth:`finish` writes what is still open when the link closes.
    """

    def __init__(
        self,
        health: HealthRecorder,
        url: str,
        *,
        quiet_s: float | None = None,
        burst_max_s: float | None = None,
        errors_every_s: float | None = None,
    ) -> None:
        self._health = health
        self._url = url
        # The module's constants, read now (not at import): tests may shorten them.
        self._quiet_s = BURST_QUIET_S if quiet_s is None else quiet_s
        self._burst_max_s = BURST_MAX_S if burst_max_s is None else burst_max_s
        self._errors_every_s = ERRORS_EVERY_S if errors_every_s is None else errors_every_s
        self._retx_seen = 0
        self._burst_from = 0
        self._burst_start: float | None = None
        self._burst_last = 0.0
        self._errors_logged: dict[str, int] = {}
        self._errors_at = -math.inf
        self._lock = threading.Lock()  # the ticker polls; whoever closes the link finishes
        self._polled = -math.inf

    def poll(self, now: float) -> None:
        if now - self._polled < WATCH_POLL_S:
            return  # the ticker may pass many times a tenth of a second
        with self._lock:
            self._polled = now
            self._poll(now)

    def finish(self, now: float) -> None:
        """The link closes: write an open burst and frame errors not written yet."""
        with self._lock:
            self._poll(now)
            if self._burst_start is not None:
                self._log_burst(ongoing=False)
            self._log_errors(now)

    def _poll(self, now: float) -> None:
        retx = self._health.count("retransmissions")
        if retx > self._retx_seen:
            if self._burst_start is None:
                self._burst_start, self._burst_from = now, self._retx_seen
            self._burst_last = now
            self._retx_seen = retx
        start = self._burst_start
        if start is not None and (
            now - self._burst_last >= self._quiet_s or now - start >= self._burst_max_s
        ):
            self._log_burst(ongoing=now - self._burst_last < self._quiet_s)
        if now - self._errors_at >= self._errors_every_s:
            self._log_errors(now)

    def _log_burst(self, *, ongoing: bool) -> None:
        start = self._burst_start
        assert start is not None
        count = self._retx_seen - self._burst_from
        span = max(0.0, self._burst_last - start)
        log.warning(
            "%d retransmission%s in %.1f s%s",
            count,
            "" if count == 1 else "s",
            span,
            " (still going on)" if ongoing else "",
            extra={
                "event": "retransmit_burst",
                "port": self._url,
                "count": count,
                "span_s": round(span, 3),
                "total": self._retx_seen,
                "ongoing": ongoing,
            },
        )
        self._burst_start = None if not ongoing else self._burst_last
        self._burst_from = self._retx_seen

    def _log_errors(self, now: float) -> None:
        counts = self._health.error_counts()
        before = self._errors_logged
        new = {k: v - before.get(k, 0) for k, v in counts.items() if v != before.get(k, 0)}
        if not new:
            return
        self._errors_logged, self._errors_at = counts, now
        shown = ", ".join(f"{k.replace('_', ' ')} +{v}" for k, v in new.items() if v > 0)
        log.warning(
            "frame errors: %s",
            shown or "device counters reset",
            extra={"event": "frame_errors", "port": self._url, "new": new, "totals": counts},
        )
