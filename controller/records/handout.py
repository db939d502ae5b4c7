"""The client's aftercare handout: one A5 page in plain language, from a closed session's record.

It says what to do after the treatment (the protocol's ``aftercare`` items, recorded with the
session when it started), when the next session of the course is due, and how to reach the
clinic; it carries no clinical figures (no volts, currents or doses). A session on the
simulator says "SIMULATOR — not a treatment" on the page.

Records from before the aftercare was kept with the session need the protocol file the session
ran: the caller gives it, and it is accepted only when its SHA-256 is the one recorded (other
bytes might give other advice). Written like the report (a new file, mode 0600, never over an
existing one) and chained as the session's ``handout_given`` event (document, SHA-256, file
name, pages, paper, when and by whom).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from controller.records.courses import CourseProgress, course_progress
from controller.records.documents import (
    Furniture,
    ReportResult,
    ReportSettings,
    long_date,
    publish_document,
    refuse_existing,
    render,
    styles,
    text,
)
from controller.records.errors import InvalidRecordError
from controller.records.models import CourseRecord, SessionRecord, local, parse_iso
from controller.records.store import RecordStore

DOCUMENT = "aftercare_handout"
PAPER = "A5"


def _from_protocol_file(
    session: SessionRecord, protocol_file: str | Path
) -> tuple[tuple[str, ...], CourseRecord]:
    """The aftercare and course of the protocol file the session ran (its SHA-256 must match)."""
    from protocols import load_protocol

    result = load_protocol(Path(protocol_file))
    if result.protocol is None or not result.ok:
        raise InvalidRecordError(
            f"{protocol_file} is not a valid protocol file (`epm validate {protocol_file}` says "
            "why): the handout needs the file session "
            f"{session.id} ran"
        )
    if str(result.sha256).lower() != session.protocol_sha256:
        raise InvalidRecordError(
            f"{protocol_file} is not the file session {session.id} ran: its SHA-256 is "
            f"{result.sha256}, the session ran {session.protocol_id} version "
            f"{session.protocol_version} with SHA-256 {session.protocol_sha256}; give that file"
        )
    protocol = result.protocol
    course = CourseRecord(
        protocol.course.sessions,
        protocol.course.interval_days,
        protocol.course.maintenance_interval_days,
    )
    return tuple(protocol.aftercare), course


def handout_content(
    store: RecordStore, session_id: int, protocol_file: str | Path | None = None
) -> tuple[SessionRecord, tuple[str, ...], CourseProgress | None]:
    """The session, its aftercare items and the course as of the session. A running or refused
    session is refused, and so is a record without its aftercare when no matching protocol file
    is given."""
    session = store.get_session(session_id)
    if session.is_open:
        raise InvalidRecordError(
            f"session {session_id} is still running: its handout is written once it has ended"
        )
    if session.outcome == "refused":
        raise InvalidRecordError(
            f"session {session_id} was refused before anything was delivered: there is no "
            "aftercare to give"
        )
    aftercare, course = session.aftercare, session.course
    if not aftercare or course is None:
        if protocol_file is None:
            if not aftercare:
                raise InvalidRecordError(
                    f"session {session_id}'s record does not hold the aftercare advice (it was "
                    "recorded before epm kept it): give the protocol file it ran, "
                    f"{session.protocol_id} version {session.protocol_version} with SHA-256 "
                    f"{session.protocol_sha256} (--protocol FILE)"
                )
        else:
            file_aftercare, file_course = _from_protocol_file(session, protocol_file)
            aftercare = aftercare or file_aftercare
            course = course or file_course
    progress = None
    if course is not None:
        protocol = SimpleNamespace(id=session.protocol_id, course=course)
        progress = course_progress(store, session.client_code, protocol, upto=session.started_at)
    return session, tuple(aftercare), progress


def next_session_words(session: SessionRecord, course: CourseProgress | None) -> str:
    """When to come back, in plain words."""
    if session.simulated:
        return (
            "This was a training session on the simulator, not a treatment: no next session "
            "follows from it."
        )
    if course is None:
        return "Please book your next session with the clinic."
    if course.phase == "complete":
        return f"Your course of {course.total} sessions is complete."
    day = parse_iso(session.started_at).astimezone().date()
    if course.next_due is None or course.next_due <= day:
        return "Please book your next session with the clinic as soon as you can."
    when = long_date(course.next_due)
    if course.phase == "maintenance":
        return f"Your next maintenance session is due on {when}."
    return f"Your next session (session {course.done + 1} of {course.total}) is due on {when}."


def _unbroken(words: str) -> str:
    """A date kept on one line."""
    return words.replace(" ", "&nbsp;")


def build_story(
    session: SessionRecord,
    aftercare: tuple[str, ...],
    course: CourseProgress | None,
    settings: ReportSettings,
) -> list[Any]:
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, Spacer

    st = styles(10.5)
    day = parse_iso(session.started_at).astimezone().date()
    story: list[Any] = [Paragraph("Your aftercare", st["h1"])]
    if session.simulated:
        story.append(Paragraph("SIMULATOR — not a treatment", st["mark"]))
    who = session.client_name or f"client {session.client_code}"
    story.append(
        Paragraph(
            f"For {text(who)}, after your treatment on {_unbroken(long_date(day))}.", st["body"]
        )
    )
    story.append(Spacer(1, 3 * mm))
    story.append(Paragraph("What to do after today's session", st["h2"]))
    for item in aftercare:
        story.append(Paragraph(f"•&nbsp;&nbsp;{text(item)}", st["body"]))
        story.append(Spacer(1, 1.2 * mm))
    story.append(Paragraph("Your next session", st["h2"]))
    if session.outcome != "completed" and not session.simulated:
        story.append(
            Paragraph(
                "Today's session ended early; your practitioner will tell you whether it counts "
                "toward your course.",
                st["body"],
            )
        )
    words = text(next_session_words(session, course))
    if course is not None and course.next_due is not None:
        when = long_date(course.next_due)
        words = words.replace(when, f"<b>{_unbroken(when)}</b>")
    story.append(Paragraph(words, st["body"]))
    story.append(Paragraph("Questions?", st["h2"]))
    contact = settings.clinic_contact.strip()
    name = settings.clinic_name.strip() or "the clinic"
    story.append(
        Paragraph(
            text(f"If anything worries you, contact {name}" + (":" if contact else ".")), st["body"]
        )
    )
    # Each part of the contact line (phone · e-mail · ...) on its own line, never split.
    for part in (p.strip() for p in contact.split("·")) if contact else ():
        if part:
            story.append(Paragraph(f"<b>{text(part).replace(' ', '&nbsp;')}</b>", st["body"]))
    return story


def render_handout(
    session: SessionRecord,
    aftercare: tuple[str, ...],
    course: CourseProgress | None,
    settings: ReportSettings,
) -> tuple[bytes, int]:
    """The handout's PDF bytes and page count (nothing written, nothing chained)."""
    furniture = Furniture(
        header_left=settings.clinic_name or "",
        header_right="Aftercare",
        footer_left=f"Client {session.client_code} · treatment "
        + local(session.started_at, "%Y-%m-%d"),
        simulated=session.simulated,
    )
    return render(
        build_story(session, aftercare, course, settings),
        paper=PAPER,
        furniture=furniture,
        title="Your aftercare",
        subject=f"Aftercare after session {session.id}",
        created=session.ended_at or session.started_at,
        margins_mm=12.0,
    )


def write_handout(
    store: RecordStore,
    session_id: int,
    settings: ReportSettings,
    path: str | Path,
    *,
    protocol_file: str | Path | None = None,
    by: str | None = None,
) -> ReportResult:
    """Write the aftercare handout of closed session ``session_id`` (A5, whatever
    ``settings.paper`` says) to the new file ``path`` and chain it as ``handout_given``.
    ``by`` (who gave it) defaults to the session's practitioner (as corrected, if it was)."""
    path = Path(path)
    refuse_existing(path)
    session, aftercare, course = handout_content(store, session_id, protocol_file)
    pdf, pages = render_handout(session, aftercare, course, settings)
    corrected = session.amended("practitioner")
    giver = by or (str(corrected["value"]) if corrected else session.practitioner)
    return publish_document(
        store,
        session_id,
        path,
        pdf,
        pages=pages,
        paper=PAPER,
        document=DOCUMENT,
        kind="handout_given",
        by=giver,
        extra={"at": store.now()},
    )
