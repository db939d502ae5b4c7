"""SQL rows to records: the SELECT lists and the functions that map their rows.

Kept beside each other so a column added to a SELECT cannot drift from its mapper.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from controller.records.models import EventRow, SessionRecord, StepRecord

#: Notes and a corrected client name are shown from their latest chained event (a closed
#: session's row never changes; see ``coverage``), else from the row.
SESSION_SELECT = """
SELECT s.id, c.code,
       coalesce((SELECT json_extract(e.data, '$.name') FROM events e
                 WHERE e.kind = 'client_amended' AND e.session_id IS NULL
                   AND json_extract(e.data, '$.code') = c.code
                 ORDER BY e.id DESC LIMIT 1), c.name),
       s.protocol_id, s.protocol_version, s.protocol_sha256,
       s.protocol_title, s.serum_name, s.serum_lot, s.practitioner, s.device_model,
       s.device_serial, s.device_firmware, s.device_boot_id, s.device_port, s.simulated,
       s.checklist, s.planned_zones, s.started_at, s.ended_at, s.outcome, s.outcome_reason,
       coalesce((SELECT json_extract(e.data, '$.notes') FROM events e
                 WHERE e.session_id = s.id AND e.kind = 'note'
                 ORDER BY e.seq DESC LIMIT 1), s.notes),
       s.last_known_at
FROM sessions s JOIN clients c ON c.id = s.client_id
"""
STEP_SELECT = """
SELECT id, session_id, idx, attempt, kind, zone, planned_ms, delivered_ms, started_at, ended_at,
       amplitude_changes, holds, hold_ms, skipped, skip_reason, outcome, delivered_estimated
FROM steps
"""
EVENT_SELECT = (
    "SELECT id, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash FROM events"
)


def plain_values(table: str, row: Sequence[Any]) -> list[Any]:
    """``row``'s values, refused (``ValueError``) when one is a BLOB: epm stores none, so one
    is an edit made outside epm, and it would break every export that shows it."""
    values = list(row)
    for value in values:
        if isinstance(value, bytes | bytearray | memoryview):
            raise ValueError(f"table {table} holds binary data where epm stores text or numbers")
    return values


def session_row(row: Sequence[Any]) -> SessionRecord:
    values = plain_values("sessions", row)
    values[15] = bool(values[15])  # simulated
    values[16] = json.loads(values[16])  # checklist
    values[17] = json.loads(values[17])  # planned_zones
    return SessionRecord(*values)


def step_row(row: Sequence[Any]) -> StepRecord:
    values = plain_values("steps", row)
    values[10] = json.loads(values[10])  # amplitude_changes
    values[13] = bool(values[13])  # skipped
    values[16] = bool(values[16])  # delivered_estimated
    return StepRecord(*values)


def event_row(row: Sequence[Any]) -> EventRow:
    values = plain_values("events", row)
    values[6] = json.loads(values[6])  # data
    return EventRow(*values)
