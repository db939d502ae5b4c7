"""The background sync of a running epm: :func:`~controller.server.sync.sync_once` every few
seconds on its own thread with its own server connection, so a session never waits for the
network. Its rounds write only short transactions to the records (the store serialises them
with the session's own writes); a failing server is recorded in the sync state (since when,
why) and retried, with the wait doubling up to a minute. ``stop`` ends it promptly; the
connection is closed on the worker's own thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from controller.server import ServerError

log = logging.getLogger(__name__)

#: Seconds between two rounds: a session's records reach the server within about this (the
#: load bench's lag p99 is the pause plus about 0.1 s); an idle round is a few round trips.
DEFAULT_EVERY_S = 2.0
#: The longest wait between two attempts while the server is failing.
MAX_BACKOFF_S = 60.0


class SyncWorker:
    """Runs sync rounds for ``store`` against ``url`` until :meth:`stop`."""

    def __init__(
        self,
        store: Any,
        url: str,
        *,
        name: str | None = None,
        every_s: float = DEFAULT_EVERY_S,
        on_round: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.url = url
        self.name = name
        self.every_s = every_s
        self.on_round = on_round
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0
        self.last_error = ""

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="epm-sync", daemon=True)
            self._thread.start()

    def sync_now(self) -> None:
        """Start the next round at once (a session just ended)."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        from controller.server.schema import connect
        from controller.server.sync import sync_once

        conn: Any = None
        wait = self.every_s
        while not self._stopping.is_set():
            try:
                if conn is None or conn.closed:
                    conn = connect(self.url)
                sync_once(self.store, conn, name=self.name)
                self.last_error = ""
                wait = self.every_s
            except ServerError as exc:
                self.last_error = str(exc)
                wait = min(MAX_BACKOFF_S, max(self.every_s, wait * 2))
                _close(conn)
                conn = None
                self._record(str(exc))
            except Exception as exc:  # the sync must never take the app down
                log.exception("the background sync failed")
                self.last_error = f"the sync failed ({type(exc).__name__}: {exc})"
                wait = min(MAX_BACKOFF_S, max(self.every_s, wait * 2))
                _close(conn)
                conn = None
                self._record(self.last_error)
            self.rounds += 1
            if self.on_round is not None:
                try:
                    self.on_round()
                except Exception:  # a closed app
                    log.debug("on_round failed", exc_info=True)
            self._wake.wait(wait)
            self._wake.clear()
        _close(conn)

    def _record(self, message: str) -> None:
        from controller.records.sync_state import record_failure

        try:
            record_failure(self.store, message, self.store.now())
        except Exception:  # records closed while stopping
            log.debug("recording the sync failure failed", exc_info=True)


def _close(conn: Any) -> None:
    if conn is not None:
        try:
            conn.close()
        except Exception:
            log.debug("closing the server connection failed", exc_info=True)
