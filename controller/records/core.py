"""The record store's core: opening, locking, connections, the clock and the chained append.

Crash safety: every write commits (``synchronous=FULL``) before the method returns. The session
engine calls ``append_event`` (or a ``record_*`` helper, which writes its event in the same
transaction) *before* it acts on the device, so the record never claims less than was
attempted. Telemetry is the exception: it is decimated and written about once a second, so a
kill loses at most the last second of telemetry, never an event.

Threads: one write connection behind a lock (the session engine's thread writes) and one read
connection behind another lock (the UI and the CLI read); in WAL mode a reader never waits for a
writer's fsync.

One data folder has at most one *exclusive* store, the one that runs sessions (an advisory
``flock`` on ``records.lock``, released by the kernel if the process dies). Only it writes
sessions, steps, events and telemetry, and only it may mark sessions left ``running`` as
interrupted; other stores (``epm records``, ``epm approve``) read and record approvals.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from controller.records import chain
from controller.records import validation as check
from controller.records.db import connect, restrict_side_files, transaction
from controller.records.errors import (
    UNREADABLE,
    DatabaseError,
    InvalidRecordError,
    ReadOnlyStoreError,
    RecordsError,
    SessionEndedError,
    StoreLockedError,
    UnknownSessionError,
    unreadable,
)
from controller.records.migrations import migrate
from controller.records.models import EventRow, iso, utc_now
from controller.records.paths import FILE_MODE, LOCK_FILENAME, database_path, resolve_data_dir
from controller.records.telemetry import Decimator

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no advisory lock
    fcntl = None  # type: ignore[assignment]

#: How often buffered telemetry is written while a session runs (seconds, monotonic clock).
TELEMETRY_FLUSH_S = 1.0


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """SQLite gave up waiting for another connection's lock (not damage)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class StoreCore:
    """Opening, the folder lock, the two connections, the clock and the chained append."""

    def __init__(
        self,
        data_dir: Path,
        *,
        exclusive: bool,
        clock: Callable[[], dt.datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        flush_interval_s: float = TELEMETRY_FLUSH_S,
    ) -> None:
        """Use :meth:`open`; this constructor assumes the folder was resolved."""
        self.data_dir = data_dir
        self.path = database_path(data_dir)
        self.exclusive = exclusive
        #: With a clinic server configured, its ``server.offline_days`` (set by whoever opened
        #: the store from the configuration: the app factory, ``epm run``); ``None``: no
        #: server, no offline rule. :func:`controller.records.approvals.check_runnable`
        #: applies it.
        self.offline_days: int | None = None
        self._clock = clock
        self._monotonic = monotonic
        self._flush_interval_s = flush_interval_s
        self._lock_fd: int | None = None
        if exclusive:
            self._lock_fd = self._take_lock()
        try:
            self._wconn = connect(self.path)
            try:
                try:
                    migrate(self._wconn, str(self.path))
                except RecordsError:
                    raise
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        raise DatabaseError(
                            f"the records database {self.path} cannot be upgraded ({exc}): its "
                            "schema version does not match its tables, so it was changed "
                            "outside epm. Keep the data folder as evidence and restore a backup"
                        ) from exc
                    raise StoreLockedError(
                        f"the records database {self.path} is busy: another program is writing "
                        "to it and held it longer than epm waits. Nothing was changed; try "
                        "again in a moment (another epm ending a session, a backup tool "
                        "copying the folder)"
                    ) from exc
                except UNREADABLE as exc:
                    raise DatabaseError(
                        f"the records database {self.path} cannot be upgraded ({exc}): its "
                        "schema version does not match its tables, so it was changed outside "
                        "epm. Keep the data folder as evidence and restore a backup"
                    ) from exc
                self._rconn = connect(self.path)
            except BaseException:
                self._wconn.close()
                raise
        except BaseException:
            self._release_lock()
            raise
        restrict_side_files(self.path)
        self._wlock = threading.RLock()
        self._rlock = threading.Lock()
        self._closed = False
        self._open_sessions: set[int] = set()
        self._decimators: dict[int, Decimator] = {}
        self._last_flush: dict[int, float] = {}
        #: Telemetry samples refused because their session was not running.
        self.dropped_telemetry = 0

    # -- opening and closing ------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        data_dir: str | Path | None = None,
        *,
        exclusive: bool = True,
        clock: Callable[[], dt.datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        flush_interval_s: float = TELEMETRY_FLUSH_S,
        create: bool = True,
    ) -> Self:
        """Open (creating and migrating) the records in ``data_dir`` (see
        :func:`~controller.records.paths.resolve_data_dir` for ``None``).

        ``create=False`` is for reading: a folder with no database is
        :class:`~controller.records.errors.NoRecordsError`, and nothing is created.

        ``exclusive=True`` is for the process that runs sessions; only one may exist per folder
        (:class:`StoreLockedError` otherwise). ``clock`` gives aware UTC datetimes.
        """
        return cls(
            resolve_data_dir(data_dir, create=create),
            exclusive=exclusive,
            clock=clock,
            monotonic=monotonic,
            flush_interval_s=flush_interval_s,
        )

    def _take_lock(self) -> int | None:
        if fcntl is None:  # pragma: no cover
            return None
        lock_path = self.data_dir / LOCK_FILENAME
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"another epm is already running sessions with the records in {self.data_dir}: "
                "close it first, or give this one another folder with --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and truncate it (done at close; also
        before copying the data folder for a backup)."""
        with self._wlock:
            self._check_open()
            self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        """Checkpoint, close the database and release the folder lock (idempotent)."""
        with self._wlock:
            if self._closed:
                return
            with contextlib.suppress(sqlite3.Error):  # busy readers: the next open finishes it
                self._wconn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._closed = True
            self._wconn.close()
            with self._rlock:
                self._rconn.close()
            restrict_side_files(self.path)
            self._release_lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- connection access for the package's modules ---------------------------------------------

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Connection]:
        """The write connection inside ``BEGIN IMMEDIATE`` ... ``COMMIT``, under the write lock."""
        with self._wlock:
            self._check_open()
            with transaction(self._wconn) as conn:
                yield conn

    @contextlib.contextmanager
    def read_connection(self) -> Iterator[sqlite3.Connection]:
        """The read connection, under the read lock (sees everything committed so far).

        A database changed or damaged outside epm can hold anything: a value of the wrong type,
        text that is not UTF-8 or JSON, a malformed page. Whatever that makes a read raise
        becomes :class:`DatabaseError` (a ``RecordsError``) saying so, never a traceback.
        """
        with self._rlock:
            self._check_open()
            try:
                yield self._rconn
            except RecordsError:
                raise
            except UNREADABLE as exc:
                if self._rconn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._rconn.execute("ROLLBACK")
                raise unreadable(self.path, exc) from exc

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidRecordError("the record store is closed; open it again")

    def _require_exclusive(self, what: str) -> None:
        if not self.exclusive:
            raise ReadOnlyStoreError(
                f"cannot {what}: this record store was opened without exclusive=True, which only "
                "the process that runs sessions uses"
            )

    def now(self) -> str:
        """The present moment in stored form (the store's clock)."""
        return iso(self._clock())

    # -- the event log --------------------------------------------------------------------------

    def _append(
        self,
        conn: sqlite3.Connection,
        session_id: int | None,
        kind: str,
        data: Mapping[str, Any],
        *,
        wall_time: str | None = None,
    ) -> EventRow:
        """Insert one chained event inside the caller's write transaction (``session_id``
        None: an event of the records as a whole)."""
        kind = check.text(kind, "event kind", max_len=64)
        data_json = chain.check_json_data(data)
        wall_time = self.now() if wall_time is None else wall_time
        mono_ms = int(self._monotonic() * 1000)
        try:
            done = chain.append_row(conn, session_id, kind, data_json, wall_time, mono_ms)
        except sqlite3.IntegrityError as exc:
            if "FOREIGN KEY" in str(exc):
                raise UnknownSessionError(
                    f"no session has the id {session_id}: begin_session first"
                ) from None
            raise
        data_out = json.loads(data_json)
        return EventRow(
            done.id,
            session_id,
            done.seq,
            wall_time,
            mono_ms,
            kind,
            data_out,
            done.prev_hash,
            done.hash,
        )

    def append_ledger_event(
        self, conn: sqlite3.Connection, kind: str, data: Mapping[str, Any]
    ) -> EventRow:
        """Append an event of the records as a whole (no session: an approval, a correction)
        inside the caller's write transaction (:meth:`write_transaction`)."""
        return self._append(conn, None, kind, data)

    def _outcome(self, conn: sqlite3.Connection, session_id: int) -> str:
        """The session's outcome (``running`` while open); unknown ids are refused."""
        row = conn.execute("SELECT outcome FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise UnknownSessionError(f"no session has the id {session_id}")
        return str(row[0])

    def _require_running(self, conn: sqlite3.Connection, session_id: int) -> None:
        outcome = self._outcome(conn, session_id)
        if outcome != "running":
            raise SessionEndedError(
                f"session {session_id} already ended as {outcome}: its steps are final; "
                "begin a new session to treat again"
            )
