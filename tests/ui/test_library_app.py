"""The technician screens inside the real app, built by ``create_app`` as ``epm`` builds it."""

from __future__ import annotations

from pathlib import Path

from textual.content import Content
from textual.widgets import Static

from controller.ui.app import create_app
from controller.ui.commands import EpmCommands
from controller.ui.shared.help import HelpScreen
from controller.ui.shared.sim_banner import SimBanner
from controller.ui.technician.library import LibraryScreen
from controller.ui.technician.records import RecordsScreen
from tests.ui.test_library_harness import make_library, wait_for


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Content) else str(content)


async def test_library_records_help_and_palette_in_the_real_app(tmp_path: Path) -> None:
    library = make_library(tmp_path / "lib")
    app = create_app(data_dir=tmp_path / "data", library=library, connect_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("l")
        await wait_for(pilot, lambda: isinstance(app.screen, LibraryScreen) and app.screen.loads)
        screen = app.screen
        assert [e.name for e in screen.entries] == [
            "aga-base.yaml",
            "bad-amplitude.yaml",
            "high-amplitude.yaml",
        ]
        # The built-in simulator: the SIMULATOR marker is on the technician's screen too.
        await wait_for(pilot, lambda: screen.query(SimBanner))
        assert screen.query_one(SimBanner).display
        # The app's emergency stop works here (no session: it says there is nothing to stop).
        await pilot.press("f12")
        await wait_for(pilot, lambda: app.estops_requested == 1)

        await pilot.press("f1")
        await wait_for(
            pilot, lambda: isinstance(app.screen, HelpScreen) and app.screen.query("#help-estop")
        )
        estop = text_of(app.screen.query_one("#help-estop", Static))
        assert estop.startswith("EMERGENCY STOP: F12 / Ctrl+E")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is screen)

        commands = {c.name: c for c in EpmCommands(app.screen).commands()}
        commands["Session records"].run()
        await wait_for(pilot, lambda: isinstance(app.screen, RecordsScreen) and app.screen.loads)
        assert app.screen.store is app.store
        assert app.screen.rows == []

        from controller.ui.practitioner.device import DeviceScreen

        commands["Device"].run()
        await wait_for(
            pilot, lambda: isinstance(app.screen, DeviceScreen) and app.screen.query("Footer")
        )
