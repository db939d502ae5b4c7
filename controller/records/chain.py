"""The event log's hash chain: how a row's hash is computed and how the chain is verified.

Each event row stores ``prev_hash`` (the hash of the row before it in the whole database, or 64
zeros for the first) and ``hash = sha256(prev_hash || canonical_json(content))`` where
``prev_hash`` is taken as its 64 ASCII hex characters and ``content`` is the row's
``session_id``, ``seq``, ``wall_time``, ``mono_ms``, ``kind`` and ``data``. The chain spans all
sessions, so removing a whole session breaks it too; ``chain_head`` remembers the last row, so
cutting rows off the end is found as well.

The chain makes an edit made behind epm's back visible; it cannot stop someone who rewrites
every hash after the edit. The head hash printed by ``epm records verify`` (and put in every
export) is the anchor a clinic can keep elsewhere to rule that out.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.records.migrations import GENESIS_HASH


def canonical_json(value: Any) -> str:
    """JSON with sorted keys, no whitespace, UTF-8 text: the same content gives the same text."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def check_json_data(data: Mapping[str, Any]) -> str:
    """Return ``data`` as canonical JSON, or raise ``ValueError`` saying what cannot be stored."""
    if not isinstance(data, Mapping):
        raise ValueError(f"event data must be a mapping of names to values, not {type(data)}")
    for key, value in data.items():
        if not isinstance(key, str):
            raise ValueError(f"event data keys must be strings; got {key!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"event data {key!r} is {value}: store a finite number or None")
    try:
        return canonical_json(dict(data))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"event data cannot be stored as JSON ({exc}); convert values to str, int, float, "
            "bool, None, lists or dicts"
        ) from exc


def row_hash(  # noqa: PLR0917 - one argument per hashed column
    prev_hash: str,
    session_id: int | None,
    seq: int,
    wall_time: str,
    mono_ms: int,
    kind: str,
    data_json: str,
) -> str:
    """The hash of one event row, from its stored columns."""
    content = canonical_json(
        {
            "session_id": session_id,
            "seq": seq,
            "wall_time": wall_time,
            "mono_ms": mono_ms,
            "kind": kind,
            "data": json.loads(data_json),
        }
    )
    return hashlib.sha256(prev_hash.encode("ascii") + content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Appended:
    """Where :func:`append_row` put an event."""

    id: int
    seq: int
    prev_hash: str
    hash: str


def append_row(  # noqa: PLR0917 - one argument per hashed column
    conn: sqlite3.Connection,
    session_id: int | None,
    kind: str,
    data_json: str,
    wall_time: str,
    mono_ms: int,
) -> Appended:
    """Insert one chained event inside the caller's write transaction and move the head.

    ``session_id`` is None for an event of the records as a whole (an approval, a migration,
    a corrected client name); such events count their own ``seq``.
    """
    last_id, prev_hash = conn.execute("SELECT last_id, last_hash FROM chain_head").fetchone()
    (last_seq,) = conn.execute(
        "SELECT coalesce(max(seq), 0) FROM events WHERE session_id IS ?", (session_id,)
    ).fetchone()
    event_id, seq = last_id + 1, last_seq + 1
    digest = row_hash(prev_hash, session_id, seq, wall_time, mono_ms, kind, data_json)
    conn.execute(
        "INSERT INTO events (id, session_id, seq, wall_time, mono_ms, kind, data, "
        "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (event_id, session_id, seq, wall_time, mono_ms, kind, data_json, prev_hash, digest),
    )
    conn.execute(
        "UPDATE chain_head SET last_id = ?, last_hash = ?, count = count + 1",
        (event_id, digest),
    )
    return Appended(event_id, seq, prev_hash, digest)


def event_proven(conn: sqlite3.Connection, event_id: int) -> bool:
    """Whether one event's own hash matches its content, it links to the row before it, and
    the chain head is at or after it: an event one can rely on without walking the whole log
    (a row added by hand, without its hash and link, fails here)."""
    row = conn.execute(
        "SELECT session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash FROM events "
        "WHERE id = ?",
        (event_id,),
    ).fetchone()
    if row is None:
        return False
    session_id, seq, wall_time, mono_ms, kind, data_json, prev_hash, stored = row
    try:
        if row_hash(prev_hash, session_id, seq, wall_time, mono_ms, kind, data_json) != stored:
            return False
    except (ValueError, TypeError):
        return False
    if event_id == 1:
        linked = prev_hash == GENESIS_HASH
    else:
        before = conn.execute("SELECT hash FROM events WHERE id = ?", (event_id - 1,)).fetchone()
        linked = before is not None and before[0] == prev_hash
    head = conn.execute("SELECT last_id FROM chain_head").fetchone()
    return linked and head is not None and head[0] >= event_id


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify`` found. ``bad_event_id``, ``bad_session_id`` and ``reason`` describe the
    first problem when not ``ok``; ``findings`` lists every problem with its table and row."""

    ok: bool
    events: int
    head_hash: str
    bad_event_id: int | None = None
    bad_session_id: int | None = None
    reason: str | None = None
    #: Every problem found (``coverage.Finding``), the chain's own first.
    findings: tuple[Any, ...] = ()
    #: Closed sessions whose rows matched their seal.
    sealed: tuple[int, ...] = ()
    #: Sessions closed before full coverage: their events verify, their rows carry no seal.
    uncovered: tuple[int, ...] = ()
    #: Sessions still running (sealed when they close).
    open_sessions: tuple[int, ...] = ()
    #: Approvals the chain proves.
    approvals: int = 0
    #: What the saved anchor says (None: no anchor saved yet).
    anchor: str | None = None

    def headline(self) -> str:
        if self.ok:
            return (
                f"event log intact: {self.events} events, hash chain verified; "
                f"head {self.head_hash}"
            )
        if self.bad_event_id is not None or self.bad_session_id is not None:
            where = f"event {self.bad_event_id}" if self.bad_event_id is not None else "event log"
            if self.bad_session_id is not None:
                where += f" (session {self.bad_session_id})"
            return f"event log TAMPERED at {where}: {self.reason}"
        return f"records TAMPERED: {self.reason}"

    def describe(self) -> str:
        lines = [self.headline()]
        extra = [f.describe() for f in self.findings[1:]] if not self.ok else []
        lines += [f"  also: {line}" for line in extra]
        lines += [f"  {line}" for line in self.coverage_lines()]
        return "\n".join(lines)

    def coverage_lines(self) -> list[str]:
        lines = []
        if self.sealed:
            lines.append(
                f"sealed sessions: {len(self.sealed)} (rows, steps and telemetry match the "
                "digest their closing event committed)"
            )
        if self.uncovered:
            lines.append(
                f"recorded before full coverage: {_ids(self.uncovered)} (their events verify; "
                "their rows were not sealed)"
            )
        if self.open_sessions:
            lines.append(f"still running: {_ids(self.open_sessions)} (sealed when they close)")
        lines.append(f"approvals proven by the chain: {self.approvals}")
        if self.anchor is not None:
            lines.append(self.anchor)
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_hash": self.head_hash,
            "bad_event_id": self.bad_event_id,
            "bad_session_id": self.bad_session_id,
            "reason": self.reason,
            "findings": [f.to_dict() for f in self.findings],
            "sealed_sessions": list(self.sealed),
            "recorded_before_full_coverage": list(self.uncovered),
            "running_sessions": list(self.open_sessions),
            "approvals": self.approvals,
            "anchor": self.anchor,
        }


def _ids(ids: tuple[int, ...]) -> str:
    shown = ", ".join(str(i) for i in ids[:20])
    more = f" and {len(ids) - 20} more" if len(ids) > 20 else ""
    return f"session{'s' if len(ids) > 1 else ''} {shown}{more}"


def verify(conn: sqlite3.Connection) -> VerifyReport:
    """Walk every event in id order and check ids, links, hashes, per-session order and head.

    Reports the first bad row: a gap in ids ("missing row"), a ``prev_hash`` that is not the
    previous row's hash ("broken link"), a hash that does not match the content ("hash
    mismatch"), a per-session ``seq`` out of order, or a head that does not match the last row.
    """
    expected_prev = GENESIS_HASH
    expected_id = 1
    count = 0
    last_seq: dict[int, int] = {}
    cursor = conn.execute(
        "SELECT id, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash "
        "FROM events ORDER BY id"
    )
    for row in cursor:
        event_id, session_id, seq, wall_time, mono_ms, kind, data_json, prev_hash, stored = row

        def bad(
            reason: str,
            eid: int = event_id,
            sid: int = session_id,
            n: int = count,
            good: str = expected_prev,
        ) -> VerifyReport:
            return VerifyReport(False, n, good, eid, sid, reason)

        if event_id != expected_id:
            missing = (
                f"event {expected_id}"
                if event_id == expected_id + 1
                else f"events {expected_id}–{event_id - 1}"
            )
            return bad(f"missing row: {missing} should come before event {event_id}")
        if prev_hash != expected_prev:
            return bad(
                "broken link: its prev_hash does not match the hash of the row before it "
                "(a row was removed, inserted or moved)"
            )
        try:
            computed = row_hash(prev_hash, session_id, seq, wall_time, mono_ms, kind, data_json)
        except (ValueError, TypeError) as exc:
            return bad(f"hash mismatch: the row's content cannot be read ({exc})")
        if computed != stored:
            return bad("hash mismatch: the row's content was changed after it was written")
        expected_seq = last_seq.get(session_id, 0) + 1
        if seq != expected_seq:
            return bad(
                f"sequence out of order: session {session_id} event seq {seq} where "
                f"{expected_seq} was expected"
            )
        last_seq[session_id] = seq
        expected_prev = stored
        expected_id += 1
        count += 1
    head = conn.execute("SELECT last_id, last_hash, count FROM chain_head").fetchone()
    if head is None:
        return VerifyReport(False, count, expected_prev, None, None, "the chain head is missing")
    last_id, last_hash, head_count = head
    if (last_id, last_hash, head_count) != (expected_id - 1, expected_prev, count):
        return VerifyReport(
            False,
            count,
            expected_prev,
            expected_id if last_id >= expected_id else last_id,
            None,
            f"missing row: the log should end at event {last_id} ({head_count} events) but "
            f"ends at event {expected_id - 1} ({count} events); rows were cut off the end"
            if last_id >= expected_id
            else "the chain head does not match the last event (it was edited)",
        )
    return VerifyReport(True, count, expected_prev)
