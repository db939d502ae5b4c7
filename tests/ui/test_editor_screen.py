"""The protocol editor: live validation as one types, problem lines, saves, leaving, approving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.content import Content
from textual.widgets import Input, Label, Static

from controller.records import RecordStore
from controller.ui.technician.choice_dialog import ChoiceDialog
from controller.ui.technician.editor import EditorScreen
from controller.ui.technician.prompt_dialog import PromptDialog
from controller.ui.technician.yaml_problems import ProblemList
from controller.ui.technician.yaml_text_area import YamlTextArea
from protocols import load_protocol
from tests.ui.test_library_harness import FixedClock, TechApp, make_library, open_store, wait_for

#: base.yaml: line 26 is the first delivery step's ``    amplitude_v: 40``.
AMPLITUDE_LINE = 26


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Content) else str(content)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with open_store(tmp_path / "data", FixedClock()) as s:
        yield s


@pytest.fixture
def library(tmp_path: Path) -> Path:
    return make_library(tmp_path / "lib")


def editor_app(store: RecordStore, path: Path) -> TechApp:
    return TechApp(store, path.parent, start=lambda app: EditorScreen(path, store=store))


async def open_editor(pilot: Any) -> EditorScreen:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, EditorScreen))
    editor = pilot.app.screen
    await wait_for(pilot, lambda: editor.validations >= 1)
    return editor


async def test_typing_an_error_shows_it_at_its_line_and_column(
    store: RecordStore, library: Path
) -> None:
    path = library / "aga-base.yaml"
    async with editor_app(store, path).run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot)
        problems = editor.query_one(ProblemList)
        assert problems.lines() == ["No problems: the file is valid."]
        area = editor.query_one(YamlTextArea)
        area.move_cursor((AMPLITUDE_LINE - 1, 0))
        await pilot.press("end", "0", "0")
        # Both keys checked (a busy machine may show the check after the first one: 400 V).
        await wait_for(pilot, lambda: any("4000 V" in line for line in problems.lines()))
        (line,) = problems.lines()
        assert line == (
            f"error   aga-base.yaml:{AMPLITUDE_LINE}:5: steps → step 2 (delivery, frontal) → "
            "amplitude_v: 4000 V is above the maximum of 120 V"
        )
        heading = text_of(editor.query_one("#editor-heading", Label))
        assert "INVALID: 1 error" in heading and "modified" in heading
        assert area.marked_lines == {AMPLITUDE_LINE: True}
        cursor_problem = text_of(editor.query_one("#editor-cursor-problem", Static))
        assert cursor_problem.startswith(f"error at {AMPLITUDE_LINE}:5: ")
        # Nothing was written while typing.
        assert "amplitude_v: 4000" not in path.read_text()
        await pilot.press("backspace", "backspace")
        await wait_for(pilot, lambda: not editor.result.problems)
        assert area.marked_lines == {}
        assert problems.lines() == ["No problems: the file is valid."]

        # A YAML syntax error is located too.
        area.move_cursor((3, 0))
        await pilot.press("end", "space", "[")
        await wait_for(pilot, lambda: editor.result.errors)
        first = editor.result.errors[0]
        assert first.line >= 4
        assert problems.lines()[0].startswith(f"error   aga-base.yaml:{first.line}:")


async def test_save_writes_the_file_keeps_a_backup_and_says_it_is_invalid(
    store: RecordStore, library: Path
) -> None:
    path = library / "aga-base.yaml"
    original = path.read_text()
    async with editor_app(store, path).run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot)
        area = editor.query_one(YamlTextArea)
        area.move_cursor((AMPLITUDE_LINE - 1, 0))
        await pilot.press("end", "0", "0", "f2")
        await wait_for(pilot, lambda: not editor.dirty)
        assert "amplitude_v: 4000" in path.read_text()
        assert (library / "aga-base.yaml.bak").read_text() == original
        status = text_of(editor.query_one("#editor-status", Static))
        assert "Saved aga-base.yaml (previous version in aga-base.yaml.bak)" in status
        assert "INVALID: 1 error" in status and "cannot run or be approved" in status
        # ctrl+s saves too.
        await pilot.press("backspace", "backspace", "ctrl+s")
        await wait_for(pilot, lambda: not editor.dirty)
        assert path.read_text() == original
        assert "— valid." in text_of(editor.query_one("#editor-status", Static))


async def test_leaving_with_unsaved_changes_asks_first(store: RecordStore, library: Path) -> None:
    path = library / "aga-base.yaml"
    original = path.read_text()
    app = editor_app(store, path)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot)
        editor.query_one(YamlTextArea).move_cursor((0, 0))
        await pilot.press("x", "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        await pilot.press("3")  # keep editing
        await wait_for(pilot, lambda: app.screen is editor)
        assert editor.dirty
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        await pilot.press("2")  # leave without saving
        await wait_for(pilot, lambda: not editor.is_attached)
        assert path.read_text() == original

        # Without changes, leaving does not ask.
        editor = EditorScreen(path, store=store)
        app.push_screen(editor)
        await wait_for(pilot, lambda: editor.validations >= 1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: not editor.is_attached)
        assert not (library / "aga-base.yaml.bak").exists()

        # Save and leave.
        editor = EditorScreen(path, store=store)
        app.push_screen(editor)
        await wait_for(pilot, lambda: editor.validations >= 1)
        editor.query_one(YamlTextArea).move_cursor((0, 0))
        await pilot.press("#", "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        await pilot.press("enter")  # the first choice: save and leave
        await wait_for(pilot, lambda: not editor.is_attached)
        assert path.read_text() == "#" + original


async def test_problems_can_be_visited_with_f8_and_from_the_list(
    store: RecordStore, library: Path
) -> None:
    path = library / "bad-amplitude.yaml"
    text = path.read_text().replace("amplitude_v: 40", "amplitude_v: 400", 1)
    path.write_text(text)
    async with editor_app(store, path).run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot)
        area = editor.query_one(YamlTextArea)
        lines = sorted((p.line, p.column) for p in editor.result.errors)
        assert len(lines) == 2
        await pilot.press("f8")
        await wait_for(pilot, lambda: area.cursor_location == (lines[0][0] - 1, lines[0][1] - 1))
        await pilot.press("f8")
        await wait_for(pilot, lambda: area.cursor_location == (lines[1][0] - 1, lines[1][1] - 1))
        await pilot.press("f8")  # wraps round to the first
        await wait_for(pilot, lambda: area.cursor_location == (lines[0][0] - 1, lines[0][1] - 1))
        await pilot.press("shift+f8")
        await wait_for(pilot, lambda: area.cursor_location == (lines[1][0] - 1, lines[1][1] - 1))
        # Choosing a problem in the list puts the cursor on it.
        area.move_cursor((0, 0))
        problems = editor.query_one(ProblemList)
        problems.focus()
        problems.highlighted = 0
        await pilot.press("enter")
        first = editor.result.problems[0]
        await wait_for(pilot, lambda: area.cursor_location == (first.line - 1, first.column - 1))
        assert area.has_focus


async def test_a_file_changed_on_disk_is_not_overwritten_without_asking(
    store: RecordStore, library: Path
) -> None:
    path = library / "aga-base.yaml"
    app = editor_app(store, path)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot)
        path.write_text(path.read_text() + "# someone else's change\n")
        theirs = path.read_text()
        editor.query_one(YamlTextArea).move_cursor((0, 0))
        await pilot.press("#", "f2")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        await pilot.press("2")  # do not save
        await wait_for(pilot, lambda: app.screen is editor)
        assert path.read_text() == theirs and editor.dirty
        assert "Not saved" in text_of(editor.query_one("#editor-status", Static))
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        await pilot.press("1")  # save mine anyway
        await wait_for(pilot, lambda: not editor.dirty)
        assert path.read_text().startswith("##")
        assert (library / "aga-base.yaml.bak").read_text() == theirs


async def test_approve_from_the_editor_saves_first_and_refuses_an_invalid_file(
    store: RecordStore, library: Path
) -> None:
    path = library / "high-amplitude.yaml"
    app = editor_app(store, path)
    async with app.run_test(size=(80, 24)) as pilot:
        editor = await open_editor(pilot)
        editor.query_one(YamlTextArea).move_cursor((0, 0))
        await pilot.press("#", "f3")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog))
        assert path.read_text().startswith("##")  # saved before the approval was asked
        app.screen.query_one(Input).value = "Dana Lead"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is editor)
        approval = store.is_approved(str(load_protocol(path).sha256))
        assert approval is not None and approval.approved_by == "Dana Lead"
        assert "approved by Dana Lead" in text_of(editor.query_one("#editor-status", Static))

        # An invalid file is refused, with the reason.
        bad = library / "bad-amplitude.yaml"
        editor = EditorScreen(bad, store=store)
        app.push_screen(editor)
        await wait_for(pilot, lambda: editor.validations >= 1)
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, ChoiceDialog))
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is editor)
        assert store.is_approved(str(load_protocol(bad).sha256)) is None
        assert "was not approved" in text_of(editor.query_one("#editor-status", Static))
