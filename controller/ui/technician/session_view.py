"""One recorded session in words: fields, checklist answers, steps, and the events timeline.

Why pure functions: the detail screen, its tests and any future printout show the same facts
the same way. Times are the clinic's local time; a simulated session is said to be one first,
in the words ``epm records show`` uses; alarm events carry their IEC 60601-1-8 priority colour
from ``controller.session.alarms`` (fixed data, never the theme's).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from controller.records import EventRow, SessionRecord, StepRecord
from controller.records.models import local
from controller.session.alarms import Priority
from controller.ui.technician.records_model import fmt_ms
from protocols import BUILTIN_CHECKLIST

ALARM_KINDS = ("alarm_raised", "alarm_cleared", "alarm_acknowledged")
SUMMARY_MAX = 160


def sim_marker(session: SessionRecord) -> str:
    return (
        f"*** SIMULATED SESSION (device {session.device_serial}): not a real treatment ***"
        if session.simulated
        else ""
    )


def session_fields(session: SessionRecord) -> list[tuple[str, str]]:
    """(label, value) pairs of everything the session started and ended with; a later
    correction is shown beside the recorded value, never instead of it."""
    client = session.client_code + (f" ({session.client_name})" if session.client_name else "")
    outcome = session.outcome + (f" — {session.outcome_reason}" if session.outcome_reason else "")
    zones = ", ".join(session.planned_zones) or "all"
    last_known = (
        [("Last known", local(session.last_known_at, "%Y-%m-%d %H:%M:%S") + " (estimated)")]
        if session.last_known_at
        else []
    )
    return [
        ("Session", str(session.id)),
        ("Client", client),
        (
            "Protocol",
            f"{session.protocol_id} v{session.protocol_version} — {session.protocol_title}",
        ),
        ("Protocol SHA-256", session.protocol_sha256),
        (
            "Serum",
            f"{session.serum_name} (lot {session.serum_lot or '—'})"
            + session.correction("serum_name")
            + session.correction("serum_lot"),
        ),
        ("Practitioner", session.practitioner + session.correction("practitioner")),
        (
            "Device",
            f"{session.device_model} {session.device_serial}, firmware {session.device_firmware}",
        ),
        ("Port", session.device_port or "—"),
        ("Started", local(session.started_at, "%Y-%m-%d %H:%M:%S")),
        ("Ended", local(session.ended_at, "%Y-%m-%d %H:%M:%S") or "still running"),
        *last_known,
        ("Outcome", outcome),
        ("Planned zones", zones),
    ]


def checklist_rows(checklist: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(question, answer) of each recorded checklist answer, built-in questions by their text."""
    texts = {item.id: item.text for item in BUILTIN_CHECKLIST}
    rows = []
    for item_id, answer in checklist.items():
        if isinstance(answer, bool):
            shown = "yes" if answer else "no"
        else:
            shown = json.dumps(answer, ensure_ascii=False)
        rows.append((texts.get(item_id, item_id), shown))
    return rows


@dataclass(frozen=True)
class StepLine:
    index: str
    kind: str
    zone: str
    planned: str
    delivered: str
    holds: str
    result: str


def step_lines(steps: list[StepRecord]) -> list[StepLine]:
    """One line per attempt: planned versus delivered time, holds, skip or outcome."""
    lines = []
    for step in steps:
        index = str(step.index) + (f".{step.attempt}" if step.attempt > 1 else "")
        holds = f"{step.holds} ({fmt_ms(step.hold_ms)})" if step.holds else "—"
        if step.skipped:
            result = f"skipped: {step.skip_reason or 'no reason given'}"
        else:
            result = step.outcome or ("running" if step.ended_at is None else "—")
        if step.amplitude_changes:
            result += f"; {len(step.amplitude_changes)} intensity change(s)"
        lines.append(
            StepLine(
                index,
                step.kind,
                step.zone or "—",
                fmt_ms(step.planned_ms) if step.planned_ms is not None else "—",
                fmt_ms(step.delivered_ms) + (" (estimated)" if step.delivered_estimated else ""),
                holds,
                result,
            )
        )
    return lines


def _compact(data: Mapping[str, Any]) -> str:
    parts = []
    for key, value in data.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={shown}")
    text = ", ".join(parts)
    return text if len(text) <= SUMMARY_MAX else text[: SUMMARY_MAX - 1] + "…"


def event_summary(event: EventRow) -> str:
    """The event's data in a few words."""
    data = event.data
    kind = event.kind
    if kind == "state" and "new" in data:
        return f"{data.get('old', '?')} → {data['new']}"
    if kind in ALARM_KINDS:
        head = f"{data.get('priority', '')} {data.get('alarm', '')}".strip()
        message = str(data.get("message", ""))
        by = f" by {data['by']}" if data.get("by") else ""
        return f"{head}{by}: {message}" if message else head + by
    if kind == "step_start":
        what = " ".join(str(v) for v in (data.get("kind"), data.get("zone")) if v)
        return f"step {data.get('index')}" + (f" ({what})" if what else "")
    if kind == "step_end":
        return (
            f"step {data.get('index')}: {data.get('outcome')}, delivered "
            f"{fmt_ms(data.get('delivered_ms'))}"
        )
    if kind == "step_skipped":
        return f"step {data.get('index')}: {data.get('reason', '')}"
    if kind == "session_end":
        reason = f" — {data['reason']}" if data.get("reason") else ""
        return f"{data.get('outcome')}{reason}"
    if kind == "note":
        return str(data.get("notes", ""))
    if kind == "warning":
        return str(data.get("message", ""))
    return _compact(data)


def event_style(event: EventRow) -> str:
    """Alarm events in their priority's colour; refusals and faults bold."""
    if event.kind == "alarm_raised":
        try:
            return f"bold {Priority(str(event.data.get('priority', ''))).colour}"
        except ValueError:
            return "bold"
    if event.kind in ("link_lost", "device_restarted", "outcome_unknown"):
        return "bold"
    return ""


def event_cells(event: EventRow) -> tuple[str, Text, Text]:
    """(local time, kind, summary) for the events table."""
    style = event_style(event)
    return (
        local(event.wall_time, "%H:%M:%S"),
        Text(event.kind, style=style),
        Text(event_summary(event), style=style),
    )
