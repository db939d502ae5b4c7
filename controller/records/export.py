"""Exporting records as JSON or CSV, for the clinic's own archive or an audit.

Layouts (docs/records.md has the column lists):

- JSON: one document ``{"format": "epm-records-export/1", "exported_at", "chain", "sessions"}``;
  each session holds its fields (``simulated`` among them), steps, events (with their hashes,
  so the chain can be checked from the export), full telemetry rows and a telemetry summary.
  ``chain`` is the verify report at export time, with the head hash.
- CSV of many sessions: one row per session (``SESSION_COLUMNS``).
- CSV of one session: four tables — session, steps, events, telemetry. With an output file
  ``NAME.csv`` they go to ``NAME-session.csv``, ``NAME-steps.csv``, ``NAME-events.csv`` and
  ``NAME-telemetry.csv``; on standard output each table follows a line ``# <table>`` and ends
  with an empty line. Every row of every table has a ``simulated`` column.

Times are stored UTC ISO 8601 and exported as stored. Files are created mode 0600: they hold
client records.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from controller.records.models import SessionRecord
from controller.records.paths import FILE_MODE
from controller.records.store import RecordStore
from controller.records.telemetry import ROW_COLUMNS

EXPORT_FORMAT = "epm-records-export/1"

SESSION_COLUMNS: tuple[str, ...] = (
    "id",
    "simulated",
    "client_code",
    "client_name",
    "started_at",
    "ended_at",
    "outcome",
    "outcome_reason",
    "protocol_id",
    "protocol_version",
    "protocol_sha256",
    "protocol_title",
    "serum_name",
    "serum_lot",
    "practitioner",
    "device_model",
    "device_serial",
    "device_firmware",
    "device_boot_id",
    "device_port",
    "planned_zones",
    "checklist",
    "notes",
)
STEP_COLUMNS: tuple[str, ...] = (
    "simulated",
    "session_id",
    "index",
    "attempt",
    "kind",
    "zone",
    "planned_ms",
    "delivered_ms",
    "started_at",
    "ended_at",
    "holds",
    "hold_ms",
    "skipped",
    "skip_reason",
    "outcome",
    "amplitude_changes",
)
EVENT_COLUMNS: tuple[str, ...] = (
    "simulated",
    "session_id",
    "id",
    "seq",
    "wall_time",
    "mono_ms",
    "kind",
    "data",
    "prev_hash",
    "hash",
)
TELEMETRY_COLUMNS: tuple[str, ...] = ("simulated", "session_id", *ROW_COLUMNS)
CSV_TABLES = ("session", "steps", "events", "telemetry")


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return "" if value is None else value


def _session_row(session: SessionRecord) -> list[Any]:
    data = session.to_dict()
    return [_cell(data[c]) for c in SESSION_COLUMNS]


def session_export(store: RecordStore, session_id: int) -> dict[str, Any]:
    """Everything recorded about one session, JSON-ready."""
    detail = store.session_detail(session_id)
    data = detail.to_dict()
    data["simulated"] = detail.session.simulated
    data["telemetry_rows"] = store.telemetry_rows(session_id)
    return data


def export_json(store: RecordStore, session_ids: Iterable[int] | None = None) -> dict[str, Any]:
    """The JSON export of the given sessions (all, oldest first, when ``None``)."""
    if session_ids is None:
        session_ids = [s.id for s in reversed(store.list_sessions())]
    return {
        "format": EXPORT_FORMAT,
        "exported_at": store.now(),
        "chain": store.verify_chain().to_dict(),
        "sessions": [session_export(store, sid) for sid in session_ids],
    }


def _write_table(out: TextIO, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)


def write_sessions_csv(sessions: Iterable[SessionRecord], out: TextIO) -> None:
    """One row per session."""
    _write_table(out, SESSION_COLUMNS, (_session_row(s) for s in sessions))


def session_tables(
    store: RecordStore, session_id: int
) -> dict[str, tuple[Sequence[str], list[list[Any]]]]:
    """The four CSV tables of one session: name → (columns, rows)."""
    detail = store.session_detail(session_id)
    sim = _cell(detail.session.simulated)
    steps = []
    for step in detail.steps:
        d = step.to_dict()
        steps.append([sim, *(_cell(d[c]) for c in STEP_COLUMNS[1:])])
    events = [[sim, *(_cell(e.to_dict()[c]) for c in EVENT_COLUMNS[1:])] for e in detail.events]
    telemetry = [
        [sim, session_id, *(_cell(r[c]) for c in ROW_COLUMNS)]
        for r in store.telemetry_rows(session_id)
    ]
    return {
        "session": (SESSION_COLUMNS, [_session_row(detail.session)]),
        "steps": (STEP_COLUMNS, steps),
        "events": (EVENT_COLUMNS, events),
        "telemetry": (TELEMETRY_COLUMNS, telemetry),
    }


def write_session_csv_stream(store: RecordStore, session_id: int, out: TextIO) -> None:
    """One session's four tables on one stream, each after a ``# <table>`` line."""
    for name, (columns, rows) in session_tables(store, session_id).items():
        out.write(f"# {name}\n")
        _write_table(out, columns, rows)
        out.write("\n")


def open_private(path: Path) -> TextIO:
    """Open ``path`` for writing text, created (or truncated) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return open(fd, "w", encoding="utf-8", newline="")


def session_csv_paths(output: Path) -> dict[str, Path]:
    """``NAME.csv`` → ``NAME-session.csv``, ``NAME-steps.csv``, ... beside it."""
    stem = output.name[: -len(".csv")] if output.name.lower().endswith(".csv") else output.name
    return {t: output.with_name(f"{stem}-{t}.csv") for t in CSV_TABLES}


def write_session_csv_files(store: RecordStore, session_id: int, output: Path) -> list[Path]:
    """Write one session's four tables to files named after ``output``; return their paths."""
    tables = session_tables(store, session_id)
    paths = session_csv_paths(output)
    for name, (columns, rows) in tables.items():
        with open_private(paths[name]) as out:
            _write_table(out, columns, rows)
    return list(paths.values())
