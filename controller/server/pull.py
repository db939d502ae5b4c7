"""What a station takes from the clinic server: the clinic ledger and the other stations'
sessions; and what it tells the ledger: the client codes it treats.

**The ledger** (server table ``clinic_events``: approvals, revocations, client codes claimed by
stations, conflicts between claims, their resolutions) is pulled in order from the position
after the last one this station received. Each pulled row is checked first — it continues the
ledger as received (``prev_hash`` is the last received hash, 64 zeros at position 1) and its
hash is what :func:`ledger_hash` computes — and then appended to the station's own chain as a
received event, kind ``received_<kind>`` (``received_approval``, ``received_revocation``,
``received_client``, ``received_client_conflict``, ``received_client_resolved``), with data
``{clinic_id, server_position, server_hash, station_id, made_by, created_at, data}``: a
received approval is proven by the station's own chain like one made here. A row that does not
check is refused, naming the position, and nothing of that pull is appended. The positions are
the server's (``clinic_id`` names the server: another server starts its own count).

A received client creates the client's row here (code and name) when this station does not
know the code yet, so the new-session screen lists every client of the clinic.

**Sessions** (server table ``sessions``, kept from every station's events) are pulled by the
id of the transaction that last changed them, only below the oldest transaction still open on
the server, so a change committed late is never skipped; they are kept in ``remote_sessions``
(:mod:`controller.server.state`) for courses across rooms.

**Claims**: each client code this station has a session with is claimed on the ledger with its
name (once per code and name: the ledger says which claims it holds). Two names under one code
make the server append a conflict, received by every station.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from controller.records.migrations import GENESIS_HASH
from controller.records.received import LEDGER_KINDS, RECEIVED_KINDS, norm_name
from controller.records.sync_state import RemoteSession, store_remote_sessions
from controller.server import ServerError

#: Ledger rows taken per records transaction: short, so a running session never waits long for
#: the records' one write lock.
PAGE = 100


class LedgerRow(NamedTuple):
    position: int
    kind: str
    data: str
    station_id: str | None
    made_by: str
    created_at: str
    prev_hash: str
    hash: str


def ledger_hash(  # noqa: PLR0917 - one argument per hashed column
    prev_hash: str, position: int, kind: str, created_at: str, station_id: str | None, data: str
) -> str:
    """The hash the server gives a clinic ledger row (``epm_clinic_insert``)."""
    text = "\n".join([prev_hash, str(position), kind, created_at, station_id or "", data])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class LedgerRefused(ServerError):  # noqa: N818 - named like ChainRefused
    """The server's clinic ledger does not check at ``position``: nothing was taken."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(
            f"the clinic server's ledger is broken at position {position}: {reason}. Nothing "
            "was taken from it; ask the clinic's records administrator to check the server "
            "(`epm records verify --server`)"
        )
        self.position = position
        self.reason = reason


def clinic_id(conn: Any) -> str:
    (value,) = conn.execute("SELECT clinic_id::text FROM clinic WHERE singleton = 1").fetchone()
    return str(value)


def received_head(store: Any, clinic: str) -> tuple[int, str]:
    """The last ledger position (and hash) this station received from the clinic ``clinic``
    (0 and 64 zeros: none yet). Read from the chain: received events are records."""
    kinds = ", ".join("?" * len(RECEIVED_KINDS))
    with store.read_connection() as conn:
        rows = conn.execute(
            f"SELECT data FROM events WHERE session_id IS NULL AND kind IN ({kinds}) "
            "ORDER BY id DESC",
            RECEIVED_KINDS,
        )
        for (data_json,) in rows:
            data = json.loads(data_json)
            if data.get("clinic_id") == clinic:
                return int(data["server_position"]), str(data["server_hash"])
    return 0, GENESIS_HASH


def check_ledger(rows: Sequence[LedgerRow], last_position: int, last_hash: str) -> None:
    """Each row continues the ledger and carries the hash of its content; else
    :class:`LedgerRefused` naming the position."""
    position, previous = last_position, last_hash
    for row in rows:
        if row.position != position + 1:
            raise LedgerRefused(position + 1, f"the next row the server has is {row.position}")
        if row.prev_hash != previous:
            raise LedgerRefused(
                row.position, f"its prev_hash {row.prev_hash} is not the hash before it"
            )
        computed = ledger_hash(
            row.prev_hash, row.position, row.kind, row.created_at, row.station_id, row.data
        )
        if computed != row.hash:
            raise LedgerRefused(
                row.position,
                f"its content gives hash {computed}, the row says {row.hash} (it was changed)",
            )
        if row.kind not in LEDGER_KINDS:
            raise LedgerRefused(row.position, f"unknown kind {row.kind!r}")
        try:
            parsed = json.loads(row.data)
        except ValueError as exc:
            raise LedgerRefused(row.position, f"its data is not JSON ({exc})") from exc
        if not isinstance(parsed, dict):
            raise LedgerRefused(row.position, "its data is not a JSON object")
        position, previous = row.position, row.hash


def pull_ledger(store: Any, conn: Any) -> int:
    """Take the ledger rows this station has not received yet; the number taken."""
    clinic = clinic_id(conn)
    taken = 0
    while True:
        position, digest = received_head(store, clinic)
        if position:  # the server must still hold what this station received, unchanged
            held = conn.execute(
                "SELECT hash FROM clinic_events WHERE position = %s", (position,)
            ).fetchone()
            if held is None or str(held[0]) != digest:
                raise LedgerRefused(
                    position,
                    "this station received "
                    + (
                        "a row there that the server no longer holds"
                        if held is None
                        else f"hash {digest} there, the server now holds {held[0]}"
                    )
                    + " (was the server restored from an older backup?)",
                )
        rows = [
            LedgerRow(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7])
            for r in conn.execute(
                "SELECT position, kind, data, station_id::text, made_by, created_at, prev_hash, "
                "hash FROM clinic_events WHERE position > %s ORDER BY position LIMIT %s",
                (position, PAGE),
            )
        ]
        if not rows:
            return taken
        check_ledger(rows, position, digest)
        _append_received(store, clinic, rows)
        taken += len(rows)


def _append_received(store: Any, clinic: str, rows: Sequence[LedgerRow]) -> None:
    """Append the checked rows to the station's chain, in one transaction (with the client
    rows the station did not know yet)."""
    with store.write_transaction() as conn:
        for row in rows:
            data = json.loads(row.data)
            store.append_ledger_event(
                conn,
                f"received_{row.kind}",
                {
                    "clinic_id": clinic,
                    "server_position": row.position,
                    "server_hash": row.hash,
                    "station_id": row.station_id,
                    "made_by": row.made_by,
                    "created_at": row.created_at,
                    "data": data,
                },
            )
            code = data.get("code")
            if row.kind == "client" and isinstance(code, str) and code.strip():
                name = data.get("name") if isinstance(data.get("name"), str) else None
                conn.execute(
                    "INSERT OR IGNORE INTO clients (code, name, created_at) VALUES (?, ?, ?)",
                    (code.strip(), (name or "").strip() or None, store.now()),
                )


# --- claims -------------------------------------------------------------------------------------


def push_claims(store: Any, conn: Any, station_id: str) -> int:
    """Claim on the ledger each client code this station has a session with, under its name,
    unless the ledger (as received) already holds that claim; the number claimed."""
    # The claims this station received back (not proven here: re-claiming is idempotent on the
    # server, so this only saves a round trip; one short read, only this station's claims).
    done: set[tuple[str, str]] = set()
    with store.read_connection() as rconn:
        for (data_json,) in rconn.execute(
            "SELECT data FROM events WHERE session_id IS NULL AND kind = 'received_client' "
            "AND instr(data, ?) > 0",
            (station_id,),
        ):
            outer = json.loads(data_json)
            inner = outer.get("data") if isinstance(outer.get("data"), dict) else {}
            if outer.get("station_id") == station_id:
                done.add((str(inner.get("code", "")), norm_name(inner.get("name"))))
        names: dict[str, str] = {
            str(code): str(name or "")
            for code, name in rconn.execute(
                "SELECT DISTINCT c.code, c.name FROM clients c "
                "JOIN sessions s ON s.client_id = c.id ORDER BY c.code"
            )
        }
        # A name corrected after a closed session is a chained event (the latest one counts).
        for (data_json,) in rconn.execute(
            "SELECT data FROM events WHERE kind = 'client_amended' AND session_id IS NULL "
            "ORDER BY id"
        ):
            amended = json.loads(data_json)
            if amended.get("code") in names and isinstance(amended.get("name"), str):
                names[amended["code"]] = amended["name"]
    claimed = 0
    for code, name in names.items():
        if (code, norm_name(name)) in done:
            continue
        data = json.dumps({"code": code, "name": name}, ensure_ascii=False, sort_keys=True)
        conn.execute("SELECT epm_clinic_append('client', %s, %s)", (data, station_id))
        claimed += 1
    return claimed


# --- sessions ------------------------------------------------------------------------------------


def pull_sessions(store: Any, conn: Any, station_id: str, cursor: int) -> int:
    """Take the sessions changed on the server since ``cursor`` (a transaction id), except this
    station's own; the number of changes taken."""
    rows = conn.execute(
        "SELECT s.station_id::text, s.session_id, coalesce(st.name, ''), s.client_code, "
        "s.protocol_id, s.protocol_version, s.started_at, s.simulated, s.outcome, s.ended_at, "
        "s.txid FROM sessions s JOIN stations st ON st.station_id = s.station_id "
        "WHERE s.txid > %s AND s.txid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint "
        "ORDER BY s.txid",
        (cursor,),
    ).fetchall()
    if not rows:
        return 0
    new_cursor = max(int(r[10]) for r in rows)
    others = [
        RemoteSession(r[0], int(r[1]), r[2], r[3], r[4], int(r[5]), r[6], bool(r[7]), r[8], r[9])
        for r in rows
        if r[0] != station_id
    ]
    store_remote_sessions(store, others, new_cursor)
    return len(others)


# --- documents -----------------------------------------------------------------------------------

DOCUMENT_KINDS = ("report_written", "handout_given")


def push_documents(store: Any, conn: Any, station_id: str, server_position: int) -> list[str]:
    """Send the documents (reports, handouts) this station handed out that the server does
    not hold, from the data folder's ``reports/``, each in its own short transaction; only
    those whose event the server already holds. Returns the file names that could not be sent
    because the file is missing here or its bytes are not the recorded ones."""
    from controller.records.paths import REPORTS_FOLDER

    held = {
        str(r[0])
        for r in conn.execute("SELECT sha256 FROM documents WHERE station_id = %s", (station_id,))
    }
    with store.read_connection() as rconn:
        rows = rconn.execute(
            "SELECT session_id, kind, data FROM events WHERE kind IN (?, ?) AND id <= ? "
            "ORDER BY id",
            (*DOCUMENT_KINDS, server_position),
        ).fetchall()
    missing: list[str] = []
    for session_id, kind, data_json in rows:
        data = json.loads(data_json)
        sha, name = str(data.get("sha256", "")), str(data.get("file", ""))
        if sha in held or not name:
            continue
        path = store.data_dir / REPORTS_FOLDER / Path(name).name
        try:
            content = path.read_bytes()
        except OSError:
            missing.append(name)
            continue
        if hashlib.sha256(content).hexdigest() != sha:
            missing.append(name)
            continue
        with conn.transaction():
            conn.execute(
                "INSERT INTO documents (station_id, sha256, session_id, kind, file_name, "
                "content) VALUES (%s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (station_id, sha256) DO NOTHING",
                (station_id, sha, session_id, kind, name, content),
            )
        held.add(sha)
    return missing
