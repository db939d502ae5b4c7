"""Buffering decimated telemetry and writing it in batches; reading it back.

Rows are written about once a second (``flush_interval_s``), early when many are waiting, and
completely at ``end_session`` and ``close``: a kill loses at most about a second of telemetry.
Events are never buffered.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from controller.records.core import StoreCore
from controller.records.models import TelemetrySummary
from controller.records.rows import plain_values
from controller.records.telemetry import (
    MAX_PENDING_ROWS,
    ROW_COLUMNS,
    Decimator,
    TelemetrySample,
    parse_contact_changes,
)


class TelemetryRecording(StoreCore):
    """The telemetry methods of :class:`~controller.records.store.RecordStore`."""

    def add_telemetry(self, session_id: int, samples: Iterable[TelemetrySample]) -> None:
        """Decimate ``samples`` into the session's telemetry; rows are written about once a
        second (and when many are waiting), and all of them at ``end_session``/``close``.

        Call it from the session engine's thread, not the serial reader: a write may wait for
        the disk. Samples for a session that is not running are dropped and counted in
        ``dropped_telemetry``.
        """
        self._require_exclusive("record telemetry")
        with self._wlock:
            self._check_open()
            decimator = self._decimators.get(session_id)
            if decimator is None:
                if session_id not in self._open_sessions:
                    with self.read_connection() as conn:
                        row = conn.execute(
                            "SELECT outcome FROM sessions WHERE id = ?", (session_id,)
                        ).fetchone()
                    if row is None or row[0] != "running":
                        self.dropped_telemetry += sum(1 for _ in samples)
                        return
                    self._open_sessions.add(session_id)
                decimator = self._decimators[session_id] = Decimator()
                self._last_flush[session_id] = self._monotonic()
            decimator.feed(samples)
            due = self._monotonic() - self._last_flush[session_id] >= self._flush_interval_s
            if decimator.pending_rows and (due or decimator.pending_rows >= MAX_PENDING_ROWS):
                self.flush_telemetry(session_id)

    def close(self) -> None:
        """Write every buffered telemetry row, then close (idempotent)."""
        with self._wlock:
            if self._closed:
                return
            try:
                self.flush_telemetry(final=True)
            finally:
                super().close()

    def flush_telemetry(self, session_id: int | None = None, *, final: bool = False) -> int:
        """Write the finished telemetry rows of one session (or all); with ``final`` also the
        incomplete last interval, and forget the session's buffer. Returns rows written."""
        with self._wlock:
            self._check_open()
            ids = list(self._decimators) if session_id is None else [session_id]
            written = 0
            for sid in ids:
                decimator = self._decimators.get(sid)
                if decimator is None:
                    continue
                rows = decimator.take(include_open=final)
                if rows:
                    placeholders = ", ".join("?" * (len(ROW_COLUMNS) + 1))
                    try:
                        with self.write_transaction() as conn:
                            conn.executemany(
                                f"INSERT INTO telemetry (session_id, {', '.join(ROW_COLUMNS)}) "
                                f"VALUES ({placeholders})",
                                [(sid, *row) for row in rows],
                            )
                    except BaseException:
                        decimator.put_back(rows)  # kept for the next attempt, not lost
                        raise
                    written += len(rows)
                self._last_flush[sid] = self._monotonic()
                if final:
                    del self._decimators[sid]
                    del self._last_flush[sid]
            return written

    @staticmethod
    def _last_telemetry(conn: sqlite3.Connection, session_id: int) -> dict[str, Any] | None:
        row = conn.execute(
            f"SELECT {', '.join(ROW_COLUMNS)} FROM telemetry WHERE session_id = ? "
            "ORDER BY id DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        return dict(zip(ROW_COLUMNS, row, strict=True)) if row else None

    def telemetry_rows(self, session_id: int) -> list[dict[str, Any]]:
        """Every stored telemetry row of a session, oldest first, as column → value."""
        with self.read_connection() as conn:
            rows = conn.execute(
                f"SELECT {', '.join(ROW_COLUMNS)} FROM telemetry WHERE session_id = ? ORDER BY id",
                (session_id,),
            ).fetchall()
            return [dict(zip(ROW_COLUMNS, plain_values("telemetry", r), strict=True)) for r in rows]

    def telemetry_summary(self, session_id: int) -> TelemetrySummary:
        with self.read_connection() as conn:
            row = conn.execute(
                "SELECT count(*), coalesce(sum(n), 0), min(t_first_ms), max(t_last_ms), "
                "max(amplitude_max_dv), max(current_max_ua), min(impedance_min_ohm), "
                "max(impedance_max_ohm), max(temperature_max_dc) "
                "FROM telemetry WHERE session_id = ?",
                (session_id,),
            ).fetchone()
            faults = 0
            changes = 0
            for seen, contact_text in conn.execute(
                "SELECT faults_seen, contact_changes FROM telemetry WHERE session_id = ? "
                "AND (faults_seen != 0 OR contact_changes IS NOT NULL)",
                (session_id,),
            ):
                faults |= seen
                changes += len(parse_contact_changes(contact_text))
        return TelemetrySummary(*[*row, changes, faults])
