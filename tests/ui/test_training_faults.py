"""The training panel: refused on a real device; on a simulator it lists the faults in plain
words, Enter injects the highlighted one (asking for the seconds of a link loss), Esc closes;
on the real engine and the in-process simulator the injection takes effect and is recorded in
the running session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input, Label, OptionList

from controller.device import DeviceClient
from controller.records import RecordStore
from controller.session.engine import SessionEngine
from controller.session.headless import checklist_answers
from controller.session.model import Phase, SessionPlan
from controller.session.training import TRAINING_FAULTS, TrainingFaults
from controller.ui.app import EpmApp
from controller.ui.practitioner.home import HomeScreen
from controller.ui.practitioner.training import (
    REAL_DEVICE,
    SecondsPrompt,
    TrainingPanel,
    open_training_panel,
)
from controller.wire import State
from protocols import load_protocol
from simulator import Simulator, register_url_handler
from tests.integration.helpers import protocol_path
from tests.ui.conftest import LIBRARY, SIM_SERIAL, FixedDevice, make_app, press, wait_for

SPEED = 20


class SpySimulator:
    """Stands in for the in-process simulator: records what the panel injects."""

    serial_number = SIM_SERIAL
    closed = False

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.cleared = 0

    def inject(self, fault: str, **params: Any) -> object:
        self.calls.append((fault, params))
        return None

    def clear(self, fault: str | None = None) -> list[str]:
        self.cleared += 1
        return []


def spy_service(app: EpmApp, spy: SpySimulator, serial: str = SIM_SERIAL) -> TrainingFaults:
    return TrainingFaults(
        app.port,
        find_simulator=lambda url: spy,
        device_serial=serial,
        session=lambda: app.engine,
    )


def result_text(panel: TrainingPanel) -> str:
    return str(panel.query_one("#result", Label).render())


async def test_the_panel_is_refused_on_a_real_device(store: RecordStore) -> None:
    device = FixedDevice(serial="EPM1-004711", url="/dev/ttyUSB0")
    app = make_app(store, device=device)
    notices: list[str] = []
    app.notify = lambda message, **_: notices.append(message)  # type: ignore[method-assign]
    spy = SpySimulator()  # even a simulator in reach changes nothing on a real device
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="device connected")
        assert not app.simulated
        open_training_panel(app, spy_service(app, spy, serial="EPM1-004711"))
        await pilot.pause()
        assert notices == [REAL_DEVICE] and isinstance(app.screen, HomeScreen)

        # Pushed directly, it offers nothing and injects nothing.
        panel = TrainingPanel(spy_service(app, spy, serial="EPM1-004711"))
        await app.push_screen(panel)
        await wait_for(pilot, lambda: panel.refused is not None, what="the refusal")
        assert panel.query_one("#faults", OptionList).option_count == 0
        assert "simulator only" in result_text(panel)
        await press(pilot, "enter")
        assert spy.calls == [] and panel.injections == []


async def test_the_panel_lists_plain_words_and_injects_the_highlighted_fault(
    store: RecordStore,
) -> None:
    app = make_app(store)  # a fixed SIM- device on sim://fixed, no session
    spy = SpySimulator()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="device connected")
        assert app.simulated
        open_training_panel(app, spy_service(app, spy))
        await wait_for(pilot, lambda: isinstance(app.screen, TrainingPanel), what="the panel")
        panel = app.screen
        assert isinstance(panel, TrainingPanel)
        faults = panel.query_one("#faults", OptionList)
        prompts = [str(faults.get_option_at_index(i).prompt) for i in range(faults.option_count)]
        assert prompts == [fault.title for fault in TRAINING_FAULTS]
        assert all("_" not in p for p in prompts)  # plain words, not catalogue names
        session = str(panel.query_one("#session", Label).render())
        assert "No session is running" in session

        await press(pilot, "down", "enter")  # the second: poor contact
        await wait_for(pilot, lambda: len(panel.injections) == 1, what="the injection")
        assert spy.calls == [("contact_marginal", {"impedance_ohm": 15_000})]
        assert not panel.injections[0].recorded
        assert "No session is running: nothing was recorded." in result_text(panel)

        # Link loss asks for the seconds (default 5); Esc there injects nothing.
        link = [f.name for f in TRAINING_FAULTS].index("disconnect")
        await press(pilot, *["down"] * (link - 1), "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SecondsPrompt), what="the prompt")
        field = app.screen.query_one("#seconds", Input)
        assert field.value == "5"
        await press(pilot, "escape")
        await wait_for(pilot, lambda: app.screen is panel)
        assert len(spy.calls) == 1 and "Cancelled" in result_text(panel)

        await press(pilot, "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SecondsPrompt), what="the prompt")
        await press(pilot, "backspace", "x", "enter")  # not a number: said, nothing injected
        problem = app.screen.query_one("#problem", Label)
        await wait_for(
            pilot, lambda: "not a number of seconds" in str(problem.render()), what="problem"
        )
        assert len(spy.calls) == 1 and isinstance(app.screen, SecondsPrompt)
        await press(pilot, "backspace", "2", "enter")
        await wait_for(pilot, lambda: len(panel.injections) == 2, what="the link loss")
        assert spy.calls[-1] == ("disconnect", {"duration_s": 2.0})

        await press(pilot, "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), what="closed")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The app on the in-process simulator with the real engine (placement and manual steps
    confirmed by the engine itself: this test is about the panel, not the run screen)."""
    register_url_handler()
    sim = Simulator(speed=SPEED, seed=7)
    device = DeviceClient(sim.url(), host_id="ui-test", reconnect_timeout=None)
    store = RecordStore.open(tmp_path / "data")

    def factory(dev: Any, st: RecordStore, plan: SessionPlan) -> Any:
        return SessionEngine(dev, st, plan, auto_confirm=True, manual_speed=SPEED)

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


def zone_left_s(sim: Any) -> str:
    """The simulator's state and real seconds left in its zone (a failure says whether the
    zone simply ended before the fault)."""
    snap = sim.snapshot()
    left_ms = max(0, int(snap["step_duration_ms"] or 0) - int(snap["step_elapsed_ms"] or 0))
    return f"{snap['state']} (faults {snap['faults']}), {left_ms / 1000 / SPEED:.1f}"


async def test_contact_lost_from_the_panel_holds_the_session_and_is_recorded(
    rig: dict[str, Any],
) -> None:
    app, sim, store = rig["app"], rig["sim"], rig["store"]
    result = load_protocol(protocol_path("one-zone.yaml"))
    assert result.protocol is not None
    plan = SessionPlan(
        load_result=result,
        client_code="C-7",
        practitioner="Dana P.",
        serum_lot="LOT-1",
        checklist_answers=checklist_answers(result.protocol),
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="device connected")
        store.get_or_create_client("C-7")
        engine = app.start_session(plan)
        await wait_for(
            pilot, lambda: engine.snapshot().phase is Phase.DELIVERING, what="delivering"
        )
        open_training_panel(app)  # the app's own glue finds the simulator behind sim://
        await wait_for(pilot, lambda: isinstance(app.screen, TrainingPanel), what="the panel")
        panel = app.screen
        assert isinstance(panel, TrainingPanel)
        sid = engine.snapshot().session_id
        assert sid is not None
        assert f"Session #{sid} is running" in str(panel.query_one("#session", Label).render())

        await press(pilot, "enter")  # the first, highlighted: contact lost
        await wait_for(pilot, lambda: len(panel.injections) == 1, what="the injection")
        assert panel.injections[0].recorded
        await wait_for(
            pilot,
            lambda: engine.snapshot().phase is Phase.HOLD,
            what=f"HOLD (the simulator's zone time left at injection: {zone_left_s(sim)} s)",
        )
        assert sim.wait_until(lambda s: s.state is State.HOLD, 5)
        assert f"Recorded in session #{sid}." in result_text(panel)
        events = store.events(sid)
        (event,) = [e for e in events if e.kind == "training_fault"]
        assert event.data["fault"] == "contact_lost" and event.data["by"] == "trainer"


async def test_the_t_key_opens_the_panel_on_a_simulator_only(
    store: RecordStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    import controller.ui.practitioner.training as training

    opened: list[Any] = []
    monkeypatch.setattr(training, "open_training_panel", opened.append)
    real = make_app(store, device=FixedDevice(serial="EPM1-004711", url="/dev/ttyUSB0"))
    async with real.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: real.connection == "up", what="device connected")
        await press(pilot, "t")
        assert opened == []  # no such key on a real device
    sim = make_app(store)
    async with sim.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: sim.connection == "up", what="device connected")
        assert sim.simulated
        await press(pilot, "t")
        await wait_for(pilot, lambda: opened == [sim], what="the panel opened")
