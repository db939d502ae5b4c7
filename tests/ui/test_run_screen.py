"""The run screen against a scripted engine: keys follow ``snapshot.allowed``, each key sends
the right request, stop/skip/end ask first (in the panel under the readings), alarms are shown
in their IEC colours and flash, a new high-priority alarm opens its modal, live data is drained
in batches on one timer, and the emergency stop works from every phase, every question and the
alarm modal, with any widget focused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from controller.records import RecordStore
from controller.session.alarms import AlarmCode, Priority
from controller.session.model import Action, Outcome, Phase, StepStatus
from controller.ui.messages import EngineStartFinished
from controller.ui.practitioner.alarm_banner import FLASH_OFF_BACKGROUND, AlarmBanner
from controller.ui.practitioner.alarm_modal import AlarmModal
from controller.ui.practitioner.end import EndScreen
from controller.ui.practitioner.live_readings import LiveReadings
from controller.ui.practitioner.prompt_panel import CONFIRM, REASON, PromptPanel
from controller.ui.practitioner.run import FOOTER_KEYS, RunScreen
from controller.ui.practitioner.zone_progress import ZoneProgress
from controller.ui.theme import alarm_colours
from tests.ui.conftest import (
    ALLOWED,
    FakeEngine,
    alarm,
    live_view,
    make_app,
    press,
    show_run_screen,
    snapshot,
    telemetry_batch,
    wait_for,
)

#: Screen action -> the engine Action it sends (keys that map one to one).
KEY_ACTIONS = {
    "plus": Action.INTENSITY_UP,
    "up": Action.INTENSITY_UP,
    "minus": Action.INTENSITY_DOWN,
    "down": Action.INTENSITY_DOWN,
    "a": Action.ACKNOWLEDGE,
    "c": Action.CLEAR_FAULTS,
    "n": Action.CONTINUE,
    "r": Action.RECONNECT,
}


def enabled(screen: RunScreen, key: str) -> bool | None:
    """True/False as the footer shows the key (enabled/dimmed); None when not shown."""
    active = screen.active_bindings.get(key)
    return None if active is None else active.enabled


async def test_keys_are_enabled_exactly_as_the_snapshot_allows(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.PREFLIGHT, manual_remaining_ms=0))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        for phase in [p for p in ALLOWED if p is not Phase.FINISHED]:
            engine.set(phase=phase)
            await wait_for(pilot, lambda p=phase: screen.snapshot.phase is p)
            await pilot.pause(0)
            allowed = ALLOWED[phase]
            # Keys that apply are enabled; keys that do not are shown dimmed, never hidden.
            for key, action in KEY_ACTIONS.items():
                assert enabled(screen, key) is (action in allowed), (key, phase)
            for key, action in (("s", Action.STOP), ("k", Action.SKIP), ("e", Action.END)):
                assert enabled(screen, key) is (action in allowed), (key, phase)
            assert enabled(screen, "enter") is (Action.CONFIRM in allowed), phase
            for key in ("space", "p"):
                pause_shown = screen.active_bindings[key]
                if Action.RESUME in allowed:
                    assert (pause_shown.binding.action, pause_shown.enabled) == ("resume", True)
                else:
                    assert pause_shown.binding.action == "pause"
                    assert pause_shown.enabled is (Action.PAUSE in allowed)
            assert screen.active_bindings["f12"].enabled  # emergency stop: always
            # The footer shows F12, the phase's five keys (dimmed when they do not apply) and
            # F1; it is told after the screen's next refresh.
            wanted = FOOTER_KEYS[phase]
            assert len(wanted) <= 5

            def footer_matches(wanted: tuple[str, ...] = wanted) -> bool:
                keys = list(screen.query("FooterKey"))
                actions = [key.action for key in keys]
                if actions != ["emergency_stop", *wanted, "help"]:
                    return False
                return keys[0].has_class("-estop") and all(
                    key.has_class("-disabled") is (not screen.check_action(key.action, ()))
                    for key in keys[1:-1]
                )

            await wait_for(pilot, footer_matches, what=f"footer keys in {phase}")


async def test_each_key_sends_its_request_and_disabled_keys_send_nothing(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.MANUAL, manual_remaining_ms=0))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        assert screen.active_bindings["enter"].binding.description == "Done"
        await press(pilot, "enter")
        engine.set(phase=Phase.PLACE, step_index=2)
        await wait_for(
            pilot, lambda: screen.active_bindings["enter"].binding.description == "Start zone"
        )
        await press(pilot, "enter")
        assert engine.requests == [(Action.CONFIRM, None), (Action.CONFIRM, None)]
        engine.requests.clear()
        engine.set(phase=Phase.DELIVERING)
        await wait_for(pilot, lambda: not screen.active_bindings["enter"].enabled)
        await press(pilot, "plus", "up", "minus", "p")
        assert [a for a, _ in engine.requests] == [
            Action.INTENSITY_UP,
            Action.INTENSITY_UP,
            Action.INTENSITY_DOWN,
            Action.PAUSE,
        ]
        engine.requests.clear()
        await press(pilot, "enter", "a", "c", "n", "r")  # none applies while delivering
        assert engine.requests == []
        assert "escape" not in screen.active_bindings  # not a session key: hidden
        await press(pilot, "escape")  # and it does not leave a running session
        assert app.screen is screen and app.engine is engine
        engine.set(phase=Phase.PAUSED)
        await wait_for(pilot, lambda: screen.active_bindings["p"].binding.action == "resume")
        await press(pilot, "space")
        assert engine.requests == [(Action.RESUME, None)]
        # Reconnecting gave up: r asks the engine to try again (nothing resumes by itself).
        engine.set(
            phase=Phase.LINK_LOST,
            allowed=frozenset({Action.RECONNECT, Action.END}),
            reconnect_failed=True,
            message="No connection to the device for 30 s. Reconnect or end the session.",
        )
        await wait_for(pilot, lambda: screen.active_bindings["r"].enabled)
        assert "CONNECTION LOST" in str(screen.query_one("#instruction").render())
        await press(pilot, "r")
        assert engine.requests[-1] == (Action.RECONNECT, None)


async def test_stop_skip_and_end_ask_first(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.PAUSED))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        run = await show_run_screen(app, pilot, engine)
        prompt = run.query_one(PromptPanel)
        assert not prompt.display  # nothing asked: no panel
        await press(pilot, "s")
        await wait_for(pilot, lambda: prompt.is_open and prompt.kind == CONFIRM)
        assert app.screen is run  # a panel under the readings, not a window over them
        assert "Stop the session?" in str(prompt.query_one("#prompt-question").render())
        await press(pilot, "n")
        await wait_for(pilot, lambda: not prompt.is_open)
        assert engine.requests == []
        await press(pilot, "s")
        await wait_for(pilot, lambda: prompt.is_open)
        await press(pilot, "y")
        await wait_for(pilot, lambda: not prompt.is_open)
        assert engine.requests == [(Action.STOP, None)]
        engine.requests.clear()
        for key, action in (("k", Action.SKIP), ("e", Action.END)):
            await press(pilot, key)
            await wait_for(pilot, lambda: isinstance(app.focused, Input), what=key)
            assert app.screen is run and prompt.is_open and prompt.kind == REASON
            await press(pilot, "enter")  # empty: refused with a message, the panel stays
            await wait_for(
                pilot, lambda: "required" in str(prompt.query_one("#prompt-note").render())
            )
            assert prompt.is_open and engine.requests == []
            await press(pilot, *"sore", "enter")
            await wait_for(pilot, lambda: not prompt.is_open, what=f"{key} panel closed")
            assert engine.requests == [(action, "sore")]
            assert app.focused is None  # the keys are the screen's again
            engine.requests.clear()
            await press(pilot, key)
            await wait_for(pilot, lambda: isinstance(app.focused, Input), what=key)
            await press(pilot, "x", "escape")  # cancelled: nothing sent
            await wait_for(pilot, lambda: not prompt.is_open)
            assert engine.requests == []


#: Each situation of a running session: the phase, and what is open on top of the run screen.
SITUATIONS = (
    ("place", Phase.PLACE, None),
    ("delivering", Phase.DELIVERING, None),
    ("hold", Phase.HOLD, None),
    ("paused", Phase.PAUSED, None),
    ("manual", Phase.MANUAL, None),
    ("alarm modal open", Phase.FAULT, "alarm"),
    ("stop question open", Phase.DELIVERING, "stop"),
    ("reason input focused", Phase.PAUSED, "reason"),
)


async def test_emergency_stop_works_from_every_situation(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.PREFLIGHT))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        run = await show_run_screen(app, pilot, engine)
        for number, (name, phase, opened) in enumerate(SITUATIONS, start=1):
            engine.set(phase=phase, alarms=())
            await wait_for(pilot, lambda p=phase: run.snapshot.phase is p, what=name)
            if opened == "alarm":
                engine.set(kind="alarm", alarms=(alarm(AlarmCode.DEVICE_FAULT, number),))
                await wait_for(pilot, lambda: isinstance(app.screen, AlarmModal), what=name)
            elif opened == "stop":
                await press(pilot, "s")
                await wait_for(pilot, lambda: run.query_one(PromptPanel).is_open, what=name)
            elif opened == "reason":
                await press(pilot, "e")
                await wait_for(pilot, lambda: isinstance(app.focused, Input), what=name)
                await press(pilot, "x")  # typing in the Input, then the emergency keys
            top = app.screen
            await press(pilot, "f12")
            assert engine.estops[-1] == ("operator", phase.value), name
            assert app.device.estops == 2 * number - 1, name  # on the device, not queued
            await press(pilot, "ctrl+e")
            assert len(engine.estops) == app.device.estops == 2 * number, name
            assert app.screen is top, name  # never confirmed: nothing else was asked
            if opened == "reason":
                assert top.query_one(Input).value == "x", name  # the keys typed nothing
            if opened is not None:
                await press(pilot, "escape")
                await wait_for(
                    pilot,
                    lambda: app.screen is run and not run.query_one(PromptPanel).is_open,
                    what=f"back from {name}",
                )
        assert engine.requests == []  # no key but the emergency stop did anything


async def test_alarm_banner_colours_come_from_the_priority_and_flash(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine, animate_alarms=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        banner = screen.query_one(AlarmBanner)
        assert banner.has_class("-none")
        for number, priority_code in enumerate(
            (AlarmCode.CONTACT_MARGINAL, AlarmCode.CONTACT_LOST, AlarmCode.DEVICE_FAULT), 1
        ):
            await show_one_alarm(pilot, engine, banner, priority_code, number)
            if app.screen is not screen:
                app.pop_screen()  # the high alarm's modal


async def show_one_alarm(
    pilot: Any, engine: FakeEngine, banner: AlarmBanner, code: AlarmCode, number: int
) -> None:
    """Raise ``code``; check its colours and flash; acknowledge it; check it goes steady."""
    raised = alarm(code, number)
    engine.set(kind="alarm", alarms=(raised,))
    await wait_for(pilot, lambda: banner.priority is raised.priority, what=str(code))
    colours = alarm_colours(raised.priority)
    assert banner.has_class(f"-{raised.priority.value}")

    def painted_as_expected() -> bool:
        off = banner.has_class("-flash-off")
        expected = FLASH_OFF_BACKGROUND if off else colours.background
        return banner.styles.background.hex.lower() == expected.lower()

    assert painted_as_expected()
    if raised.priority is Priority.LOW:
        assert not banner.flashing  # low priority: steady
    else:
        assert banner.flashing
        assert banner.flash_interval_s == pytest.approx(1 / (2 * raised.priority.flash_hz))
    if raised.priority is Priority.HIGH:  # watch one whole flash period (0.5 s)
        start = banner.has_class("-flash-off")
        await wait_for(pilot, lambda: banner.has_class("-flash-off") != start, timeout=5)
        assert painted_as_expected()
        await wait_for(pilot, lambda: banner.has_class("-flash-off") == start, timeout=5)
        assert painted_as_expected()
    # Acknowledged: steady, and still shown while the condition is present.
    engine.set(kind="alarm", alarms=(alarm(code, number, acknowledged=True),))
    await wait_for(pilot, lambda: not banner.flashing)
    assert not banner.has_class("-flash-off") and banner.priority is raised.priority


async def test_a_new_high_alarm_opens_its_modal_and_acknowledges_with_a(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_run_screen(app, pilot, engine)
        engine.set(kind="alarm", phase=Phase.FAULT, alarms=(alarm(AlarmCode.DEVICE_FAULT),))
        await wait_for(pilot, lambda: isinstance(app.screen, AlarmModal))
        await press(pilot, "a")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        assert engine.requests == [(Action.ACKNOWLEDGE, None)]
        # The same occurrence does not open the modal again; a new occurrence does.
        engine.set(kind="alarm", alarms=(alarm(AlarmCode.DEVICE_FAULT, acknowledged=True),))
        await pilot.pause(0)
        assert isinstance(app.screen, RunScreen)
        engine.set(kind="alarm", alarms=(alarm(AlarmCode.DEVICE_FAULT, occurrence=2),))
        await wait_for(pilot, lambda: isinstance(app.screen, AlarmModal))
        await press(pilot, "escape")  # closed without acknowledging
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen))
        assert engine.requests == [(Action.ACKNOWLEDGE, None)]
        # Medium and low alarms are shown in the banner only.
        engine.set(
            kind="alarm",
            phase=Phase.HOLD,
            alarms=(alarm(AlarmCode.CONTACT_LOST, 3), alarm(AlarmCode.CONTACT_MARGINAL, 4)),
        )
        banner = app.screen.query_one(AlarmBanner)
        await wait_for(pilot, lambda: len(banner.alarms) == 2)
        await pilot.pause(0.1)
        assert isinstance(app.screen, RunScreen)
        assert "Also: Poor skin contact (low)" in str(banner.render())


async def test_live_data_in_batches_and_hold_with_frozen_time(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    posted: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        live = screen.query_one(LiveReadings)
        frames_before, batches_before = live.frames_seen, live.batches_seen
        ticks_before = screen.ticks
        original = app.post_message

        def counting(message: Any) -> bool:
            posted.append(type(message).__name__)
            return original(message)

        app.post_message = counting  # type: ignore[method-assign]
        engine.telemetry.extend(telemetry_batch(1000))  # a second at 1 kHz, all at once
        await wait_for(pilot, lambda: live.frames_seen - frames_before == 1000)
        assert live.batches_seen - batches_before == 1  # one update per batch, not per frame
        assert screen.ticks > ticks_before
        assert "SessionUpdate" not in posted  # telemetry never travels as messages
        await wait_for(pilot, lambda: screen.ticks >= ticks_before + 5)
        # Each tick drained once: the drains the engine saw match the screen's ticks.
        assert engine.drains == screen.ticks
        spark = screen.query_one("#out-spark")
        assert spark.data == []  # one point would be a full block: drawn from the second
        engine.telemetry.extend(telemetry_batch(10, amplitude_dv=300))
        await wait_for(pilot, lambda: live.batches_seen - batches_before == 2)
        assert spark.data == [pytest.approx(41.8), pytest.approx(30.6)]  # each batch's peak

        # HOLD: shown as such, the zone's time frozen, the contact alarm in the banner.
        progress = screen.query_one(ZoneProgress)
        assert not progress.has_class("-frozen")
        engine.set(
            phase=Phase.HOLD,
            alarms=(alarm(AlarmCode.CONTACT_LOST),),
            live=live_view(contact="none", amplitude_dv=0, current_ua=0, impedance_ohm=2_000_000),
        )
        await wait_for(pilot, lambda: progress.has_class("-frozen"))
        assert "HOLD" in str(screen.query_one("#instruction").render())
        assert "FROZEN: hold" in str(progress.query_one("#countdown-label").render())
        banner = screen.query_one(AlarmBanner)
        assert banner.priority is Priority.MEDIUM
        assert "No skin contact" in str(banner.render())
        assert "NO CONTACT" in str(screen.query_one("#imp-text").render())


async def test_refused_or_failed_start_is_explained_and_esc_goes_back(
    store: RecordStore,
) -> None:
    engine = FakeEngine(
        snapshot(
            Phase.REFUSED,
            step_index=None,
            refusals=("Handpiece: attach the FLAT_PROBE and start again.",),
            outcome=Outcome.REFUSED,
        )
    )
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        text = str(screen.query_one("#instruction").render())
        assert "REFUSED" in text and "attach the FLAT_PROBE" in text
        assert screen.has_class("-refused")
        assert screen.active_bindings["escape"].enabled
        await press(pilot, "escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RunScreen))
        assert app.engine is None

        # A start that raised: explained, and Esc goes back as well.
        engine = FakeEngine(snapshot(Phase.PREFLIGHT))
        screen = await show_run_screen(app, pilot, engine)

        screen.post_message(EngineStartFinished("The session could not start: disk full"))
        await wait_for(pilot, lambda: screen.start_error is not None)
        assert "disk full" in str(screen.query_one("#start-error").render())
        await press(pilot, "escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, RunScreen))
        assert app.engine is None


async def test_finished_session_shows_the_end_screen_and_saves_notes(
    store: RecordStore, tmp_path: Path
) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_run_screen(app, pilot, engine)
        done = tuple(
            s.__class__(**{**s.__dict__, "status": StepStatus.DONE, "delivered_ms": s.planned_ms})
            for s in engine.snapshot().steps
        )
        engine.set(
            kind="finished",
            phase=Phase.FINISHED,
            outcome=Outcome.COMPLETED,
            steps=done,
            step_index=None,
        )
        await wait_for(pilot, lambda: isinstance(app.screen, EndScreen))
        end = app.screen
        table = end.query_one("#end-steps")
        assert table.row_count == 4
        assert "completed" in str(end.query_one("#end-outcome").render())
        assert "Do not wash the hair" in str(end.query_one("#end-aftercare").render())
        await press(pilot, "tab")
        await wait_for(pilot, lambda: app.focused is end.query_one("#end-notes"))
        await press(pilot, *"ok", "ctrl+s")
        assert engine.notes == ["ok"]
        await press(pilot, "escape")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "HomeScreen")
        assert app.engine is None and engine.closed
