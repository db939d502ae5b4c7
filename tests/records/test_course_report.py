"""The course report (controller/records/course_report.py): every session of one client's
protocol with dates, delivered time per zone and outcome, and what is left of the course."""

from __future__ import annotations

import datetime as dt
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from controller.records import RecordStore, UnknownClientError
from controller.records.course_report import write_course_report
from controller.records.documents import ReportSettings
from controller.records.errors import InvalidRecordError
from controller.records.export import OutputExistsError
from controller.records.models import local
from protocols import load_protocol
from tests.records.conftest import FakeClock, begin, protocol_text
from tests.records.report_helpers import SETTINGS, page_size_pt, pdf_pages, pdf_text, real_session

LETTER = ReportSettings("Hairline Clinic Leeds", "0113 496 0000", "Room 2", "Letter")


def _course(store: RecordStore, clock: FakeClock, **kwargs: Any) -> list[int]:
    """Completed on 2026-03-02, stopped on 03-16, completed on 03-17, and one on the simulator."""
    store.get_or_create_client("C-0042", "Ann Example")
    ids = [real_session(store, clock, **kwargs)]
    clock.advance(days=14)
    ids.append(real_session(store, clock, outcome="stopped", **kwargs))
    clock.advance(days=1)
    ids.append(real_session(store, clock, **kwargs))
    clock.advance(hours=1)
    sim = begin(store, device_serial="SIM-000001", serum_lot="")
    store.end_session(sim, "stopped", "training")
    return [*ids, sim]


def test_every_session_with_its_zones_and_what_is_left(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    ids = _course(store, clock)
    out = tmp_path / "course.pdf"
    result = write_course_report(
        store, "C-0042", "aga-early-scalp", LETTER, out, today=dt.date(2026, 3, 20)
    )
    assert result.event is None and result.paper == "Letter"
    assert page_size_pt(out) == (612, 792)
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    pages = pdf_pages(out)
    text = " ".join(pages)
    assert "Course report — C-0042 (Ann Example), aga-early-scalp" in text
    for sid in ids:
        started = store.get_session(sid).started_at
        assert f"{local(started, '%Y-%m-%d %H:%M')} {sid} (v3)" in text
    assert (
        "completed 2 min 0 s of 2 min 0 s yes Frontal: 1 min 0 s of 1 min 0 s; Crown: 1 min 0 s"
        in text
    )
    assert "stopped: client had to leave 1 min 20 s of 2 min 0 s no" in text
    assert "Crown: 20 s of 1 min 0 s stopped" in text
    assert "SIMULATOR stopped: training" in text and "no (simulator)" in text
    assert "Completed sessions that count: 2 of 6; sessions left in the course: 4." in text
    assert "Next session (session 3 of 6) due 2026-03-31 (in 11 days)." in text
    assert "1 other session(s) ended early and do not count" in text
    for n, page in enumerate(pages, start=1):
        assert f"page {n} of {len(pages)}" in page
    assert "SIMULATOR — not a treatment" not in text  # real sessions listed: no page mark
    with pytest.raises(OutputExistsError):
        write_course_report(store, "C-0042", "aga-early-scalp", LETTER, out)


def test_an_overdue_course_says_by_how_much(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    _course(store, clock)
    out = tmp_path / "course.pdf"
    write_course_report(
        store, "C-0042", "aga-early-scalp", SETTINGS, out, today=dt.date(2026, 4, 3)
    )
    assert "due 2026-03-31 (overdue by 3 days)." in pdf_text(out)


def test_only_simulated_sessions_mark_every_page(store: RecordStore, tmp_path: Path) -> None:
    store.get_or_create_client("C-0077")
    sid = begin(store, client_code="C-0077", device_serial="SIM-000001", serum_lot="")
    store.end_session(sid, "completed")
    out = tmp_path / "course.pdf"
    write_course_report(store, "C-0077", "aga-early-scalp", SETTINGS, out)
    for page in pdf_pages(out):
        assert "SIMULATOR — not a treatment" in page


def test_the_course_from_a_protocol_file_when_the_record_has_none(
    store: RecordStore, clock: FakeClock, tmp_path: Path, write_protocol: Any
) -> None:
    _course(store, clock, course=None)
    out = tmp_path / "course.pdf"
    write_course_report(store, "C-0042", "aga-early-scalp", SETTINGS, out)
    assert "not recorded with these sessions" in pdf_text(out)
    path = write_protocol("p.yaml", protocol_text(id="aga-early-scalp"))
    assert load_protocol(path).ok
    out2 = tmp_path / "course2.pdf"
    write_course_report(
        store,
        "C-0042",
        "aga-early-scalp",
        SETTINGS,
        out2,
        protocol_file=path,
        today=dt.date(2026, 3, 20),
    )
    assert "sessions left in the course: 4" in pdf_text(out2)
    wrong = write_protocol("w.yaml", protocol_text(id="other-protocol"))
    with pytest.raises(InvalidRecordError, match="give a file of the course's protocol"):
        write_course_report(
            store, "C-0042", "aga-early-scalp", SETTINGS, tmp_path / "c3.pdf", protocol_file=wrong
        )


def test_unknown_client_or_protocol(store: RecordStore, clock: FakeClock, tmp_path: Path) -> None:
    _course(store, clock)
    with pytest.raises(UnknownClientError):
        write_course_report(store, "C-9999", "aga-early-scalp", SETTINGS, tmp_path / "c.pdf")
    with pytest.raises(InvalidRecordError, match="has no session of protocol"):
        write_course_report(store, "C-0042", "no-such", SETTINGS, tmp_path / "c.pdf")
    assert not (tmp_path / "c.pdf").exists()


def test_course_progress_upto_counts_only_the_sessions_started_by_then(
    store: RecordStore, clock: FakeClock
) -> None:
    from types import SimpleNamespace

    from controller.records.courses import course_progress
    from tests.records.report_helpers import COURSE

    ids = _course(store, clock)
    protocol = SimpleNamespace(id="aga-early-scalp", course=COURSE)
    first = store.get_session(ids[0])
    then = course_progress(store, "C-0042", protocol, upto=first.started_at)
    assert (then.done, then.next_due) == (1, dt.date(2026, 3, 16))
    assert then.overdue_days == 0  # "today" is that session's day
    now = course_progress(store, "C-0042", protocol, today=dt.date(2026, 3, 20))
    assert (now.done, now.not_counted, now.next_due) == (2, 1, dt.date(2026, 3, 31))
    assert store.get_session(ids[0]).course == COURSE
