"""The course report: one client's sessions of one protocol, and what is left of the course.

Every session of the protocol id (every version: a new version does not restart a course),
oldest first, with its date, outcome and the time each zone got of its plan; then the course
by :func:`~controller.records.courses.course_progress`'s rules (only completed sessions on a
real device count): sessions done and left, and the next due date as of ``today``. Simulated
sessions are listed and marked, never counted; when every session listed is simulated, every
page carries the simulator mark.

The course (sessions, intervals) comes from the latest session that recorded it, or from a
protocol file the caller gives. Written as a new file, mode 0600, never over an existing one;
it is not chained (it restates chained sessions and is written again as the course goes on).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from controller.records.courses import CourseProgress, course_progress
from controller.records.documents import (
    Furniture,
    ReportResult,
    ReportSettings,
    page_size,
    refuse_existing,
    render,
    styles,
    text,
    write_new_file,
    zone_words,
)
from controller.records.errors import InvalidRecordError
from controller.records.models import CourseRecord, SessionRecord, local
from controller.records.store import RecordStore
from controller.records.summary import SessionSummary, summarize_store
from controller.records.words import duration_words

_MARGIN_MM = 16.0


def _course(sessions: list[SessionRecord], protocol_file: str | Path | None) -> CourseRecord | None:
    if protocol_file is not None:
        from protocols import load_protocol

        result = load_protocol(Path(protocol_file))
        if result.protocol is None or not result.ok:
            raise InvalidRecordError(
                f"{protocol_file} is not a valid protocol file (`epm validate {protocol_file}` "
                "says why)"
            )
        if result.protocol.id != sessions[-1].protocol_id:
            raise InvalidRecordError(
                f"{protocol_file} is protocol {result.protocol.id}, not "
                f"{sessions[-1].protocol_id}: give a file of the course's protocol"
            )
        c = result.protocol.course
        return CourseRecord(c.sessions, c.interval_days, c.maintenance_interval_days)
    recorded = [s.course for s in sessions if s.course is not None]
    return recorded[-1] if recorded else None


def _zones_line(summary: SessionSummary) -> str:
    parts = []
    for z in summary.deliveries:
        state = {"completed": "", "not started": " not started"}.get(z.status, f" {z.status}")
        if z.skip_reason:
            state = f" skipped ({z.skip_reason})"
        parts.append(
            f"{zone_words(z.zone)}: {duration_words(z.delivered_ms)} of "
            f"{duration_words(z.planned_ms)}{state}"
        )
    return "; ".join(parts) or "no delivery step"


def _counted(session: SessionRecord) -> str:
    if session.simulated:
        return "no (simulator)"
    if session.outcome == "completed":
        return "yes"
    if session.outcome == "running":
        return "not yet (running)"
    return "no"


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def course_lines(
    progress: CourseProgress | None,
    course: CourseRecord | None,
    today: dt.date,
    simulated: int = 0,
) -> list[str]:
    """What is left of the course, in plain words (the rules of ``course_progress``)."""
    if progress is None or course is None:
        return [
            "The course (number of sessions, interval) is not recorded with these sessions: "
            "give the protocol file (--protocol-file FILE) to see what is left."
        ]
    left = max(0, progress.total - progress.done)
    lines = [
        f"Completed sessions that count: {progress.done} of {progress.total}; "
        f"sessions left in the course: {left}.",
    ]
    if progress.phase == "complete":
        lines.append("The course is complete; the protocol sets no maintenance interval.")
    elif progress.next_due is not None:
        if progress.phase == "maintenance":
            what = f"maintenance session (every {course.maintenance_interval_days} days)"
        else:
            what = f"session (session {progress.done + 1} of {progress.total})"
        due = f"Next {what} due {progress.next_due.isoformat()}"
        if progress.overdue_days:
            due += f" (overdue by {_days(progress.overdue_days)})"
        elif progress.next_due > today:
            due += f" (in {_days((progress.next_due - today).days)})"
        else:
            due += " (today)"
        lines.append(due + ".")
    if progress.not_counted:
        lines.append(
            f"{progress.not_counted} other session(s) ended early and do not count (only "
            "completed sessions do)."
        )
    if simulated:
        lines.append(f"{simulated} session(s) on the simulator do not count.")
    return lines


def build_story(  # noqa: PLR0917 - one call site
    client: str,
    protocol_id: str,
    rows: list[tuple[SessionRecord, SessionSummary]],
    progress: CourseProgress | None,
    course: CourseRecord | None,
    today: dt.date,
    width: float,
) -> list[Any]:
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    st = styles(9.0)
    story: list[Any] = [
        Paragraph(f"Course report — {text(client)}, {text(protocol_id)}", st["h1"]),
        Paragraph(
            f"{text(rows[-1][0].protocol_title)}. As of {today.isoformat()}; {len(rows)} "
            "session(s) recorded.",
            st["body"],
        ),
    ]
    if any(s.simulated for s, _ in rows):
        story.append(
            Paragraph(
                "Sessions marked SIMULATOR ran on the simulator: not treatments, never counted.",
                st["mark"] if all(s.simulated for s, _ in rows) else st["body"],
            )
        )
    story.append(Paragraph("What is left of the course", st["h2"]))
    simulated = sum(1 for s, _ in rows if s.simulated)
    lines = course_lines(progress, course, today, simulated)
    story += [Paragraph(text(line), st["body"]) for line in lines]
    story.append(Paragraph("Sessions", st["h2"]))
    head = ["Date", "Session", "Outcome", "Delivered", "Counts", "Zones (delivered of planned)"]
    table: list[list[Any]] = [[Paragraph(h, st["cell_bold"]) for h in head]]
    for s, summary in rows:
        outcome = text(s.outcome)
        if s.outcome_reason and s.outcome != "completed":
            outcome += f": {text(s.outcome_reason)}"
        if s.simulated:
            outcome = f"<font color='#b00000'><b>SIMULATOR</b></font><br/>{outcome}"
        cells = [
            local(s.started_at, "%Y-%m-%d %H:%M"),
            f"{s.id} (v{s.protocol_version})",
            outcome,
            f"{duration_words(summary.delivered_ms)} of {duration_words(summary.planned_ms)}",
            _counted(s),
            text(_zones_line(summary)),
        ]
        table.append([Paragraph(c, st["cell"]) for c in cells])
    fractions = (0.12, 0.09, 0.2, 0.14, 0.13, 0.32)
    t = Table(table, colWidths=[width * f for f in fractions], repeatRows=1, hAlign="LEFT")
    t.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ("LEFTPADDING", (0, 0), (-1, -1), 2),
                ("RIGHTPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    story.append(t)
    return story


def render_course_report(
    store: RecordStore,
    client_code: str,
    protocol_id: str,
    settings: ReportSettings,
    *,
    protocol_file: str | Path | None = None,
    today: dt.date | None = None,
) -> tuple[bytes, int]:
    """The course report's PDF bytes and page count (nothing written)."""
    from reportlab.lib.units import mm

    client = store.get_client(client_code)
    sessions = list(reversed(store.list_sessions(client=client.code, protocol_id=protocol_id)))
    if not sessions:
        raise InvalidRecordError(
            f"client {client.code} has no session of protocol {protocol_id!r}: "
            f"`epm records list --client {client.code}` shows the client's sessions"
        )
    course = _course(sessions, protocol_file)
    today = today or dt.date.today()
    progress = None
    if course is not None:
        protocol = SimpleNamespace(id=protocol_id, course=course)
        progress = course_progress(store, client.code, protocol, today=today)
    rows = [(s, summarize_store(store, s.id)) for s in sessions]
    name = client.code + (f" ({client.name})" if client.name else "")
    width = page_size(settings.paper)[0] - 2 * _MARGIN_MM * mm
    furniture = Furniture(
        header_left=settings.clinic_name or "epm",
        header_right=f"Course report · {settings.station_name}".rstrip(" ·"),
        footer_left=f"Client {client.code} · {protocol_id} · as of {today.isoformat()}",
        simulated=all(s.simulated for s in sessions),
    )
    last = sessions[-1]
    return render(
        build_story(name, protocol_id, rows, progress, course, today, width),
        paper=settings.paper,
        furniture=furniture,
        title=f"Course report, client {client.code}, {protocol_id}",
        subject=f"Course of {protocol_id}",
        created=last.ended_at or last.started_at,
        margins_mm=_MARGIN_MM,
    )


def write_course_report(
    store: RecordStore,
    client_code: str,
    protocol_id: str,
    settings: ReportSettings,
    path: str | Path,
    *,
    protocol_file: str | Path | None = None,
    today: dt.date | None = None,
) -> ReportResult:
    """Write the course report of ``client_code`` in ``protocol_id`` to the new file ``path``
    (mode 0600, never over an existing file: ``OutputExistsError``)."""
    import hashlib

    path = Path(path)
    refuse_existing(path)
    pdf, pages = render_course_report(
        store, client_code, protocol_id, settings, protocol_file=protocol_file, today=today
    )
    write_new_file(path, pdf)
    return ReportResult(path, hashlib.sha256(pdf).hexdigest(), pages, settings.paper)
