"""Opening the records database with the settings that make it durable and private.

Why each setting:

- WAL journal: readers (the UI, ``epm records``) never block the session engine's writes.
- ``synchronous=FULL``: a commit is on disk (the WAL is fsynced) before it returns, so an event
  the engine recorded before acting survives a power loss, not only a process kill.
- ``foreign_keys=ON``: a step or event can never point at a session that does not exist.
- busy timeout: a second process (``epm approve`` while a session runs) waits for the write
  lock instead of failing at once.
- The database holds client codes and treatment records: the file is created mode 0600 before
  SQLite opens it, and the ``-wal``/``-shm`` files are set to 0600 as well.

Connections are opened in autocommit mode (``isolation_level=None``); writers use explicit
``BEGIN IMMEDIATE`` ... ``COMMIT`` so a transaction's extent is visible in the code.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from controller.records.errors import DatabaseError
from controller.records.paths import FILE_MODE

BUSY_TIMEOUT_MS = 10_000


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist (an empty file is a valid,
    empty SQLite database), so SQLite never creates it with the umask's looser mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def restrict_side_files(path: Path) -> None:
    """Set the database and its ``-wal``/``-shm`` companions to 0600 (those that exist)."""
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}-journal")):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(candidate, FILE_MODE)


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path`` with WAL, FULL sync, foreign keys.

    The connection may be used from any thread; callers serialise access with their own lock.
    """
    try:
        _create_private(path)
        conn = sqlite3.connect(
            path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,
            check_same_thread=False,
        )
    except (OSError, sqlite3.Error, UnicodeError, ValueError) as exc:
        raise DatabaseError(
            f"cannot open the records database {path}: {exc}; check that the folder is "
            "writable by you, or choose another with --data-dir or EPM_HOME"
        ) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise DatabaseError(
                f"the records database {path} cannot use write-ahead logging (journal mode "
                f"stayed {mode!r}); put the data folder on a local disk, not a network share"
            )
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
        # A schema check reads page 1: a file that is not a database fails here, clearly.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except (sqlite3.DatabaseError, UnicodeError, ValueError) as exc:
        conn.close()
        raise DatabaseError(
            f"{path} is not a usable records database ({exc}); move it aside and epm will "
            "start a new one, or point --data-dir / EPM_HOME at the right folder"
        ) from exc
    except DatabaseError:
        conn.close()
        raise
    restrict_side_files(path)
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` on any exception.

    IMMEDIATE takes the write lock at the start, so values read inside (the chain head, the
    next sequence number) cannot be changed by another writer before the commit.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (disk full, I/O error)
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
