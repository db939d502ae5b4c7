"""What this station knows of the clinic server (records migration 5): its sync state and the
other stations' sessions as last pulled.

Neither is a record: both are the sync's working state, written in short transactions by
whoever syncs (the app's background sync or ``epm sync`` in another process) and rebuilt from
the server if lost. What must be proven (approvals, revocations, clients) is appended to the
chain as received events instead (:mod:`controller.server.pull`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

_STATE_COLUMNS = (
    "clinic_id",
    "pushed_position",
    "last_push_at",
    "last_pull_at",
    "sessions_txid",
    "failing_since",
    "last_error",
)


@dataclass(frozen=True)
class SyncState:
    """The station's view of its sync: ``pushed_position`` is the last position of its chain
    the server confirmed holding; ``last_pull_at`` the end of the last complete pull;
    ``failing_since``/``last_error`` the ongoing failure, if any (``None``/``""`` once a sync
    succeeds); ``local_position`` the station's own last event; ``waiting_sessions`` how many
    sessions have events the server does not hold yet, ``waiting_events`` how many events."""

    clinic_id: str
    pushed_position: int
    last_push_at: str | None
    last_pull_at: str | None
    sessions_txid: int
    failing_since: str | None
    last_error: str
    local_position: int = 0
    waiting_events: int = 0
    waiting_sessions: int = 0

    @property
    def ever_synced(self) -> bool:
        return self.last_pull_at is not None


def read_state(store: Any) -> SyncState:
    """The sync state with what is still waiting (one short read)."""
    with store.read_connection() as conn:
        row = conn.execute(
            f"SELECT {', '.join(_STATE_COLUMNS)} FROM sync_state WHERE singleton = 1"
        ).fetchone()
        state = SyncState(*row) if row else SyncState("", 0, None, None, 0, None, "")
        (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        waiting, sessions = conn.execute(
            "SELECT count(*), count(DISTINCT session_id) FROM events WHERE id > ?",
            (state.pushed_position,),
        ).fetchone()
    return SyncState(
        state.clinic_id,
        state.pushed_position,
        state.last_push_at,
        state.last_pull_at,
        state.sessions_txid,
        state.failing_since,
        state.last_error,
        int(last),
        int(waiting),
        int(sessions),
    )


def write_state(store: Any, **fields: Any) -> None:
    """Set some of the sync state's columns (one short write transaction)."""
    unknown = set(fields) - set(_STATE_COLUMNS)
    if unknown:
        raise ValueError(f"unknown sync state fields: {sorted(unknown)}")
    if not fields:
        return
    assignments = ", ".join(f"{name} = ?" for name in fields)
    with store.write_transaction() as conn:
        conn.execute(
            f"UPDATE sync_state SET {assignments} WHERE singleton = 1", tuple(fields.values())
        )


def record_failure(store: Any, message: str, now: str) -> None:
    """The server failed: keep since when (the first failure of a run) and the latest reason."""
    with store.write_transaction() as conn:
        conn.execute(
            "UPDATE sync_state SET failing_since = coalesce(failing_since, ?), last_error = ? "
            "WHERE singleton = 1",
            (now, message[:500]),
        )


def pulled_days_ago(state: SyncState, now: dt.datetime) -> float | None:
    """Days since the last complete pull (``None``: never pulled)."""
    from controller.records.models import parse_iso

    if not state.last_pull_at:
        return None
    return (now - parse_iso(state.last_pull_at)).total_seconds() / 86400


@dataclass(frozen=True)
class RemoteSession:
    """Another station's session, as last pulled."""

    station_id: str
    session_id: int
    station_name: str
    client_code: str
    protocol_id: str
    protocol_version: int
    started_at: str
    simulated: bool
    outcome: str
    ended_at: str | None


_REMOTE_COLUMNS = (
    "station_id, session_id, station_name, client_code, protocol_id, protocol_version, "
    "started_at, simulated, outcome, ended_at"
)


def remote_sessions(
    store: Any, client_code: str | None = None, protocol_id: str | None = None
) -> list[RemoteSession]:
    """Other stations' sessions as last pulled, newest first (optionally one client, one
    protocol)."""
    where, params = [], []
    if client_code is not None:
        where.append("client_code = ?")
        params.append(client_code.strip())
    if protocol_id is not None:
        where.append("protocol_id = ?")
        params.append(protocol_id)
    sql = f"SELECT {_REMOTE_COLUMNS} FROM remote_sessions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC"
    with store.read_connection() as conn:
        rows = conn.execute(sql, params).fetchall()
    return [
        RemoteSession(r[0], int(r[1]), r[2], r[3], r[4], int(r[5]), r[6], bool(r[7]), r[8], r[9])
        for r in rows
    ]


#: Pulled sessions kept per records transaction (short: a running session shares the lock).
REMOTE_BATCH = 500


def store_remote_sessions(store: Any, rows: list[RemoteSession], cursor: int) -> None:
    """Keep pulled sessions, in short transactions, then the new cursor (a crash in between
    pulls them again: keeping one twice changes nothing)."""
    for start in range(0, len(rows), REMOTE_BATCH):
        _keep_remote(store, rows[start : start + REMOTE_BATCH])
    with store.write_transaction() as conn:
        conn.execute("UPDATE sync_state SET sessions_txid = ? WHERE singleton = 1", (cursor,))


def _keep_remote(store: Any, rows: list[RemoteSession]) -> None:
    with store.write_transaction() as conn:
        conn.executemany(
            f"INSERT OR REPLACE INTO remote_sessions ({_REMOTE_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.station_id,
                    r.session_id,
                    r.station_name,
                    r.client_code,
                    r.protocol_id,
                    r.protocol_version,
                    r.started_at,
                    int(r.simulated),
                    r.outcome,
                    r.ended_at,
                )
                for r in rows
            ],
        )
