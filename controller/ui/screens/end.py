"""The end-of-session screen: what was delivered, what interrupted it, notes, aftercare, and
when the client is due next.

Why: before the client leaves, the practitioner checks that each zone got its time (planned vs
delivered), sees every interruption and alarm of the session, writes notes into the record,
reads the aftercare advice to the client and books the next session.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Label, Static, TextArea

from controller.records import RecordsError
from controller.records.courses import course_progress
from controller.records.models import EventRow, local
from controller.session.model import Outcome, SessionSnapshot
from controller.ui.widgets import formatting as fmt
from controller.ui.widgets.footer import EpmFooter

if TYPE_CHECKING:
    from controller.ui.app import EpmApp

#: Record event kinds listed under "Interruptions and alarms".
INTERRUPTION_KINDS = (
    "alarm_raised",
    "alarm_acknowledged",
    "hold_start",
    "hold_end",
    "link_lost",
    "reconnected",
    "device_restarted",
    "outcome_unknown",
    "step_skipped",
    "warning",
)

OUTCOME_WORDS = {
    Outcome.COMPLETED: "every planned zone got its time",
    Outcome.STOPPED: "stopped by the practitioner",
    Outcome.ABORTED: "ended early",
    Outcome.FAULTED: "ended by a device fault",
    Outcome.INTERRUPTED: "the session was interrupted",
    Outcome.REFUSED: "refused before anything was delivered",
}


def event_line(event: EventRow) -> str:
    """One record event in a sentence (time, kind, what)."""
    data = event.data
    when = local(event.wall_time, "%H:%M:%S")
    kind = event.kind.replace("_", " ")
    detail = (
        data.get("message")
        or data.get("reason")
        or data.get("alarm")
        or (f"step {data['index']}" if "index" in data else "")
    )
    if event.kind == "hold_end" and "held_ms" in data:
        detail = f"step {data.get('index', '?')}, held {fmt.elapsed(int(data['held_ms']))}"
    return f"{when}  {kind}" + (f": {detail}" if detail else "")


class EndScreen(Screen[None]):
    """Shown when the session finished; Esc (or ctrl+s then Esc) goes home."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save_notes", "Save notes"),
        Binding("escape", "home", "Home"),
    ]

    def __init__(self, snapshot: SessionSnapshot) -> None:
        super().__init__()
        self.final = snapshot
        self.saved_notes = ""
        self._notes = ""

    @property
    def epm(self) -> EpmApp:
        return cast("EpmApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="end-body"):
            yield Static("", id="end-outcome")
            yield Label("Zones: planned and delivered", classes="section-title")
            steps = DataTable[str](id="end-steps", cursor_type="none", zebra_stripes=True)
            steps.can_focus = False  # read-only: ↑↓ scroll the whole report instead
            yield steps
            yield Label("Interruptions and alarms", classes="section-title")
            yield Static("", id="end-events")
            yield Label("Course", classes="section-title")
            yield Static("", id="end-course")
            yield Label("Aftercare (tell the client)", classes="section-title")
            yield Static("", id="end-aftercare")
            yield Label(
                "Notes (saved to the record: ctrl+s; also saved on leaving)",
                classes="section-title",
            )
            yield TextArea(id="end-notes")
            yield Static("", id="end-notes-status")
        yield EpmFooter()

    def on_mount(self) -> None:
        snap = self.final
        self.sub_title = f"Session finished · client {snap.client_code}"
        outcome = snap.outcome
        text = Text()
        text.append(" SESSION FINISHED ", style="bold reverse")
        if outcome is not None:
            text.append(f"  Outcome: {outcome.value} — {OUTCOME_WORDS.get(outcome, '')}")
        words = OUTCOME_WORDS.get(outcome, "") if outcome is not None else ""
        if snap.outcome_reason and snap.outcome_reason not in words:
            text.append(f"\nReason: {snap.outcome_reason}")
        text.append(
            f"\nDelivered {fmt.elapsed(snap.session_delivered_ms)} of "
            f"{fmt.clock(snap.session_planned_ms)} planned · {snap.protocol_title} "
            f"v{snap.protocol_version}"
        )
        if snap.simulated:
            text.append(
                "\nSIMULATED session: not a treatment, never counted in a course.", style="bold"
            )
        self.query_one("#end-outcome", Static).update(text)

        table = self.query_one("#end-steps", DataTable)
        table.add_columns("#", "Zone / step", "Planned", "Delivered", "Status")
        for step in snap.steps:
            name = fmt.zone(step.zone) if step.kind == "delivery" and step.zone else step.title
            table.add_row(
                str(step.index),
                fmt.ellipsize(name or "", 34),
                fmt.clock(step.planned_ms) if step.planned_ms else "-",
                fmt.elapsed(step.delivered_ms) if step.kind == "delivery" else "-",
                step.status.value,
            )
        self.query_one("#end-events", Static).update(self.events_text())
        self.query_one("#end-course", Static).update(self.course_text())
        aftercare = "\n".join(f" • {item}" for item in snap.aftercare) or " (none given)"
        self.query_one("#end-aftercare", Static).update(aftercare)
        self.query_one("#end-body", VerticalScroll).focus()  # ↑↓ PgUp PgDn read the report

    def events_text(self) -> Text:
        session_id = self.final.session_id
        if session_id is None:
            return Text("No session record was written.", style="dim")
        try:
            events = self.epm.store.events(session_id)
        except RecordsError as exc:
            return Text(f"The session's events cannot be read: {exc}")
        lines = [event_line(e) for e in events if e.kind in INTERRUPTION_KINDS]
        if not lines:
            return Text("None: the session ran without interruption or alarm.")
        return Text("\n".join(lines))

    def course_text(self) -> str:
        plan = self.epm.session_plan
        protocol = getattr(getattr(plan, "load_result", None), "protocol", None)
        if plan is None or protocol is None:
            return "Not known for this session."
        try:
            progress = course_progress(
                self.epm.store, plan.client_code, protocol, today=self.epm.today()
            )
        except RecordsError as exc:
            return f"The course cannot be read: {exc}"
        due = progress.next_due.isoformat() if progress.next_due else "no further session due"
        return f"Next due: {due}. {progress.summary}"

    def notes_text(self) -> str:
        return self._notes.strip()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._notes = event.text_area.text

    def on_unmount(self) -> None:
        """Leaving another way (the command palette's New session, quitting): keep the notes."""
        if self.notes_text() != self.saved_notes:
            try:
                self.write_notes(self.notes_text())
            except Exception:  # best effort; the normal way out (Esc) reports failures
                return

    def action_save_notes(self) -> bool:
        """Save the notes to the session's record; False (and a message) when it failed."""
        notes = self.notes_text()
        status = self.query_one("#end-notes-status", Static)
        try:
            self.write_notes(notes)
        except Exception as exc:  # keep the text on screen; say why it was not saved
            status.update(Text(f"Notes NOT saved: {exc}", style="bold reverse"))
            return False
        self.saved_notes = notes
        status.update("Notes saved to the record.")
        return True

    def write_notes(self, notes: str) -> None:
        engine: Any = self.epm.engine
        if engine is not None:
            engine.set_notes(notes)
            return
        if self.final.session_id is None:
            raise RecordsError("this session has no record to hold notes")
        self.epm.store.set_notes(self.final.session_id, notes)

    def action_home(self) -> None:
        if self.notes_text() != self.saved_notes and not self.action_save_notes():
            return
        self.saved_notes = self.notes_text()
        self.epm.finish_session()
        self.epm.return_home()
