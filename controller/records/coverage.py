"""Full coverage: everything the records show is in the hash chain or under a digest it commits.

The event log is hash-chained (:mod:`~controller.records.chain`). The other tables are not, so
this module ties them to it:

- **Seals.** A session's closing event (``session_end``, written by ``end_session`` and by
  ``recover_interrupted``) carries a *seal*: the SHA-256 of its ``sessions`` row, its client's
  row, each of its steps and its telemetry in blocks of :data:`BLOCK_ROWS` rows, plus one digest
  over all of them. After that event the database's triggers refuse any change to those rows;
  anything later is its own chained event (a note, an amendment, a corrected client name).
  ``verify`` recomputes the seal and names the table and row that no longer match.
- **Approvals.** Each approval is also a chained ``approval`` event; approvals recorded before
  this change entered the chain through one ``approvals_migrated`` event at the upgrade. The
  approval check trusts only approvals whose event the chain proves (:func:`chained_approvals`),
  never the ``approvals`` table alone, and ``verify`` reports table rows the chain does not hold.
- **Sessions from before full coverage** have no seal. They verify as before (their
  ``session_started`` and ``session_end`` events) and are listed as "recorded before full
  coverage", never as failed.

What it cannot do: someone with write access to the file can rewrite every row *and* recompute
every hash after it. Only an anchor kept outside the file (the head and event count printed on
an export or a report, :mod:`~controller.records.anchor`) shows that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from controller.records import chain

SEAL_VERSION = 1
#: Telemetry rows per sealed block (10 s of device time at one row per 100 ms).
BLOCK_ROWS = 100
#: Short per-row hashes only point at the changed row; the full digest is what proves.
_SHORT = 16
#: The kinds of event that put approvals in the chain.
APPROVAL_KINDS = ("approval", "approvals_migrated")


@dataclass(frozen=True)
class Finding:
    """One thing ``verify`` found wrong, with where: the session, the table and the row."""

    table: str
    reason: str
    session_id: int | None = None
    row: str | None = None
    event_id: int | None = None

    def describe(self) -> str:
        where = []
        if self.session_id is not None:
            where.append(f"session {self.session_id}")
        where.append(f"table {self.table}")
        if self.row is not None:
            where.append(f"row {self.row}")
        return f"{', '.join(where)}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "session_id": self.session_id,
            "row": self.row,
            "event_id": self.event_id,
            "reason": self.reason,
        }


# -- hashing rows ----------------------------------------------------------------------------------


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in conn.execute(f"PRAGMA table_info({table})")]


def _select(columns: Sequence[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


def _hash_values(values: Sequence[Any]) -> str:
    text = json.dumps(list(values), separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rows(
    conn: sqlite3.Connection, table: str, columns: Sequence[str], where: str, param: int
) -> list[tuple[Any, ...]]:
    sql = f"SELECT id, {_select(columns)} FROM {table} WHERE {where} ORDER BY id"
    return [tuple(r) for r in conn.execute(sql, (param,))]


def _blocks(rows: list[tuple[Any, ...]]) -> Iterator[tuple[int, int, int, str]]:
    """(first id, last id, row count, hash) per block of telemetry rows."""
    for start in range(0, len(rows), BLOCK_ROWS):
        block = rows[start : start + BLOCK_ROWS]
        digest = hashlib.sha256()
        for row in block:
            digest.update(json.dumps(row, separators=(",", ":"), ensure_ascii=False).encode())
            digest.update(b"\n")
        yield block[0][0], block[-1][0], len(block), digest.hexdigest()


@dataclass(frozen=True)
class _Computed:
    columns: dict[str, list[str]]
    session: str
    client: str
    client_id: int | None
    steps: list[tuple[int, str]]
    telemetry: list[tuple[int, int, int, str]]

    def digest(self) -> str:
        return chain_digest(self.session, self.client, self.steps, self.telemetry)


def chain_digest(
    session: str,
    client: str,
    steps: Sequence[Sequence[Any]],
    telemetry: Sequence[Sequence[Any]],
) -> str:
    content = chain.canonical_json(
        {
            "session": session,
            "client": client,
            "steps": [list(s) for s in steps],
            "telemetry": [list(t) for t in telemetry],
        }
    )
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def _compute(conn: sqlite3.Connection, session_id: int, columns: dict[str, list[str]]) -> _Computed:
    session_rows = _rows(conn, "sessions", columns["sessions"], "id = ?", session_id)
    session_hash = _hash_values(session_rows[0]) if session_rows else ""
    client_id = None
    client_hash = ""
    if session_rows:
        client_id = conn.execute(
            "SELECT client_id FROM sessions WHERE id = ?", (session_id,)
        ).fetchone()[0]
        client_rows = _rows(conn, "clients", columns["clients"], "id = ?", client_id)
        client_hash = _hash_values(client_rows[0]) if client_rows else ""
    steps = [
        (int(r[0]), _hash_values(r))
        for r in _rows(conn, "steps", columns["steps"], "session_id = ?", session_id)
    ]
    telemetry_rows = _rows(conn, "telemetry", columns["telemetry"], "session_id = ?", session_id)
    return _Computed(
        columns, session_hash, client_hash, client_id, steps, list(_blocks(telemetry_rows))
    )


def session_seal(conn: sqlite3.Connection, session_id: int) -> dict[str, Any]:
    """The seal a closing event carries: which columns were hashed, each part's hash and the
    digest over all of them (call inside the write transaction that closes the session)."""
    columns = {t: _columns(conn, t) for t in ("sessions", "clients", "steps", "telemetry")}
    computed = _compute(conn, session_id, columns)
    return {
        "v": SEAL_VERSION,
        "columns": columns,
        "session": computed.session,
        "client": computed.client,
        "steps": [[sid, digest[:_SHORT]] for sid, digest in computed.steps],
        "telemetry": [[a, b, n, digest[:_SHORT]] for a, b, n, digest in computed.telemetry],
        "digest": computed.digest(),
    }


def check_seal(
    conn: sqlite3.Connection, session_id: int, seal: dict[str, Any], event_id: int
) -> list[Finding]:
    """What no longer matches ``seal`` (empty when every sealed row is as it was)."""
    try:
        columns = {str(k): [str(c) for c in v] for k, v in seal["columns"].items()}
        computed = _compute(conn, session_id, columns)
    except (KeyError, TypeError, AttributeError, sqlite3.Error) as exc:
        return [Finding("events", f"the seal cannot be read ({exc})", session_id, None, event_id)]
    if computed.digest() == seal.get("digest"):
        return []
    found: list[Finding] = []

    def add(table: str, reason: str, row: str | None = None) -> None:
        found.append(Finding(table, reason, session_id, row, event_id))

    if computed.session != seal.get("session"):
        add("sessions", "the session's row changed after it was closed", str(session_id))
    if computed.client != seal.get("client"):
        add(
            "clients",
            "the client's row changed after this session was closed",
            str(computed.client_id),
        )
    sealed_steps = {int(s[0]): str(s[1]) for s in seal.get("steps", [])}
    now_steps = {sid: digest[:_SHORT] for sid, digest in computed.steps}
    for sid in sorted(sealed_steps.keys() | now_steps.keys()):
        if sid not in now_steps:
            add("steps", "the step was deleted after the session was closed", str(sid))
        elif sid not in sealed_steps:
            add("steps", "the step was added after the session was closed", str(sid))
        elif now_steps[sid] != sealed_steps[sid]:
            add("steps", "the step changed after the session was closed", str(sid))
    sealed_blocks = [tuple(b) for b in seal.get("telemetry", [])]
    now_blocks = [(a, b, n, d[:_SHORT]) for a, b, n, d in computed.telemetry]
    if sealed_blocks != now_blocks:
        sealed_rows = sum(int(b[2]) for b in sealed_blocks)
        now_rows = sum(b[2] for b in now_blocks)
        first_bad = next(
            (
                i
                for i, (s, n) in enumerate(zip(sealed_blocks, now_blocks, strict=False))
                if tuple(s) != n
            ),
            min(len(sealed_blocks), len(now_blocks)),
        )
        if first_bad < len(sealed_blocks):
            first_id, last_id = sealed_blocks[first_bad][0], sealed_blocks[first_bad][1]
        else:
            first_id, last_id = now_blocks[first_bad][0], now_blocks[-1][1]
        if now_rows < sealed_rows:
            what = f"{sealed_rows - now_rows} telemetry row(s) were deleted"
        elif now_rows > sealed_rows:
            what = f"{now_rows - sealed_rows} telemetry row(s) were added"
        else:
            what = "telemetry rows changed"
        add("telemetry", f"{what} after the session was closed", f"{first_id}–{last_id}")
    if not found:
        add("events", "the seal's digest does not match its own parts (the seal was edited)")
    return found


# -- approvals ------------------------------------------------------------------------------------

APPROVAL_FIELDS = (
    "id",
    "sha256",
    "protocol_id",
    "protocol_version",
    "approved_by",
    "approved_at",
    "file_path",
)


def approval_data(row: Sequence[Any]) -> dict[str, Any]:
    """An approvals row as it goes into the chain."""
    return dict(zip(APPROVAL_FIELDS, row, strict=True))


def approvals_in_event(kind: str, data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        return []
    if kind == "approval":
        return [data]
    items = data.get("approvals")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


def chained_approvals(conn: sqlite3.Connection) -> list[tuple[dict[str, Any], int]]:
    """Every approval the chain proves (each with its event id), oldest first. An event whose
    own hash or link does not hold is not proof and is left out."""
    found: list[tuple[dict[str, Any], int]] = []
    kinds = ", ".join("?" * len(APPROVAL_KINDS))
    rows = conn.execute(
        f"SELECT id, kind, data FROM events WHERE kind IN ({kinds}) AND session_id IS NULL "
        "ORDER BY id",
        APPROVAL_KINDS,
    ).fetchall()
    for event_id, kind, data_json in rows:
        if not chain.event_proven(conn, int(event_id)):
            continue
        try:
            data = json.loads(data_json)
        except ValueError:
            continue
        found += [(item, int(event_id)) for item in approvals_in_event(str(kind), data)]
    return found


def check_approvals(conn: sqlite3.Connection) -> tuple[list[Finding], int]:
    """Each approvals row must be one the chain holds, and each chained approval must have its
    row (the table is an index; the chain is the record). Returns the findings and how many
    approvals the chain proves."""
    proven = chained_approvals(conn)
    chained = {str(item.get("id")): item for item, _ in proven}
    found: list[Finding] = []
    seen: set[str] = set()
    columns = _select(APPROVAL_FIELDS)
    for row in conn.execute(f"SELECT {columns} FROM approvals ORDER BY id"):
        data = approval_data(row)
        key = str(data["id"])
        seen.add(key)
        item = chained.get(key)
        if item is None:
            found.append(
                Finding(
                    "approvals",
                    f"the approval of {data['protocol_id']} version {data['protocol_version']} "
                    f"(sha256 {str(data['sha256'])[:12]}…) by {data['approved_by']!r} is not in "
                    "the chain: it was added behind epm's back and is not honoured",
                    row=key,
                )
            )
        elif {k: item.get(k) for k in APPROVAL_FIELDS} != data:
            changed = [k for k in APPROVAL_FIELDS if item.get(k) != data[k]]
            found.append(
                Finding(
                    "approvals",
                    f"the row's {', '.join(changed)} differ from its chained approval "
                    f"({', '.join(f'{k} {item.get(k)!r}' for k in changed)})",
                    row=key,
                )
            )
    for key, item in chained.items():
        if key not in seen:
            found.append(
                Finding(
                    "approvals",
                    f"the chained approval of {item.get('protocol_id')} version "
                    f"{item.get('protocol_version')} by {item.get('approved_by')!r} has no row: "
                    "the row was deleted",
                    row=key,
                )
            )
    return found, len(proven)


def record_migrated_approvals(conn: sqlite3.Connection) -> None:
    """Append one ``approvals_migrated`` event listing the approvals recorded before full
    coverage (run by the schema migration, inside its transaction). A database with no
    approvals and no sessions gets no event."""
    rows = [
        approval_data(r)
        for r in conn.execute(f"SELECT {_select(APPROVAL_FIELDS)} FROM approvals ORDER BY id")
    ]
    (sessions,) = conn.execute("SELECT count(*) FROM sessions").fetchone()
    if not rows and not sessions:
        return
    data = {
        "approvals": rows,
        "note": "approvals recorded before full coverage: trusted as of this upgrade",
        "sessions_before": int(sessions),
    }
    wall_time = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
    chain.append_row(
        conn,
        None,
        "approvals_migrated",
        chain.check_json_data(data),
        wall_time,
        int(time.monotonic() * 1000),
    )


# -- sessions -------------------------------------------------------------------------------------

#: Fields of a sessions row that must equal its chained ``session_started`` event.
CHAINED_SESSION_FIELDS = (
    "client_code",
    "protocol_id",
    "protocol_version",
    "protocol_sha256",
    "serum_lot",
    "practitioner",
    "device_serial",
    "simulated",
    "started_at",
)


@dataclass(frozen=True)
class SessionAudit:
    findings: list[Finding]
    sealed: list[int]
    uncovered: list[int]
    running: list[int]


def check_sessions(conn: sqlite3.Connection) -> SessionAudit:
    """Each session row against its chained events: what it started with, how it ended, and
    (once sealed) every row its closing event committed."""
    from controller.records.rows import EVENT_SELECT, SESSION_SELECT, event_row, session_row

    audit = SessionAudit([], [], [], [])
    ids_with_rows: set[int] = set()
    for row in conn.execute(f"{SESSION_SELECT} ORDER BY s.id").fetchall():
        session = session_row(row)
        ids_with_rows.add(session.id)
        events = [
            event_row(e)
            for e in conn.execute(
                f"{EVENT_SELECT} WHERE session_id = ? AND kind IN ('session_started', "
                "'session_end') ORDER BY seq",
                (session.id,),
            )
        ]
        starts = [e for e in events if e.kind == "session_started"]
        ends = [e for e in events if e.kind == "session_end"]

        def bad(
            reason: str, event_id: int | None, table: str = "sessions", s: int = session.id
        ) -> None:
            audit.findings.append(Finding(table, reason, s, str(s), event_id))

        if not starts or starts[0].seq != 1:
            bad("missing row: the session has no session_started event", None, "events")
            continue
        started = starts[0].data
        changed = [n for n in CHAINED_SESSION_FIELDS if started.get(n) != getattr(session, n)]
        for name in changed:
            bad(
                f"session row changed: {name} is {getattr(session, name)!r} but its chained "
                f"session_started event says {started.get(name)!r}",
                starts[0].id,
            )
        if session.outcome == "running":
            if ends:
                bad(
                    "session row changed: it says running but its chained session_end event "
                    f"says {ends[-1].data.get('outcome')!r}",
                    ends[-1].id,
                )
            else:
                audit.running.append(session.id)
            continue
        if not ends:
            bad(
                f"missing row: the session ended ({session.outcome}) but has no session_end event",
                None,
                "events",
            )
            continue
        end = ends[-1]
        if end.data.get("outcome") != session.outcome:
            bad(
                f"session row changed: outcome is {session.outcome!r} but its chained "
                f"session_end event says {end.data.get('outcome')!r}",
                end.id,
            )
        seal = end.data.get("seal")
        if not isinstance(seal, dict):
            audit.uncovered.append(session.id)
            continue
        problems = check_seal(conn, session.id, seal, end.id)
        audit.findings.extend(problems)
        if not problems and not changed:
            audit.sealed.append(session.id)
    orphans = conn.execute(
        "SELECT DISTINCT session_id FROM events WHERE session_id IS NOT NULL ORDER BY session_id"
    ).fetchall()
    for (session_id,) in orphans:
        if session_id not in ids_with_rows:
            audit.findings.append(
                Finding(
                    "sessions",
                    "missing row: the session's events are in the chain but its row was deleted",
                    int(session_id),
                    str(session_id),
                )
            )
    return audit
