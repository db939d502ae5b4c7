"""Checks on values given to the store; each failure says what is wrong and how to fix it."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from controller.records.errors import InvalidRecordError
from controller.records.models import CourseRecord, PlannedStepRecord

CLIENT_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
CLIENT_NAME_MAX = 120


def text(value: object, what: str, *, required: bool = True, max_len: int = 200) -> str:
    """``value`` stripped; refused when not text, empty (if ``required``) or too long."""
    if not isinstance(value, str):
        raise InvalidRecordError(f"{what} must be text, not {type(value).__name__}")
    clean = value.strip()
    if required and not clean:
        raise InvalidRecordError(f"{what} is empty: give the {what}")
    if len(clean) > max_len:
        raise InvalidRecordError(f"{what} is {len(clean)} characters long; at most {max_len}")
    return clean


def client_code(code: object) -> str:
    """A clinic's client code: 1-32 letters, digits, ``-`` or ``_``."""
    if not isinstance(code, str) or not CLIENT_CODE.match(code.strip()):
        raise InvalidRecordError(
            f"client code {code!r} is not valid: use 1-32 letters, digits, '-' or '_' "
            "(the clinic's own client number, e.g. C-0042)"
        )
    return code.strip()


def local_start(day: dt.date | dt.datetime) -> dt.datetime:
    """A local date's midnight (or a naive datetime) as an aware local datetime."""
    if isinstance(day, dt.datetime):
        return day if day.tzinfo else day.astimezone()
    return dt.datetime.combine(day, dt.time.min).astimezone()


def check_planned_step(step: PlannedStepRecord) -> dict[str, Any]:
    """One step of a session's plan as chained in ``session_started``; refuses nonsense."""
    if not isinstance(step.index, int) or isinstance(step.index, bool) or step.index < 1:
        raise InvalidRecordError(f"planned step number {step.index!r} must be an int ≥ 1")
    kind = text(step.kind, "planned step kind", max_len=20)
    zone = None if step.zone is None else text(step.zone, "planned zone", max_len=40)
    ms = step.planned_ms
    if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
        raise InvalidRecordError(f"planned time {ms!r} of step {step.index} must be an int ≥ 0 ms")
    checked: dict[str, Any] = {"index": step.index, "kind": kind, "zone": zone, "planned_ms": ms}
    if step.title is not None:
        checked["title"] = text(step.title, "planned step title", max_len=200)
    return checked


def read_planned_steps(data: Mapping[str, Any]) -> tuple[PlannedStepRecord, ...]:
    """The plan from a ``session_started`` event's data; () when it is absent (a record made
    before the plan was kept) or not in the recorded shape (``verify`` names such damage)."""
    raw = data.get("planned_steps")
    if not isinstance(raw, list):
        return ()
    steps: list[PlannedStepRecord] = []
    for item in raw:
        if not isinstance(item, dict):
            return ()
        index, kind, zone, ms = (item.get(k) for k in ("index", "kind", "zone", "planned_ms"))
        if not (
            isinstance(index, int)
            and isinstance(kind, str)
            and (zone is None or isinstance(zone, str))
            and isinstance(ms, int)
            and not isinstance(ms, bool)
            and ms >= 0
        ):
            return ()
        title = item.get("title")
        steps.append(
            PlannedStepRecord(index, kind, zone, ms, title if isinstance(title, str) else None)
        )
    return tuple(steps)


def check_aftercare(items: Sequence[str]) -> list[str]:
    """The protocol's aftercare items as chained in ``session_started``. No length limit: the
    protocol file sets none, and a session must never be refused over its advice."""
    if isinstance(items, str) or not all(isinstance(i, str) for i in items):
        raise InvalidRecordError("aftercare must be a list of text items")
    return [item.strip() for item in items if item.strip()]


def check_course(course: CourseRecord) -> dict[str, Any]:
    """The protocol's course as chained in ``session_started``; refuses nonsense."""
    values = (course.sessions, course.interval_days)
    maintenance = course.maintenance_interval_days
    if not all(_positive(v) for v in values) or not (maintenance is None or _positive(maintenance)):
        raise InvalidRecordError(
            f"course {course!r}: sessions, interval_days and maintenance_interval_days (or None) "
            "must be whole numbers ≥ 1"
        )
    return {
        "sessions": course.sessions,
        "interval_days": course.interval_days,
        "maintenance_interval_days": maintenance,
    }


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def read_aftercare(data: Mapping[str, Any]) -> tuple[str, ...]:
    """The aftercare items from a ``session_started`` event's data; () when absent (a record
    made before they were kept) or not in the recorded shape."""
    raw = data.get("aftercare")
    if not isinstance(raw, list) or not all(isinstance(i, str) for i in raw):
        return ()
    return tuple(raw)


def read_course(data: Mapping[str, Any]) -> CourseRecord | None:
    """The course from a ``session_started`` event's data; None when absent or malformed."""
    raw = data.get("course")
    if not isinstance(raw, dict):
        return None
    sessions, interval, maintenance = (
        raw.get(k) for k in ("sessions", "interval_days", "maintenance_interval_days")
    )
    if not (_positive(sessions) and _positive(interval)):
        return None
    if not (maintenance is None or _positive(maintenance)):
        return None
    return CourseRecord(int(sessions), int(interval), maintenance)  # type: ignore[arg-type]
