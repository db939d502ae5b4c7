"""Where a client stands in a protocol's course: session N of M, when the next one is due.

Rules (a careful clinic's, written down in docs/records.md):

- Only sessions with outcome ``completed`` count toward the course. A stopped, aborted,
  faulted, interrupted or refused session delivered less than the protocol, or nothing; it is
  shown as "not counted" so the practitioner sees it and can decide.
- Simulated sessions (device serial ``SIM-...``) never count: they are not treatments.
- Every version of the protocol id counts: a new version does not restart a client's course.
- The next session is due ``course.interval_days`` after the last completed one while the course
  runs; after ``course.sessions`` completed sessions the client is in maintenance, due every
  ``maintenance_interval_days``. A protocol without a maintenance interval ends in phase
  ``complete`` with no due date.
- Dates are local calendar dates of the session's start.
- With a clinic server, the other treatment rooms' sessions of the client (as last pulled,
  ``remote_sessions``) count by the same rules: a course runs across rooms. A client code the
  clinic flagged (claimed under two names) counts this station's sessions only, and says so,
  until a technician resolves it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from controller.records.models import parse_iso
from controller.records.received import conflicted_codes
from controller.records.store import RecordStore
from controller.records.sync_state import remote_sessions

PHASE_NOT_STARTED = "not started"
PHASE_COURSE = "course"
PHASE_MAINTENANCE = "maintenance"
PHASE_COMPLETE = "complete"


@dataclass(frozen=True)
class CourseProgress:
    """``done`` completed sessions of ``total``; ``next_due`` is ``None`` only in ``complete``."""

    protocol_id: str
    done: int
    total: int
    last_date: dt.date | None
    next_due: dt.date | None
    phase: str
    not_counted: int
    overdue_days: int
    summary: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("last_date", "next_due"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


def _days(n: int) -> str:
    return f"{n} day" if n == 1 else f"{n} days"


def course_progress(
    store: RecordStore,
    client_code: str,
    protocol: Any,
    today: dt.date | None = None,
    *,
    upto: str | None = None,
) -> CourseProgress:
    """The client's progress in ``protocol``'s course.

    ``protocol`` needs ``.id`` and ``.course`` with ``.sessions``, ``.interval_days`` and
    ``.maintenance_interval_days`` (the protocols package's model has them, and so does a
    session's recorded :class:`~controller.records.models.CourseRecord` with an id beside it).
    ``upto`` (a stored time, e.g. a session's ``started_at``) counts only the sessions started
    at or before it: the course as it stood then, with ``today`` that moment's local date
    unless given. A session's report and handout use it, so they never change with later
    sessions.
    """
    course = protocol.course
    total = int(course.sessions)
    interval = int(course.interval_days)
    maintenance = course.maintenance_interval_days
    if today is None:
        today = parse_iso(upto).astimezone().date() if upto else dt.date.today()
    sessions: list[Any] = list(store.list_sessions(client=client_code, protocol_id=protocol.id))
    flagged = conflicted_codes(store).get(client_code.strip())
    elsewhere = 0
    if flagged is None:
        others = remote_sessions(store, client_code, protocol.id)
        elsewhere = len(others)
        sessions += others
    if upto is not None:
        sessions = [s for s in sessions if s.started_at <= upto]
    real = [s for s in sessions if not s.simulated]
    simulated = len(sessions) - len(real)
    completed = [s for s in real if s.outcome == "completed"]
    not_counted = sum(1 for s in real if s.outcome not in ("completed", "running"))
    done = len(completed)
    last_date = (
        max(parse_iso(s.started_at).astimezone().date() for s in completed) if completed else None
    )
    note = f" {not_counted} other session(s) ended early and do not count." if not_counted else ""
    if simulated:
        note += f" {simulated} simulated session(s) on the simulator do not count."
    if elsewhere:
        note += f" Includes {elsewhere} session(s) in other treatment rooms (clinic server)."
    if flagged is not None:
        names = ", ".join(str(n) for n in flagged.get("names", []) or [])
        note += (
            f" Client code {client_code.strip()} is flagged on the clinic server: it was "
            f"created under different names ({names}); other rooms' sessions do not count "
            "here until a technician resolves it (epm server resolve-client)."
        )
    if last_date is None:
        return CourseProgress(
            protocol.id,
            0,
            total,
            None,
            today,
            PHASE_NOT_STARTED,
            not_counted,
            0,
            f"Not started: no completed session of {protocol.id} yet; the next is session 1 of "
            f"{total}." + note,
        )
    if done < total:
        phase, step = PHASE_COURSE, interval
    elif maintenance:
        phase, step = PHASE_MAINTENANCE, int(maintenance)
    else:
        phase, step = PHASE_COMPLETE, 0
    next_due = last_date + dt.timedelta(days=step) if step else None
    overdue = max(0, (today - next_due).days) if next_due else 0
    due_text = ""
    if next_due:
        due_text = f"next due {next_due.isoformat()}"
        if overdue:
            due_text += f" (overdue by {_days(overdue)})"
        elif next_due > today:
            due_text += f" (in {_days((next_due - today).days)})"
        else:
            due_text += " (today)"
    if phase == PHASE_COURSE:
        summary = (
            f"Session {done} of {total} done, last on {last_date.isoformat()}; session "
            f"{done + 1} of {total} {due_text}, {interval}-day interval."
        )
    elif phase == PHASE_MAINTENANCE:
        summary = (
            f"Course of {total} complete ({done} sessions, last on {last_date.isoformat()}); "
            f"maintenance every {_days(step)}, {due_text}."
        )
    else:
        summary = (
            f"Course of {total} complete ({done} sessions, last on {last_date.isoformat()}); the "
            "protocol sets no maintenance interval."
        )
    return CourseProgress(
        protocol.id, done, total, last_date, next_due, phase, not_counted, overdue, summary + note
    )
