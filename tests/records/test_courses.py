"""Course progress: session N of M, the next due date and the maintenance phase."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from controller.records import RecordStore
from controller.records.courses import course_progress
from tests.records.conftest import FakeClock, begin, local_noon, protocol_text

D0 = dt.date(2026, 3, 2)


def protocol(sessions: int = 6, interval: int = 14, maintenance: int | None = 90) -> Any:
    course = SimpleNamespace(
        sessions=sessions, interval_days=interval, maintenance_interval_days=maintenance
    )
    return SimpleNamespace(id="aga-early-scalp", course=course)


def session_on(
    store: RecordStore, clock: FakeClock, day: dt.date, outcome: str = "completed", **kw: Any
) -> int:
    clock.now = local_noon(day)
    sid = begin(store, **kw)
    clock.advance(minutes=25)
    store.end_session(sid, outcome)
    return sid


def test_not_started(store: RecordStore) -> None:
    p = course_progress(store, "C-0042", protocol(), today=D0)
    assert (p.done, p.total, p.phase, p.last_date) == (0, 6, "not started", None)
    assert p.next_due == D0
    assert "session 1 of 6" in p.summary


def test_n_of_m_and_next_due_during_the_course(store: RecordStore, clock: FakeClock) -> None:
    session_on(store, clock, D0)
    session_on(store, clock, D0 + dt.timedelta(days=14))
    p = course_progress(store, "C-0042", protocol(), today=D0 + dt.timedelta(days=20))
    assert (p.done, p.total, p.phase) == (2, 6, "course")
    assert p.last_date == D0 + dt.timedelta(days=14)
    assert p.next_due == D0 + dt.timedelta(days=28)
    assert p.overdue_days == 0
    assert "Session 2 of 6 done" in p.summary and "session 3 of 6 next due 2026-03-30" in p.summary
    assert "(in 8 days)" in p.summary


def test_overdue_is_reported(store: RecordStore, clock: FakeClock) -> None:
    session_on(store, clock, D0)
    p = course_progress(store, "C-0042", protocol(), today=D0 + dt.timedelta(days=17))
    assert p.overdue_days == 3 and "overdue by 3 days" in p.summary


def test_only_completed_real_sessions_count(store: RecordStore, clock: FakeClock) -> None:
    session_on(store, clock, D0)
    session_on(store, clock, D0 + dt.timedelta(days=14), outcome="stopped")
    session_on(store, clock, D0 + dt.timedelta(days=15), outcome="faulted")
    session_on(store, clock, D0 + dt.timedelta(days=16), device_serial="SIM-0001")
    session_on(store, clock, D0 + dt.timedelta(days=17), client_code="C-OTHER")
    session_on(store, clock, D0 + dt.timedelta(days=18), protocol_id="other-protocol")
    p = course_progress(store, "C-0042", protocol(), today=D0 + dt.timedelta(days=14))
    assert (p.done, p.last_date, p.not_counted) == (1, D0, 2)
    assert p.next_due == D0 + dt.timedelta(days=14)
    assert "2 other session(s) ended early and do not count" in p.summary
    assert "1 simulated session(s) on the simulator do not count" in p.summary
    assert "(today)" in p.summary


def test_simulated_sessions_alone_say_why_the_course_has_not_started(
    store: RecordStore, clock: FakeClock
) -> None:
    session_on(store, clock, D0, device_serial="SIM-0001")
    p = course_progress(store, "C-0042", protocol(), today=D0)
    assert (p.done, p.phase) == (0, "not started")
    assert "1 simulated session(s) on the simulator do not count" in p.summary


def test_every_version_of_the_protocol_counts(store: RecordStore, clock: FakeClock) -> None:
    session_on(store, clock, D0, protocol_version=3)
    session_on(store, clock, D0 + dt.timedelta(days=14), protocol_version=4)
    assert course_progress(store, "C-0042", protocol(), today=D0).done == 2


def test_maintenance_after_the_course(store: RecordStore, clock: FakeClock) -> None:
    for i in range(3):
        session_on(store, clock, D0 + dt.timedelta(days=14 * i))
    last = D0 + dt.timedelta(days=28)
    p = course_progress(store, "C-0042", protocol(sessions=3), today=last)
    assert (p.done, p.total, p.phase) == (3, 3, "maintenance")
    assert p.next_due == last + dt.timedelta(days=90)
    assert "Course of 3 complete" in p.summary and "maintenance every 90 days" in p.summary
    session_on(store, clock, last + dt.timedelta(days=91))
    p = course_progress(store, "C-0042", protocol(sessions=3), today=last)
    assert (p.done, p.phase) == (4, "maintenance")
    assert p.next_due == last + dt.timedelta(days=181)


def test_a_course_without_maintenance_ends_complete(store: RecordStore, clock: FakeClock) -> None:
    session_on(store, clock, D0)
    p = course_progress(store, "C-0042", protocol(sessions=1, maintenance=None), today=D0)
    assert (p.phase, p.next_due) == ("complete", None)
    assert "no maintenance interval" in p.summary
    assert p.to_dict()["last_date"] == D0.isoformat()


def test_works_with_the_protocols_package_model(
    store: RecordStore, clock: FakeClock, write_protocol: Any
) -> None:
    import protocols

    path: Path = write_protocol("p.yaml", protocol_text())
    loaded = protocols.load_protocol(path)
    assert loaded.ok and loaded.protocol is not None
    session_on(store, clock, D0, protocol_id=loaded.protocol.id)
    p = course_progress(store, "C-0042", loaded.protocol, today=D0)
    assert (p.done, p.total, p.next_due) == (1, 6, D0 + dt.timedelta(days=14))
