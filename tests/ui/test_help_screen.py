"""The help screen lists every key of every screen, and the command palette's entries run."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.command import CommandList
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static

from controller.records import RecordStore
from controller.ui.commands import EpmCommands
from controller.ui.shared.help import HelpScreen
from controller.ui.shared.help_model import (
    all_sections,
    key_label,
    keys_label,
    screen_sections,
)
from controller.ui.technician.library import LibraryScreen
from controller.ui.technician.records import RecordsScreen
from tests.ui.test_library_harness import FixedClock, TechApp, make_library, open_store, wait_for


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Content) else str(content)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with open_store(tmp_path / "data", FixedClock()) as s:
        yield s


def project_screens() -> list[type[Screen[Any]]]:
    """Every screen class of the UI's packages, found independently of the help model."""
    import importlib
    import pkgutil

    found = []
    for name in ("practitioner", "technician", "shared"):
        package = importlib.import_module(f"controller.ui.{name}")
        for info in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if cls.__module__ == module.__name__ and issubclass(cls, Screen):
                    found.append(cls)
    return found


def test_key_labels() -> None:
    assert key_label("f12") == "F12"
    assert key_label("ctrl+e") == "Ctrl+E"
    assert key_label("escape") == "Esc"
    assert key_label("shift+f8") == "Shift+F8"
    assert key_label("a") == "a"
    assert keys_label("f2,ctrl+s") == "F2 / Ctrl+S"


def test_every_screen_and_every_one_of_its_keys_is_in_the_help() -> None:
    sections = {s.source: s for s in screen_sections()}
    screens = project_screens()
    assert {LibraryScreen, RecordsScreen, HelpScreen} <= set(screens)
    assert len(screens) >= 8  # the practitioner's screens are there too
    for cls in screens:
        source = f"{cls.__module__}.{cls.__qualname__}"
        own = [b for b in Binding.make_bindings(cls.__dict__.get("BINDINGS", [])) if not b.system]
        if not own:
            continue
        assert source in sections, f"{source} has keys but no help section"
        section = sections[source]
        assert section.problem is None
        shown = {(row.action, key) for row in section.rows for key in row.keys.split(" / ")}
        for binding in own:
            assert (binding.action, key_label(binding.key)) in shown, (source, binding)


def test_app_section_comes_first_with_the_emergency_stop_on_top() -> None:
    first = all_sections(TechApp)[0]
    assert first.title.startswith("Everywhere")
    assert first.rows[0].action == "emergency_stop"
    assert first.rows[0].keys == "F12 / Ctrl+E"
    assert "Ctrl+P" in [r.keys for r in first.rows]


async def test_f1_opens_the_help_which_lists_keys_alarms_and_the_simulator_marker(
    store: RecordStore, tmp_path: Path
) -> None:
    app = TechApp(store, make_library(tmp_path / "lib"), start=lambda a: RecordsScreen(store))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RecordsScreen))
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        help_screen = app.screen
        estop = text_of(help_screen.query_one("#help-estop", Static))
        assert estop.startswith("EMERGENCY STOP: F12 / Ctrl+E")
        body = "\n".join(text_of(w) for w in help_screen.query("#help-body Static"))
        assert "HIGH" in body and "red, flashing 2 Hz: respond immediately" in body
        assert "yellow, flashing 0.6 Hz: respond promptly" in body
        assert "cyan, steady: be aware" in body
        assert "SIMULATOR — not a treatment" in body and "SIM-" in body
        assert "Protocol library\n  e " in body and "Protocol editor" in body
        assert "Session records" in body and "Session record\n" in body
        # The emergency stop still works on the help screen; Esc closes it.
        await pilot.press("f12")
        await wait_for(pilot, lambda: app.estops == 1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RecordsScreen))


async def test_palette_entries_exist_and_run(store: RecordStore, tmp_path: Path) -> None:
    library = make_library(tmp_path / "lib")
    app = TechApp(store, library, start=lambda a: RecordsScreen(store))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RecordsScreen))
        provider = EpmCommands(app.screen)
        commands = {c.name: c for c in provider.commands()}
        assert list(commands) == [
            "New session",
            "Protocol library",
            "Session records",
            "Device",
            "Help",
            "Emergency stop",
            "Toggle theme",
            "Verify records",
            "Reload library",
        ]
        commands["Emergency stop"].run()
        assert app.estops == 1
        commands["New session"].run()
        assert app.new_sessions == 1
        theme = app.theme
        commands["Toggle theme"].run()
        assert app.theme != theme and app.theme.startswith("epm-")
        commands["Verify records"].run()
        await wait_for(pilot, lambda: any("event log intact" in n for n in app.notices))
        commands["Protocol library"].run()
        await wait_for(pilot, lambda: isinstance(app.screen, LibraryScreen))
        library_screen = app.screen
        await wait_for(pilot, lambda: library_screen.loads >= 1)
        loads = library_screen.loads
        commands["Reload library"].run()
        await wait_for(pilot, lambda: library_screen.loads == loads + 1)
        assert app.screen is library_screen
        commands["Help"].run()
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await wait_for(pilot, lambda: app.screen.query("#help-estop"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is library_screen)

        # Typing a few letters in the palette finds an entry; Enter runs it.
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "CommandPalette")
        await pilot.press(*"rec")
        hits = app.screen.query_one(CommandList)

        def first_hit() -> str:
            if hits.option_count == 0:
                return ""
            return str(hits.get_option_at_index(0).prompt)

        await wait_for(pilot, lambda: "Session records" in first_hit())
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, RecordsScreen) and app.screen.loads)
