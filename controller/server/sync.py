"""``epm sync --once``: send this station's hash-chained events to the clinic server.

The station's chain (the ``events`` table of its SQLite records, ids 1, 2, 3 …) is copied to
the server's ``events`` table under the station's id, position = the event's id. Each round is
one short PostgreSQL transaction, under a transaction-level advisory lock for this station (two
pushes of one station never interleave):

1. the server's last position and hash for the station (0 and nothing: none yet);
2. if the server holds anything, the station's own event at that position must have the same
   hash, else this is a second chain under the same station id (a copied database): refused
   naming both hashes;
3. the next at most ``batch`` events are read from the station (one short read on the store's
   read connection, never its write lock) and checked as the server would: positions follow on
   with no gap, the first ``prev_hash`` is the server's last hash (64 zeros at position 1),
   each ``prev_hash`` is the hash before it and each hash is what
   :func:`controller.records.chain.row_hash` computes from the event's columns. Anything else
   is :class:`ChainRefused` naming the station and the position, and nothing of that batch is
   inserted;
4. ``INSERT … ON CONFLICT DO NOTHING`` (the key is station id + position, the same on every
   retry), then the rows at those positions are read back and must carry the hashes sent.

An interrupted push leaves whole batches only; the next push starts after the last one the
server holds. The station is registered in ``stations`` first (its name is only set the first
time: no role may UPDATE).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from controller.records.chain import row_hash
from controller.records.migrations import GENESIS_HASH
from controller.server import ServerError
from controller.server.schema import (
    _LOCK_ID,
    LATEST_SERVER_VERSION,
    _check_not_newer,
    _first_line,
    connect,
    server_version,
)

DEFAULT_BATCH = 500


class ChainRefused(ServerError):  # noqa: N818 - the name the sync design uses
    """The server refused the station's chain: ``station_id`` and ``position`` say where."""

    def __init__(self, station_id: str, position: int, reason: str) -> None:
        super().__init__(f"station {station_id}: chain refused at position {position}: {reason}")
        self.station_id = station_id
        self.position = position
        self.reason = reason


class Event(NamedTuple):
    """One station event as it is sent (``position`` is its id in the station's chain)."""

    position: int
    session_id: int | None
    seq: int
    wall_time: str
    mono_ms: int
    kind: str
    data: str
    prev_hash: str
    hash: str


@dataclass(frozen=True)
class PushResult:
    """What :func:`push` did."""

    station_id: str
    #: Events inserted by this push.
    sent: int
    #: The last position the server holds for this station after the push.
    server_position: int
    #: Transactions that inserted events.
    batches: int


_EVENT_COLUMNS = "id, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash"


def _read_events(store: Any, after: int, limit: int) -> list[Event]:
    """The station's events after position ``after`` (at most ``limit``), one short read."""
    try:
        with store.read_connection() as conn:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
    except sqlite3.Error as exc:  # pragma: no cover - the store turns these into RecordsError
        raise ServerError(f"cannot read the station's events: {exc}") from exc
    return [Event(*row) for row in rows]


def _local_hash(store: Any, position: int) -> str | None:
    with store.read_connection() as conn:
        row = conn.execute("SELECT hash FROM events WHERE id = ?", (position,)).fetchone()
    return None if row is None else str(row[0])


def event_hash(event: Event) -> str:
    """The hash an event's own columns give (``ValueError``/``TypeError``: unreadable)."""
    return row_hash(
        event.prev_hash,
        event.session_id,
        event.seq,
        event.wall_time,
        event.mono_ms,
        event.kind,
        event.data,
    )


def check_batch(
    station_id: str, events: Sequence[Event], last_position: int, last_hash: str | None
) -> None:
    """Check that ``events`` continue the chain the server holds (ending at ``last_position``
    with ``last_hash``, or empty) and that each hash is right; :class:`ChainRefused` if not."""
    expected_prev = GENESIS_HASH if last_position == 0 else (last_hash or "")
    expected_position = last_position + 1
    for event in events:
        where = event.position
        if event.position != expected_position:
            raise ChainRefused(
                station_id,
                expected_position,
                f"missing event: the next event the station has is {event.position}",
            )
        if event.prev_hash != expected_prev:
            before = (
                "the chain's start (64 zeros)"
                if expected_position == 1
                else f"the hash of position {expected_position - 1} ({expected_prev})"
            )
            raise ChainRefused(
                station_id,
                where,
                f"broken link: its prev_hash {event.prev_hash} is not {before}",
            )
        try:
            computed = event_hash(event)
        except (ValueError, TypeError) as exc:
            raise ChainRefused(
                station_id, where, f"hash mismatch: the event's content cannot be read ({exc})"
            ) from exc
        if computed != event.hash:
            raise ChainRefused(
                station_id,
                where,
                f"hash mismatch: the event's content gives {computed}, its hash says "
                f"{event.hash} (it was changed after it was written)",
            )
        expected_prev = event.hash
        expected_position += 1


def _insert(conn: Any, station_id: str, events: Sequence[Event]) -> None:
    """Insert one checked batch (inside the caller's transaction); a row the server already
    held at one of these positions must carry the same hash."""
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO events (station_id, position, session_id, seq, wall_time, mono_ms, "
            "kind, data, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (station_id, position) DO NOTHING",
            [(station_id, *event) for event in events],
        )
    stored = dict(
        conn.execute(
            "SELECT position, hash FROM events WHERE station_id = %s "
            "AND position BETWEEN %s AND %s",
            (station_id, events[0].position, events[-1].position),
        ).fetchall()
    )
    for event in events:
        if stored.get(event.position) != event.hash:
            raise ChainRefused(
                station_id,
                event.position,
                f"the server holds hash {stored.get(event.position)} at this position, the "
                f"station {event.hash}: a second chain under the same station id",
            )


def _server_head(conn: Any, station_id: str) -> tuple[int, str | None]:
    (position,) = conn.execute(
        "SELECT max(position) FROM events WHERE station_id = %s", (station_id,)
    ).fetchone()
    if position is None:
        return 0, None
    (digest,) = conn.execute(
        "SELECT hash FROM events WHERE station_id = %s AND position = %s",
        (station_id, position),
    ).fetchone()
    return int(position), str(digest)


def _push_round(conn: Any, store: Any, station_id: str, batch: int) -> tuple[int, int]:
    """One transaction: check and insert the next batch; (events sent, server position)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_ID, station_id))
        position, digest = _server_head(conn, station_id)
        if position:
            local = _local_hash(store, position)
            if local is None:  # the server holds more than the station has
                last = _read_last(store)
                held = _server_hash(conn, station_id, last[0]) if last else None
                if last and held != last[1]:
                    raise ChainRefused(
                        station_id,
                        last[0],
                        f"the server holds hash {held} at this position, the station "
                        f"{last[1]}: a second chain under the same station id",
                    )
                return 0, position
            if local != digest:
                raise ChainRefused(
                    station_id,
                    position,
                    f"the server holds hash {digest} at this position, the station {local}: "
                    "a second chain under the same station id",
                )
        events = _read_events(store, position, batch)
        if not events:
            return 0, position
        check_batch(station_id, events, position, digest)
        _insert(conn, station_id, events)
        return len(events), events[-1].position


def _read_last(store: Any) -> tuple[int, str] | None:
    with store.read_connection() as conn:
        row = conn.execute("SELECT id, hash FROM events ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def _server_hash(conn: Any, station_id: str, position: int) -> str | None:
    row = conn.execute(
        "SELECT hash FROM events WHERE station_id = %s AND position = %s",
        (station_id, position),
    ).fetchone()
    return None if row is None else str(row[0])


def push(
    store: Any,
    conn_or_url: Any,
    *,
    batch: int = DEFAULT_BATCH,
    name: str | None = None,
) -> PushResult:
    """Send the station's events the server does not hold yet, in chain order, in
    transactions of at most ``batch`` events; checked as the module docstring says.

    ``conn_or_url`` is a psycopg connection (left open) or a ``postgresql://`` URL (checked by
    :mod:`controller.server.url`, connected and closed here). ``name`` is the station's name
    registered with its id the first time. :class:`ChainRefused` (a :class:`ServerError`) when
    the chain is refused; :class:`ServerError` when the server cannot be used.
    """
    import psycopg

    if batch < 1:
        raise ValueError(f"batch must be at least 1, not {batch}")
    station_id = store.station_id
    own = isinstance(conn_or_url, str)
    conn = connect(conn_or_url) if own else conn_or_url
    try:
        version = server_version(conn)
        if version == 0:
            raise ServerError(
                "the clinic server has no epm schema yet: run `epm server init` first"
            )
        _check_not_newer(version, LATEST_SERVER_VERSION)
        with conn.transaction():
            conn.execute(
                "INSERT INTO stations (station_id, name) VALUES (%s, %s) "
                "ON CONFLICT (station_id) DO NOTHING",
                (station_id, name or ""),
            )
        sent = batches = 0
        while True:
            count, position = _push_round(conn, store, station_id, batch)
            if not count:
                return PushResult(station_id, sent, position, batches)
            sent += count
            batches += 1
    except psycopg.Error as exc:
        raise ServerError(f"the clinic server failed: {_first_line(exc)}") from exc
    finally:
        if own:
            conn.close()


# --- one whole sync: push, claims, pull ----------------------------------------------------------

#: An idle round writes the time of its pull at most this often (a write takes the records'
#: one write lock, which a running session uses too); the offline rule counts in days and the
#: home screen in minutes.
PULL_STAMP_S = 30.0


def _remember(store: Any, before: Any, pushed: PushResult, clinic: str) -> None:
    """Keep the round's outcome in the sync state, in one short write, and none when nothing
    a reader needs changed."""
    from controller.records.models import parse_iso
    from controller.records.sync_state import write_state

    now = store.now()
    fields: dict[str, Any] = {}
    if pushed.server_position != before.pushed_position or pushed.sent:
        fields.update(pushed_position=pushed.server_position, last_push_at=now)
    if clinic != before.clinic_id:
        fields["clinic_id"] = clinic
    if before.failing_since is not None or before.last_error:
        fields.update(failing_since=None, last_error="")
    stale = before.last_pull_at is None or (
        (parse_iso(now) - parse_iso(before.last_pull_at)).total_seconds() >= PULL_STAMP_S
    )
    if fields or stale:
        fields["last_pull_at"] = now
    if fields:
        write_state(store, **fields)


@dataclass(frozen=True)
class SyncResult:
    """What :func:`sync_once` did."""

    push: PushResult
    claimed: int
    ledger_taken: int
    sessions_taken: int
    #: Documents (reports, handouts) that could not be sent: missing here, or changed.
    documents_missing: tuple[str, ...] = ()


def sync_once(
    store: Any,
    conn_or_url: Any,
    *,
    batch: int = DEFAULT_BATCH,
    name: str | None = None,
) -> SyncResult:
    """Push the station's chain, claim its clients, pull the clinic ledger and the other
    stations' sessions; keep the outcome in the sync state (:mod:`controller.server.state`).
    Every step is idempotent and resumable: an interruption anywhere leaves whole transactions
    and the next sync goes on from there. A failure is recorded (``failing_since``,
    ``last_error``) and raised as :class:`ServerError`."""
    import psycopg

    from controller.records.sync_state import read_state, record_failure
    from controller.server import pull as pulling

    own = isinstance(conn_or_url, str)
    try:
        conn = connect(conn_or_url) if own else conn_or_url
    except ServerError as exc:
        record_failure(store, str(exc), store.now())
        raise
    try:
        before = read_state(store)
        pushed = push(store, conn, batch=batch, name=name)
        claimed = pulling.push_claims(store, conn, pushed.station_id)
        taken = pulling.pull_ledger(store, conn)
        if taken:  # what was received is the station's chain too: the server holds it all
            again = push(store, conn, batch=batch, name=name)
            pushed = PushResult(
                again.station_id,
                pushed.sent + again.sent,
                again.server_position,
                pushed.batches + again.batches,
            )
        clinic = pulling.clinic_id(conn)
        cursor = before.sessions_txid if before.clinic_id == clinic else 0
        sessions = pulling.pull_sessions(store, conn, pushed.station_id, cursor)
        missing = pulling.push_documents(store, conn, pushed.station_id, pushed.server_position)
        _remember(store, before, pushed, clinic)
        return SyncResult(pushed, claimed, taken, sessions, tuple(missing))
    except psycopg.Error as exc:
        error = ServerError(f"the clinic server failed: {_first_line(exc)}")
        record_failure(store, str(error), store.now())
        raise error from exc
    except ServerError as exc:
        record_failure(store, str(exc), store.now())
        raise
    finally:
        if own:
            conn.close()
