"""Telling listeners (the UI, a headless run) what changed, on a thread of its own.

Why: a listener is someone else's code. If it blocked (a hung UI), and ran on the engine's
thread, the engine would stop noticing step ends, ticking the supervisor and recording. Here
notices are queued (already recorded: the engine posts them after the record is committed)
and delivered in order by one daemon thread; a listener that hangs delays only later notices,
never the session. The queue is bounded: when a listener falls far behind, the oldest notices
go and are counted (each carries a full snapshot, so the newest is what matters).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

from controller.session.model import SessionNotice

log = logging.getLogger(__name__)

#: Notices kept for slow listeners before the oldest are dropped.
CAPACITY = 2000


class Notifier:
    """Delivers :class:`SessionNotice` objects to listeners, in order, on its own thread."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._cond = threading.Condition()
        self._queue: deque[SessionNotice] = deque()
        self._capacity = capacity
        self._listeners: tuple[Callable[[SessionNotice], None], ...] = ()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.errors = 0

    def add(self, callback: Callable[[SessionNotice], None]) -> None:
        with self._cond:
            self._listeners = (*self._listeners, callback)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="epm-session-notify", daemon=True)
        self._thread.start()

    def post(self, notices: list[SessionNotice]) -> None:
        with self._cond:
            for notice in notices:
                if len(self._queue) >= self._capacity:
                    self._queue.popleft()
                    self.dropped += 1
                self._queue.append(notice)
            self._cond.notify_all()

    def close(self) -> None:
        """Deliver what is queued, then stop (without waiting for a hung listener)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; False if a listener still holds it."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return
                notice = self._queue.popleft()
                listeners = self._listeners
            for callback in listeners:
                try:
                    callback(notice)
                except Exception:
                    self.errors += 1
                    log.exception("session listener raised")
