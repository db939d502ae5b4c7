"""The real-time runner: one daemon thread that drives an engine from the wall clock.

Each loop waits in select() on the endpoint and a wake-up pipe, for at most the time to the next
duty (telemetry, watchdog, a delayed frame, a fault ending) and never longer than
``PHYSICS_POLL_S``, so replies leave within a couple of milliseconds of a request's last byte
and simulated time never lags the wall clock by more than that. Link time is wall time;
simulated time is wall time × speed, advanced in the engine's fixed ticks.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import select
import threading
import time
from collections.abc import Callable

from simulator.endpoints.base import Endpoint
from simulator.engine import Engine

log = logging.getLogger("simulator.runner")

#: Longest sleep between physics catch-ups (§7 asks for ≤ 10 ms reactions).
PHYSICS_POLL_S = 0.004
#: Most ticks run per loop, so a slow machine still answers requests promptly at high speed.
MAX_TICKS_PER_LOOP = 5000


class Runner:
    """Drives ``engine`` in real time; every engine access holds ``lock``."""

    def __init__(
        self,
        *,
        engine: Engine,
        endpoint: Endpoint,
        lock: threading.RLock,
        changed: threading.Condition,
        speed: float,
        on_disconnect: Callable[[float, float | None], None],
    ) -> None:
        self.engine = engine
        self.endpoint = endpoint
        self.lock = lock
        self.changed = changed
        self.speed = speed
        self._on_disconnect = on_disconnect
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._stop = threading.Event()
        self.t0 = time.monotonic()
        self.reconnect_at = math.inf
        #: True from a simulated unplug until the endpoint is back.
        self.disconnected = False
        #: The catalogue name of the fault that took the endpoint away (None while present).
        self.away_fault: str | None = None
        self.loops = 0
        self._thread = threading.Thread(target=self._run, name="epm-sim-runner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def now_ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000.0

    def wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"\0")

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _timeout(self, now: float) -> float:
        deadline = min(self.engine.next_link_deadline(), self.reconnect_at)
        wait_s = (deadline - now) / 1000.0
        return min(max(wait_s, 0.0), PHYSICS_POLL_S)

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self._once()
        except Exception:  # pragma: no cover - a crash must be visible, never silent
            log.exception("simulator runner crashed")
            raise

    def _once(self) -> None:
        endpoint = self.endpoint
        with self.lock:
            endpoint.service()
            timeout = self._timeout(self.now_ms())
            rfds = [*endpoint.read_fds(), self._wake_r]
            wfds = endpoint.write_fds()
        try:
            readable, writable, _ = select.select(rfds, wfds, [], timeout)
        except (OSError, ValueError):
            # A descriptor went away between building the lists and select(); go round again.
            return
        perf = time.perf_counter()
        with self.lock:
            now = self.now_ms()
            engine = self.engine
            engine.link_ms = now
            engine.run_ticks(now * self.speed, MAX_TICKS_PER_LOOP)
            for fd in readable:
                if fd == self._wake_r:
                    with contextlib.suppress(OSError):
                        os.read(self._wake_r, 4096)
                    continue
                data = endpoint.on_readable(fd)
                if data:
                    engine.host_bytes(data, now, perf)
            for fd in writable:
                endpoint.on_writable(fd)
            engine.service(now)
            self._disconnects(now)
            out = engine.tx.pop_due(now)
            if out:
                endpoint.send(out)
            self.loops += 1
            self.changed.notify_all()

    def _disconnects(self, now: float) -> None:
        engine = self.engine
        while engine.disconnects:
            spec = engine.disconnects[0]
            duration = spec.duration_s
            # Marked away (and counted) before the endpoint goes: a host that sees the port
            # end and closes it at once must find the simulator unplugged, never in between.
            self.disconnected = True
            self.away_fault = spec.fault
            self._on_disconnect(now, duration)
            engine.disconnects.pop(0)
            engine.unplugged(spec)
            self.endpoint.go_away()
            self.reconnect_at = math.inf if duration is None else now + duration * 1000.0
        if now >= self.reconnect_at:
            self.reconnect()

    def reconnect(self) -> None:
        """End a disconnect now (called with the lock held)."""
        self.reconnect_at = math.inf
        if not self.disconnected:
            return
        self.disconnected = False
        self.away_fault = None
        self.endpoint.come_back()
        log.info("endpoint back: %s", self.endpoint.url)
