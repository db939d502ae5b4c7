"""What the practitioner's screens say is true and in their words (issue item 3).

Every screen that shows the device's state follows its events (an emergency stop shows at
once); no field names, hex or raw floats, and durations as ``16 min 0 s``; the practitioner's
own emergency stop is called that; a latched stop from the last session is shown plainly on
the home screen and cleared deliberately; quitting with a session open records it as
interrupted; the end screen agrees with the records on planned time, lists one line per alarm
and saves notes only when it says so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.device import DeviceClient
from controller.records import RecordStore
from controller.records.models import PlannedStepRecord
from controller.session.alarms import AlarmCode
from controller.session.engine import SessionEngine
from controller.session.model import Outcome, Phase, SessionPlan, StepStatus
from controller.ui.app import QUIT_REASON, EpmApp
from controller.ui.practitioner.alarm_banner import AlarmBanner
from controller.ui.practitioner.alarm_modal import AlarmModal
from controller.ui.practitioner.device import DeviceScreen, capabilities_text, info_text
from controller.ui.practitioner.end import EndScreen
from controller.ui.practitioner.home import HomeScreen
from controller.ui.practitioner.protocol_summary import summary_text
from controller.ui.shared import formatting as fmt
from controller.ui.technician.records_model import RecordFilter, load_rows
from controller.wire import Fault
from protocols import build_checklist, load_library, load_protocol
from simulator import Simulator, register_url_handler
from tests.ui.conftest import (
    CAPABILITIES,
    LIBRARY,
    STEPS,
    FakeEngine,
    FixedDevice,
    alarm,
    device_info,
    make_app,
    press,
    snapshot,
    wait_for,
)

#: What must never reach a practitioner: a protocol/device field name, hex, a raw float.
FIELD_NAME = re.compile(r"\b[a-z]+(?:_[a-z0-9]+)+_(?:v|dv|us|hz|ma|ua|s|ms|ohm|dc)\b")
HEX = re.compile(r"\b0x[0-9a-fA-F]+\b")
RAW_FLOAT_SECONDS = re.compile(r"\b\d+\.\d{2,} ?s\b")
M_SS = re.compile(r"\b\d+:\d\d\b(?!:)")  # a duration as m:ss in a sentence (not a clock time)


def untruthful(text: str) -> list[str]:
    """Field names, hex and raw floats in ``text`` (empty: it reads well)."""
    return FIELD_NAME.findall(text) + HEX.findall(text) + RAW_FLOAT_SECONDS.findall(text)


def shown(widget: Any) -> str:
    return str(widget.render())


# --- the formatter --------------------------------------------------------------------------


def test_durations_read_in_minutes_and_seconds() -> None:
    assert fmt.duration(960_000) == "16 min 0 s"
    assert fmt.duration(234_136) == "3 min 54 s"  # rounded down: never claims more
    assert fmt.duration(45_999) == "45 s"
    assert fmt.duration(3_723_000) == "1 h 2 min 3 s"
    assert fmt.duration(None) == "not known"
    assert fmt.seconds(300.0) == "5 min 0 s"


def test_messages_written_elsewhere_are_put_in_plain_words() -> None:
    assert fmt.plain_words("60.0 V is this step's maximum (amplitude_max_v)") == (
        "60.0 V is this step's maximum (the step's maximum intensity)"
    )
    assert fmt.plain_words("faults seen 0x0006") == (
        "faults seen: watchdog (the device stopped hearing from this computer) and over-current"
    )
    assert fmt.plain_words("delivered 234.136 s of 960 s") == "delivered 3 min 54 s of 16 min 0 s"
    assert fmt.plain_words("Frontal skipped after 40 of 120 s") == (
        "Frontal skipped after 40 s of 2 min 0 s"
    )
    # Figures that already read well stay as they are.
    assert fmt.plain_words("output off within 0.5 s; 10 s; bursts 500/500 ms") == (
        "output off within 0.5 s; 10 s; bursts 500/500 ms"
    )
    assert fmt.fault_words(["ESTOP", "OVERCURRENT"]) == "emergency stop and over-current"


def test_protocol_summaries_have_no_field_names_hex_or_raw_durations(store: RecordStore) -> None:
    for result in load_library(LIBRARY):
        text = summary_text(result, ["amplitude_max_v 60 V is above the device's 0x0040"]).plain
        assert untruthful(text) == [], result.path.name
        assert not M_SS.search(text), (result.path.name, M_SS.findall(text))
        assert "min" in text and "alternate_" not in text


def test_the_device_screen_speaks_plainly() -> None:
    info = device_info()
    text = info_text(info, "sim://fixed").plain + capabilities_text(CAPABILITIES).plain
    assert untruthful(text) == [] and "0x" not in text
    assert "up to 20 min 0 s" in text and "biphasic" in text and "bi_square" not in text


# --- every screen showing the device's state follows its events -------------------------------


async def test_device_screen_shows_the_state_after_an_emergency_stop(store: RecordStore) -> None:
    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="connected")
        await press(pilot, "d")
        await wait_for(pilot, lambda: bool(app.screen.query("#dev-status")), what="device screen")
        screen = app.screen
        assert isinstance(screen, DeviceScreen)
        status = screen.query_one("#dev-status")
        await wait_for(pilot, lambda: "idle" in shown(status), what="the status read on entry")
        assert "Faults    none" in shown(status)
        await press(pilot, "f12")  # no session: straight to the device
        assert app.device.estops == 1
        await wait_for(
            pilot, lambda: "emergency stop" in shown(status), what="the stop on the screen"
        )
        assert "stopped by a fault" in shown(status) and "Faults    none" not in shown(status)
        assert screen.active_bindings["f"].enabled  # and it can be cleared from here
        await press(pilot, "f")
        await wait_for(pilot, lambda: "Faults    none" in shown(status), what="cleared")
        assert app.device.cleared == 1


# --- the practitioner's own emergency stop -------------------------------------------------


def test_the_practitioners_emergency_stop_is_called_emergency_stop() -> None:
    assert fmt.alarm_title("device_fault", {"faults": ["ESTOP"]}) == "Emergency stop"
    assert fmt.alarm_title("device_fault", {"faults": ["OVERCURRENT"]}) == (
        "Device fault: over-current"
    )
    assert fmt.phase_label(Phase.FAULT, ("ESTOP",)) == "EMERGENCY STOP"
    assert fmt.phase_label(Phase.FAULT, ("OVERCURRENT",)) == "DEVICE FAULT"


async def test_the_alarm_window_names_the_emergency_stop(store: RecordStore) -> None:
    app = make_app(store)
    estop = alarm(AlarmCode.DEVICE_FAULT, detail={"faults": ["ESTOP"], "bits": 1})
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        await app.push_screen(AlarmModal(estop))
        title = app.screen.query_one("#alarm-title")
        assert "Emergency stop" in shown(title) and "Device fault" not in shown(title)


# --- a latched stop from the last session --------------------------------------------------


async def test_a_latched_emergency_stop_is_shown_plainly_and_cleared_before_a_new_session(
    store: RecordStore,
) -> None:
    device = FixedDevice()
    device.faults = Fault.ESTOP  # the last session ended with an emergency stop
    app = make_app(store, device=device)
    notices: list[str] = []
    app.notify = lambda message, **_: notices.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        home = app.screen
        assert isinstance(home, HomeScreen)
        notice = home.query_one("#home-notice")
        await wait_for(pilot, lambda: "emergency stop" in shown(notice), what="the notice")
        assert shown(notice).startswith(
            "The device reports an emergency stop from the last session: clear it before a "
            "new session."
        )
        # Plainly: no alarm window, no alarm banner, nothing flashing.
        assert not isinstance(app.screen, AlarmModal)
        assert not list(app.screen.query(AlarmBanner))
        assert not home.active_bindings["n"].enabled
        await press(pilot, "n")  # refused, and says why
        assert isinstance(app.screen, HomeScreen)
        assert "press f" in notices[-1] and "emergency stop" in notices[-1]
        assert home.active_bindings["f"].enabled
        await press(pilot, "f")  # the deliberate clear
        await wait_for(pilot, lambda: device.cleared == 1, what="faults cleared")
        await wait_for(pilot, lambda: not notice.display, what="the notice gone")
        assert home.active_bindings["n"].enabled and "f" not in home.active_bindings


# --- quitting with a session open ----------------------------------------------------------


@pytest.fixture
def sim_rig(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The real engine on the in-process simulator, accelerated."""
    register_url_handler()
    sim = Simulator(speed=1000, seed=7)
    device = DeviceClient(sim.url(), host_id="ui-test", reconnect_timeout=None)
    store = RecordStore.open(tmp_path / "data")

    def factory(dev: Any, st: RecordStore, plan: SessionPlan) -> Any:
        return SessionEngine(dev, st, plan, manual_speed=1000)

    app = EpmApp(
        store=store,
        device=device,
        library_path=LIBRARY,
        practitioner="Dana P.",
        engine_factory=factory,
        animate_alarms=False,
    )
    yield {"app": app, "sim": sim, "store": store}
    app.close_resources()
    sim.close()
    store.close()


def session_plan() -> SessionPlan:
    result = load_protocol(LIBRARY / "aga-early-scalp.yaml")
    assert result.protocol is not None
    answers = {
        item.id: item.kind.value == "confirmation"
        for item in build_checklist(result.protocol)
        if item.kind.value != "note"
    }
    return SessionPlan(
        load_result=result,
        client_code="C-9",
        practitioner="Dana P.",
        serum_lot="",
        checklist_answers=answers,
    )


async def test_quitting_twice_with_a_session_open_records_it_as_interrupted(
    sim_rig: dict[str, Any],
) -> None:
    app, store = sim_rig["app"], sim_rig["store"]
    notices: list[str] = []
    app.notify = lambda message, **_: notices.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="connected")
        app.store.get_or_create_client("C-9")
        engine = app.start_session(session_plan())
        await wait_for(
            pilot,
            lambda: engine.snapshot().phase is Phase.MANUAL and engine.snapshot().session_id,
            what="the session open, waiting for the manual step",
        )
        session_id = engine.snapshot().session_id
        await press(pilot, "ctrl+q")
        assert app.is_running and "recorded as interrupted" in notices[-1]
        await press(pilot, "ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, what="epm to quit")
    record = store.get_session(session_id)
    assert record.outcome == "interrupted", record.outcome
    assert record.outcome_reason == QUIT_REASON


async def test_quitting_with_a_session_open_asks_the_engine_to_record_it_interrupted(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.PLACE))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        app.attach_engine(engine, None)
        await press(pilot, "ctrl+q", "ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, what="epm to quit")
    assert engine.abandoned == [QUIT_REASON]


# --- the end screen ----------------------------------------------------------------------------


class SteppingClock:
    """Wall time that moves on one second per read (events get distinct times)."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        self.now += dt.timedelta(seconds=1)
        return self.now


@pytest.fixture
def stepping_store(utc_tz: None, tmp_path: Path) -> Iterator[RecordStore]:
    with RecordStore.open(tmp_path / "records", clock=SteppingClock()) as opened:
        yield opened


def recorded_session(store: RecordStore, *, zones_started: int = 3) -> int:
    """A session stopped in its crown zone (the first ``zones_started`` zones began), with an
    emergency stop by the practitioner (its alarm acknowledged), a hold and a warning."""
    store.get_or_create_client("C-0042")
    sid = store.begin_session(
        client_code="C-0042",
        protocol_id="aga-early-scalp",
        protocol_version=1,
        protocol_sha256="ab" * 32,
        protocol_title="Early AGA",
        serum_name="s",
        serum_lot="",
        practitioner="Dana",
        device_model="EPM-1",
        device_serial="SIM-000042",
        device_firmware="1.0.0",
        device_boot_id=1,
        device_port="sim://",
        checklist={},
        planned_zones=["frontal", "midscalp", "crown"],
        planned_steps=[PlannedStepRecord(s.index, s.kind, s.zone, s.planned_ms) for s in STEPS],
    )
    for step in STEPS[1 : 1 + zones_started]:
        store.record_step_start(
            sid, step.index, kind="delivery", zone=step.zone, planned_ms=step.planned_ms
        )
        if step.index == 2:
            store.append_event(sid, "hold_start", {"index": 2, "t_ms": 1000})
            store.record_hold(sid, 2, held_ms=12_500)
        store.record_step_end(sid, step.index, outcome="completed", delivered_ms=step.planned_ms)
    store.append_event(sid, "warning", {"message": "The zone ran 234.136 s (amplitude_max_v)"})
    store.append_event(sid, "estop", {"source": "operator", "reason": "emergency stop requested"})
    estop = {
        "alarm": "device_fault",
        "priority": "high",
        "title": "Device fault",
        "message": "The device reported a fault and turned output off.",
        "occurrence": 1,
        "detail": {"faults": ["ESTOP"], "bits": 1},
        "acknowledged": False,
    }
    store.append_event(sid, "alarm_raised", estop)
    store.append_event(sid, "alarm_updated", {**estop, "message": "again"})
    store.append_event(sid, "alarm_acknowledged", {**estop, "acknowledged": True, "by": "Dana"})
    store.append_event(sid, "alarm_cleared", {**estop, "acknowledged": True})
    stale = {**estop, "alarm": "telemetry_stale", "priority": "medium", "occurrence": 2}
    stale.update(title="Measurements stopped", detail={})
    store.append_event(sid, "alarm_raised", stale)
    store.end_session(sid, "aborted", "client moved")
    return sid


def finished_snapshot(session_id: int, *, zones_started: int = 3) -> Any:
    steps = tuple(
        dataclasses.replace(
            s,
            status=StepStatus.DONE if s.index <= 1 + zones_started else StepStatus.PENDING,
            delivered_ms=s.planned_ms
            if s.kind == "delivery" and s.index <= 1 + zones_started
            else 0,
        )
        for s in STEPS
    )
    delivered = sum(s.delivered_ms for s in steps if s.kind == "delivery")
    return snapshot(
        Phase.FINISHED,
        session_id=session_id,
        outcome=Outcome.ABORTED,
        outcome_reason="client moved",
        steps=steps,
        step_index=None,
        session_delivered_ms=delivered,
    )


async def show_end(app: EpmApp, pilot: Any, engine: FakeEngine) -> EndScreen:
    await wait_for(pilot, lambda: app.connection == "up")
    app.attach_engine(engine, None)
    end = EndScreen(engine.snapshot())
    await app.push_screen(end)
    await wait_for(pilot, lambda: bool(str(end.query_one("#end-outcome").render()).strip()))
    return end


async def test_end_screen_and_records_list_agree_on_planned_time(
    stepping_store: RecordStore,
) -> None:
    sid = recorded_session(stepping_store)
    engine = FakeEngine(finished_snapshot(sid))
    app = make_app(stepping_store, engine=engine)
    async with app.run_test(size=(100, 40)) as pilot:
        end = await show_end(app, pilot, engine)
        outcome = shown(end.query_one("#end-outcome"))
    (row,) = load_rows(stepping_store, RecordFilter("", None, None))
    assert row.planned_ms == 960_000
    assert f"of {fmt.duration(row.planned_ms)} planned" in outcome
    assert "Delivered 16 min 0 s of 16 min 0 s planned" in outcome


async def test_end_screen_and_records_list_agree_when_zones_never_started(
    stepping_store: RecordStore,
) -> None:
    sid = recorded_session(stepping_store, zones_started=1)
    engine = FakeEngine(finished_snapshot(sid, zones_started=1))
    app = make_app(stepping_store, engine=engine)
    async with app.run_test(size=(100, 40)) as pilot:
        end = await show_end(app, pilot, engine)
        outcome = shown(end.query_one("#end-outcome"))
    (row,) = load_rows(stepping_store, RecordFilter("", None, None))
    assert f"of {fmt.duration(row.planned_ms)} planned" in outcome


async def test_end_screen_lists_one_line_per_alarm_with_its_times_in_plain_words(
    stepping_store: RecordStore,
) -> None:
    sid = recorded_session(stepping_store)
    engine = FakeEngine(finished_snapshot(sid))
    app = make_app(stepping_store, engine=engine)
    async with app.run_test(size=(100, 40)) as pilot:
        end = await show_end(app, pilot, engine)
        report = shown(end.query_one("#end-events"))
        text = "\n".join(shown(end.query_one(f"#{name}")) for name in ("end-outcome", "end-events"))
    lines = report.splitlines()
    alarms = [line for line in lines if "alarm:" in line]
    assert len(alarms) == 2, lines  # raised, updated, acknowledged, cleared: one line
    assert re.search(
        r"HIGH alarm: Emergency stop \(F12 pressed\) — raised (\d\d:\d\d:\d\d), "
        r"acknowledged \d\d:\d\d:\d\d by Dana",
        alarms[0],
    ), alarms[0]
    assert "Device fault" not in report
    assert "MEDIUM alarm: Measurements stopped" in alarms[1] and "not acknowledged" in alarms[1]
    assert any("Hold (no skin contact) on the frontal zone" in line for line in lines)
    assert any("12 s" in line for line in lines if "Hold" in line)
    assert untruthful(text) == [], untruthful(text)
    assert "3 min 54 s" in report


async def test_notes_have_the_focus_and_ctrl_s_says_what_was_written(
    stepping_store: RecordStore,
) -> None:
    sid = recorded_session(stepping_store)
    engine = FakeEngine(finished_snapshot(sid))
    engine.store = stepping_store
    app = make_app(stepping_store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        end = await show_end(app, pilot, engine)
        notes = end.query_one("#end-notes")
        status = end.query_one("#end-notes-status")
        await wait_for(pilot, lambda: app.focused is notes, what="the notes focused on arrival")
        await press(pilot, "ctrl+s")  # nothing typed: nothing written, and it says so
        assert "Nothing was written" in shown(status) and "saved" not in shown(status)
        assert engine.notes == []
        await press(pilot, *"Tolerated well.")
        assert notes.text == "Tolerated well."  # the keys went into the notes
        await press(pilot, "ctrl+s")
        assert shown(status) == "Notes saved to the record."
        assert stepping_store.get_session(sid).notes == "Tolerated well."
        await press(pilot, "tab")  # the notes stay the one place that takes the keys
        assert app.focused is notes


async def test_notes_of_a_session_without_a_record_are_not_called_saved(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.REFUSED, session_id=None, outcome=Outcome.REFUSED))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        end = await show_end(app, pilot, engine)
        await wait_for(pilot, lambda: app.focused is end.query_one("#end-notes"))
        await press(pilot, *"note", "ctrl+s")
        status = shown(end.query_one("#end-notes-status"))
        assert "Nothing was written" in status and "Notes saved" not in status
        await press(pilot, "escape")  # leaving is still possible (the notes cannot be kept)
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), what="home")
