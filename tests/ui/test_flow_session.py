"""A whole session through the UI, keyboard only, on the real engine and the in-process
simulator (accelerated): home → new session → run → end → home.

What it proves: the screens drive the real engine end to end — the wizard builds a plan the
engine accepts, every Enter the practitioner presses reaches the engine, the run screen follows
the engine to FINISHED, the end screen saves notes into the record, and the home screen lists
the session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from controller.session.model import Phase
from controller.ui.app import EpmApp, create_app
from controller.ui.practitioner.end import EndScreen
from controller.ui.practitioner.home import HomeScreen
from controller.ui.practitioner.new_session import NewSessionScreen
from controller.ui.practitioner.run import RunScreen
from controller.ui.shared.sim_banner import SimBanner
from tests.ui.conftest import press, wait_for

#: Simulator and manual-timer acceleration (the simulator's maximum): the 16-minute protocol
#: runs in about a second.
SPEED = 1000
PROTOCOL_ID = "aga-early-scalp"


@pytest.fixture
def sim_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.delenv("EPM_PORT", raising=False)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    app = create_app(data_dir=tmp_path / "data", sim_speed=SPEED, practitioner="Dana P.")
    yield app
    app.close_resources()


async def fill_wizard(pilot: Pilot[Any], app: EpmApp, client: str = "C-0042") -> None:
    """Client, protocol, zones, checklist, review — with keys only."""
    await press(pilot, "n")
    await wait_for(pilot, lambda: isinstance(app.screen, NewSessionScreen), what="wizard")
    screen = app.screen
    assert isinstance(screen, NewSessionScreen)
    await press(pilot, *client, "enter")
    await wait_for(pilot, lambda: screen.page == 1, what="protocol page")
    await wait_for(pilot, lambda: screen.library_loaded, what="the library loaded")
    index = next(n for n, e in enumerate(screen.entries) if e.result.protocol.id == PROTOCOL_ID)
    for _ in range(index):
        await press(pilot, "down")
    await press(pilot, "enter")
    await wait_for(pilot, lambda: screen.page == 2, what="zones page")
    await press(pilot, "ctrl+n")
    await wait_for(pilot, lambda: screen.page == 3, what="checklist page")
    # 8 contraindications "no", 3 confirmations "yes", the protocol's own question "no".
    await press(pilot, *("n" * 8), *("y" * 3), "n")
    await press(pilot, "ctrl+n")
    await wait_for(pilot, lambda: screen.page == 4, what="review page")


async def test_complete_session_from_home_to_end_screen(sim_app: EpmApp) -> None:
    app = sim_app
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="device connected")
        assert app.simulated
        await fill_wizard(pilot, app)
        await press(pilot, "ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="run screen")
        run = app.screen
        assert isinstance(run, RunScreen)
        confirms = 0
        import time as _t

        _deadline = _t.monotonic() + 40
        while not isinstance(app.screen, EndScreen):
            assert _t.monotonic() < _deadline, (
                app.screen,
                run.snapshot
                and (
                    run.snapshot.phase,
                    run.snapshot.message,
                    run.snapshot.step_index,
                    run.snapshot.notices,
                    run.snapshot.allowed,
                ),
            )
            snap = run.snapshot
            step = snap.current_step if snap is not None else None
            # Enter is offered on a manual step once its minimum time is over.
            settled = (
                step is not None
                and (
                    (snap.phase is Phase.MANUAL and step.kind == "manual")
                    or (snap.phase is Phase.PLACE and step.kind == "delivery")
                )
                and run.active_bindings["enter"].enabled
            )
            if settled:
                await press(pilot, "enter")
                confirms += 1
                await wait_for(
                    pilot,
                    lambda s=snap: (
                        run.snapshot is not None
                        and (run.snapshot.phase, run.snapshot.step_index) != (s.phase, s.step_index)
                    ),
                    timeout=20,
                    what=f"the engine to leave {snap.phase} of step {snap.step_index}",
                )
            else:
                assert snap is None or snap.phase not in (Phase.REFUSED, Phase.FAULT), snap and (
                    snap.phase,
                    snap.refusals,
                    snap.message,
                )
                await pilot.pause(0.05)
        end = app.screen
        assert isinstance(end, EndScreen)
        final = end.final
        assert final.outcome is not None and final.outcome.value == "completed"
        assert confirms == 4  # the manual step and three zones, each confirmed once
        assert [s.status.value for s in final.steps] == ["done"] * 4
        assert all(s.delivered_ms == s.planned_ms for s in final.steps if s.kind == "delivery")
        await wait_for(pilot, lambda: bool(end.query(SimBanner)), what="SIMULATOR marker")
        assert end.query_one(SimBanner).has_class("-shown")

        notes = end.query_one("#end-notes")
        await press(pilot, "tab")  # from the report to the notes
        await wait_for(pilot, lambda: app.focused is notes, what="notes focused by Tab")
        await press(pilot, *"Tolerated well.")
        await press(pilot, "ctrl+s")
        session_id = final.session_id
        assert session_id is not None
        await wait_for(
            pilot,
            lambda: app.store.get_session(session_id).notes == "Tolerated well.",
            what="notes saved",
        )
        await press(pilot, "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen), what="home again")
        assert app.engine is None
        table = app.screen.query_one("#today")
        assert table.row_count == 1
        record = app.store.get_session(session_id)
        assert record.outcome == "completed" and record.simulated
        assert record.client_code == "C-0042" and record.practitioner == "Dana P."
