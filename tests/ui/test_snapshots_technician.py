"""Snapshots of the technician screens at 80×24 and 120×40 (regenerate with --snapshot-update).

Deterministic: the records' clock is fixed and local time is UTC, the library is given by a
relative path (the heading shows it), the text cursor does not blink, animations are off.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from controller.records import RecordStore
from controller.ui.technician.editor import EditorScreen
from controller.ui.technician.library import LibraryScreen
from controller.ui.technician.record_detail import RecordDetailScreen
from controller.ui.technician.records import RecordsScreen
from controller.ui.technician.yaml_text_area import YamlTextArea
from tests.ui.test_library_harness import (
    FixedClock,
    TechApp,
    make_library,
    open_store,
    seed_sessions,
    wait_for,
)

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RecordStore, dict[str, int]]]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    make_library(Path("lib"))
    clock = FixedClock()
    with open_store(tmp_path / "data", clock) as store:
        yield store, seed_sessions(store, clock)
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


async def _loaded(pilot: Pilot[Any]) -> None:
    """Wait until the screen has loaded what it shows (the library loads in the background)."""
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "loads", 0) >= 1)


async def _settle(pilot: Pilot[Any]) -> None:
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_library(
    snap_compare: Any, env: tuple[RecordStore, dict[str, int]], size: tuple[int, int]
) -> None:
    store, _ = env
    app = TechApp(store, Path("lib"), start=lambda a: LibraryScreen(Path("lib"), store))
    # The second file (invalid) is selected, so its problem shows at its line.
    assert snap_compare(app, press=["down"], terminal_size=size, run_before=_loaded)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_records(
    snap_compare: Any, env: tuple[RecordStore, dict[str, int]], size: tuple[int, int]
) -> None:
    store, _ = env
    app = TechApp(store, Path("lib"), start=lambda a: RecordsScreen(store))
    assert snap_compare(app, terminal_size=size, run_before=_loaded)


def test_editor_with_a_problem(snap_compare: Any, env: tuple[RecordStore, dict[str, int]]) -> None:
    store, _ = env
    path = Path("lib") / "bad-amplitude.yaml"
    app = TechApp(store, Path("lib"), start=lambda a: EditorScreen(path, store=store))

    async def go_to_problem(pilot: Pilot[Any]) -> None:
        await wait_for(pilot, lambda: getattr(pilot.app.screen, "validations", 0) >= 1)
        pilot.app.screen.query_one(YamlTextArea).cursor_blink = False
        await pilot.press("f8")

    assert snap_compare(app, terminal_size=(80, 24), run_before=go_to_problem)


def test_record_detail_telemetry(
    snap_compare: Any, env: tuple[RecordStore, dict[str, int]]
) -> None:
    store, ids = env
    app = TechApp(store, Path("lib"), start=lambda a: RecordDetailScreen(store, ids["completed"]))
    assert snap_compare(app, press=["4"], terminal_size=(80, 24), run_before=_settle)
