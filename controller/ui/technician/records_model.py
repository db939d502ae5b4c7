"""Session records as the records screen lists, filters and exports them: pure data, no widgets.

Why separate: the filter rules (partial client code, inclusive local dates, a clear message for
a mistyped date) and the export file names are the parts most worth testing on their own, and
the screen stays a thin layer over them. Exports go to the data folder's ``exports/`` with the
records module's own export functions (the formats of ``epm records export``), are created mode
0600 because they hold client records, and never overwrite an earlier export.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from controller.records import RecordStore, SessionRecord, StepRecord
from controller.records.export import (
    export_json,
    session_csv_paths,
    write_private,
    write_session_csv_files,
    write_sessions_csv,
)
from controller.records.models import local

EXPORTS_FOLDER = "exports"


@dataclass(frozen=True)
class RecordFilter:
    client: str = ""
    """Part of a client code, any case ("" for every client)."""
    since: dt.date | None = None
    until: dt.date | None = None


def parse_day(text: str, label: str) -> tuple[dt.date | None, str | None]:
    """A ``YYYY-MM-DD`` field: (date, None), (None, None) when empty, or (None, message)."""
    text = text.strip()
    if not text:
        return None, None
    try:
        return dt.date.fromisoformat(text), None
    except ValueError:
        return None, f"{label} {text!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-03-01"


def parse_filter(client: str, since: str, until: str) -> tuple[RecordFilter, list[str]]:
    """The filter the three fields describe, and what is wrong with them (ignored parts)."""
    problems: list[str] = []
    start, problem = parse_day(since, "From")
    if problem:
        problems.append(problem)
    end, problem = parse_day(until, "To")
    if problem:
        problems.append(problem)
    if start is not None and end is not None and end < start:
        problems.append(f"To {end} is before From {start}: no session can match; swap them")
    return RecordFilter(client.strip(), start, end), problems


def fmt_ms(ms: int | None) -> str:
    """``m:ss`` (``h:mm:ss`` from an hour); ``—`` when unknown."""
    if ms is None:
        return "—"
    seconds = max(ms, 0) // 1000
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def delivered_and_planned(
    steps: Sequence[StepRecord], planned_delivery_ms: int | None = None
) -> tuple[int, int]:
    """Delivery time over all attempts, and the session's planned delivery time: the plan's
    (every delivery step, started or not) when the record keeps it, as the end screen shows
    it; for older records the planned time of each delivery step that started, once."""
    delivered = sum(s.delivered_ms or 0 for s in steps if s.kind == "delivery")
    if planned_delivery_ms is not None:
        return delivered, planned_delivery_ms
    planned: dict[int, int] = {}
    for step in steps:
        if step.kind == "delivery" and step.planned_ms is not None:
            planned.setdefault(step.index, step.planned_ms)
    return delivered, sum(planned.values())


@dataclass(frozen=True)
class SessionRow:
    """One line of the records table."""

    session: SessionRecord
    delivered_ms: int
    planned_ms: int

    @property
    def date(self) -> str:
        return local(self.session.started_at)

    @property
    def protocol(self) -> str:
        return f"{self.session.protocol_id} v{self.session.protocol_version}"

    @property
    def delivered(self) -> str:
        return f"{fmt_ms(self.delivered_ms)}/{fmt_ms(self.planned_ms)}"

    @property
    def sim(self) -> str:
        return "SIM" if self.session.simulated else ""


def load_rows(store: RecordStore, flt: RecordFilter) -> list[SessionRow]:
    """The sessions the filter selects, newest first, with their delivered time."""
    sessions = store.list_sessions(since=flt.since, until=flt.until)
    needle = flt.client.lower()
    if needle:
        sessions = [s for s in sessions if needle in s.client_code.lower()]
    rows = []
    for session in sessions:
        delivered, planned = delivered_and_planned(
            store.steps(session.id), session.planned_delivery_ms
        )
        rows.append(SessionRow(session, delivered, planned))
    return rows


# -- export ---------------------------------------------------------------------------------


def exports_dir(store: RecordStore) -> Path:
    """``<data folder>/exports``, created private (0700) when missing."""
    folder = Path(store.data_dir) / EXPORTS_FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _stamp(store: RecordStore) -> str:
    moment = dt.datetime.fromisoformat(store.now())
    return moment.strftime("%Y%m%d-%H%M%S")


def _free(folder: Path, stem: str, suffix: str, csv_tables: bool = False) -> Path:
    """``folder/stem.suffix``, or ``stem-2.suffix`` ... when that (or its CSV tables) exist."""
    n = 1
    while True:
        name = f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}"
        path = folder / name
        # lexists: a dangling symlink is taken too (never written through)
        taken = (
            any(os.path.lexists(p) for p in session_csv_paths(path).values())
            if csv_tables
            else os.path.lexists(path)
        )
        if not taken:
            return path
        n += 1


@dataclass(frozen=True)
class Exported:
    """What an export wrote, and the chain's head and count it printed."""

    paths: list[Path]
    chain: str


def export_sessions(store: RecordStore, session_ids: Sequence[int], fmt: str) -> Exported:
    """Export the sessions as ``json`` or ``csv`` into :func:`exports_dir`.

    One session as CSV gives its four tables (session, steps, events, telemetry); several
    sessions as CSV give one row per session; JSON is one document either way. Files are
    written atomically, mode 0600, never over an existing name. The records are verified
    first; the head and event count go into the export and, when verify passed, become the
    saved anchor (docs/records.md).
    """
    if not session_ids:
        raise ValueError("no session is selected: there is nothing to export")
    if fmt not in ("json", "csv"):
        raise ValueError(f"unknown export format {fmt!r}: use json or csv")
    folder = exports_dir(store)
    stamp = _stamp(store)
    stem = f"session-{session_ids[0]}" if len(session_ids) == 1 else "sessions"
    stem = f"{stem}-{stamp}"
    report, saved = store.save_anchor("records export")
    chain = (
        f"{saved.line()} (verified)"
        if saved is not None
        else f"chain head {report.head_hash}, {report.events} events — VERIFY FAILED"
    )
    if fmt == "json":
        path = _free(folder, stem, ".json")
        document = export_json(store, list(session_ids), report=report)

        def write_json(out: TextIO) -> None:
            json.dump(document, out, indent=2, ensure_ascii=False)
            out.write("\n")

        return Exported([write_private(path, write_json)], chain)
    if len(session_ids) == 1:
        path = _free(folder, stem, ".csv", csv_tables=True)
        return Exported(write_session_csv_files(store, session_ids[0], path), chain)
    path = _free(folder, stem, ".csv")
    sessions = [store.get_session(sid) for sid in session_ids]
    return Exported([write_private(path, lambda out: write_sessions_csv(sessions, out))], chain)


def describe_export(exported: Exported) -> str:
    """Where an export went and the chain's head and count, for the status line."""
    paths = exported.paths
    if len(paths) == 1:
        where = f"Exported to {paths[0]}"
    else:
        where = f"Exported {len(paths)} files to {paths[0].parent}{os.sep}: " + ", ".join(
            p.name for p in paths
        )
    return f"{where}; {exported.chain}"
