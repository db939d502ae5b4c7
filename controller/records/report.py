"""The session report: one closed session's record as a PDF for the client's file.

Everything comes from the record (the session row, its chained events, steps and telemetry,
approvals, the client's other sessions for the course), the figures from
:mod:`~controller.records.summary`, so a report written a year later says what the record says.
The report shows the record up to its last event other than ``report_written``: writing a
report changes nothing the next one shows, so the same record gives the same bytes and the same
SHA-256 (see :mod:`~controller.records.documents`). Later facts — a note, a correction, an
aftercare handout — are part of the record and do show.

Once written, the report's SHA-256 is chained as the session's ``report_written`` event (the
document, its SHA-256, the file's name, pages, paper, and who wrote it when known).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from controller.records.approvals import Approval, is_approved
from controller.records.chain import VerifyReport
from controller.records.courses import CourseProgress, course_progress
from controller.records.documents import (
    Furniture,
    ReportResult,
    ReportSettings,
    key_values,
    publish_document,
    refuse_existing,
    render,
    styles,
    text,
    zone_words,
)
from controller.records.errors import InvalidRecordError
from controller.records.models import EventRow, SessionRecord, local, parse_iso
from controller.records.plotdata import plot_series, zone_of_step
from controller.records.store import RecordStore
from controller.records.summary import SessionSummary, ZoneSummary, summarize
from controller.records.words import duration_words

DOCUMENT = "session_report"
#: Event kinds a report leaves out (writing a report must not change the next one).
NOT_SHOWN = ("report_written",)
_TIME = "%H:%M:%S"
_DATE = "%Y-%m-%d"


@dataclass(frozen=True)
class ReportInput:
    """Everything a session report shows, read from the store (:func:`read_report_input`)."""

    session: SessionRecord
    summary: SessionSummary
    events: tuple[EventRow, ...]
    telemetry: tuple[Mapping[str, Any], ...]
    approval: Approval | None
    course: CourseProgress | None
    verified: bool
    verify_reason: str | None


def read_report_input(
    store: RecordStore, session_id: int, verify: VerifyReport | None = None
) -> ReportInput:
    """Read what the report of ``session_id`` shows. ``verify`` is the chain check to quote
    (``store.verify_chain()`` when not given). A running session is refused."""
    session = store.get_session(session_id)
    if session.is_open:
        raise InvalidRecordError(
            f"session {session_id} is still running: its report is written once it has ended"
        )
    events = tuple(e for e in store.events(session_id) if e.kind not in NOT_SHOWN)
    telemetry = tuple(store.telemetry_rows(session_id))
    summary = summarize(session, store.steps(session_id), events, telemetry)
    report = verify if verify is not None else store.verify_chain()
    course = None
    if session.course is not None:
        protocol = SimpleNamespace(id=session.protocol_id, course=session.course)
        course = course_progress(store, session.client_code, protocol, upto=session.started_at)
    return ReportInput(
        session=session,
        summary=summary,
        events=events,
        telemetry=telemetry,
        approval=is_approved(store, session.protocol_sha256, include_revoked=True),
        course=course,
        verified=report.ok,
        verify_reason=None if report.ok else report.reason,
    )


# -- words -----------------------------------------------------------------------------------------


def outcome_words(session: SessionRecord, summary: SessionSummary) -> str:
    """The session's outcome in plain words, with what was delivered of what was planned."""
    delivered = duration_words(summary.delivered_ms)
    planned = duration_words(summary.planned_ms)
    of = f"{delivered} of {planned} delivered"
    skipped = sum(1 for z in summary.deliveries if z.status == "skipped")
    never = sum(1 for z in summary.deliveries if z.status == "not started")
    extra = []
    if skipped:
        extra.append(f"{skipped} zone{'s' if skipped > 1 else ''} skipped")
    if never:
        extra.append(f"{never} zone{'s' if never > 1 else ''} not started")
    tail = f" ({', '.join(extra)})" if extra else ""
    reason = f" Reason: {session.outcome_reason}." if session.outcome_reason else ""
    match session.outcome:
        case "completed":
            head = f"Completed: {of}{tail}."
            if not skipped and not never:
                head = f"Completed: every planned zone got its full time ({of})."
        case "stopped":
            head = f"Stopped before the end by the practitioner: {of}{tail}."
        case "aborted":
            head = f"Aborted: {of}{tail}."
        case "faulted":
            head = f"Ended in a device fault: {of}{tail}."
        case "interrupted":
            head = (
                f"Interrupted: epm stopped while the session ran (crash, kill or power loss); "
                f"{of}{tail}, the last zone's time estimated from its last telemetry."
            )
        case "refused":
            head = "Refused before anything was delivered: the checks before the session failed."
        case other:
            head = f"{other}: {of}{tail}."
    if summary.estops:
        head += f" Emergency stop used ({len(summary.estops)}×)."
    return head + reason


def _checklist_text(item_id: str) -> str:
    try:
        from protocols.checklist import BUILTIN_CHECKLIST, PROTOCOL_ITEM_PREFIX
    except ImportError:  # pragma: no cover - the protocols package ships with epm
        return item_id
    for item in BUILTIN_CHECKLIST:
        if item.id == item_id:
            return item.text
    if item_id.startswith(PROTOCOL_ITEM_PREFIX):
        number = item_id[len(PROTOCOL_ITEM_PREFIX) :]
        return f"The protocol's own contraindication {number} (its text is in the protocol file)"
    return item_id


def _checklist_order(answers: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The answers in the order the checklist asks them (built-in items first)."""
    try:
        from protocols.checklist import BUILTIN_CHECKLIST

        order = [item.id for item in BUILTIN_CHECKLIST]
    except ImportError:  # pragma: no cover
        order = []
    rank = {item_id: i for i, item_id in enumerate(order)}
    return sorted(answers.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0]))


def _answer(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return "not answered" if value is None else str(value)


def _volts(dv: object) -> str:
    return f"{int(dv) / 10:.1f} V" if isinstance(dv, int) else "?"


def _number(dv: object) -> str:
    return f"{int(dv) / 10:.1f}" if isinstance(dv, int) else "?"


def _changes(zone: ZoneSummary, limit: int = 4) -> str:
    if not zone.amplitude_changes:
        return "none"
    parts = [
        f"{_number(c.get('from_dv'))} to {_volts(c.get('to_dv'))}"
        for c in zone.amplitude_changes[:limit]
    ]
    more = len(zone.amplitude_changes) - limit
    if more > 0:
        parts.append(f"+{more} more")
    return f"{len(zone.amplitude_changes)}: " + ", ".join(parts)


def _status(zone: ZoneSummary) -> str:
    words = {
        "completed": "completed",
        "done": "done",
        "skipped": "skipped",
        "stopped": "stopped",
        "faulted": "device fault",
        "interrupted": "interrupted",
        "refused": "refused",
        "not started": "not started",
    }
    status = words.get(zone.status, zone.status)
    if zone.skip_reason:
        status += f": {zone.skip_reason}"
    if len(zone.attempts) > 1:
        status += f" ({len(zone.attempts)} attempts)"
    return status


def _dose(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _manual_titles(events: Sequence[EventRow]) -> dict[int, str]:
    titles: dict[int, str] = {}
    for e in events:
        if e.kind == "step_start" and e.data.get("kind") == "manual" and e.data.get("title"):
            titles.setdefault(int(e.data.get("index") or 0), str(e.data["title"]))
    return titles


def _alarm_line(alarm: Any) -> str:
    parts = [f"raised {local(alarm.raised_at, _TIME)}"]
    if alarm.acknowledged_at:
        by = f" by {alarm.acknowledged_by}" if alarm.acknowledged_by else ""
        parts.append(f"acknowledged {local(alarm.acknowledged_at, _TIME)}{by}")
    if alarm.resolved_at:
        parts.append(f"resolved {local(alarm.resolved_at, _TIME)}")
    if alarm.cleared_at:
        parts.append(f"cleared {local(alarm.cleared_at, _TIME)}")
    return f"<b>{text(alarm.priority.upper())}</b> {text(alarm.title)} — {', '.join(parts)}"


def course_lines(data: ReportInput) -> list[str]:
    """Where this session stands in the client's course, as of this session."""
    session, course = data.session, data.course
    if course is None:
        return [
            "The course is not recorded with this session (recorded before epm kept it): "
            "`epm records course CLIENT PROTOCOL` shows the client's sessions."
        ]
    lines = []
    if session.simulated:
        lines.append(
            "A session on the simulator is not a treatment and never counts; the course below "
            "is the client's real sessions as of this one."
        )
    elif session.outcome != "completed":
        lines.append(
            f"This session ended {session.outcome} and does not count toward the course "
            "(only completed sessions do)."
        )
    else:
        lines.append(f"This was session {course.done} of {course.total} of the course.")
    if course.phase == "complete":
        lines.append(f"Course of {course.total} complete; the protocol sets no maintenance.")
    elif course.next_due is not None:
        nxt = (
            "maintenance session"
            if course.phase == "maintenance"
            else (f"session {course.done + 1} of {course.total}")
        )
        lines.append(f"Next: {nxt}, due {course.next_due.isoformat()}.")
    if course.not_counted:
        lines.append(
            f"{course.not_counted} session(s) of this course ended early and do not count."
        )
    return lines


# -- the document --------------------------------------------------------------------------------


def build_story(data: ReportInput, settings: ReportSettings, width: float) -> list[Any]:
    """The report's flowables (``width``: the text frame's width in points)."""
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, Spacer

    from controller.records.report_plot import plot_drawing

    st = styles(9.0)
    s, summary = data.session, data.summary
    story: list[Any] = []
    client = s.client_code + (f" ({s.client_name})" if s.client_name else "")
    story.append(Paragraph(f"Session report — session {s.id}", st["h1"]))
    if s.simulated:
        story.append(
            Paragraph(
                "SIMULATOR — not a treatment. This session ran on the simulator "
                f"(device {text(s.device_serial)}); nothing was delivered to anyone.",
                st["mark"],
            )
        )
    story.append(Paragraph(text(outcome_words(s, summary)), st["outcome"]))

    started = parse_iso(s.started_at)
    ended = parse_iso(s.ended_at) if s.ended_at else None
    length = duration_words(int((ended - started).total_seconds() * 1000)) if ended else "—"
    times = f"{local(s.started_at, _TIME)} – {local(s.ended_at, _TIME) or '—'} ({length})"
    rows = [
        ("Client", text(client)),
        ("Date", local(s.started_at, _DATE)),
        ("Time (local)", times),
    ]
    if s.last_known_at:
        rows.append(("Last known", f"{local(s.last_known_at, _TIME)} (estimated)"))
    rows += [
        ("Practitioner", text(s.practitioner + s.correction("practitioner"))),
        ("Clinic", text(settings.clinic_name or "not set (configuration clinic.name)")),
        ("Station", text(settings.station_name or "not set (configuration station.name)")),
    ]
    story.append(Paragraph("Session", st["h2"]))
    story.append(key_values(rows, width, st))

    if data.approval is not None:
        a = data.approval
        approval = (
            f"approved by {text(a.approved_by)} on {local(a.approved_at, '%Y-%m-%d %H:%M')} "
            "(the clinic's recorded approval of these exact file bytes)"
        )
    else:
        approval = (
            "no approval of these exact file bytes is recorded (a draft or changed file runs "
            "only on the simulator)"
        )
    device = f"{text(s.device_model)}, serial {text(s.device_serial)}, firmware " + text(
        s.device_firmware
    )
    if s.simulated:
        device += " — the simulator"
    rows = [
        ("Device", device),
        (
            "Protocol",
            f"{text(s.protocol_id)} version {s.protocol_version} — {text(s.protocol_title)}",
        ),
        ("Protocol SHA-256", f"<font size='7.5'>{s.protocol_sha256}</font>"),
        ("Approval", approval),
        ("Serum", text(s.serum_name + s.correction("serum_name"))),
        ("Serum lot", text((s.serum_lot or "not recorded") + s.correction("serum_lot"))),
    ]
    story.append(Paragraph("Device, protocol and serum", st["h2"]))
    story.append(key_values(rows, width, st))

    story.append(Paragraph("Pre-session checklist", st["h2"]))
    if s.checklist:
        rows = [(_answer(v), text(_checklist_text(k))) for k, v in _checklist_order(s.checklist)]
        story.append(key_values(rows, width, st, key_frac=0.09))
    else:
        story.append(Paragraph("No answers recorded.", st["body"]))

    story.append(Paragraph("Zones", st["h2"]))
    story.append(_zones_table(data, width, st))
    area = summary.electrode_area_cm2
    handpiece = (summary.handpiece or "").replace("_", " ")
    dose = (
        f"Delivered dose {summary.dose_ma_min:.2f} mA·min"
        + (
            f", {summary.dose_ma_min_per_cm2:.2f} mA·min/cm² over the {handpiece}'s "
            f"{area:.1f} cm² electrode"
            if area
            else ""
        )
        + ". The dose is computed from the recorded telemetry over the device's delivery time: "
        "the current the device measured in each 100 ms times the step time the device counted "
        "(ramp-up included; holds, pauses and the final ramp-down left out), so it is a "
        "computed figure, not one the device reported."
    )
    if s.simulated:
        dose += " On the simulator's accelerated clock it is a coarse estimate."
    story.append(Spacer(1, 2 * mm))
    story.append(Paragraph(text(dose), st["small"]))

    heading = Paragraph("Output and current over the session", st["h2"])
    series = plot_series(data.telemetry, zone_of_step(summary))
    if series.empty:
        story += [heading, Paragraph("No telemetry was recorded.", st["body"])]
    else:
        drawing = plot_drawing(series, width, 62 * mm)
        caption = Paragraph(
            "Each column is filled from the lowest to the highest value the device measured in "
            "it, so a single-sample spike is never hidden. Shaded: each zone's delivery (named "
            "above); amber: holds (contact lost). Peaks: output "
            f"{series.output_max_v:.1f} V, current {series.current_max_ma:.2f} mA.",
            st["small"],
        )
        story.append(KeepTogether([heading, drawing, caption]))

    story.append(Paragraph("Alarms and stops", st["h2"]))
    lines = [_alarm_line(a) for a in summary.alarms]
    for e in data.events:
        if e.kind == "estop":
            why = ", ".join(str(e.data[k]) for k in ("source", "reason") if e.data.get(k))
            lines.append(
                f"<b>EMERGENCY STOP</b> at {local(e.wall_time, _TIME)}"
                + (f" ({text(why)})" if why else "")
            )
        elif e.kind == "training_fault":
            by = f" by {e.data['by']}" if e.data.get("by") else ""
            title = e.data.get("title") or e.data.get("fault")
            lines.append(
                f"<b>TRAINING</b> fault injected on the simulator at {local(e.wall_time, _TIME)}"
                f"{text(by)}: {text(title)}"
            )
    if not lines:
        lines = ["None."]
    story += [Paragraph(line, st["body"]) for line in lines]

    story.append(Paragraph("Course", st["h2"]))
    story += [Paragraph(text(line), st["body"]) for line in course_lines(data)]

    story.append(Paragraph("Notes", st["h2"]))
    story.append(Paragraph(text(s.notes) if s.notes else "None.", st["body"]))

    story.append(Paragraph("Aftercare", st["h2"]))
    handouts = [e for e in data.events if e.kind == "handout_given"]
    if s.aftercare:
        story.append(Paragraph("The protocol's aftercare advice:", st["body"]))
        story += [Paragraph(f"•&nbsp;{text(item)}", st["body"]) for item in s.aftercare]
    else:
        story.append(
            Paragraph("The aftercare advice is not recorded with this session.", st["body"])
        )
    if handouts:
        for h in handouts:
            by = f" by {h.data['by']}" if h.data.get("by") else ""
            story.append(
                Paragraph(
                    f"Handout given {local(h.wall_time, '%Y-%m-%d %H:%M')}{text(by)} "
                    f"(SHA-256 {h.data.get('sha256', '')}).",
                    st["small"],
                )
            )
    else:
        story.append(Paragraph("No aftercare handout was printed from this record.", st["small"]))

    story.append(Paragraph("Record", st["h2"]))
    last = data.events[-1] if data.events else None
    if last is not None:
        story.append(
            Paragraph(
                f"This report shows the session's record up to event {last.id} of the hash chain "
                f"(session event {last.seq}, {text(last.kind)}), whose hash is:",
                st["body"],
            )
        )
        story.append(Paragraph(f"<font size='7.5'>{last.hash}</font>", st["body"]))
    if data.verified:
        verdict = (
            "Verify passed when this report was written: every event of the chain and every "
            "sealed row of the records checked (`epm records verify`)."
        )
    else:
        verdict = (
            "VERIFY FAILED when this report was written: "
            f"{data.verify_reason or 'see epm records verify'}. The records were changed outside "
            "epm; keep the data folder as evidence."
        )
    story.append(Paragraph(text(verdict), st["body"] if data.verified else st["mark"]))
    story.append(
        Paragraph(
            "The SHA-256 of this file is chained as the session's report_written event; compare "
            "it with `sha256sum` to show the file is the one written.",
            st["small"],
        )
    )
    return story


def _zones_table(data: ReportInput, width: float, st: Mapping[str, Any]) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    summary = data.summary
    titles = _manual_titles(data.events)
    for planned in data.session.planned_steps:  # steps that never started
        if planned.title:
            titles.setdefault(planned.index, planned.title)
    head = [
        "#",
        "Zone / step",
        "Planned",
        "Delivered",
        "Status",
        "Holds",
        "Intensity changes",
        "Dose mA·min",
        "per cm²",
    ]
    rows: list[list[Any]] = [[Paragraph(h, st["cell_bold"]) for h in head]]
    for z in summary.zones:
        if z.is_delivery:
            name = text(zone_words(z.zone))
            estimated = any(a.delivered_estimated for a in z.attempts)
            delivered = duration_words(z.delivered_ms) + (" (estimated)" if estimated else "")
            holds = f"{z.holds} ({duration_words(z.hold_ms)})" if z.holds else "none"
            cells = [
                str(z.index),
                name,
                duration_words(z.planned_ms),
                delivered,
                text(_status(z)),
                holds,
                _changes(z),
                _dose(z.dose_ma_min),
                _dose(z.dose_ma_min_per_cm2),
            ]
        else:
            name = "manual: " + text(titles.get(z.index, "step"))
            cells = [
                str(z.index),
                name,
                duration_words(z.planned_ms) + " timer",
                "—",
                text(_status(z)),
                "—",
                "—",
                "—",
                "—",
            ]
        rows.append([Paragraph(c, st["cell"]) for c in cells])
    total = [
        "",
        "<b>Delivery in all</b>",
        f"<b>{duration_words(summary.planned_ms)}</b>",
        f"<b>{duration_words(summary.delivered_ms)}</b>",
        "",
        "",
        "",
        f"<b>{_dose(summary.dose_ma_min)}</b>",
        f"<b>{_dose(summary.dose_ma_min_per_cm2)}</b>",
    ]
    rows.append([Paragraph(c, st["cell"]) for c in total])
    fractions = (0.04, 0.15, 0.11, 0.12, 0.17, 0.1, 0.15, 0.09, 0.07)
    table = Table(rows, colWidths=[width * f for f in fractions], repeatRows=1, hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8e8e8")),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#cccccc")),
                ("LINEABOVE", (0, -1), (-1, -1), 0.6, colors.black),
                ("TOPPADDING", (0, 0), (-1, -1), 1.5),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
                ("LEFTPADDING", (0, 0), (-1, -1), 2),
                ("RIGHTPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    return table


def render_session_report(data: ReportInput, settings: ReportSettings) -> tuple[bytes, int]:
    """The report's PDF bytes and page count (nothing written, nothing chained)."""
    from reportlab.lib.units import mm

    from controller.records.documents import page_size

    s = data.session
    margin = 16.0
    width = page_size(settings.paper)[0] - 2 * margin * mm
    furniture = Furniture(
        header_left=settings.clinic_name or "epm",
        header_right=f"Session report · {settings.station_name}".rstrip(" ·"),
        footer_left=f"Session {s.id} · client {s.client_code} · {local(s.started_at, _DATE)}",
        simulated=s.simulated,
    )
    return render(
        build_story(data, settings, width),
        paper=settings.paper,
        furniture=furniture,
        title=f"Session report, session {s.id}",
        subject=f"Client {s.client_code}, {s.protocol_id} version {s.protocol_version}",
        created=s.ended_at or s.started_at,
        margins_mm=margin,
    )


def write_session_report(
    store: RecordStore,
    session_id: int,
    settings: ReportSettings,
    path: str | Path,
    *,
    by: str | None = None,
) -> ReportResult:
    """Write the report of closed session ``session_id`` to the new file ``path`` (mode 0600,
    written whole or not at all, never over an existing file: ``OutputExistsError``), then chain
    its SHA-256 as the session's ``report_written`` event. The chain is verified first and the
    head kept as the anchor when it passed (``store.save_anchor``)."""
    path = Path(path)
    refuse_existing(path)
    store.get_session(session_id)  # an unknown id says so before anything else
    verify, _anchor = store.save_anchor(f"session report {session_id}")
    data = read_report_input(store, session_id, verify)
    pdf, pages = render_session_report(data, settings)
    return publish_document(
        store,
        session_id,
        path,
        pdf,
        pages=pages,
        paper=settings.paper,
        document=DOCUMENT,
        kind="report_written",
        by=by,
    )
