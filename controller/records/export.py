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

Times are stored UTC ISO 8601 and exported as stored. In CSV, a text cell that a spreadsheet
would take for a formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return)
gets a leading ``'`` (:func:`csv_text`); numbers stay numbers. JSON keeps every value as stored.

Files hold client records: :func:`write_private_files` writes them mode 0600 and atomically (a
temporary file in the same folder, renamed onto the name at the end, so a failed export leaves
no half file), and refuses a name that already exists — a file, a symlink, even a dangling one
— unless told to replace it; replacing renames onto the name itself, so it never writes through
a symlink.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from controller.records.chain import VerifyReport
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
    "last_known_at",
    "amendments",
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
    "delivered_estimated",
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

#: A CSV text cell starting with one of these is a formula to a spreadsheet (OWASP, "CSV
#: injection"): such a cell gets a leading ``'``.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class OutputExistsError(FileExistsError):
    """The export's file names exist already (files, symlinks or anything else)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        names = ", ".join(str(p) for p in self.paths)
        verb = "exists" if len(self.paths) == 1 else "exist"
        super().__init__(errno.EEXIST, f"{names} already {verb}")


#: The ``# chain`` table after one session's CSV tables on standard output.
CHAIN_COLUMNS = ("head_hash", "events", "verified")


def csv_text(text: str) -> str:
    """``text`` as a CSV cell that no spreadsheet runs: a leading ``'`` before a formula start."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict | tuple):
        return csv_text(json.dumps(value, sort_keys=True, ensure_ascii=False))
    if isinstance(value, str):
        return csv_text(value)
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


def export_json(
    store: RecordStore,
    session_ids: Iterable[int] | None = None,
    *,
    report: VerifyReport | None = None,
) -> dict[str, Any]:
    """The JSON export of the given sessions (all, oldest first, when ``None``). ``chain`` is
    the verify report (``report``, else verified now) with the head and event count."""
    if session_ids is None:
        session_ids = [s.id for s in reversed(store.list_sessions())]
    if report is None:
        report = store.verify_chain()
    return {
        "format": EXPORT_FORMAT,
        "exported_at": store.now(),
        "chain": report.to_dict(),
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


def write_session_csv_stream(
    store: RecordStore, session_id: int, out: TextIO, *, report: VerifyReport | None = None
) -> None:
    """One session's four tables on one stream, each after a ``# <table>`` line, then the
    chain's head and event count (``# chain``) when ``report`` is given."""
    for name, (columns, rows) in session_tables(store, session_id).items():
        out.write(f"# {name}\n")
        _write_table(out, columns, rows)
        out.write("\n")
    if report is not None:
        out.write("# chain\n")
        _write_table(out, CHAIN_COLUMNS, [[report.head_hash, report.events, _cell(report.ok)]])
        out.write("\n")


def existing(paths: Iterable[Path]) -> list[Path]:
    """Those of ``paths`` taken by anything: a file, a folder, a symlink (even a dangling one)."""
    return [p for p in paths if os.path.lexists(p)]


def write_private_files(
    outputs: Sequence[tuple[Path, Callable[[TextIO], None]]], *, replace: bool = False
) -> list[Path]:
    """Write each ``(path, write)`` of ``outputs``: ``write(stream)`` fills a temporary file
    (mode 0600, in the path's folder), and once every one is written they are renamed onto
    their paths. Returns the paths.

    Raises :class:`OutputExistsError` before writing anything when a path exists, unless
    ``replace``: then the rename replaces what is there — a symlink itself, never the file it
    points to. On any error no temporary file is left behind and, as far as the renames had not
    started, the paths are as they were."""
    paths = [path for path, _ in outputs]
    if not replace and (taken := existing(paths)):
        raise OutputExistsError(taken)
    temps: list[str] = []
    try:
        for path, write in outputs:
            fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
            temps.append(temp)
            with open(fd, "w", encoding="utf-8", newline="") as out:
                os.fchmod(out.fileno(), FILE_MODE)  # mkstemp's 0600, whatever the platform
                write(out)
                out.flush()
                os.fsync(out.fileno())
        if not replace and (taken := existing(paths)):  # made while we were writing
            raise OutputExistsError(taken)
        for path, temp in zip(paths, temps, strict=True):
            os.replace(temp, path)
    finally:
        for temp in temps:  # those not renamed: an error came first
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    return paths


def write_private(path: Path, write: Callable[[TextIO], None], *, replace: bool = False) -> Path:
    """One file by :func:`write_private_files`."""
    return write_private_files([(path, write)], replace=replace)[0]


def open_private(path: Path) -> TextIO:
    """Open ``path`` for writing text, created (or truncated) with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    os.fchmod(fd, FILE_MODE)
    return open(fd, "w", encoding="utf-8", newline="")


def session_csv_paths(output: Path) -> dict[str, Path]:
    """``NAME.csv`` → ``NAME-session.csv``, ``NAME-steps.csv``, ... beside it."""
    stem = output.name[: -len(".csv")] if output.name.lower().endswith(".csv") else output.name
    return {t: output.with_name(f"{stem}-{t}.csv") for t in CSV_TABLES}


def write_session_csv_files(
    store: RecordStore, session_id: int, output: Path, *, replace: bool = False
) -> list[Path]:
    """Write one session's four tables to files named after ``output``; return their paths.

    By :func:`write_private_files`: when one of the four exists none is written (raises
    :class:`OutputExistsError`) unless ``replace``."""
    tables = session_tables(store, session_id)
    paths = session_csv_paths(output)

    def table(name: str) -> Callable[[TextIO], None]:
        columns, rows = tables[name]
        return lambda out: _write_table(out, columns, rows)

    return write_private_files([(paths[name], table(name)) for name in tables], replace=replace)
