"""Recording a session's steps: start, end, amplitude changes, holds and skips.

Each call updates the step's row and appends its event (``step_start``, ``step_end``,
``amplitude_change``, ``hold_end``, ``step_skipped``) in one transaction, so the steps table
and the hash-chained log never disagree. A step is addressed by the session and its 1-based
protocol step number; starting a step again (after an interruption) opens its next attempt,
and the other calls apply to the latest attempt.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from controller.records import validation as check
from controller.records.core import StoreCore
from controller.records.errors import InvalidRecordError
from controller.records.models import EventRow, StepRecord
from controller.records.rows import STEP_SELECT, step_row


class StepRecording(StoreCore):
    """The ``record_*`` methods of :class:`~controller.records.store.RecordStore`."""

    @staticmethod
    def _latest_step(conn: sqlite3.Connection, session_id: int, index: int) -> StepRecord | None:
        row = conn.execute(
            f"{STEP_SELECT} WHERE session_id = ? AND idx = ? ORDER BY attempt DESC LIMIT 1",
            (session_id, index),
        ).fetchone()
        return step_row(row) if row else None

    def _open_step(self, conn: sqlite3.Connection, session_id: int, index: int) -> StepRecord:
        step = self._latest_step(conn, session_id, index)
        if step is None or step.ended_at is not None or step.skipped or step.outcome:
            raise InvalidRecordError(
                f"step {index} of session {session_id} is not running: call record_step_start first"
            )
        return step

    @staticmethod
    def _check_index(index: int) -> None:
        if not isinstance(index, int) or index < 1:
            raise InvalidRecordError(f"step index {index!r} must be the 1-based step number")

    def record_step_start(
        self,
        session_id: int,
        index: int,
        *,
        kind: str,
        zone: str | None = None,
        planned_ms: int | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> StepRecord:
        """Record that step ``index`` (1-based) starts; a step started again gets a new
        ``attempt``. Writes ``step_start`` in the same transaction."""
        self._check_index(index)
        self._require_exclusive("record a step")
        kind = check.text(kind, "step kind", max_len=32)
        with self.write_transaction() as conn:
            self._require_running(conn, session_id)
            previous = self._latest_step(conn, session_id, index)
            attempt = previous.attempt + 1 if previous else 1
            started_at = self.now()
            conn.execute(
                "INSERT INTO steps (session_id, idx, attempt, kind, zone, planned_ms, started_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (session_id, index, attempt, kind, zone, planned_ms, started_at),
            )
            self._append(
                conn,
                session_id,
                "step_start",
                {
                    **(data or {}),
                    "index": index,
                    "attempt": attempt,
                    "kind": kind,
                    "zone": zone,
                    "planned_ms": planned_ms,
                },
            )
            step = self._latest_step(conn, session_id, index)
        assert step is not None
        return step

    def record_step_end(
        self,
        session_id: int,
        index: int,
        *,
        outcome: str,
        delivered_ms: int | None,
        data: Mapping[str, Any] | None = None,
    ) -> StepRecord:
        """Record the end of the running attempt of step ``index``: ``delivered_ms`` is the
        device's ``step_elapsed_ms`` (None for a manual step)."""
        self._check_index(index)
        self._require_exclusive("record a step")
        outcome = check.text(outcome, "step outcome", max_len=32)
        with self.write_transaction() as conn:
            step = self._open_step(conn, session_id, index)
            ended_at = self.now()
            conn.execute(
                "UPDATE steps SET ended_at = ?, delivered_ms = ?, outcome = ? WHERE id = ?",
                (ended_at, delivered_ms, outcome, step.id),
            )
            self._append(
                conn,
                session_id,
                "step_end",
                {
                    **(data or {}),
                    "index": index,
                    "attempt": step.attempt,
                    "outcome": outcome,
                    "delivered_ms": delivered_ms,
                },
            )
            result = self._latest_step(conn, session_id, index)
        assert result is not None
        return result

    def record_amplitude_change(
        self,
        session_id: int,
        index: int,
        *,
        from_dv: int,
        to_dv: int,
        source: str,
        data: Mapping[str, Any] | None = None,
    ) -> EventRow:
        """Record an amplitude change in the running step (call before SET_AMPLITUDE is sent;
        ``source`` e.g. ``practitioner`` or ``device_limited``)."""
        self._check_index(index)
        self._require_exclusive("record a step")
        source = check.text(source, "amplitude change source", max_len=32)
        with self.write_transaction() as conn:
            step = self._open_step(conn, session_id, index)
            change = {"at": self.now(), "from_dv": from_dv, "to_dv": to_dv, "source": source}
            conn.execute(
                "UPDATE steps SET amplitude_changes = ? WHERE id = ?",
                (json.dumps([*step.amplitude_changes, change]), step.id),
            )
            return self._append(
                conn,
                session_id,
                "amplitude_change",
                {**(data or {}), "index": index, "attempt": step.attempt, **change},
            )

    def record_hold(
        self,
        session_id: int,
        index: int,
        *,
        held_ms: int,
        data: Mapping[str, Any] | None = None,
    ) -> EventRow:
        """Record a hold (contact lost) that has ended in the running step: counts it, adds
        ``held_ms`` to the step's hold time and writes ``hold_end``."""
        self._check_index(index)
        self._require_exclusive("record a step")
        if not isinstance(held_ms, int) or held_ms < 0:
            raise InvalidRecordError(f"held_ms {held_ms!r} must be a whole number of ms ≥ 0")
        with self.write_transaction() as conn:
            step = self._open_step(conn, session_id, index)
            conn.execute(
                "UPDATE steps SET holds = holds + 1, hold_ms = hold_ms + ? WHERE id = ?",
                (held_ms, step.id),
            )
            return self._append(
                conn,
                session_id,
                "hold_end",
                {**(data or {}), "index": index, "attempt": step.attempt, "held_ms": held_ms},
            )

    def record_skip(
        self,
        session_id: int,
        index: int,
        reason: str,
        *,
        kind: str = "",
        zone: str | None = None,
    ) -> StepRecord:
        """Record that step ``index`` is skipped and why (the running attempt, or a new row if
        the step never started). Writes ``step_skipped``."""
        self._check_index(index)
        self._require_exclusive("record a step")
        reason = check.text(reason, "reason for skipping the step", max_len=2000)
        with self.write_transaction() as conn:
            self._require_running(conn, session_id)
            step = self._latest_step(conn, session_id, index)
            now = self.now()
            if step is not None and step.ended_at is None and not step.skipped:
                conn.execute(
                    "UPDATE steps SET skipped = 1, skip_reason = ?, ended_at = ?, "
                    "outcome = 'skipped' WHERE id = ?",
                    (reason, now, step.id),
                )
                attempt = step.attempt
            else:
                attempt = step.attempt + 1 if step else 1
                conn.execute(
                    "INSERT INTO steps (session_id, idx, attempt, kind, zone, ended_at, skipped, "
                    "skip_reason, outcome) VALUES (?, ?, ?, ?, ?, ?, 1, ?, 'skipped')",
                    (session_id, index, attempt, kind or "unknown", zone, now, reason),
                )
            self._append(
                conn,
                session_id,
                "step_skipped",
                {"index": index, "attempt": attempt, "reason": reason},
            )
            result = self._latest_step(conn, session_id, index)
        assert result is not None
        return result

    def steps(self, session_id: int) -> list[StepRecord]:
        with self.read_connection() as conn:
            rows = conn.execute(
                f"{STEP_SELECT} WHERE session_id = ? ORDER BY idx, attempt", (session_id,)
            )
            return [step_row(r) for r in rows]
