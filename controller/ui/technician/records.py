"""Session records: every session by date and client, filtered, opened, exported, verified.

Why: the records are the clinic's account of what was done to whom. A technician (or an
auditor) looks sessions up by client code and date range, opens one to see what happened,
exports it in the formats of ``epm records export`` to the data folder's ``exports/``, and
checks that nobody altered the event log (``v``: the hash-chain verification of ``epm records
verify``). Simulated sessions are marked SIM in their own column and counted in the footer, so
they are never taken for treatments.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Footer, Header, Input, Label, Static

from controller.records import RecordsError, RecordStore, VerifyReport
from controller.ui.technician.colours import colour
from controller.ui.technician.records_actions import ask_export, do_export, start_verify
from controller.ui.technician.records_model import (
    RecordFilter,
    SessionRow,
    load_rows,
    parse_filter,
)
from controller.ui.theme import SIM_BANNER_BACKGROUND, SIM_BANNER_FOREGROUND

if TYPE_CHECKING:
    from controller.ui.shared.documents import Written

COLUMNS = ("Date", "Client", "Protocol", "Outcome", "Delivered", "SIM")
FILTER_DEBOUNCE_S = 0.3


def _outcome_cell(app: App[object], outcome: str) -> Text:
    if outcome == "completed":
        return Text(outcome, style=colour(app, "text-success"))
    return Text(outcome, style="dim" if outcome == "refused" else "bold")


def _sim_cell() -> Text:
    return Text(" SIM ", style=f"bold {SIM_BANNER_FOREGROUND} on {SIM_BANNER_BACKGROUND}")


class RecordsScreen(Screen[None]):
    """The sessions of the records store, newest first."""

    CSS_PATH = "technician.tcss"
    HELP_TITLE = "Session records"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Details", show=False),
        Binding("d", "open", "Details", show=False),
        Binding("x", "export", "Export"),
        Binding("w", "document('report')", "Report PDF"),
        Binding("h", "document('handout')", "Handout"),
        Binding("v", "verify", "Verify"),
        Binding("f", "filter", "Filter"),
        Binding("r", "reload", "Reload", show=False),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, store: RecordStore) -> None:
        super().__init__(classes="tech-screen")
        self.store = store
        self.rows: list[SessionRow] = []
        self.filter = RecordFilter()
        self.verify_report: VerifyReport | None = None
        self.last_export: list[str] = []
        #: Documents written from this screen (w / h), in order.
        self.written: list[Written] = []
        self._debounce: Timer | None = None
        #: Number of times the list was loaded (tests wait on it).
        self.loads = 0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="records-filters"):
            yield Input(placeholder="Client code", id="filter-client")
            yield Input(placeholder="From YYYY-MM-DD", id="filter-since")
            yield Input(placeholder="To YYYY-MM-DD", id="filter-until")
        yield Static("", id="records-filter-problem", classes="tech-error", markup=False)
        table: DataTable[Text | str] = DataTable(
            id="records-table", cursor_type="row", zebra_stripes=True
        )
        yield table
        yield Label("", id="records-count", classes="tech-heading")
        yield Static("", id="records-status", classes="tech-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Session records"
        table = self.query_one("#records-table", DataTable)
        for name in COLUMNS:
            table.add_column(name, key=name)
        self.reload()
        # Cell colours come from the theme: repaint them when it changes.
        self.watch(self.app, "theme", lambda _theme: self.reload(), init=False)
        table.focus()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.reload()

    # -- loading and filtering --------------------------------------------------------------

    def reload(self) -> None:
        """Read the sessions the filter selects and redraw, keeping the selection."""
        selected = self.selected.session.id if self.selected is not None else None
        try:
            self.rows = load_rows(self.store, self.filter)
        except RecordsError as exc:
            self.rows = []
            self._status(f"The records cannot be read: {exc}", ok=False)
        self.loads += 1
        table = self.query_one("#records-table", DataTable)
        table.clear()
        for row in self.rows:
            table.add_row(
                row.date,
                row.session.client_code,
                row.protocol,
                _outcome_cell(self.app, row.session.outcome),
                row.delivered,
                _sim_cell() if row.sim else "",
                key=str(row.session.id),
            )
        ids = [r.session.id for r in self.rows]
        if selected in ids:
            table.move_cursor(row=ids.index(selected), animate=False)
        simulated = sum(1 for r in self.rows if r.session.simulated)
        count = f"{len(self.rows)} session(s)"
        if simulated:
            count += f"; {simulated} marked SIM ran on the simulator and are not treatments"
        if not self.rows:
            count = "No sessions match." if self._filtering else "No sessions recorded yet."
        self.query_one("#records-count", Label).update(count)
        self.refresh_bindings()

    @property
    def _filtering(self) -> bool:
        return bool(self.filter.client or self.filter.since or self.filter.until)

    @property
    def selected(self) -> SessionRow | None:
        if not self.rows or not self.is_mounted:
            return None
        row = self.query_one("#records-table", DataTable).cursor_row
        return self.rows[row] if 0 <= row < len(self.rows) else None

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._debounce is not None:
            self._debounce.stop()
        self._debounce = self.set_timer(FILTER_DEBOUNCE_S, self.apply_filter)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply_filter()
        self.query_one("#records-table", DataTable).focus()

    def apply_filter(self) -> None:
        """Read the three filter fields and reload; a mistyped date is said and ignored."""
        if self._debounce is not None:
            self._debounce.stop()
            self._debounce = None
        self.filter, problems = parse_filter(
            self.query_one("#filter-client", Input).value,
            self.query_one("#filter-since", Input).value,
            self.query_one("#filter-until", Input).value,
        )
        shown = self.query_one("#records-filter-problem", Static)
        shown.update("\n".join(problems))
        shown.set_class(bool(problems), "-shown")
        self.reload()

    # -- actions -----------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("open", "export") and self.selected is None:
            return None
        if action == "document":
            row = self.selected
            return None if row is None or row.session.is_open else True
        return True

    def _status(self, message: str, ok: bool = True) -> None:
        if not self.is_attached:
            return
        self.query_one("#records-status", Static).update(
            Content.styled(message, "$text-success" if ok else "bold $text-error")
        )

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.refresh_bindings()

    def action_open(self) -> None:
        row = self.selected
        if row is None:
            return
        from controller.ui.technician.record_detail import RecordDetailScreen

        self.app.push_screen(RecordDetailScreen(self.store, row.session.id))

    def action_filter(self) -> None:
        self.query_one("#filter-client", Input).focus()

    def action_reload(self) -> None:
        self.reload()
        self._status(f"Reloaded: {len(self.rows)} session(s)")

    def action_back(self) -> None:
        if isinstance(self.focused, Input):
            self.query_one("#records-table", DataTable).focus()
            return
        self.dismiss(None)

    def action_export(self) -> None:
        row = self.selected
        if row is None:
            return
        sid = row.session.id
        shown = list(reversed([r.session.id for r in self.rows]))
        ask_export(
            self,
            self.store,
            [
                (
                    "one-json",
                    f"Session {sid} as JSON (everything, with event hashes)",
                    [sid],
                    "json",
                ),
                (
                    "one-csv",
                    f"Session {sid} as CSV (4 files: session, steps, events, telemetry)",
                    [sid],
                    "csv",
                ),
                ("all-json", f"The {len(shown)} listed session(s) as JSON", shown, "json"),
                (
                    "all-csv",
                    f"The {len(shown)} listed session(s) as CSV, one row each",
                    shown,
                    "csv",
                ),
            ],
            self._status,
            self._exported,
        )

    def action_document(self, kind: str) -> None:
        """w / h: the selected closed session's report or aftercare handout (PDF) into the
        data folder's ``reports/``, recorded in the session; never over an existing file."""
        row = self.selected
        if row is None or row.session.is_open:
            self._status("A running session gets no report until it has ended.", ok=False)
            return
        session_id, store = row.session.id, self.store
        what = "session report" if kind == "report" else "aftercare handout"
        self._status(f"Writing the {what} of session {session_id}…")

        from controller.ui.shared.documents import write_in_background

        write_in_background(self, store, session_id, kind, self._document_written)

    def _document_written(self, written: Written) -> None:
        self.written.append(written)
        self._status(written.message, ok=written.result is not None)

    def _exported(self, paths: list[Path]) -> None:
        self.last_export = [str(p) for p in paths]

    def export(self, session_ids: list[int], fmt: str) -> None:
        """Export ``session_ids`` as ``fmt`` (``json``/``csv``) and say where they went
        (``last_export`` holds the paths once written)."""
        do_export(self, self.store, session_ids, fmt, self._status, exported=self._exported)

    def action_verify(self) -> None:
        start_verify(self, self.store, self._verified, self._status)

    def _verified(self, report: VerifyReport) -> None:
        self.verify_report = report
