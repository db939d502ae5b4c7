"""Safety flows through the UI on the real engine and the in-process simulator: the emergency
stop reaches the device from a question's Input with it focused; contact loss shows HOLD (zone
time frozen) and then the contact alarm; a lost link shows the alarm, and after reconnection
nothing resumes by itself — the practitioner is offered to continue.

The session is started the way the new-session screen starts it (``app.start_session`` with a
plan, then the run screen); the wizard itself is driven in ``test_flow_session``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from controller.device import DeviceClient
from controller.records import RecordStore
from controller.session.alarms import AlarmCode
from controller.session.engine import SessionEngine
from controller.session.model import Action, Phase, SessionPlan
from controller.ui.app import EpmApp
from controller.ui.practitioner.alarm_banner import AlarmBanner
from controller.ui.practitioner.alarm_modal import AlarmModal
from controller.ui.practitioner.prompt_panel import PromptPanel
from controller.ui.practitioner.run import RunScreen
from controller.ui.practitioner.zone_progress import ZoneProgress
from controller.wire import Fault, State
from protocols import build_checklist, load_protocol
from simulator import Simulator, register_url_handler
from tests.ui.conftest import LIBRARY, press, wait_for

#: Fast enough that zones never end during a test (300 s zone / 20 = 15 s).
SPEED = 20


class JumpClock:
    """The engine's host clock: wall time plus a jump the test makes (contact-loss timer)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[dict[str, Any]]:
    register_url_handler()
    sim = Simulator(speed=SPEED, seed=7)
    device = DeviceClient(sim.url(), host_id="ui-test", reconnect_timeout=None)
    store = RecordStore.open(tmp_path / "data")
    clock = JumpClock()

    def factory(dev: Any, st: RecordStore, plan: SessionPlan) -> Any:
        return SessionEngine(dev, st, plan, clock=clock, manual_speed=SPEED)

    app = EpmApp(
        store=store,
        device=device,
        library_path=LIBRARY,
        practitioner="Dana P.",
        engine_factory=factory,
        animate_alarms=False,
    )
    yield {"app": app, "sim": sim, "clock": clock}
    app.close_resources()
    sim.close()
    store.close()


def plan() -> SessionPlan:
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
        zones=("frontal",),
    )


async def delivering(pilot: Any, app: EpmApp) -> RunScreen:
    """Start a session and confirm through to DELIVERING on the frontal zone."""
    await wait_for(pilot, lambda: app.connection == "up", what="device connected")
    app.store.get_or_create_client("C-9")
    app.start_session(plan())
    screen = RunScreen()
    await app.push_screen(screen)
    for phase in (Phase.MANUAL, Phase.PLACE):
        # Enter is offered once the manual step's minimum time is over (120 s at SPEED: 6 s).
        await wait_for(
            pilot,
            lambda p=phase: (
                screen.snapshot is not None
                and screen.snapshot.phase is p
                and screen.active_bindings["enter"].enabled
            ),
            timeout=20,
            what=str(phase),
        )
        await press(pilot, "enter")
    await wait_for(
        pilot,
        lambda: screen.snapshot is not None and screen.snapshot.phase is Phase.DELIVERING,
        what="delivering",
    )
    return screen


async def test_contact_loss_link_loss_and_emergency_stop_in_one_session(
    rig: dict[str, Any],
) -> None:
    """One session (a session costs seconds to set up): contact loss, then a lost link, then
    the emergency stop from a modal with its Input focused."""
    app, sim, clock = rig["app"], rig["sim"], rig["clock"]
    async with app.run_test(size=(80, 24)) as pilot:
        run = await delivering(pilot, app)
        await contact_loss_shows_hold_then_the_alarm(pilot, run, sim, clock)
        await link_loss_alarms_and_offers_to_continue(pilot, app, run, sim)
        await emergency_stop_from_a_reason_input(pilot, app, run, sim)


async def contact_loss_shows_hold_then_the_alarm(
    pilot: Any, run: RunScreen, sim: Simulator, clock: JumpClock
) -> None:
    sim.inject("contact_lost")
    await wait_for(pilot, lambda: run.snapshot.phase is Phase.HOLD, what="HOLD after contact loss")
    progress = run.query_one(ZoneProgress)
    await wait_for(pilot, lambda: progress.has_class("-frozen"))
    # Read the frozen time from a frame the device sent while holding (frames sent just
    # before the hold may still arrive after the phase changed).
    await wait_for(
        pilot,
        lambda: run.snapshot.live is not None and run.snapshot.live.device_state == "HOLD",
        what="telemetry in HOLD",
    )
    frozen = run.snapshot.zone_delivered_ms
    assert "HOLD" in str(run.query_one("#instruction").render())
    assert "FROZEN" in str(progress.query_one("#countdown-label").render())
    clock.offset += 11.0  # the contact has been gone for more than 10 s (host clock)
    banner = run.query_one(AlarmBanner)
    await wait_for(
        pilot,
        lambda: any(a.code is AlarmCode.CONTACT_LOST for a in banner.alarms),
        what="the contact-lost alarm",
    )
    assert "No skin contact" in str(banner.render())
    assert run.snapshot.zone_delivered_ms == frozen  # zone time stays frozen on HOLD
    sim.clear("contact_lost")
    await wait_for(pilot, lambda: run.snapshot.phase is Phase.DELIVERING, what="delivery resumes")
    await wait_for(
        pilot,
        lambda: not any(a.code is AlarmCode.CONTACT_LOST for a in banner.alarms),
        what="the non-latching contact alarm to clear",
    )


async def link_loss_alarms_and_offers_to_continue(
    pilot: Any, app: EpmApp, run: RunScreen, sim: Simulator
) -> None:
    sim.inject("disconnect", duration_s=0.6)
    await wait_for(pilot, lambda: isinstance(app.screen, AlarmModal), what="link-lost alarm modal")
    modal = app.screen
    assert isinstance(modal, AlarmModal) and modal.alarm.code is AlarmCode.LINK_LOST
    await wait_for(pilot, lambda: run.snapshot.phase is Phase.RECOVERY, timeout=15, what="RECOVERY")
    # Nothing resumed by itself: the device is not delivering, the practitioner decides.
    assert sim.state is not State.RUNNING
    await press(pilot, "a")  # acknowledge in the modal
    await wait_for(pilot, lambda: app.screen is run)
    # The reconnection's HELLO latched WATCHDOG (interface §3): acknowledge the alarms and
    # clear the faults as the keys offer them, until Continue is offered.
    deadline = time.monotonic() + 15
    while not (Action.CONTINUE in run.snapshot.allowed and run.active_bindings["n"].enabled):
        assert time.monotonic() < deadline, (run.snapshot.phase, run.snapshot.allowed)
        assert sim.state is not State.RUNNING
        if isinstance(app.screen, AlarmModal) or run.active_bindings["a"].enabled:
            await press(pilot, "a")
        elif run.active_bindings["c"].enabled:
            await press(pilot, "c")
        await asyncio.sleep(0.05)
    assert sim.state is not State.RUNNING and not run.active_bindings["p"].enabled
    await press(pilot, "n")
    await wait_for(pilot, lambda: run.snapshot.phase is Phase.PLACE, what="placement again")
    assert sim.state is not State.RUNNING


async def emergency_stop_from_a_reason_input(
    pilot: Any, app: EpmApp, run: RunScreen, sim: Simulator
) -> None:
    await wait_for(pilot, lambda: run.active_bindings["e"].enabled, what="End early offered")
    await press(pilot, "e")
    await wait_for(pilot, lambda: isinstance(app.focused, Input), what="reason input")
    assert app.screen is run and run.query_one(PromptPanel).is_open  # readings still shown
    await press(pilot, "f12")
    # The simulator latched ESTOP: the bytes went out at the key press, not later.
    assert sim.wait_until(lambda s: bool(s.faults & Fault.ESTOP), timeout=5)
    assert sim.state is State.FAULT
    await press(pilot, "escape")
    await wait_for(
        pilot, lambda: run.snapshot.phase is Phase.FAULT, what="the engine to show the fault"
    )
    assert "estop" in [e.kind for e in app.store.events(run.snapshot.session_id or 0)]
