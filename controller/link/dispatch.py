"""The one thread that runs listener code: telemetry, device events and link events, in order.

The reader thread never calls a listener, so a slow listener delays only later deliveries,
never the port. Telemetry beyond :data:`CAPACITY` waiting frames is dropped and counted (the
listener fell behind); device and link events are never dropped.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from controller.link.connection import Delivery
from controller.link.events import LinkEvent, LinkListener
from controller.link.health import HealthRecorder
from controller.wire.messages import Telemetry

log = logging.getLogger(__name__)

#: Telemetry frames the dispatcher may hold for a slow listener before dropping (and counting).
CAPACITY = 4096
THREAD_NAME = "epm-link-dispatch"


class Dispatcher:
    """Hands deliveries to ``listener`` on its own thread (``epm-link-dispatch``)."""

    def __init__(self, listener: LinkListener, health: HealthRecorder) -> None:
        self._listener = listener
        self._health = health
        self._items: deque[Delivery] = deque()
        self._cond = threading.Condition()
        self._telemetry = 0
        self._queued = 0
        self._done = 0
        self._stopping = False
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def put(self, items: list[Delivery]) -> None:
        with self._cond:
            for item in items:
                if isinstance(item, Telemetry):
                    if self._telemetry >= CAPACITY:
                        self._health.add("telemetry_dropped")
                        continue
                    self._telemetry += 1
                self._items.append(item)
                self._queued += 1
            self._cond.notify_all()

    def wait_delivered(self, timeout: float) -> None:
        """Wait until everything queued so far was handed to the listener (not on the
        dispatch thread itself: a listener's own call must not wait for itself)."""
        if threading.current_thread() is self.thread:
            return
        with self._cond:
            target = self._queued
            self._cond.wait_for(lambda: self._done >= target, timeout)

    def stop(self) -> None:
        """Deliver what is queued, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _run(self) -> None:
        listener = self._listener
        while True:
            with self._cond:
                while not self._items and not self._stopping:
                    self._cond.wait()
                if not self._items:
                    return
                item = self._items.popleft()
                if isinstance(item, Telemetry):
                    self._telemetry -= 1
            try:
                if isinstance(item, Telemetry):
                    listener.on_telemetry(item)
                elif isinstance(item, LinkEvent):
                    listener.on_link_event(item)
                else:
                    listener.on_event(item)
            except Exception:
                self._health.add("listener_errors")
                log.exception("link listener raised")
            with self._cond:
                self._done += 1
                self._cond.notify_all()
