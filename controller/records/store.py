"""``RecordStore``: the one way epm reads and writes its records.

The store is assembled from small parts: :mod:`~controller.records.core` (opening, locking,
connections, the chained append; its docstring says what is committed when),
:mod:`~controller.records.steps` (the ``record_*`` methods) and
:mod:`~controller.records.telemetry_store` (buffered telemetry). This module adds clients,
sessions, the event log's public face and reading.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from controller.records import anchor as anchor_file
from controller.records import chain, coverage
from controller.records import validation as check
from controller.records.anchor import Anchor
from controller.records.errors import (
    DatabaseError,
    InvalidRecordError,
    SessionEndedError,
    StoreLockedError,
    UnknownClientError,
    UnknownSessionError,
)
from controller.records.migrations import OUTCOMES
from controller.records.models import (
    Client,
    CourseRecord,
    EventRow,
    PlannedStepRecord,
    SessionDetail,
    SessionRecord,
    iso,
    parse_iso,
)
from controller.records.rows import EVENT_SELECT, SESSION_SELECT, event_row, session_row
from controller.records.steps import StepRecording
from controller.records.telemetry_store import TelemetryRecording
from controller.records.validation import (
    CLIENT_NAME_MAX,
    SHA256_HEX,
    check_aftercare,
    check_course,
    check_planned_step,
    read_aftercare,
    read_course,
    read_planned_steps,
)
from controller.wire.constants import is_simulator_serial

if TYPE_CHECKING:
    from controller.records.approvals import Approval

#: Outcomes a session can end with (``running`` is the open state).
END_OUTCOMES = tuple(o for o in OUTCOMES if o != "running")

#: A client with its name as shown: the latest chained correction, else the row's.
_CLIENT_SELECT = """
SELECT c.id, c.code,
       coalesce((SELECT json_extract(e.data, '$.name') FROM events e
                 WHERE e.kind = 'client_amended' AND e.session_id IS NULL
                   AND json_extract(e.data, '$.code') = c.code
                 ORDER BY e.id DESC LIMIT 1), c.name) AS name,
       c.created_at
FROM clients c
"""

#: Session fields that can be corrected after the session closed (as ``amendment`` events).
AMENDABLE_FIELDS = {"serum_lot": 64, "serum_name": 200, "practitioner": 120}

#: Documents written from a closed session's record (a report, a handout): each is chained as
#: its own event with the document's SHA-256 (:meth:`RecordStore.record_document`).
DOCUMENT_KINDS = ("report_written", "handout_given")


class RecordStore(StepRecording, TelemetryRecording):
    """Clients, sessions, steps, the event log, telemetry and approvals in one SQLite file.

    Open with :meth:`open`; close with :meth:`close` (or use ``with``). Thread-safe: the
    session engine and the UI in one process share one store.
    """

    # -- clients --------------------------------------------------------------------------------

    def get_or_create_client(self, code: str, name: str | None = None) -> Client:
        """The client with ``code``, created if new. A name that contradicts the stored one is
        refused: two people must never share one code."""
        code = check.client_code(code)
        clean_name = None
        if name is not None and name.strip():
            clean_name = check.text(name, "client name", max_len=CLIENT_NAME_MAX)
        with self.write_transaction() as conn:
            row = conn.execute(f"{_CLIENT_SELECT} WHERE c.code = ?", (code,)).fetchone()
            if row is None:
                cur = conn.execute(
                    "INSERT INTO clients (code, name, created_at) VALUES (?, ?, ?)",
                    (code, clean_name, self.now()),
                )
                return self._client_by_id(conn, int(cur.lastrowid or 0))
            client = Client(*row)
            if clean_name is None:
                return client
            if client.name is None:
                if self._client_closed(conn, client.id):
                    # Its row is frozen with its closed sessions: the name is a chained event.
                    self._append(
                        conn,
                        None,
                        "client_amended",
                        {"code": code, "name": clean_name, "previous": None},
                    )
                    return Client(client.id, client.code, clean_name, client.created_at)
                conn.execute("UPDATE clients SET name = ? WHERE id = ?", (clean_name, client.id))
                return self._client_by_id(conn, client.id)
            if " ".join(client.name.split()).casefold() != " ".join(clean_name.split()).casefold():
                raise InvalidRecordError(
                    f"client code {code} already belongs to {client.name!r}, not {clean_name!r}: "
                    "check the code, or leave the name empty to pick the existing client"
                )
            return client

    @staticmethod
    def _client_by_id(conn: sqlite3.Connection, client_id: int) -> Client:
        row = conn.execute(f"{_CLIENT_SELECT} WHERE c.id = ?", (client_id,)).fetchone()
        return Client(*row)

    @staticmethod
    def _client_closed(conn: sqlite3.Connection, client_id: int) -> bool:
        row = conn.execute(
            "SELECT 1 FROM sessions WHERE client_id = ? AND outcome <> 'running' LIMIT 1",
            (client_id,),
        ).fetchone()
        return row is not None

    def amend_client_name(self, code: str, name: str, *, by: str, reason: str) -> EventRow:
        """Correct a client's name. The row of a client with a closed session never changes:
        the correction is a chained ``client_amended`` event, shown from then on, and the
        recorded name stays in the log beside it."""
        code = check.client_code(code)
        clean = check.text(name, "client name", max_len=CLIENT_NAME_MAX)
        by = check.text(by, "name of who corrects the record", max_len=120)
        reason = check.text(reason, "reason for the correction", max_len=2000)
        with self.write_transaction() as conn:
            client = self._client_by_id(conn, self.get_client(code).id)
            return self._append(
                conn,
                None,
                "client_amended",
                {
                    "code": code,
                    "name": clean,
                    "previous": client.name,
                    "by": by,
                    "reason": reason,
                },
            )

    def get_client(self, code: str) -> Client:
        with self.read_connection() as conn:
            row = conn.execute(f"{_CLIENT_SELECT} WHERE c.code = ?", (code.strip(),)).fetchone()
        if row is None:
            raise UnknownClientError(
                f"no client has the code {code!r}: check it, or create the client first"
            )
        return Client(*row)

    def find_clients(self, text: str = "", limit: int = 50) -> list[Client]:
        """Clients whose code or name contains ``text`` (case-insensitive), by code."""
        pattern = "%" + text.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern += "%"
        with self.read_connection() as conn:
            rows = conn.execute(
                f"SELECT * FROM ({_CLIENT_SELECT}) "
                "WHERE code LIKE ? ESCAPE '\\' OR coalesce(name, '') LIKE ? ESCAPE '\\' "
                "ORDER BY code LIMIT ?",
                (pattern, pattern, limit),
            ).fetchall()
        return [Client(*r) for r in rows]

    def append_event(
        self, session_id: int, kind: str, data: Mapping[str, Any] | None = None
    ) -> EventRow:
        """Append one event to the log and commit it durably before returning.

        The engine calls this *before* it acts. ``data`` must be JSON-serialisable
        (``ValueError`` says which value is not). Events may follow ``session_end`` (a late
        device event is still recorded).
        """
        self._require_exclusive("append an event")
        with self.write_transaction() as conn:
            return self._append(conn, session_id, kind, data or {})

    def events(self, session_id: int) -> list[EventRow]:
        with self.read_connection() as conn:
            rows = conn.execute(f"{EVENT_SELECT} WHERE session_id = ? ORDER BY seq", (session_id,))
            return [event_row(r) for r in rows]

    def events_outside_sessions(self) -> list[EventRow]:
        """Events of the records as a whole (approvals, migrations, client corrections)."""
        with self.read_connection() as conn:
            rows = conn.execute(f"{EVENT_SELECT} WHERE session_id IS NULL ORDER BY id")
            return [event_row(r) for r in rows]

    @property
    def station_id(self) -> str:
        """This station's id: a UUID4 made with the records database and never changed (the
        ``station`` table). A missing or damaged row is :class:`DatabaseError`."""
        import uuid

        with self.read_connection() as conn:
            row = conn.execute("SELECT station_id FROM station WHERE singleton = 1").fetchone()
        value = row[0] if row is not None else None
        try:
            if isinstance(value, str) and str(uuid.UUID(value)) == value:
                return value
        except ValueError:
            pass
        raise DatabaseError(
            f"the records database {self.path} has no valid station id ({value!r}): it was "
            "changed outside epm. Keep the data folder as evidence and restore a backup"
        )

    def verify_chain(self) -> chain.VerifyReport:
        """Check everything the records show: the event log's hash chain; every session row
        against its chained events and, once closed, its rows, steps and telemetry against the
        seal its closing event committed; approvals against the chain; the saved anchor.
        Every problem is named with its session, table and row (``findings``)."""
        saved = anchor_file.load(self.data_dir)
        try:
            with self.read_connection() as conn:
                conn.execute("BEGIN")  # one snapshot for the whole walk
                try:
                    report = chain.verify(conn)
                    sessions = coverage.check_sessions(conn)
                    approvals, proven = coverage.check_approvals(conn)
                    anchor_problem = (
                        anchor_file.check(conn, saved) if isinstance(saved, Anchor) else None
                    )
                finally:
                    if conn.in_transaction:
                        conn.execute("COMMIT")
        except DatabaseError as exc:
            # What cannot even be read cannot be vouched for: a failed report, not a crash.
            finding = coverage.Finding("database", str(exc))
            return chain.VerifyReport(
                False, 0, "", reason=str(exc), findings=(finding,), anchor=None
            )
        findings: list[coverage.Finding] = []
        if not report.ok:
            findings.append(
                coverage.Finding(
                    "events",
                    report.reason or "",
                    report.bad_session_id,
                    None if report.bad_event_id is None else str(report.bad_event_id),
                    report.bad_event_id,
                )
            )
        findings += sessions.findings + approvals
        if anchor_problem is not None:
            findings.append(coverage.Finding("chain_anchor", anchor_problem))
        if isinstance(saved, str):
            anchor_text: str | None = saved
        elif saved is None:
            anchor_text = "no chain head saved yet (the first export or report saves one)"
        elif anchor_problem is None:
            anchor_text = (
                f"the head saved by {saved.purpose} ({saved.events} events) is still in the "
                "chain at its position"
            )
        else:
            anchor_text = anchor_problem
        first = findings[0] if findings else None
        if report.ok and first is not None:
            report = dataclasses.replace(
                report,
                bad_event_id=first.event_id,
                bad_session_id=first.session_id,
                reason=first.describe(),
            )
        return dataclasses.replace(
            report,
            ok=not findings,
            findings=tuple(findings),
            sealed=tuple(sessions.sealed),
            uncovered=tuple(sessions.uncovered),
            open_sessions=tuple(sessions.running),
            approvals=proven,
            anchor=anchor_text,
        )

    def save_anchor(self, purpose: str) -> tuple[chain.VerifyReport, Anchor | None]:
        """Verify, then keep the head and event count as the anchor printed by ``purpose``
        (an export, a report). A failed verify saves nothing: a tampered chain must never
        become the reference. Returns the report and the anchor to print."""
        report = self.verify_chain()
        if not report.ok:
            return report, None
        saved = Anchor(report.head_hash, report.events, self.now(), purpose)
        anchor_file.save(self.data_dir, saved)
        return report, saved

    # -- sessions -------------------------------------------------------------------------------

    def begin_session(
        self,
        *,
        client_code: str,
        protocol_id: str,
        protocol_version: int,
        protocol_sha256: str,
        protocol_title: str,
        serum_name: str,
        serum_lot: str,
        practitioner: str,
        device_model: str,
        device_serial: str,
        device_firmware: str,
        device_boot_id: int | None,
        device_port: str,
        checklist: Mapping[str, Any],
        planned_zones: Sequence[str],
        planned_steps: Sequence[PlannedStepRecord] = (),
        aftercare: Sequence[str] = (),
        course: CourseRecord | None = None,
    ) -> int:
        """Record a new session as ``running`` with its ``session_started`` event; return its id.

        The client must exist (:meth:`get_or_create_client`). A device whose serial begins with
        ``SIM-`` marks the session simulated. On a real device the serum lot is required.
        ``planned_steps`` is the plan (every step, with its planned time), chained in the
        event so a zone that never started still counts in the planned time. ``aftercare``
        (the protocol's advice) and ``course`` are chained too, so a handout or a course report
        can be written later from the record alone.
        """
        self._require_exclusive("begin a session")
        client = self.get_client(check.client_code(client_code))
        device_serial = check.text(device_serial, "device serial number", max_len=32)
        simulated = is_simulator_serial(device_serial)
        sha = check.text(protocol_sha256, "protocol SHA-256", max_len=64).lower()
        if not SHA256_HEX.match(sha):
            raise InvalidRecordError(
                f"protocol SHA-256 {protocol_sha256!r} is not 64 hex digits: pass the loader's "
                "LoadResult.sha256"
            )
        if not isinstance(protocol_version, int) or protocol_version < 1:
            raise InvalidRecordError(f"protocol version {protocol_version!r} must be an int ≥ 1")
        lot = check.text(serum_lot, "serum lot number", required=not simulated, max_len=64)
        zones = [check.text(z, "planned zone", max_len=40) for z in planned_zones]
        values: dict[str, Any] = {
            "client_code": client.code,
            "protocol_id": check.text(protocol_id, "protocol id", max_len=64),
            "protocol_version": protocol_version,
            "protocol_sha256": sha,
            "protocol_title": check.text(protocol_title, "protocol title", max_len=200),
            "serum_name": check.text(serum_name, "serum name"),
            "serum_lot": lot,
            "practitioner": check.text(practitioner, "practitioner's name", max_len=120),
            "device_model": check.text(device_model, "device model", max_len=32),
            "device_serial": device_serial,
            "device_firmware": check.text(device_firmware, "device firmware version", max_len=32),
            "device_boot_id": device_boot_id,
            "device_port": check.text(device_port, "device port", required=False, max_len=400),
            "simulated": simulated,
            "checklist": dict(checklist),
            "planned_zones": zones,
        }
        if planned_steps:
            values["planned_steps"] = [check_planned_step(p) for p in planned_steps]
        if aftercare:
            values["aftercare"] = check_aftercare(aftercare)
        if course is not None:
            values["course"] = check_course(course)
        checklist_json = chain.check_json_data(values["checklist"])
        with self.write_transaction() as conn:
            values["started_at"] = self.now()
            cur = conn.execute(
                "INSERT INTO sessions (client_id, protocol_id, protocol_version, protocol_sha256, "
                "protocol_title, serum_name, serum_lot, practitioner, device_model, device_serial,"
                " device_firmware, device_boot_id, device_port, simulated, checklist, "
                "planned_zones, started_at, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running')",
                (
                    client.id,
                    values["protocol_id"],
                    protocol_version,
                    sha,
                    values["protocol_title"],
                    values["serum_name"],
                    lot,
                    values["practitioner"],
                    values["device_model"],
                    device_serial,
                    values["device_firmware"],
                    device_boot_id,
                    values["device_port"],
                    int(simulated),
                    checklist_json,
                    json.dumps(zones),
                    values["started_at"],
                ),
            )
            session_id = int(cur.lastrowid or 0)
            self._append(conn, session_id, "session_started", values)
            self._open_sessions.add(session_id)  # under the write lock: never "recovered"
        return session_id

    def end_session(
        self,
        session_id: int,
        outcome: str,
        reason: str = "",
        summary: Mapping[str, Any] | None = None,
    ) -> EventRow:
        """Write the remaining telemetry, then the ``session_end`` event and the outcome.

        ``outcome`` is one of completed, stopped, aborted, faulted, interrupted, refused. A
        step still open gets the session's outcome as its own (record its end first to keep
        its delivered time).
        """
        if outcome not in END_OUTCOMES:
            raise InvalidRecordError(
                f"session outcome {outcome!r} is not one of {', '.join(END_OUTCOMES)}"
            )
        self._require_exclusive("end a session")
        reason = check.text(reason, "outcome reason", required=False, max_len=2000)
        with self._wlock:  # no telemetry can slip in between the last rows and the end
            self.flush_telemetry(session_id, final=True)
            with self.write_transaction() as conn:
                current = self._outcome(conn, session_id)
                if current != "running":
                    raise SessionEndedError(
                        f"session {session_id} already ended as {current}; its outcome is final "
                        "(add a note with set_notes instead)"
                    )
                now = self.now()
                # A step still open ends with the session (delivered_ms stays unknown unless
                # the engine recorded the step's end first, as it should).
                conn.execute(
                    "UPDATE steps SET outcome = ?, ended_at = ? WHERE session_id = ? "
                    "AND ended_at IS NULL AND outcome IS NULL",
                    (outcome, now, session_id),
                )
                conn.execute(
                    "UPDATE sessions SET outcome = ?, outcome_reason = ?, ended_at = ? "
                    "WHERE id = ?",
                    (outcome, reason, now, session_id),
                )
                data = {
                    "outcome": outcome,
                    "reason": reason,
                    "summary": dict(summary or {}),
                    "seal": coverage.session_seal(conn, session_id),
                }
                event = self._append(conn, session_id, "session_end", data, wall_time=now)
            self._open_sessions.discard(session_id)
        return event

    def set_notes(self, session_id: int, notes: str) -> EventRow:
        """Replace the session's notes (allowed after it ended). Each change is a chained
        ``note`` event and the latest one is what is shown; while the session runs the row
        keeps them too, and once it closed (its row is sealed) the event alone carries them."""
        clean = check.text(notes, "notes", required=False, max_len=10_000)
        with self.write_transaction() as conn:
            if self._outcome(conn, session_id) == "running":
                conn.execute("UPDATE sessions SET notes = ? WHERE id = ?", (clean, session_id))
            return self._append(conn, session_id, "note", {"notes": clean})

    def amend_session(
        self, session_id: int, field: str, value: str, *, by: str, reason: str
    ) -> EventRow:
        """Correct a closed session's serum lot, serum name or practitioner. The recorded value
        stays; the correction is a chained ``amendment`` event shown beside it."""
        if field not in AMENDABLE_FIELDS:
            raise InvalidRecordError(
                f"{field!r} cannot be corrected: the fields that can are "
                f"{', '.join(AMENDABLE_FIELDS)} (a client's name: amend_client_name)"
            )
        clean = check.text(value, field.replace("_", " "), max_len=AMENDABLE_FIELDS[field])
        by = check.text(by, "name of who corrects the record", max_len=120)
        reason = check.text(reason, "reason for the correction", max_len=2000)
        session = self.get_session(session_id)
        with self.write_transaction() as conn:
            return self._append(
                conn,
                session_id,
                "amendment",
                {
                    "field": field,
                    "value": clean,
                    "original": getattr(session, field),
                    "by": by,
                    "reason": reason,
                },
            )

    def record_document(self, session_id: int, kind: str, data: Mapping[str, Any]) -> EventRow:
        """Chain that a document was written from a closed session's record: ``kind`` is one of
        :data:`DOCUMENT_KINDS`, ``data`` names the document, its SHA-256 and file name. Like a
        note or an amendment it needs no exclusive store (``epm records report`` runs beside
        the UI); a running session is refused (its record is not final yet)."""
        if kind not in DOCUMENT_KINDS:
            raise InvalidRecordError(
                f"{kind!r} is not a document event: one of {', '.join(DOCUMENT_KINDS)}"
            )
        sha = str(data.get("sha256", ""))
        if not SHA256_HEX.match(sha):
            raise InvalidRecordError(f"the document's SHA-256 {sha!r} is not 64 hex digits")
        try:
            with self.write_transaction() as conn:
                outcome = self._outcome(conn, session_id)
                if outcome == "running":
                    raise InvalidRecordError(
                        f"session {session_id} is still running: its documents are written once "
                        "it has ended"
                    )
                return self._append(conn, session_id, kind, data)
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            raise StoreLockedError(
                f"the records in {self.data_dir} are busy: another epm kept them locked for "
                f"writing ({exc}); nothing was recorded. Try again in a moment"
            ) from exc

    def recover_interrupted(self) -> list[int]:
        """Mark every session left ``running`` by an earlier process as ``interrupted``.

        Each gets a ``session_end`` event that records what was known: the last event and the
        last stored telemetry row. Steps left open get outcome ``interrupted``. Call once at
        start-up, from the exclusive store (another live process cannot own those sessions).
        """
        self._require_exclusive("recover interrupted sessions")
        recovered: list[int] = []
        with self.write_transaction() as conn:
            rows = conn.execute(
                "SELECT id FROM sessions WHERE outcome = 'running' ORDER BY id"
            ).fetchall()
            for (session_id,) in rows:
                if session_id in self._open_sessions:
                    continue
                last = conn.execute(
                    f"{EVENT_SELECT} WHERE session_id = ? ORDER BY seq DESC LIMIT 1",
                    (session_id,),
                ).fetchone()
                telemetry = self._last_telemetry(conn, session_id)
                last_event = event_row(last) if last else None
                found_at = self.now()
                estimate = self._estimate_open_step(conn, session_id, telemetry, found_at)
                last_known = max(
                    [t for t in (last_event and last_event.wall_time, estimate.get("at")) if t],
                    default=None,
                )
                conn.execute(
                    "UPDATE steps SET outcome = 'interrupted' WHERE session_id = ? "
                    "AND ended_at IS NULL AND skipped = 0",
                    (session_id,),
                )
                reason = (
                    "epm stopped while this session was running (crash, kill or power loss); "
                    "found at the next start"
                )
                conn.execute(
                    "UPDATE sessions SET outcome = 'interrupted', outcome_reason = ?, "
                    "ended_at = ?, last_known_at = ? WHERE id = ?",
                    (reason, found_at, last_known, session_id),
                )
                data = {
                    "outcome": "interrupted",
                    "reason": reason,
                    "last_event": (
                        {
                            "seq": last_event.seq,
                            "kind": last_event.kind,
                            "wall_time": last_event.wall_time,
                            "data": last_event.data,
                        }
                        if last_event
                        else None
                    ),
                    "last_telemetry": telemetry,
                    "estimated": {
                        "last_known_at": last_known,
                        "step": estimate.get("step"),
                        "delivered_ms": estimate.get("delivered_ms"),
                        "basis": "the last stored telemetry and event; estimated, not reported "
                        "by the device",
                    },
                    "seal": coverage.session_seal(conn, session_id),
                }
                self._append(conn, session_id, "session_end", data, wall_time=found_at)
                recovered.append(session_id)
        return recovered

    @staticmethod
    def _estimate_open_step(
        conn: sqlite3.Connection,
        session_id: int,
        telemetry: Mapping[str, Any] | None,
        found_at: str,
    ) -> dict[str, Any]:
        """For the step that was running when epm stopped: its delivered time from the last
        telemetry row of that step (marked estimated on the step) and the moment that row
        implies (the step's start plus what it delivered and held). Empty when unknown."""
        row = conn.execute(
            "SELECT id, idx, started_at, hold_ms FROM steps WHERE session_id = ? "
            "AND ended_at IS NULL AND skipped = 0 AND delivered_ms IS NULL "
            "ORDER BY id DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        if row is None:
            return {}
        step_id, index, started_at, hold_ms = row
        last = conn.execute(
            "SELECT step_elapsed_ms, t_last_ms - t_first_ms FROM telemetry "
            "WHERE session_id = ? AND step_id = ? ORDER BY id DESC LIMIT 1",
            (session_id, index),
        ).fetchone()
        if last is None or telemetry is None:
            return {"step": index}
        delivered = int(last[0])
        conn.execute(
            "UPDATE steps SET delivered_ms = ?, delivered_estimated = 1 WHERE id = ?",
            (delivered, step_id),
        )
        out: dict[str, Any] = {"step": index, "delivered_ms": delivered}
        if started_at:
            moment = parse_iso(started_at) + dt.timedelta(milliseconds=delivered + int(hold_ms))
            out["at"] = min(iso(moment), found_at)
        return out

    # -- reading sessions -----------------------------------------------------------------------

    def is_approved(self, sha256: str) -> Approval | None:
        """The approval of exactly these protocol file bytes, or ``None`` (see
        :mod:`~controller.records.approvals`)."""
        from controller.records.approvals import is_approved

        return is_approved(self, sha256)

    @staticmethod
    def _with_amendments(
        conn: sqlite3.Connection, sessions: list[SessionRecord]
    ) -> list[SessionRecord]:
        """Attach what each session's chain adds to its row: its corrections (``amendment``
        events) and its plan (from ``session_started``)."""
        if not sessions:
            return sessions
        # Only these sessions' events: reading one session must not parse every session's.
        ids = [s.id for s in sessions]
        only = f" AND session_id IN ({', '.join('?' * len(ids))})" if len(ids) <= 500 else ""
        params = ids if only else []
        found: dict[int, list[dict[str, Any]]] = {}
        for event_id, session_id, wall_time, data_json in conn.execute(
            f"SELECT id, session_id, wall_time, data FROM events WHERE kind = 'amendment'{only} "
            "ORDER BY id",
            params,
        ):
            data = json.loads(data_json)
            found.setdefault(session_id, []).append({**data, "at": wall_time, "event_id": event_id})
        started: dict[int, dict[str, Any]] = {}
        for session_id, data_json in conn.execute(
            f"SELECT session_id, data FROM events WHERE kind = 'session_started'{only}", params
        ):
            started[session_id] = json.loads(data_json)
        return [
            dataclasses.replace(
                s,
                amendments=tuple(found.get(s.id, ())),
                planned_steps=read_planned_steps(started.get(s.id, {})),
                aftercare=read_aftercare(started.get(s.id, {})),
                course=read_course(started.get(s.id, {})),
            )
            for s in sessions
        ]

    def get_session(self, session_id: int) -> SessionRecord:
        with self.read_connection() as conn:
            row = conn.execute(f"{SESSION_SELECT} WHERE s.id = ?", (session_id,)).fetchone()
            if row is None:
                raise UnknownSessionError(
                    f"no session has the id {session_id}: `epm records list` shows the sessions"
                )
            return self._with_amendments(conn, [session_row(row)])[0]

    def list_sessions(
        self,
        client: str | None = None,
        since: dt.date | dt.datetime | None = None,
        until: dt.date | dt.datetime | None = None,
        protocol_id: str | None = None,
    ) -> list[SessionRecord]:
        """Sessions, newest first. ``since``/``until`` are local dates (both days included) or
        aware datetimes; ``client`` is a client code."""
        where: list[str] = []
        params: list[Any] = []
        if client is not None:
            where.append("c.code = ?")
            params.append(client.strip())
        if protocol_id is not None:
            where.append("s.protocol_id = ?")
            params.append(protocol_id)
        if since is not None:
            where.append("s.started_at >= ?")
            params.append(iso(check.local_start(since)))
        if until is not None:
            if isinstance(until, dt.datetime):
                where.append("s.started_at <= ?")
                params.append(iso(check.local_start(until)))
            else:
                where.append("s.started_at < ?")
                params.append(iso(check.local_start(until + dt.timedelta(days=1))))
        sql = SESSION_SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY s.started_at DESC, s.id DESC"
        with self.read_connection() as conn:
            return self._with_amendments(conn, [session_row(r) for r in conn.execute(sql, params)])

    def today_sessions(self) -> list[SessionRecord]:
        """Sessions started today (local date of the store's clock)."""
        today = self._clock().astimezone().date()
        return self.list_sessions(since=today, until=today)

    def session_detail(self, session_id: int) -> SessionDetail:
        """The session with its steps, every event and a telemetry summary."""
        session = self.get_session(session_id)
        return SessionDetail(
            session=session,
            steps=self.steps(session_id),
            events=self.events(session_id),
            telemetry=self.telemetry_summary(session_id),
        )
