"""The new-session wizard on a real (not simulated) unit, keyboard only: every page refuses to
move on with a clear reason until it is complete, protocols that may not run are shown with why
and cannot be chosen, a contraindication blocks, and the plan handed to the engine holds what
was entered (client, practitioner, zones, serum lot, every checklist answer).
"""

from __future__ import annotations

from typing import Any

from controller.records import RecordStore
from controller.records.approvals import approve
from controller.session.model import Phase
from controller.ui.practitioner.new_session import NewSessionScreen
from controller.ui.practitioner.run import RunScreen
from protocols import ItemKind, build_checklist, load_protocol
from tests.ui.conftest import (
    LIBRARY,
    FakeEngine,
    FixedDevice,
    make_app,
    press,
    snapshot,
    wait_for,
)

APPROVED = "aga-early-scalp"


def problem(screen: NewSessionScreen) -> str:
    return str(screen.query_one("#wizard-problem").render())


async def test_wizard_checks_each_page_and_builds_the_plan(store: RecordStore) -> None:
    path = LIBRARY / f"{APPROVED}.yaml"
    approve(store, load_protocol(path), path, "Head technician")
    engine = FakeEngine(snapshot(Phase.PREFLIGHT))
    app = make_app(
        store, device=FixedDevice(serial="EPM1-000123", url="/dev/ttyUSB0"), engine=engine
    )
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        assert not app.simulated
        await press(pilot, "n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewSessionScreen))
        screen: Any = app.screen
        await wait_for(pilot, lambda: app.focused is screen.query_one("#client-code"))

        # Page 1: a code that is not one is refused, with what a code looks like.
        await press(pilot, *"bad code", "enter")
        await wait_for(pilot, lambda: "not a client code" in problem(screen))
        assert screen.page == 0
        await press(pilot, *(["backspace"] * 8), *"C-0042", "enter")
        await wait_for(pilot, lambda: screen.page == 1, what="protocol page")
        await wait_for(pilot, lambda: screen.library_loaded, what="the library loaded")

        # Page 2: on a real unit only the approved file may run; the others say why.
        runnable = [e.result.protocol.id for e in screen.entries if e.runnable]
        assert runnable == [APPROVED]
        assert screen.entries[0].result.protocol.id == APPROVED  # runnable first
        await press(pilot, "down", "ctrl+n")
        await wait_for(pilot, lambda: "cannot run on this device" in problem(screen))
        assert "epm approve" in problem(screen) and screen.page == 1
        summary = str(screen.query_one("#summary").render())
        assert "Cannot run on this device" in summary
        await press(pilot, "up")
        course = str(screen.query_one("#course").render())
        assert "Course for C-0042" in course and "session 1 of 6" in course
        await press(pilot, "enter")
        await wait_for(pilot, lambda: screen.page == 2, what="zones page")

        # Page 3: one zone left out; the serum lot is required on a real unit.
        await press(pilot, "down", "space", "ctrl+n")
        await wait_for(pilot, lambda: "lot number" in problem(screen))
        await press(pilot, "tab", *"LOT-7", "enter")
        await wait_for(pilot, lambda: screen.page == 3, what="checklist page")

        # Page 4: a "yes" to a contraindication blocks, with the reason shown.
        items = [
            i
            for i in build_checklist(screen.selected.result.protocol)
            if i.kind is not ItemKind.NOTE
        ]
        await press(pilot, "y")

        def status() -> str:
            return str(screen.query_one("#checklist-status").render())

        await wait_for(pilot, lambda: "Blocks the session" in status())
        assert "Contraindication present" in status()
        await press(pilot, "ctrl+n")
        await wait_for(pilot, lambda: "does not allow" in problem(screen))
        await press(pilot, "up")
        answers = ["n" if i.kind is ItemKind.CONTRAINDICATION else "y" for i in items]
        await press(pilot, *answers)
        await wait_for(pilot, lambda: "allows the session" in status())
        await press(pilot, "ctrl+n")
        await wait_for(pilot, lambda: screen.page == 4, what="review page")
        assert "Ready." in str(screen.query_one("#review").render())

        await press(pilot, "ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="run screen")
        plan = engine.plan
        assert plan is not None and engine.started.wait(5)
        assert plan.client_code == "C-0042" and plan.practitioner == "Dana Practitioner"
        assert plan.serum_lot == "LOT-7"
        assert plan.zones == ("frontal", "crown")  # midscalp left out
        assert plan.checklist_answers == {
            i.id: i.kind is not ItemKind.CONTRAINDICATION for i in items
        }
        assert plan.load_result.protocol.id == APPROVED
        assert store.get_client("C-0042").code == "C-0042"
