"""One recorded session in full: what it started with, the checklist, the steps planned versus
delivered, the events and alarms in order, the notes, and the telemetry plotted.

Why: when a client asks what was done, or an auditor asks why a session stopped, the answer is
in the record; this screen shows all of it in one place (tabs 1–4), says first when the session
ran on the simulator, exports it (``x``) and verifies the event log (``v``) without leaving.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Label,
    Static,
    TabbedContent,
    TabPane,
)

from controller.records import RecordsError, RecordStore, SessionDetail, VerifyReport
from controller.ui.technician.records_actions import ask_export, start_verify
from controller.ui.technician.session_view import (
    checklist_rows,
    event_cells,
    session_fields,
    sim_marker,
    step_lines,
)
from controller.ui.technician.telemetry_plot import TelemetryPlot
from controller.ui.theme import SIM_BANNER_BACKGROUND, SIM_BANNER_FOREGROUND

TABS = ("summary", "steps", "events", "telemetry")
_FOCUS = {
    "summary": "#detail-summary",
    "steps": "#detail-steps",
    "events": "#detail-events",
    "telemetry": "#detail-telemetry",
}


class RecordDetailScreen(Screen[None]):
    """Everything recorded about session ``session_id``."""

    CSS_PATH = "technician.tcss"
    HELP_TITLE = "Session record"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "tab('summary')", "Summary", show=False),
        Binding("2", "tab('steps')", "Steps", show=False),
        Binding("3", "tab('events')", "Events", show=False),
        Binding("4", "tab('telemetry')", "Telemetry", show=False),
        Binding("x", "export", "Export"),
        Binding("v", "verify", "Verify"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self, store: RecordStore, session_id: int) -> None:
        super().__init__(classes="tech-screen")
        self.store = store
        self.session_id = session_id
        self.detail: SessionDetail | None = None
        self.error: str | None = None
        self.last_export: list[str] = []
        self.verify_report: VerifyReport | None = None
        try:
            self.detail = store.session_detail(session_id)
            self.telemetry_rows = store.telemetry_rows(session_id)
        except RecordsError as exc:
            self.error = str(exc)
            self.telemetry_rows = []

    def compose(self) -> ComposeResult:
        yield Header()
        if self.detail is None:
            yield Static(
                Content.styled(
                    f"Session {self.session_id} cannot be shown: {self.error}", "bold $text-error"
                ),
                id="detail-error",
            )
            yield Static("", id="detail-status", classes="tech-status", markup=False)
            yield Footer()
            return
        session = self.detail.session
        marker = sim_marker(session)
        if marker:
            sim = Label(marker, id="detail-sim", classes="detail-sim", markup=False)
            sim.styles.background = SIM_BANNER_BACKGROUND
            sim.styles.color = SIM_BANNER_FOREGROUND
            yield sim
        with TabbedContent(id="detail-tabs", initial="summary"):
            with TabPane("1 Summary", id="summary"), VerticalScroll(id="detail-summary"):
                yield Static(self._summary_text(), id="detail-fields")
            with TabPane("2 Steps", id="steps"):
                yield DataTable(id="detail-steps", cursor_type="row", zebra_stripes=True)
            with TabPane("3 Events", id="events"):
                yield DataTable(id="detail-events", cursor_type="row", zebra_stripes=True)
            with TabPane("4 Telemetry", id="telemetry"), VerticalScroll(id="detail-telemetry"):
                yield Static(self._telemetry_summary(), id="detail-telemetry-summary")
                yield TelemetryPlot(self.telemetry_rows, id="detail-plot")
        yield Static("", id="detail-status", classes="tech-status", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.title = f"Session {self.session_id}"
        if self.detail is None:
            return
        steps = self.query_one("#detail-steps", DataTable)
        steps.add_columns("#", "Kind", "Zone", "Planned", "Delivered", "Holds", "Result")
        for line in step_lines(self.detail.steps):
            steps.add_row(
                line.index,
                line.kind,
                line.zone,
                line.planned,
                line.delivered,
                line.holds,
                line.result,
            )
        events = self.query_one("#detail-events", DataTable)
        events.add_columns("Time", "Event", "Detail")
        for event in self.detail.events:
            events.add_row(*event_cells(event), key=str(event.id))

    # -- text blocks --------------------------------------------------------------------------

    def _summary_text(self) -> Content:
        assert self.detail is not None
        session = self.detail.session
        parts: list[str | tuple[str, str]] = []
        width = max(len(label) for label, _ in session_fields(session)) + 1
        for label, value in session_fields(session):
            parts.append((f"{label + ':':<{width}} ", "bold"))
            parts.append(f"{value}\n")
        parts.append(("\nChecklist\n", "bold underline"))
        answers = checklist_rows(session.checklist)
        if not answers:
            parts.append("(no answers recorded)\n")
        for question, answer in answers:
            parts.append(f"  {answer:<4} {question}\n")
        parts.append(("\nNotes\n", "bold underline"))
        parts.append((session.notes or "(none)") + "\n")
        steps = self.detail.steps
        holds = sum(s.holds for s in steps)
        skips = sum(1 for s in steps if s.skipped)
        alarms = sum(1 for e in self.detail.events if e.kind == "alarm_raised")
        parts.append(("\nIn short\n", "bold underline"))
        parts.append(
            f"{len(steps)} step attempt(s), {skips} skipped, {holds} hold(s), {alarms} alarm(s), "
            f"{len(self.detail.events)} event(s) — tabs 2–4 show them.\n"
        )
        return Content.assemble(*parts)

    def _telemetry_summary(self) -> Content:
        assert self.detail is not None
        t = self.detail.telemetry
        if not t.rows:
            return Content("No telemetry recorded.")

        def fmt(value: int | None, scale: float, unit: str) -> str:
            return "—" if value is None else f"{value / scale:g} {unit}"

        return Content(
            f"{t.samples} samples in {t.rows} rows of 100 ms. Max amplitude "
            f"{fmt(t.amplitude_max_dv, 10, 'V')}, max current {fmt(t.current_max_ua, 1000, 'mA')}, "
            f"impedance {fmt(t.impedance_min_ohm, 1000, 'kΩ')}–"
            f"{fmt(t.impedance_max_ohm, 1000, 'kΩ')}, max temperature "
            f"{fmt(t.temperature_max_dc, 10, '°C')}, {t.contact_changes} contact change(s)"
            + (f", faults seen 0x{t.faults_seen:04x}" if t.faults_seen else "")
            + "."
        )

    # -- actions -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("tab", "export") and self.detail is None:
            return None
        return True

    def _status(self, message: str, ok: bool = True) -> None:
        if not self.is_attached:
            return
        self.query_one("#detail-status", Static).update(
            Content.styled(message, "$text-success" if ok else "bold $text-error")
        )

    def action_tab(self, tab: str) -> None:
        if tab in TABS and self.detail is not None:
            self.query_one(TabbedContent).active = tab

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        """Focus what the tab shows, so arrows and Page Up/Down scroll it at once."""
        event.stop()
        target = _FOCUS.get(event.pane.id or "")
        if target is not None:
            self.query_one(target).focus()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_export(self) -> None:
        sid = self.session_id
        ask_export(
            self,
            self.store,
            [
                ("json", f"Session {sid} as JSON (everything, with event hashes)", [sid], "json"),
                (
                    "csv",
                    f"Session {sid} as CSV (4 files: session, steps, events, telemetry)",
                    [sid],
                    "csv",
                ),
            ],
            self._status,
            self._exported,
        )

    def _exported(self, paths: list[Path]) -> None:
        self.last_export = [str(p) for p in paths]

    def action_verify(self) -> None:
        start_verify(self, self.store, self._verified, self._status)

    def _verified(self, report: VerifyReport) -> None:
        self.verify_report = report
