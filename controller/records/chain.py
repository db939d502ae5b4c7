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
from controller.records.rows import EVENT_SELECT, SESSION_SELECT, event_row, session_row

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
    session_id: int,
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
class VerifyReport:
    """What ``verify_chain`` found. ``bad_event_id`` and ``reason`` are set when not ``ok``."""

    ok: bool
    events: int
    head_hash: str
    bad_event_id: int | None = None
    bad_session_id: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            return (
                f"event log intact: {self.events} events, hash chain verified; "
                f"head {self.head_hash}"
            )
        where = f"event {self.bad_event_id}" if self.bad_event_id is not None else "event log"
        if self.bad_session_id is not None:
            where += f" (session {self.bad_session_id})"
        return f"event log TAMPERED at {where}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_hash": self.head_hash,
            "bad_event_id": self.bad_event_id,
            "bad_session_id": self.bad_session_id,
            "reason": self.reason,
        }


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


def verify_sessions(conn: sqlite3.Connection, report: VerifyReport) -> VerifyReport:
    """The sessions table is not chained itself: check that each session row still says what
    its chained ``session_started`` event says, and that an ended session's outcome is the one
    of its last ``session_end`` event. Returns ``report`` unchanged when all agree."""
    for row in conn.execute(f"{SESSION_SELECT} ORDER BY s.id").fetchall():
        session = session_row(row)
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

        def bad(reason: str, event_id: int | None, sid: int = session.id) -> VerifyReport:
            return VerifyReport(False, report.events, report.head_hash, event_id, sid, reason)

        if not starts or starts[0].seq != 1:
            return bad("missing row: the session has no session_started event", None)
        started = starts[0].data
        for name in CHAINED_SESSION_FIELDS:
            if started.get(name) != getattr(session, name):
                return bad(
                    f"session row changed: {name} is {getattr(session, name)!r} but its "
                    f"chained session_started event says {started.get(name)!r}",
                    starts[0].id,
                )
        if session.outcome != "running":
            if not ends:
                return bad(
                    f"missing row: the session ended ({session.outcome}) but has no "
                    "session_end event",
                    None,
                )
            if ends[-1].data.get("outcome") != session.outcome:
                return bad(
                    f"session row changed: outcome is {session.outcome!r} but its chained "
                    f"session_end event says {ends[-1].data.get('outcome')!r}",
                    ends[-1].id,
                )
    return report
