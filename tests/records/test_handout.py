"""The client's aftercare handout (controller/records/handout.py): A5, plain words, the protocol's
aftercare from the record, the next session's date, the clinic's contact line, no clinical
figures, chained as handout_given; the simulator mark; old records need the protocol file."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controller.records import RecordStore
from controller.records.errors import InvalidRecordError
from controller.records.export import OutputExistsError
from controller.records.handout import write_handout
from controller.records.report import write_session_report
from controller.session.model import Outcome
from protocols import load_protocol
from tests.integration.helpers import EngineEnv, engine_env
from tests.records.conftest import FakeClock, begin, drop_triggers, protocol_text
from tests.records.report_helpers import SETTINGS, page_size_pt, pdf_pages, pdf_text, real_session

__all__ = ["engine_env"]
#: What a handout must never show: a clinical figure (volts, milliamps, a dose).
CLINICAL = re.compile(r"\d\s*(V|mA|mA·min)\b|dose|volt|current", re.IGNORECASE)


def test_a_handout_is_a5_plain_and_chained(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    store.get_or_create_client("C-0042", "Ann Example")
    sid = real_session(store, clock)
    out = tmp_path / "handout.pdf"
    result = write_handout(store, sid, SETTINGS, out)
    assert page_size_pt(out) == (420, 595)  # A5, whatever the report paper is
    (page,) = pdf_pages(out)
    for words in (
        "Your aftercare",
        "For Ann Example, after your treatment on Monday 2 March 2026.",
        "Do not wash the hair for 48 hours.",
        "Avoid hair dye for a week.",
        "Your next session (session 2 of 6) is due on Monday 16 March 2026.",
        "contact Hairline Clinic Leeds: 0113 496 0000 hello@hairline.example",
        "page 1 of 1",
    ):
        assert words in page, words
    assert not CLINICAL.search(page), CLINICAL.search(page)
    assert "SIMULATOR" not in page
    event = store.events(sid)[-1]
    assert event == result.event and event.kind == "handout_given"
    assert event.data["document"] == "aftercare_handout"
    assert event.data["sha256"] == result.sha256 and event.data["file"] == "handout.pdf"
    assert event.data["by"] == "Dana Practitioner" and event.data["at"] == event.wall_time
    assert event.data["paper"] == "A5" and event.data["pages"] == 1
    assert store.verify_chain().ok
    with sqlite3.connect(store.path) as conn:  # the chain covers it: an edit is found
        drop_triggers(conn)
        conn.execute(
            "UPDATE events SET data = replace(data, 'Dana Practitioner', 'Someone') WHERE id = ?",
            (event.id,),
        )
    report = store.verify_chain()
    assert not report.ok and report.bad_event_id == event.id


def test_the_handout_shows_in_the_report_and_gives_the_same_bytes_again(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock)
    first = write_handout(store, sid, SETTINGS, tmp_path / "a.pdf", by="Dana P.")
    second = write_handout(store, sid, SETTINGS, tmp_path / "b.pdf")
    assert first.sha256 == second.sha256
    with pytest.raises(OutputExistsError):
        write_handout(store, sid, SETTINGS, tmp_path / "a.pdf")
    write_session_report(store, sid, SETTINGS, tmp_path / "report.pdf")
    text = pdf_text(tmp_path / "report.pdf")
    assert "by Dana P. (SHA-256 " + first.sha256 in text


def test_a_simulated_sessions_handout_says_so(engine_env: EngineEnv, tmp_path: Path) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, manual_speed=1000)
    assert s.watch.finished().outcome is Outcome.COMPLETED
    out = tmp_path / "handout.pdf"
    write_handout(s.store, s.engine.session_id, SETTINGS, out)
    (page,) = pdf_pages(out)
    assert "SIMULATOR — not a treatment" in page
    assert "Do not wash the hair for 48 hours." in page  # the engine recorded the aftercare
    assert "training session on the simulator, not a treatment" in page
    assert not CLINICAL.search(page)
    assert s.store.verify_chain().ok


def test_a_record_without_its_aftercare_needs_the_file_it_ran(
    store: RecordStore, clock: FakeClock, tmp_path: Path, write_protocol: Any
) -> None:
    path = write_protocol("aga-test.yaml", protocol_text())
    loaded = load_protocol(path)
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock, sha=str(loaded.sha256), aftercare=(), course=None)
    assert store.get_session(sid).aftercare == () and store.get_session(sid).course is None
    with pytest.raises(InvalidRecordError, match="does not hold the aftercare advice"):
        write_handout(store, sid, SETTINGS, tmp_path / "h.pdf")
    other = write_protocol("other.yaml", protocol_text(version=2))
    with pytest.raises(InvalidRecordError, match="is not the file session"):
        write_handout(store, sid, SETTINGS, tmp_path / "h.pdf", protocol_file=other)
    assert not (tmp_path / "h.pdf").exists()
    write_handout(store, sid, SETTINGS, tmp_path / "h.pdf", protocol_file=path)
    page = pdf_text(tmp_path / "h.pdf")
    assert "Do not wash the hair for 48 hours." in page  # the file's aftercare
    assert "is due on Monday 16 March 2026" in page  # and its course (14-day interval)


def test_running_and_refused_sessions_get_no_handout(store: RecordStore, tmp_path: Path) -> None:
    sid = begin(store)
    with pytest.raises(InvalidRecordError, match="still running"):
        write_handout(store, sid, SETTINGS, tmp_path / "h.pdf")
    store.end_session(sid, "refused", "preflight refused")
    with pytest.raises(InvalidRecordError, match="refused before anything was delivered"):
        write_handout(store, sid, SETTINGS, tmp_path / "h.pdf")
    assert not (tmp_path / "h.pdf").exists()


def test_a_stopped_session_says_it_ended_early(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock, outcome="stopped")
    write_handout(store, sid, SETTINGS, tmp_path / "h.pdf")
    page = pdf_text(tmp_path / "h.pdf")
    assert "Today's session ended early" in page
    # No completed session yet: the first is still to come, as soon as convenient.
    assert "book your next session with the clinic as soon as you can" in page
