"""The protocol library screen: validity, problems at their lines, reload on change, approve."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.content import Content
from textual.widgets import DataTable, Input, Static

from controller.records import RecordStore
from controller.ui.technician.choice_dialog import ChoiceDialog
from controller.ui.technician.editor import EditorScreen
from controller.ui.technician.library import LibraryScreen
from controller.ui.technician.prompt_dialog import PromptDialog
from controller.ui.technician.yaml_problems import ProblemList
from controller.ui.technician.yaml_text_area import YamlTextArea
from protocols import load_protocol
from tests.ui.test_library_harness import FixedClock, TechApp, make_library, open_store, wait_for


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Content) else str(content)


def cell_text(value: Any) -> str:
    return getattr(value, "plain", str(value))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with open_store(tmp_path / "data", FixedClock()) as s:
        yield s


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "lib")


def library_app(store: RecordStore, library: Path) -> TechApp:
    # Poll the folder every 0.1 s instead of 1 s: the same code, a faster test.
    return TechApp(store, library, start=lambda app: LibraryScreen(library, store, poll_s=0.1))


async def open_library(pilot: Any) -> LibraryScreen:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, LibraryScreen))
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.loads >= 1)
    return screen


def rows(screen: LibraryScreen) -> dict[str, list[str]]:
    table = screen.query_one("#library-table", DataTable)
    out = {}
    for i in range(table.row_count):
        cells = [cell_text(c) for c in table.get_row_at(i)]
        out[cells[0]] = cells
    return out


async def select(pilot: Any, screen: LibraryScreen, name: str) -> None:
    table = screen.query_one("#library-table", DataTable)
    names = [e.name for e in screen.entries]
    table.move_cursor(row=names.index(name))
    await wait_for(pilot, lambda: screen.selected is not None and screen.selected.name == name)


async def test_lists_files_with_validity_identity_and_problems_at_their_lines(
    store: RecordStore, library: Path
) -> None:
    app = library_app(store, library)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_library(pilot)
        shown = rows(screen)
        assert list(shown) == ["aga-base.yaml", "bad-amplitude.yaml", "high-amplitude.yaml"]
        # File, Validity, Ver, Status, Approved, ID, Title
        assert shown["aga-base.yaml"] == [
            "aga-base.yaml",
            "valid",
            "3",
            "approved",
            "no",
            "aga-base",
            "Early androgenetic alopecia, scalp",
        ]
        assert shown["bad-amplitude.yaml"][1] == "1 error"
        assert shown["high-amplitude.yaml"][1] == "valid, 1 warning"
        assert "3 file(s), 1 invalid" in text_of(screen.query_one("#library-heading", Static))

        problems = screen.query_one("#library-problems", ProblemList)
        assert problems.lines() == ["No problems: aga-base.yaml is valid."]
        await select(pilot, screen, "bad-amplitude.yaml")
        await wait_for(pilot, lambda: problems.lines()[0].startswith("error"))
        (line,) = problems.lines()
        assert line.startswith("error   bad-amplitude.yaml:50:5: steps → step 4")
        assert "amplitude_v: 70 V is above amplitude_max_v (60 V)" in line
        assert "invalid: it cannot run or be approved" in text_of(
            screen.query_one("#library-detail", Static)
        )
        await select(pilot, screen, "high-amplitude.yaml")
        await wait_for(pilot, lambda: problems.lines()[0].startswith("warning"))
        assert problems.lines()[0].startswith("warning high-amplitude.yaml:51:5:")
        assert "soft limit" in problems.lines()[0]

        loads = screen.loads
        await pilot.press("r")
        await wait_for(pilot, lambda: screen.loads == loads + 1)
        assert "Reloaded 3 file(s)" in text_of(screen.query_one("#library-status", Static))

        # The emergency stop works here and with a dialog open.
        await pilot.press("f12")
        await wait_for(pilot, lambda: app.estops == 1)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog))
        await pilot.press("ctrl+e")
        await wait_for(pilot, lambda: app.estops == 2)
        assert isinstance(app.screen, PromptDialog)


async def test_reloads_when_a_file_changes_on_disk(store: RecordStore, library: Path) -> None:
    async with library_app(store, library).run_test(size=(80, 24)) as pilot:
        screen = await open_library(pilot)
        loads = screen.loads
        good = library / "aga-base.yaml"
        good.write_text(good.read_text().replace("amplitude_v: 40", "amplitude_v: 400", 1))
        await wait_for(pilot, lambda: screen.loads > loads)
        await wait_for(pilot, lambda: rows(screen)["aga-base.yaml"][1].endswith("error"))
        # A new file appears without pressing anything.
        (library / "zz-new.yaml").write_text(good.read_text().replace("id: aga-base", "id: zz-new"))
        await wait_for(pilot, lambda: "zz-new.yaml" in rows(screen))
        # Nothing changed: polling does not load the folder again.
        loads = screen.loads
        screen.poll()
        assert screen.loads == loads


async def test_approve_records_an_approval_for_the_exact_file(
    store: RecordStore, library: Path
) -> None:
    async with library_app(store, library).run_test(size=(80, 24)) as pilot:
        screen = await open_library(pilot)
        # Cancelling records nothing.
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PromptDialog))
        pilot.app.screen.query_one(Input).value = "Someone"
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        assert store.is_approved(str(load_protocol(library / "aga-base.yaml").sha256)) is None
        assert "cancelled" in text_of(screen.query_one("#library-status", Static))

        await select(pilot, screen, "high-amplitude.yaml")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PromptDialog))
        dialog = pilot.app.screen
        details = " ".join(text_of(w) for w in dialog.query(".tech-dialog-details Static"))
        assert "1 warning(s)" in details and "soft limit" in details
        # An empty name is refused in the dialog, which stays open.
        await pilot.press("enter")
        error = dialog.query_one("#prompt-error", Static)
        await wait_for(pilot, lambda: "approver's full name" in text_of(error))
        assert pilot.app.screen is dialog
        dialog.query_one(Input).value = "Dana Lead"
        await pilot.press("enter")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        sha = load_protocol(library / "high-amplitude.yaml").sha256
        assert sha is not None
        approval = store.is_approved(sha)
        assert approval is not None and approval.approved_by == "Dana Lead"
        await wait_for(pilot, lambda: rows(screen)["high-amplitude.yaml"][4] == "yes")
        assert "approved by Dana Lead" in text_of(screen.query_one("#library-status", Static))
        assert "(this exact file)" in text_of(screen.query_one("#library-detail", Static))


async def test_approve_refuses_invalid_and_draft_files_with_the_reason(
    store: RecordStore, library: Path
) -> None:
    from controller.ui.technician.protocol_template import template_text

    (library / "aga-draft.yaml").write_text(template_text("aga-draft"))
    async with library_app(store, library).run_test(size=(80, 24)) as pilot:
        screen = await open_library(pilot)
        await select(pilot, screen, "bad-amplitude.yaml")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChoiceDialog))
        message = " ".join(text_of(w) for w in pilot.app.screen.query(Static))
        assert "bad-amplitude.yaml was not approved" in message
        assert "only a valid protocol file can be approved" in message
        assert "bad-amplitude.yaml:50:5" in message
        await pilot.press("enter")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        assert store.is_approved(str(load_protocol(library / "bad-amplitude.yaml").sha256)) is None
        assert "was not approved" in text_of(screen.query_one("#library-status", Static))

        await select(pilot, screen, "aga-draft.yaml")
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChoiceDialog))
        assert "`status: draft`" in " ".join(text_of(w) for w in pilot.app.screen.query(Static))
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        assert store.is_approved(str(load_protocol(library / "aga-draft.yaml").sha256)) is None


async def test_approval_refused_when_the_file_changes_while_the_dialog_is_open(
    store: RecordStore, library: Path
) -> None:
    async with library_app(store, library).run_test(size=(80, 24)) as pilot:
        screen = await open_library(pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PromptDialog))
        path = library / "aga-base.yaml"
        before = load_protocol(path).sha256
        path.write_text(path.read_text() + "# edited meanwhile\n")
        pilot.app.screen.query_one(Input).value = "Dana"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChoiceDialog))
        assert "changed on disk" in " ".join(text_of(w) for w in pilot.app.screen.query(Static))
        assert before is not None and store.is_approved(before) is None
        assert store.is_approved(str(load_protocol(path).sha256)) is None
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen)


async def test_new_from_template_and_opening_the_editor(store: RecordStore, library: Path) -> None:
    async with library_app(store, library).run_test(size=(80, 24)) as pilot:
        screen = await open_library(pilot)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PromptDialog))
        dialog = pilot.app.screen
        # An existing name is refused with the reason; the dialog stays.
        dialog.query_one(Input).value = "aga-base"
        await pilot.press("enter")
        error = dialog.query_one("#prompt-error", Static)
        await wait_for(pilot, lambda: "already exists" in text_of(error))
        dialog.query_one(Input).value = "aga-trial"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, EditorScreen))
        created = library / "aga-trial.yaml"
        result = load_protocol(created)
        assert result.ok and result.protocol is not None and result.protocol.id == "aga-trial"
        assert pilot.app.screen.path == created
        await wait_for(pilot, lambda: pilot.app.screen.validations >= 1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        await wait_for(pilot, lambda: "aga-trial.yaml" in rows(screen))
        assert rows(screen)["aga-trial.yaml"][3] == "draft"

        # e opens the selected file; Enter on a problem opens it at the problem's line.
        await select(pilot, screen, "aga-base.yaml")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, EditorScreen))
        editor = pilot.app.screen
        assert editor.path == library / "aga-base.yaml"
        await wait_for(pilot, lambda: editor.validations >= 1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        await select(pilot, screen, "bad-amplitude.yaml")
        screen.query_one("#library-problems", ProblemList).focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, EditorScreen))
        editor = pilot.app.screen
        await wait_for(pilot, lambda: editor.validations >= 1)
        assert editor.query_one(YamlTextArea).cursor_location == (49, 4)


async def test_missing_library_folder_is_explained(store: RecordStore, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    app = TechApp(store, missing, start=lambda a: LibraryScreen(missing, store))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_library(pilot)
        heading = text_of(screen.query_one("#library-heading", Static))
        assert "does not exist" in heading and "--library" in heading
        assert screen.check_action("edit", ()) is None
        assert screen.check_action("approve", ()) is None
        assert screen.check_action("new", ()) is True
