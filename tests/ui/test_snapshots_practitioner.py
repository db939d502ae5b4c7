"""Snapshots of the practitioner's screens at 80×24 and 120×40: home; the run screen
delivering, on HOLD (contact lost), with the link lost (readings not current), after a device
fault (the alarm in the banner), with a reason asked under the readings; and a new
high-priority alarm (its modal over the run screen).

Deterministic by construction: a fixed device (fixed serial and link counters), a record
store on a frozen clock with local time = UTC, a scripted engine with a fixed snapshot, the
alarm flash off, no header clock, and sparklines filled from fixed telemetry. Regenerate with
``pytest tests/ui/test_snapshots_practitioner.py --snapshot-update`` and look at the SVGs.
The docs' screenshots (docs/screenshots/) are copies of these.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from textual.widgets import Input

from controller.records import RecordStore
from controller.session.alarms import AlarmCode
from controller.session.model import LinkView, Phase
from controller.ui.practitioner.alarm_modal import AlarmModal
from controller.ui.practitioner.live_readings import LiveReadings
from controller.ui.practitioner.prompt_panel import PromptPanel
from controller.ui.practitioner.run import RunScreen
from controller.ui.practitioner.run_text import readings
from tests.ui.conftest import (
    FakeEngine,
    alarm,
    live_view,
    make_app,
    press,
    snapshot,
    telemetry_batch,
    wait_for,
)

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def fixed_store(utc_tz: None, store: RecordStore) -> Iterator[RecordStore]:
    """A store with one completed and one stopped session today (frozen clock, UTC)."""
    for code, outcome in (("C-0007", "completed"), ("C-0042", "stopped")):
        store.get_or_create_client(code)
        sid = store.begin_session(
            client_code=code,
            protocol_id="aga-early-scalp",
            protocol_version=1,
            protocol_sha256="ab" * 32,
            protocol_title="Early AGA",
            serum_name="Biotin",
            serum_lot="LOT-7",
            practitioner="Dana",
            device_model="EPM-1",
            device_serial="SIM-000042",
            device_firmware="1.0.0",
            device_boot_id=1,
            device_port="sim://fixed",
            checklist={},
            planned_zones=["frontal"],
        )
        reason = "" if outcome == "completed" else "stopped by the practitioner"
        store.end_session(sid, outcome, reason)
    yield store


def fill_sparklines(screen: RunScreen, engine: FakeEngine) -> None:
    """Sixty fixed batches: output ramping up to the setpoint, current following."""
    live = screen.query_one(LiveReadings)
    now = readings(engine.snapshot(), None, None)
    for n in range(60):
        amplitude = min(420, 100 + n * 8)
        live.show(now, telemetry_batch(5, amplitude, n * 5))


def run_before(engine: FakeEngine, alarm_modal: bool = False, then: Any = None) -> Any:
    async def before(pilot: Any) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: app.connection == "up")
        app.attach_engine(engine, None)
        engine.device = app.device
        screen = RunScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.snapshot is not None)
        # The run screen's own banner first: the app mounts it just after the screen is
        # shown, and a modal pushed meanwhile would be pictured over a screen one row short.
        await wait_for(pilot, lambda: any(b.is_mounted for b in screen.query("SimBanner")))
        fill_sparklines(screen, engine)
        if alarm_modal:
            await wait_for(pilot, lambda: isinstance(app.screen, AlarmModal))
        await wait_for(pilot, lambda: any(b.is_mounted for b in app.screen.query("SimBanner")))
        if then is not None:
            await then(pilot, screen)

    return before


async def close_alarm_modal(pilot: Any, screen: RunScreen) -> None:
    """Esc: the modal closes without acknowledging; the banner keeps the alarm."""
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, AlarmModal))
    await press(pilot, "escape")
    await wait_for(pilot, lambda: pilot.app.screen is screen)


async def ask_reason(pilot: Any, screen: RunScreen) -> None:
    """k on a paused zone, and a reason half typed (the cursor does not blink)."""
    await press(pilot, "k")
    prompt = screen.query_one(PromptPanel)
    await wait_for(pilot, lambda: prompt.is_open)
    reason = prompt.query_one("#prompt-reason", Input)
    reason.cursor_blink = False
    await press(pilot, *"client asked")
    await wait_for(pilot, lambda: reason.value == "client asked")


async def home_ready(pilot: Any) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.connection == "up")
    await wait_for(pilot, lambda: any(b.is_mounted for b in app.screen.query("SimBanner")))
    await wait_for(
        pilot, lambda: "SIM-000042" in str(app.screen.query_one("#device-panel").render())
    )


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_home(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    app = make_app(fixed_store)
    assert snap_compare(app, terminal_size=size, run_before=home_ready)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_delivering(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(fixed_store, engine=engine)
    assert snap_compare(app, terminal_size=size, run_before=run_before(engine))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_hold(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    """Contact lost: HOLD, the zone's time frozen, the medium contact alarm in the banner."""
    engine = FakeEngine(snapshot(Phase.HOLD, alarms=(alarm(AlarmCode.CONTACT_LOST),)))
    app = make_app(fixed_store, engine=engine)
    assert snap_compare(app, terminal_size=size, run_before=run_before(engine))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_link_lost(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    """The link is down: the output received 0.8 s ago is dimmed with its age, never current."""
    engine = FakeEngine(
        snapshot(
            Phase.LINK_LOST,
            live=live_view(age_s=0.8),
            link=LinkView("lost", "sim://fixed", 0, 0, 3, 1.2, 3.4, 500, 7, 0.8),
        )
    )
    app = make_app(fixed_store, engine=engine)
    assert snap_compare(app, terminal_size=size, run_before=run_before(engine))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_alarm(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    """A device fault, its window closed: the red alarm in the banner over the run screen."""
    engine = FakeEngine(
        snapshot(
            Phase.FAULT,
            alarms=(alarm(AlarmCode.DEVICE_FAULT),),
            live=live_view(amplitude_dv=0, current_ua=0, faults=("OVERCURRENT",)),
            message="The device reported an over-current and turned output off. Acknowledge "
            "(a), then clear faults (c) to continue or end the session (e).",
        )
    )
    app = make_app(fixed_store, engine=engine)
    before = run_before(engine, then=close_alarm_modal)
    assert snap_compare(app, terminal_size=size, run_before=before)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_reason_prompt(
    snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]
) -> None:
    """Skipping a paused zone: the reason is asked under the readings, which stay in view."""
    engine = FakeEngine(snapshot(Phase.PAUSED))
    app = make_app(fixed_store, engine=engine)
    assert snap_compare(app, terminal_size=size, run_before=run_before(engine, then=ask_reason))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_high_alarm(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    engine = FakeEngine(
        snapshot(
            Phase.FAULT,
            alarms=(alarm(AlarmCode.DEVICE_FAULT), alarm(AlarmCode.CONTACT_MARGINAL, 2)),
            live=live_view(amplitude_dv=0, current_ua=0, faults=("OVERCURRENT",)),
            message="The device reported an over-current and turned output off. Acknowledge "
            "(a), then clear faults (c) to continue or end the session (e).",
        )
    )
    app = make_app(fixed_store, engine=engine)
    assert snap_compare(app, terminal_size=size, run_before=run_before(engine, alarm_modal=True))


# --- home with a latched stop, new session, end (the practitioner-flow screens) --------------


async def home_latched_ready(pilot: Any) -> None:
    """The last session's emergency stop is still latched: the notice, plainly."""
    await home_ready(pilot)
    notice = pilot.app.screen.query_one("#home-notice")
    await wait_for(pilot, lambda: "emergency stop" in str(notice.render()), what="the notice")
    await wait_for(pilot, lambda: "f" in pilot.app.screen.active_bindings, what="f offered")


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_home_latched_estop(
    snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]
) -> None:
    from controller.wire import Fault
    from tests.ui.conftest import FixedDevice

    device = FixedDevice()
    device.faults = Fault.ESTOP
    app = make_app(fixed_store, device=device)
    assert snap_compare(app, terminal_size=size, run_before=home_latched_ready)


async def wizard_zones_ready(pilot: Any) -> None:
    """The zones page with the midscalp zone turned off (✘) for today."""
    from controller.ui.practitioner.checklist import ToggleList
    from tests.ui.test_no_traps import open_wizard, to_zones_page

    await home_ready(pilot)
    screen = await open_wizard(pilot, pilot.app)
    zones = await to_zones_page(pilot, screen)
    screen.query_one("#serum-lot", Input).cursor_blink = False
    await press(pilot, "down", "space")
    await wait_for(pilot, lambda: len(zones.selected) == 2, what="one zone off")
    assert isinstance(zones, ToggleList)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_new_session_zones(
    snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]
) -> None:
    app = make_app(fixed_store)
    assert snap_compare(app, terminal_size=size, run_before=wizard_zones_ready)


def end_ready(engine: FakeEngine) -> Any:
    async def before(pilot: Any) -> None:
        from textual.widgets import TextArea

        from tests.ui.test_truthful_text import show_end

        await home_ready(pilot)
        end = await show_end(pilot.app, pilot, engine)
        notes = end.query_one("#end-notes", TextArea)
        notes.cursor_blink = False
        await wait_for(pilot, lambda: pilot.app.focused is notes, what="the notes focused")
        await press(pilot, *"Tolerated well.", "ctrl+s")
        await wait_for(pilot, lambda: "saved" in str(end.query_one("#end-notes-status").render()))
        await wait_for(
            pilot, lambda: any(b.is_mounted for b in pilot.app.screen.query("SimBanner"))
        )

    return before


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_end(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    """Ended early after an emergency stop: the plan against what was delivered, one line per
    alarm with its times, the aftercare and the notes just saved."""
    from tests.ui.test_truthful_text import finished_snapshot, recorded_session

    engine = FakeEngine(finished_snapshot(recorded_session(fixed_store)))
    engine.store = fixed_store
    app = make_app(fixed_store, engine=engine)
    assert snap_compare(app, terminal_size=size, run_before=end_ready(engine))
