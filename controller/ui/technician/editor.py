"""The protocol editor: YAML text with live validation, problems at their lines, safe saves.

Why: a technician writing a protocol should see every mistake as it is made, at its line, in
the words ``epm validate`` uses — not after a save and a separate command. The text is checked
300 ms after the last key (``protocols.load_protocol_text``, the very checks a session runs, in
a background thread so typing and the emergency-stop key never wait for it);
the problems are listed below the text (Enter on one puts the cursor there, F8 goes to the
next) and their lines are marked in the text. Saving never refuses (a draft with errors may be
kept) but says plainly when the saved file is invalid; it is atomic and keeps the previous
content as ``NAME.bak``. Leaving with unsaved changes asks first, and a file changed on disk by
someone else since it was opened is not overwritten without asking. Approving from here saves
first, so the bytes approved are the bytes on screen.

Keys: Ctrl+S or F2 save (terminals with XON/XOFF flow control swallow Ctrl+S, hence F2), F3
approve, F8 / Shift+F8 next / previous problem, Tab to the problem list, Escape leave.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Label, Static, TextArea

from controller.records import RecordStore
from controller.ui.technician.approval import start_approval
from controller.ui.technician.background import Failed, run_in_background
from controller.ui.technician.choice_dialog import ChoiceDialog
from controller.ui.technician.file_save import backup_path, file_digest, save_atomic
from controller.ui.technician.yaml_problems import ProblemList, summary
from controller.ui.technician.yaml_text_area import YamlTextArea
from protocols import LoadResult, Problem, load_protocol_text

#: Seconds after the last change before the text is checked again.
DEBOUNCE_S = 0.3


def validity_words(result: LoadResult) -> str:
    """``valid``, ``valid, 1 warning`` or ``INVALID: 2 errors, 1 warning``."""
    if result.errors:
        return f"INVALID: {summary(result.problems)}"
    if result.warnings:
        return f"valid, {summary(result.problems)}"
    return "valid"


class EditorScreen(Screen[None]):
    """Edit the protocol file at ``path``. ``goto`` is a 1-based (line, column) to start at."""

    CSS_PATH = "technician.tcss"
    HELP_TITLE = "Protocol editor"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", show=False),
        Binding("f2", "save", "Save", key_display="F2"),
        Binding("f3", "approve", "Approve", key_display="F3"),
        Binding("f8", "next_problem", "Problem", key_display="F8"),
        Binding("shift+f8", "previous_problem", "Prev. problem", show=False),
        Binding("escape", "leave", "Back"),
    ]

    def __init__(
        self,
        path: Path,
        *,
        store: RecordStore | None = None,
        goto: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(classes="tech-screen")
        self.path = Path(path)
        self._store = store
        self._goto = goto
        self._saved_text = ""
        self._disk_sha: str | None = None
        self._debounce: Timer | None = None
        self._load_problem: str | None = None
        #: Incremented on every change of the text, so a late check of older text is dropped.
        self._text_version = 0
        self.result: LoadResult = load_protocol_text("", self.path.name)
        #: How many times the text was checked (tests wait on it).
        self.validations = 0

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        text, self._load_problem = self._read()
        self._saved_text = text
        yield Header()
        yield Label("", id="editor-heading", classes="tech-heading")
        yield YamlTextArea(text, id="editor-text")
        yield Static("", id="editor-cursor-problem", markup=False)
        yield ProblemList(id="editor-problems", empty_text="No problems: the file is valid.")
        yield Static("", id="editor-status", classes="tech-status", markup=False)
        yield Footer()

    def _read(self) -> tuple[str, str | None]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return "", f"{self.path} does not exist yet: it is created when you save (F2)"
        except OSError as exc:
            return "", f"{self.path} cannot be read ({exc.strerror or exc}): check permissions"
        self._disk_sha = file_digest(self.path)
        try:
            return raw.decode("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8"), None
        except UnicodeDecodeError:
            return raw.decode("utf-8", errors="replace"), (
                f"{self.path.name} is not UTF-8 text: unreadable bytes are shown as \ufffd and "
                "saving writes UTF-8"
            )

    def on_mount(self) -> None:
        self.title = f"Edit {self.path.name}"
        if self._load_problem:
            self._status(self._load_problem, ok=False)
        self._saved_text = self.text
        self._heading(checking=True)
        self._check_in_background()
        area = self.query_one(YamlTextArea)
        if self._goto is not None:
            line, column = self._goto
            area.move_cursor((max(line - 1, 0), max(column - 1, 0)), center=True)
        area.focus()

    # -- properties --------------------------------------------------------------------------

    @property
    def text(self) -> str:
        return self.query_one(YamlTextArea).text

    @property
    def dirty(self) -> bool:
        """True when the text differs from what was last loaded or saved."""
        return self.text != self._saved_text

    @property
    def store(self) -> RecordStore | None:
        if self._store is not None:
            return self._store
        store = getattr(self.app, "store", None)
        return store if isinstance(store, RecordStore) else None

    # -- live validation ----------------------------------------------------------------------

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        event.stop()
        self._text_version += 1
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(DEBOUNCE_S, self._check_in_background)
        self._heading(checking=True)

    def _check_in_background(self) -> None:
        """Check the text as it is now in a background thread (a long protocol takes a few
        hundred milliseconds, which must not hold up the keyboard); a result for text that has
        changed since is dropped."""
        self._debounce = None
        version, text, name = self._text_version, self.text, self.path.name

        def checked(outcome: LoadResult | Failed) -> None:
            if not self.is_attached or version != self._text_version:
                return
            if isinstance(outcome, Failed):
                self._status(f"The text could not be checked: {outcome.message}", ok=False)
                return
            self._show_result(outcome)

        run_in_background(
            self.app, "epm-ui-protocol-check", lambda: load_protocol_text(text, name), checked
        )

    def validate_now(self) -> LoadResult:
        """Check the text now, on this thread (after a save, whose message needs the result)."""
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        result = load_protocol_text(self.text, self.path.name)
        self._show_result(result)
        return result

    def _show_result(self, result: LoadResult) -> None:
        self.result = result
        self.validations += 1
        self.query_one(ProblemList).show(result.problems, label=self.path.name)
        self.query_one(YamlTextArea).mark_problems(result.problems)
        self._heading(checking=False)
        self._show_cursor_problem()

    def _heading(self, *, checking: bool) -> None:
        if self.result.errors:
            style = "bold $text-error"
        else:
            style = "$text-warning" if self.result.warnings else "$text-success"
        parts: list[str | tuple[str, str]] = [
            f"{self.path.name} — ",
            ("checking…" if checking else validity_words(self.result), style),
        ]
        if self.dirty:
            parts.append((" — modified (F2 saves)", "bold"))
        self.query_one("#editor-heading", Label).update(Content.assemble(*parts))

    def _problems_on(self, line: int) -> list[Problem]:
        return [p for p in self.result.problems if p.line == line]

    def _show_cursor_problem(self) -> None:
        row, _ = self.query_one(YamlTextArea).cursor_location
        here = self._problems_on(row + 1)
        widget = self.query_one("#editor-cursor-problem", Static)
        if not here:
            widget.update("")
            return
        first = here[0]
        word, style = (
            ("error", "bold $text-error") if first.is_error else ("warning", "bold $text-warning")
        )
        where = f"{first.line}:{first.column}: "
        message = f"{first.path}: {first.message}" if first.path else first.message
        widget.update(Content.assemble((f"{word} at ", style), where + message))

    def on_text_area_selection_changed(self, event: TextArea.SelectionChanged) -> None:
        event.stop()
        self._show_cursor_problem()

    # -- problems -----------------------------------------------------------------------------

    def go_to(self, problem: Problem) -> None:
        """Put the cursor on ``problem``'s line and column and focus the text."""
        area = self.query_one(YamlTextArea)
        area.move_cursor((max(problem.line - 1, 0), max(problem.column - 1, 0)), center=True)
        area.focus()

    def on_problem_list_problem_chosen(self, event: ProblemList.ProblemChosen) -> None:
        event.stop()
        self.go_to(event.problem)

    def _step_problem(self, forward: bool) -> None:
        if not self.result.problems:
            self._status("No problems to go to: the file is valid.")
            return
        ordered = sorted(self.result.problems, key=lambda p: (p.line, p.column))
        row, col = self.query_one(YamlTextArea).cursor_location
        here = (row + 1, col + 1)
        if forward:
            later = [p for p in ordered if (p.line, p.column) > here]
            target = later[0] if later else ordered[0]
        else:
            earlier = [p for p in ordered if (p.line, p.column) < here]
            target = earlier[-1] if earlier else ordered[-1]
        self.go_to(target)

    def action_next_problem(self) -> None:
        self._step_problem(forward=True)

    def action_previous_problem(self) -> None:
        self._step_problem(forward=False)

    # -- saving -------------------------------------------------------------------------------

    def _status(self, message: str, ok: bool = True) -> None:
        self.query_one("#editor-status", Static).update(
            Content.styled(message, "$text-success" if ok else "bold $text-error")
        )

    def action_save(self) -> None:
        self.save_then(None)

    def save_then(self, after: Callable[[], None] | None) -> None:
        """Save (asking first if the file changed on disk since it was opened), then ``after``."""
        on_disk = file_digest(self.path)
        if on_disk is not None and on_disk != self._disk_sha:

            def chosen(choice: str | None) -> None:
                if choice == "overwrite":
                    self._save(after)
                else:
                    self._status("Not saved: the file on disk was left as it is.", ok=False)

            self.app.push_screen(
                ChoiceDialog(
                    "The file changed on disk",
                    f"{self.path.name} was changed by someone else since you opened it. "
                    f"Saving replaces it (its current content is kept in "
                    f"{backup_path(self.path).name}).",
                    [("overwrite", "Save mine anyway"), ("cancel", "Do not save")],
                ),
                chosen,
            )
            return
        self._save(after)

    def _save(self, after: Callable[[], None] | None) -> None:
        text = self.text
        try:
            saved = save_atomic(self.path, text)
        except OSError as exc:
            self._status(
                f"NOT saved: {self.path} cannot be written ({exc.strerror or exc}); the text "
                "is still here — check the folder's permissions or free space",
                ok=False,
            )
            return
        self._saved_text = text
        self._disk_sha = saved.sha256
        result = self.validate_now()
        where = f"Saved {self.path.name}"
        if saved.backup is not None:
            where += f" (previous version in {saved.backup.name})"
        if result.errors:
            message = (
                f"{where} — INVALID: {summary(result.problems)}. It cannot run or be approved "
                "until they are fixed."
            )
            self._status(message, ok=False)
            self.notify(message, title="Saved, but invalid", severity="warning", timeout=8)
        else:
            message = f"{where} — {validity_words(result)}."
            self._status(message)
            self.notify(message, title="Saved")
        if after is not None:
            after()

    # -- approving and leaving ------------------------------------------------------------------

    def action_approve(self) -> None:
        def approve() -> None:
            def done(message: str, ok: bool) -> None:
                self._status(message.splitlines()[0], ok)

            start_approval(self, self.path, self.store, done)

        if self.dirty or file_digest(self.path) != self._disk_sha or self._disk_sha is None:
            self.save_then(approve)
        else:
            approve()

    def _close(self) -> None:
        self.dismiss(None)

    def action_leave(self) -> None:
        if not self.dirty:
            self.dismiss(None)
            return

        def chosen(choice: str | None) -> None:
            if choice == "save":
                self.save_then(self._close)
            elif choice == "discard":
                self.dismiss(None)

        self.app.push_screen(
            ChoiceDialog(
                "Unsaved changes",
                f"{self.path.name} has changes that are not saved.",
                [
                    ("save", "Save and leave"),
                    ("discard", "Leave without saving (the changes are lost)"),
                    ("stay", "Keep editing"),
                ],
            ),
            chosen,
        )
