"""The session report (controller/records/report.py): every field from the record, the plot that
never hides a spike, the simulator mark, the chained report_written event, the same bytes for
the same record, and never an existing file replaced."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from controller.records import RecordStore, StoreLockedError
from controller.records.approvals import approve
from controller.records.documents import ReportSettings
from controller.records.errors import InvalidRecordError
from controller.records.export import OutputExistsError
from controller.records.handout import write_handout
from controller.records.models import PlannedStepRecord, local
from controller.records.plotdata import plot_series, zone_of_step
from controller.records.report import write_session_report
from controller.records.summary import summarize_store
from controller.session.model import Action, Outcome, Phase
from protocols import load_protocol
from tests.integration.helpers import EngineEnv, engine_env
from tests.records.conftest import FakeClock, begin, drop_triggers, protocol_text
from tests.records.report_helpers import (
    PLAN,
    SETTINGS,
    page_size_pt,
    pdf_pages,
    pdf_text,
    real_session,
)

__all__ = ["engine_env"]
MARK = "SIMULATOR — not a treatment"
CHECKLIST = {"pregnancy": False, "consultation-done": True, "protocol-contraindication-1": False}


def _approved_real_session(
    store: RecordStore, clock: FakeClock, write_protocol: Any, **kwargs: Any
) -> tuple[int, Any]:
    path = write_protocol("aga-test.yaml", protocol_text())
    loaded = load_protocol(path)
    approval, _ = approve(store, loaded, path, "Head technician")
    store.get_or_create_client("C-0042", "Ann Example")
    sid = real_session(
        store, clock, sha=str(loaded.sha256), protocol_id="aga-test", protocol_version=1, **kwargs
    )
    return sid, approval


def test_a_real_sessions_report_shows_every_field_of_its_record(
    store: RecordStore, clock: FakeClock, write_protocol: Any, tmp_path: Path
) -> None:
    sid, approval = _approved_real_session(store, clock, write_protocol, checklist=CHECKLIST)
    store.amend_session(sid, "serum_lot", "LOT-2026-118", by="Head nurse", reason="label typo")
    store.set_notes(sid, "Scalp slightly red after the crown; settled in 10 min.")
    handout = write_handout(store, sid, SETTINGS, tmp_path / "handout.pdf")
    out = tmp_path / "report.pdf"
    result = write_session_report(store, sid, SETTINGS, out, by="Front desk")
    session = store.get_session(sid)
    text = pdf_text(out)
    pages = pdf_pages(out)
    assert result.pages == len(pages) >= 2
    last = [e for e in store.events(sid) if e.kind != "report_written"][-1]
    expected = [
        "Hairline Clinic Leeds",
        "Room 2",
        "Session report — session 1",
        "Completed: every planned zone got its full time (2 min 0 s of 2 min 0 s delivered)",
        "C-0042 (Ann Example)",
        local(session.started_at, "%Y-%m-%d"),
        f"{local(session.started_at, '%H:%M:%S')} – {local(session.ended_at, '%H:%M:%S')}",
        "Dana Practitioner",
        "EPM-1, serial EPM1-000123, firmware 1.4.2",
        "aga-test version 1 — Early androgenetic alopecia, scalp",
        session.protocol_sha256,
        f"approved by Head technician on {local(approval.approved_at, '%Y-%m-%d %H:%M')}",
        "Biotin and panthenol cocktail",
        "LOT-2026-117 [corrected to LOT-2026-118 by Head nurse",
        # the checklist, each answer with its question
        "no Pregnancy?",
        "yes Consultation done and scalp examined?",
        "no The protocol's own contraindication 1",
        # each step of the plan: planned and delivered time, holds, intensity changes, dose
        "1 manual: Apply the serum 5 min 0 s timer — done",
        "2 Frontal 1 min 0 s 1 min 0 s completed 1 (4 s) none 2.00 0.50",
        "3 Crown 1 min 0 s 1 min 0 s completed none 1: 40.0 to 44.0 V 2.00 0.50",
        "Delivery in all 2 min 0 s 2 min 0 s 4.00 1.00",
        "Delivered dose 4.00 mA·min, 1.00 mA·min/cm² over the scalp roller's 4.0 cm² electrode",
        "computed from the recorded telemetry over the device's delivery time",
        "Output and current over the session",
        "Peaks: output 40.0 V, current 2.00 mA",
        "Alarms and stops None.",
        "This was session 1 of 6 of the course.",
        "Next: session 2 of 6, due 2026-03-16.",
        "Scalp slightly red after the crown; settled in 10 min.",
        "Do not wash the hair for 48 hours.",
        "Avoid hair dye for a week.",
        f"Handout given {local(handout.event.wall_time, '%Y-%m-%d %H:%M')} by Dana Practitioner",
        f"up to event {last.id} of the hash chain",
        last.hash,
        "Verify passed when this report was written",
    ]
    for field in expected:
        assert field in text, field
    for n, page in enumerate(pages, start=1):
        assert f"page {n} of {len(pages)}" in page
    assert "SIMULATOR" not in text


def test_the_report_is_chained_written_private_and_verify_covers_it(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock)
    out = tmp_path / "session-1-report.pdf"
    result = write_session_report(store, sid, SETTINGS, out, by="Front desk")
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    event = store.events(sid)[-1]
    assert event == result.event and event.kind == "report_written"
    assert event.data == {
        "document": "session_report",
        "sha256": result.sha256,
        "file": "session-1-report.pdf",
        "pages": result.pages,
        "paper": "A4",
        "by": "Front desk",
    }
    assert store.verify_chain().ok
    # The event is in the chain: editing it is found and named.
    with sqlite3.connect(store.path) as conn:
        drop_triggers(conn)
        conn.execute(
            "UPDATE events SET data = replace(data, ?, ?) WHERE id = ?",
            (result.sha256, "0" * 64, event.id),
        )
    report = store.verify_chain()
    assert not report.ok and report.bad_event_id == event.id


def test_the_same_record_gives_the_same_bytes_and_sha256(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock)
    first = write_session_report(store, sid, SETTINGS, tmp_path / "a.pdf")
    # Neither the first report's own event nor another client's session changes the next one.
    other = begin(store, client_code="C-0099")
    store.end_session(other, "completed")
    second = write_session_report(store, sid, SETTINGS, tmp_path / "b.pdf")
    assert first.sha256 == second.sha256
    assert (tmp_path / "a.pdf").read_bytes() == (tmp_path / "b.pdf").read_bytes()
    kinds = [e.kind for e in store.events(sid)]
    assert kinds.count("report_written") == 2


def test_a4_and_letter(store: RecordStore, clock: FakeClock, tmp_path: Path) -> None:
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock)
    write_session_report(store, sid, SETTINGS, tmp_path / "a4.pdf")
    letter = ReportSettings(SETTINGS.clinic_name, SETTINGS.clinic_contact, "Room 2", "Letter")
    write_session_report(store, sid, letter, tmp_path / "letter.pdf")
    assert page_size_pt(tmp_path / "a4.pdf") == (595, 842)
    assert page_size_pt(tmp_path / "letter.pdf") == (612, 792)
    with pytest.raises(InvalidRecordError, match="A4 or Letter"):
        ReportSettings(paper="A3")


@pytest.mark.parametrize("taken", ["file", "dangling symlink"])
def test_an_existing_file_is_never_replaced(
    store: RecordStore, clock: FakeClock, tmp_path: Path, taken: str
) -> None:
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock)
    out = tmp_path / "report.pdf"
    if taken == "file":
        out.write_bytes(b"the clinic's earlier report")
    else:
        out.symlink_to(tmp_path / "nowhere.pdf")
    events = len(store.events(sid))
    with pytest.raises(OutputExistsError):
        write_session_report(store, sid, SETTINGS, out)
    if taken == "file":
        assert out.read_bytes() == b"the clinic's earlier report"
    else:
        assert out.is_symlink() and not (tmp_path / "nowhere.pdf").exists()
    assert len(store.events(sid)) == events  # nothing chained
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_report_not_chained_is_not_left_on_disk(
    store: RecordStore, clock: FakeClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock)

    def busy(*_: Any) -> Any:
        raise StoreLockedError("the records are busy")

    monkeypatch.setattr(store, "record_document", busy)
    with pytest.raises(StoreLockedError):
        write_session_report(store, sid, SETTINGS, tmp_path / "report.pdf")
    assert list(tmp_path.glob("*.pdf")) == []


def test_a_running_session_gets_no_report(store: RecordStore, tmp_path: Path) -> None:
    sid = begin(store)
    with pytest.raises(InvalidRecordError, match="still running"):
        write_session_report(store, sid, SETTINGS, tmp_path / "report.pdf")
    with pytest.raises(InvalidRecordError, match="still running"):
        store.record_document(sid, "report_written", {"sha256": "a" * 64})
    assert not (tmp_path / "report.pdf").exists()


def test_the_plot_keeps_a_one_sample_current_spike_written_through_the_store(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    # 100 Hz telemetry, 2.0 mA, one sample of 9.0 mA 10 s into the first zone.
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock, spike_at=20_000)
    rows = store.telemetry_rows(sid)
    summary = summarize_store(store, sid)
    series = plot_series(rows, zone_of_step(summary))
    assert series.current_max_ma == 9.0
    at = 20_000 - rows[0]["t_first_ms"]
    hit = [c for c in series.columns if c and c.t0_ms <= at < c.t1_ms]
    assert hit and hit[0].current_max_ma == 9.0 and hit[0].current_min_ma == 2.0
    assert sum(1 for c in series.columns if c and c.current_max_ma == 9.0) <= 2
    # Zones and the hold are marked where they happened.
    assert [z.label for z in series.zones] == ["frontal", "crown"]
    (hold,) = series.holds
    assert 3_500 <= hold.t1_ms - hold.t0_ms <= 4_500
    assert series.zones[0].t0_ms <= hold.t0_ms < hold.t1_ms <= series.zones[0].t1_ms
    out = tmp_path / "report.pdf"
    write_session_report(store, sid, SETTINGS, out)
    assert "current 9.00 mA" in pdf_text(out)


def test_the_plot_band_reaches_a_spike_among_many_rows_per_column() -> None:
    # 30 minutes of rows at one per 100 ms: about 37 rows share each of 480 columns.
    rows = [
        {
            "boot_id": 1,
            "t_first_ms": t,
            "t_last_ms": t + 99,
            "state": 3,
            "states_seen": 8,
            "step_id": 1,
            "amplitude_min_dv": 400,
            "amplitude_max_dv": 400,
            "current_min_ua": 1900,
            "current_max_ua": 25_000 if t == 1_234_500 else 2100,
        }
        for t in range(0, 1_800_000, 100)
    ]
    series = plot_series(rows, {1: "frontal"})
    assert len(series.columns) == 480 and all(series.columns)
    peaks = [c for c in series.columns if c and c.current_max_ma == 25.0]
    assert len(peaks) == 1 and peaks[0].t0_ms <= 1_234_500 < peaks[0].t1_ms
    assert all(c.current_min_ma == 1.9 and c.output_max_v == 40.0 for c in series.columns if c)


def test_a_device_restart_and_a_gap_in_telemetry_are_not_bridged() -> None:
    base = {"state": 3, "states_seen": 8, "step_id": 1, "current_max_ua": 2000}
    rows = [{**base, "boot_id": 1, "t_first_ms": t, "t_last_ms": t} for t in range(0, 1000, 100)]
    rows += [{**base, "boot_id": 1, "t_first_ms": t, "t_last_ms": t} for t in (5000, 5100)]
    rows += [{**base, "boot_id": 2, "t_first_ms": 50, "t_last_ms": 50}]  # restarted: clock anew
    series = plot_series(rows, {}, columns=60)
    assert series.restarts == (5101.0,)
    gap = [c for c in series.columns if c is None]
    assert gap, "the 4 s without telemetry stays empty"


def test_a_simulated_completed_session_carries_the_mark_on_every_page(
    engine_env: EngineEnv, tmp_path: Path
) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, manual_speed=1000)
    assert s.watch.finished().outcome is Outcome.COMPLETED
    out = tmp_path / "report.pdf"
    write_session_report(s.store, s.engine.session_id, SETTINGS, out)
    pages = pdf_pages(out)
    assert len(pages) >= 2
    for page in pages:
        assert MARK in page
    text = " ".join(pages)
    assert "Completed: every planned zone got its full time (4 min 0 s of 4 min 0 s" in text
    assert "A session on the simulator is not a treatment and never counts" in text
    assert "no approval of these exact file bytes is recorded" in text
    assert "Do not wash the hair for 48 hours." in text  # recorded at the start by the engine
    assert "coarse estimate" in text


def test_a_skipped_zone_and_its_reason_are_reported(engine_env: EngineEnv, tmp_path: Path) -> None:
    s = engine_env.session("two-zones.yaml", speed=50, manual_speed=1000)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 3_000)
    s.engine.request(Action.SKIP, "client felt a sting")
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.current_step.zone == "crown")
    s.engine.request(Action.END, "client had to leave")
    assert s.watch.finished().outcome is Outcome.STOPPED
    out = tmp_path / "report.pdf"
    write_session_report(s.store, s.engine.session_id, SETTINGS, out)
    text = pdf_text(out)
    assert "Stopped before the end by the practitioner" in text
    assert "(1 zone skipped)" in text and "Reason: client had to leave." in text
    assert "skipped: client felt a sting" in text
    assert "This session ended stopped" not in text  # simulated: never counts, says so instead
    assert MARK in text


def test_a_faulted_session_reports_its_alarms_one_line_each(
    engine_env: EngineEnv, tmp_path: Path
) -> None:
    s = engine_env.session("one-zone.yaml", speed=50)
    s.watch.delivering()
    s.sim.inject("handpiece_removed")
    s.watch.phase(Phase.FAULT)
    s.engine.request(Action.END, "handpiece cable broke")
    assert s.watch.finished().outcome is Outcome.FAULTED
    sid = s.engine.session_id
    out = tmp_path / "report.pdf"
    write_session_report(s.store, sid, SETTINGS, out)
    text = pdf_text(out)
    assert "Ended in a device fault" in text and "handpiece cable broke" in text
    alarms = summarize_store(s.store, sid).alarms
    assert alarms
    for alarm in alarms:
        line = (
            f"{alarm.priority.upper()} {alarm.title} — raised {local(alarm.raised_at, '%H:%M:%S')}"
        )
        assert line in text, line
    assert "device fault" in text


def test_a_later_session_of_the_course_changes_nothing_in_an_earlier_report(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    store.get_or_create_client("C-0042")
    first = real_session(store, clock)
    before = write_session_report(store, first, SETTINGS, tmp_path / "1a.pdf")
    clock.advance(days=14)
    second = real_session(store, clock)
    after = write_session_report(store, first, SETTINGS, tmp_path / "1b.pdf")
    assert before.sha256 == after.sha256
    write_session_report(store, second, SETTINGS, tmp_path / "2.pdf")
    text = pdf_text(tmp_path / "2.pdf")
    assert "This was session 2 of 6 of the course." in text
    assert "Next: session 3 of 6, due 2026-03-30." in text


def test_only_document_events_with_a_sha256_are_recorded(
    store: RecordStore, clock: FakeClock
) -> None:
    store.get_or_create_client("C-0042")
    sid = real_session(store, clock)
    with pytest.raises(InvalidRecordError, match="not a document event"):
        store.record_document(sid, "note", {"sha256": "a" * 64})
    with pytest.raises(InvalidRecordError, match="64 hex digits"):
        store.record_document(sid, "report_written", {"sha256": "not a hash"})
    reader = RecordStore.open(store.data_dir, exclusive=False)
    try:  # like a note or an amendment, a document needs no exclusive store
        event = reader.record_document(sid, "report_written", {"sha256": "a" * 64})
    finally:
        reader.close()
    assert event.kind == "report_written" and store.verify_chain().ok


def test_a_manual_step_that_never_started_is_named_from_the_plan(
    store: RecordStore, clock: FakeClock, tmp_path: Path
) -> None:
    """A session stopped before its last, manual step: the report names that step by its title
    (kept in the chained plan), not as a bare "step"."""
    plan = (
        *PLAN,
        PlannedStepRecord(4, "manual", None, 120_000, "Soothing mask, then wipe off"),
    )
    sid = real_session(store, clock, outcome="stopped", planned_steps=plan)
    out = tmp_path / "report.pdf"
    write_session_report(store, sid, SETTINGS, out)
    text = " ".join(pdf_text(out).split())
    assert "Soothing mask, then wipe off" in text
    assert "not started" in text
