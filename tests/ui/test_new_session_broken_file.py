"""One broken protocol file never hides the others: the new-session wizard lists a file that
cannot be read (an impossible date, a folder, a dangling link) as an invalid file with its first
problem, and a session still starts with a valid protocol of the same folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from controller.records import RecordStore
from controller.session.model import Phase
from controller.ui.app import EpmApp
from controller.ui.practitioner.new_session import NewSessionScreen, read_library
from controller.ui.practitioner.run import RunScreen
from protocols import ItemKind, build_checklist
from tests.ui.conftest import TODAY, FakeEngine, FixedDevice, press, snapshot, wait_for

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"


def broken_library(folder: Path) -> Path:
    """A valid protocol, an impossible date, a folder and a dangling link, all ``*.yaml``."""
    folder.mkdir()
    shutil.copy(DATA / "library-broken" / "good.yaml", folder / "good.yaml")
    shutil.copy(DATA / "library-broken" / "leap-day.yaml", folder / "leap-day.yaml")
    (folder / "folder.yaml").mkdir()
    (folder / "dangling.yaml").symlink_to(folder / "gone.yaml")
    return folder


def test_read_library_lists_every_file_and_the_valid_one_first(
    tmp_path: Path, store: RecordStore
) -> None:
    folder = broken_library(tmp_path / "library")
    entries, error = read_library(folder, True, store, "scalp_roller")
    assert error == ""
    assert [e.runnable for e in entries] == [True, False, False, False]
    assert entries[0].result.protocol.id == "aga-early-scalp"
    labels = {e.result.path.name: e.label for e in entries[1:]}
    assert labels["leap-day.yaml"] == "leap-day.yaml (invalid file)"
    assert labels["folder.yaml"] == "folder.yaml (invalid file)"
    details = {e.result.path.name: e.detail for e in entries}
    assert details["leap-day.yaml"] == (
        "line 9: 2026-02-29 is not a date: February 2026 has 28 days"
    )
    assert "is a folder" in details["folder.yaml"]
    assert "gone.yaml" in details["dangling.yaml"]
    assert details["good.yaml"] == ""


def test_read_library_survives_an_unexpected_failure(
    tmp_path: Path, store: RecordStore, monkeypatch: Any
) -> None:
    from controller.ui.practitioner import new_session

    def broken(folder: Path) -> list[Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(new_session, "load_library", broken)
    entries, error = read_library(tmp_path, True, store, "")
    assert entries == []
    assert "cannot be read" in error and "RuntimeError" in error


async def test_a_session_starts_beside_a_broken_file(tmp_path: Path, store: RecordStore) -> None:
    folder = broken_library(tmp_path / "library")
    engine = FakeEngine(snapshot(Phase.PREFLIGHT))

    def factory(dev: Any, st: RecordStore, plan: Any) -> Any:
        engine.plan = plan
        if engine.device is None:
            engine.device = dev
        return engine

    app = EpmApp(
        store=store,
        device=FixedDevice(),  # the simulator: the draft/approval rules do not get in the way
        library_path=folder,
        practitioner="Dana Practitioner",
        engine_factory=factory,
        today=lambda: TODAY,
        animate_alarms=False,
    )
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="device connected")
        await press(pilot, "n")
        await wait_for(pilot, lambda: isinstance(app.screen, NewSessionScreen), what="wizard")
        screen: Any = app.screen
        await press(pilot, *"C-0042", "enter")
        await wait_for(pilot, lambda: screen.page == 1, what="protocol page")
        await wait_for(pilot, lambda: screen.library_loaded, what="the library loaded")

        # Every file is listed; the broken ones say so, with their first problem.
        options = screen.query_one("#protocols")
        prompts = [str(options.get_option_at_index(n).prompt) for n in range(options.option_count)]
        assert len(prompts) == 4
        assert prompts[0].startswith("Early androgenetic alopecia, scalp (v3)")
        (leap,) = [p for p in prompts if p.startswith("leap-day.yaml (invalid file)")]
        assert "2026-02-29 is not a date: February 2026 has 28 days" in leap
        assert "Loading the protocol library" not in str(screen.query_one("#course").render())

        # The broken file's summary shows its problem; it cannot be chosen.
        index = next(n for n, p in enumerate(prompts) if p.startswith("leap-day.yaml"))
        await press(pilot, *(["down"] * index))

        def summary() -> str:
            return str(screen.query_one("#summary").render())

        await wait_for(pilot, lambda: "leap-day.yaml: not a valid protocol file" in summary())
        assert "line 9: 2026-02-29 is not a date" in summary()
        await press(pilot, "ctrl+n")
        assert screen.page == 1

        # The valid protocol is chosen and the session starts.
        await press(pilot, *(["up"] * index), "enter")
        await wait_for(pilot, lambda: screen.page == 2, what="zones page")
        await press(pilot, "ctrl+n")
        await wait_for(pilot, lambda: screen.page == 3, what="checklist page")
        items = [
            i
            for i in build_checklist(screen.selected.result.protocol)
            if i.kind is not ItemKind.NOTE
        ]
        answers = ["n" if i.kind is ItemKind.CONTRAINDICATION else "y" for i in items]
        await press(pilot, *answers)
        await press(pilot, "ctrl+n")
        await wait_for(pilot, lambda: screen.page == 4, what="review page")
        await press(pilot, "ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, RunScreen), what="run screen")
        assert engine.plan is not None and engine.started.wait(5)
        assert engine.plan.load_result.protocol.id == "aga-early-scalp"
        assert engine.plan.client_code == "C-0042"
