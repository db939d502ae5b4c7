"""The protocol library: every file of the library folder, its validity, identity, status and
approval, with the selected file's problems at their lines.

Why this screen exists: technicians keep the protocols a clinic runs. They need to see at a
glance which files are valid, which carry warnings, which are approved *for these exact bytes*
(an edit since approval means the file no longer runs on a real device), and to act: edit,
start a new protocol from a template, approve, reload. Files change under the technician's
feet (another editor, a copy from a USB stick), so the folder is watched: every second the
name, mtime and size of each file is compared (one ``stat`` per file) and the library is loaded
again only when something changed — in a background thread, so that a large library never
holds up the keyboard (least of all the emergency stop).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.content import Content
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, Static

from controller.records import RecordStore
from controller.records.approvals import is_approved
from controller.ui.technician.approval import start_approval
from controller.ui.technician.background import Failed, run_in_background
from controller.ui.technician.colours import colour
from controller.ui.technician.library_model import (
    Fingerprint,
    LibraryEntry,
    LibraryUnreadableError,
    folder_fingerprint,
    scan_library,
)
from controller.ui.technician.prompt_dialog import PromptDialog
from controller.ui.technician.protocol_template import (
    TemplateNameError,
    new_protocol_path,
    protocol_id_for,
    template_text,
)
from controller.ui.technician.yaml_problems import ProblemList, summary

#: How often the folder is checked for changes (seconds).
POLL_S = 1.0

COLUMNS = ("File", "Validity", "Ver", "Status", "Approved", "ID", "Title")


def _validity_cell(app: App[object], entry: LibraryEntry) -> Text:
    if entry.errors:
        return Text(entry.validity, style=f"bold {colour(app, 'text-error')}")
    if entry.warnings:
        return Text(entry.validity, style=colour(app, "text-warning"))
    return Text(entry.validity, style=colour(app, "text-success"))


def _approved_cell(app: App[object], entry: LibraryEntry) -> Text:
    if entry.approval:
        return Text("yes", style=colour(app, "text-success"))
    return Text("no", style="dim")


class LibraryScreen(Screen[None]):
    """The protocol files of one folder. Push it with the library folder and the records."""

    CSS_PATH = "technician.tcss"
    HELP_TITLE = "Protocol library"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "edit", "Edit"),
        Binding("n", "new", "New"),
        Binding("a", "approve", "Approve"),
        Binding("r", "reload", "Reload"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(
        self, library_path: Path, store: RecordStore | None, *, poll_s: float = POLL_S
    ) -> None:
        """``poll_s``: how often the folder is checked for changes (seconds)."""
        super().__init__(classes="tech-screen")
        self.poll_s = poll_s
        self.library_path = Path(library_path)
        self.store = store
        self.entries: list[LibraryEntry] = []
        self._fingerprint: Fingerprint | None = None
        #: Number of times the folder was loaded (tests wait on it after a change on disk).
        self.loads = 0
        self._scanning = False
        self._rescan = False
        self._announce = False
        self._select_next: str | None = None

    # -- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label("", id="library-heading", classes="tech-heading")
        table: DataTable[Text | str] = DataTable(
            id="library-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Static("", id="library-detail", classes="tech-detail", markup=False)
        yield ProblemList(id="library-problems", empty_text="No problems: the file is valid.")
        yield Static("", id="library-status", classes="tech-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Protocol library"
        table = self.query_one("#library-table", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.query_one("#library-heading", Label).update(f"Loading {self.library_path} …")
        self.reload()
        self.set_interval(self.poll_s, self.poll)
        # Cell colours come from the theme: repaint them when it changes.
        self.watch(self.app, "theme", self._repaint, init=False)
        table.focus()

    def on_screen_resume(self) -> None:
        # Back from the editor (or a dialog): pick up a save at once rather than in a second.
        if self.is_mounted:
            self.poll()

    # -- loading ----------------------------------------------------------------------------

    def poll(self) -> None:
        """Load the library again if any protocol file changed on disk."""
        if folder_fingerprint(self.library_path) != self._fingerprint:
            self.reload()

    def reload(self, *, announce: bool = False, select: str | None = None) -> None:
        """Load every file again (in a background thread: a big library takes a while and the
        emergency-stop key must stay responsive) and redraw, keeping the selected file selected
        (or selecting ``select``). ``announce`` says so in the status line when done."""
        self._fingerprint = folder_fingerprint(self.library_path)
        if select is not None:
            self._select_next = select
        self._announce = self._announce or announce
        if self._scanning:
            self._rescan = True  # a change arrived during the scan: scan again after it
            return
        self._scanning = True
        folder, store = self.library_path, self.store

        def scan() -> tuple[list[LibraryEntry], str | None]:
            try:
                return scan_library(folder, store), None
            except LibraryUnreadableError as exc:
                return [], str(exc)

        run_in_background(self.app, "epm-ui-library-scan", scan, self._scanned)

    def _scanned(self, outcome: tuple[list[LibraryEntry], str | None] | Failed) -> None:
        self._scanning = False
        if not self.is_attached:
            return
        if self._rescan:
            self._rescan = False
            self.reload()
            return
        entries: list[LibraryEntry]
        problem: str | None
        if isinstance(outcome, Failed):
            entries, problem = [], f"the library could not be loaded: {outcome.message}"
        else:
            entries, problem = outcome
        selected = self._select_next or (self.selected.name if self.selected else None)
        self._select_next = None
        self.entries = entries
        self.loads += 1
        self._fill_table(selected)
        heading = self.query_one("#library-heading", Label)
        if problem is not None:
            heading.update(Content.styled(problem, "bold $text-error"))
        else:
            invalid = sum(1 for e in self.entries if e.errors)
            text = f"Library {self.library_path} — {len(self.entries)} file(s)"
            if invalid:
                text += f", {invalid} invalid"
            heading.update(text)
        self._show_selected()
        self.refresh_bindings()
        if self._announce:
            self._announce = False
            self._status(f"Reloaded {len(self.entries)} file(s) from {self.library_path}")

    def _repaint(self, _theme: str) -> None:
        self._fill_table(self.selected.name if self.selected is not None else None)

    def refresh_approvals(self) -> None:
        """Look every file's approval up again (after an approval; the files are unchanged)."""
        if self.store is None:
            return
        self.entries = [
            dataclasses.replace(
                e, approval=is_approved(self.store, e.result.sha256) if e.result.sha256 else None
            )
            for e in self.entries
        ]
        selected = self.selected.name if self.selected is not None else None
        self._fill_table(selected)
        self._show_selected()

    def _fill_table(self, selected: str | None) -> None:
        table = self.query_one("#library-table", DataTable)
        table.clear()
        for entry in self.entries:
            table.add_row(
                entry.name,
                _validity_cell(self.app, entry),
                entry.version,
                entry.status,
                _approved_cell(self.app, entry),
                entry.protocol_id,
                entry.title,
                key=entry.name,
            )
        names = [e.name for e in self.entries]
        if selected in names:
            table.move_cursor(row=names.index(selected), animate=False)

    @property
    def selected(self) -> LibraryEntry | None:
        """The entry under the table's cursor."""
        if not self.entries or not self.is_mounted:
            return None
        row = self.query_one("#library-table", DataTable).cursor_row
        return self.entries[row] if 0 <= row < len(self.entries) else None

    def _show_selected(self) -> None:
        entry = self.selected
        detail = self.query_one("#library-detail", Static)
        problems = self.query_one("#library-problems", ProblemList)
        if entry is None:
            detail.update("No protocol files here. Press n to start one from a template.")
            problems.show([], empty_text="")
            return
        detail.update(self._describe(entry))
        problems.show(
            entry.result.problems,
            label=entry.name,
            empty_text=f"No problems: {entry.name} is valid.",
        )

    def _describe(self, entry: LibraryEntry) -> Content:
        head = f"{entry.protocol_id} v{entry.version}"
        parts: list[str | tuple[str, str]] = [(head, "bold")]
        if entry.title:
            parts.append(f" — {entry.title}")
        status = f"; status {entry.status}" if entry.status != "?" else ""
        parts.append(f"\n{summary(entry.result.problems)}{status}\n")
        if entry.approval is not None:
            when = entry.approval.approved_at[:10]
            parts.append(
                (
                    f"approved by {entry.approval.approved_by} on {when} (this exact file)",
                    "$text-success",
                )
            )
        elif entry.errors:
            parts.append(("invalid: it cannot run or be approved until fixed", "$text-error"))
        elif entry.status == "draft":
            parts.append("draft: runs only on the simulator")
        elif entry.status == "retired":
            parts.append("retired: never runs")
        else:
            parts.append("not approved: runs only on the simulator until approved (a)")
        return Content.assemble(*parts)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_selected()
        self.refresh_bindings()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_edit()

    def on_problem_list_problem_chosen(self, event: ProblemList.ProblemChosen) -> None:
        event.stop()
        entry = self.selected
        if entry is not None:
            self._open_editor(entry.path, (event.problem.line, event.problem.column))

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "edit" and self.selected is None:
            return None
        if action == "approve" and (self.selected is None or self.store is None):
            return None
        return True

    def _status(self, message: str, ok: bool = True) -> None:
        self.query_one("#library-status", Static).update(
            Content.styled(message, "$text-success" if ok else "bold $text-error")
        )

    def action_back(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.reload(announce=True)

    def action_edit(self) -> None:
        entry = self.selected
        if entry is not None:
            self._open_editor(entry.path, None)

    def _open_editor(self, path: Path, goto: tuple[int, int] | None) -> None:
        from controller.ui.technician.editor import EditorScreen

        self.app.push_screen(EditorScreen(path, store=self.store, goto=goto))

    def action_new(self) -> None:
        def check(name: str) -> str | None:
            try:
                new_protocol_path(self.library_path, name)
            except TemplateNameError as exc:
                return str(exc)
            return None

        self.app.push_screen(
            PromptDialog(
                "New protocol from the template",
                "File name (its protocol id), e.g. aga-trial:",
                details=[
                    f"The file is created in {self.library_path} as a valid draft "
                    "(runs only on the simulator) and opened in the editor."
                ],
                placeholder="aga-trial",
                ok_label="Create",
                check=check,
            ),
            self._create,
        )

    def _create(self, name: str | None) -> None:
        if name is None:
            return
        try:
            path = new_protocol_path(self.library_path, name)
            with path.open("x", encoding="utf-8") as out:
                out.write(template_text(protocol_id_for(path.stem)))
        except (TemplateNameError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self._status(f"No file was created: {reason}", ok=False)
            return
        self.reload(select=path.name)
        self._status(f"Created {path} from the template (a draft)")
        self._open_editor(path, None)

    def action_approve(self) -> None:
        entry = self.selected
        if entry is None:
            return

        def done(message: str, ok: bool) -> None:
            self._status(message.splitlines()[0], ok)
            if ok:
                self.refresh_approvals()

        start_approval(self, entry.path, self.store, done)
