"""The end-of-session screen: what was delivered, what interrupted it, notes, aftercare, and
when the client is due next.

Why: before the client leaves, the practitioner checks that each zone got its time (planned vs
delivered), sees every interruption and alarm of the session, writes notes into the record,
reads the aftercare advice to the client and books the next session.

The notes have the focus on arrival (typing goes straight into them); the report above
scrolls with PgUp/PgDn (or the mouse). ctrl+s says "Notes saved" only once the record holds
them, read back; with nothing to write it says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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
from controller.session.model import Outcome, SessionSnapshot, StepView
from controller.ui.shared import formatting as fmt
from controller.ui.shared.footer import EpmFooter

if TYPE_CHECKING:
    from controller.ui.app import EpmApp
    from controller.ui.shared.documents import Written

#: Record event kinds listed under "Interruptions and alarms" (alarms: one line each).
INTERRUPTION_KINDS = (
    "alarm_raised",
    "alarm_acknowledged",
    "alarm_cleared",
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

#: The most notes the record holds (``RecordStore.set_notes``).
NOTES_MAX = 10_000


def _time(event: EventRow) -> str:
    return local(event.wall_time, "%H:%M:%S")


@dataclass
class _AlarmLine:
    raised: str
    priority: str
    title: str
    acknowledged: str = ""
    by: str = ""

    def text(self) -> str:
        line = f"{self.raised}  {self.priority.upper()} alarm: {self.title} — raised {self.raised}"
        if self.acknowledged:
            line += f", acknowledged {self.acknowledged}" + (f" by {self.by}" if self.by else "")
        else:
            line += ", not acknowledged"
        return line


def _step_name(index: object, steps: Sequence[StepView]) -> str:
    step = next((s for s in steps if s.index == index), None)
    if step is None:
        return f"step {index}"
    if step.kind == "delivery" and step.zone:
        return f"the {fmt.zone(step.zone).lower()} zone"
    return f"step {step.index} ({step.title})"


def interruption_lines(events: Sequence[EventRow], steps: Sequence[StepView] = ()) -> list[str]:
    """The session's interruptions and alarms in plain words, in order: one line per alarm
    (raised, acknowledged and by whom), one per hold (with how long), lost and regained
    connections, restarts, skips and warnings."""
    entries: list[_AlarmLine | str] = []
    alarms: dict[object, _AlarmLine] = {}
    open_hold: dict[object, str] = {}
    operator_estop = False
    for event in events:
        data = event.data
        kind = event.kind
        when = _time(event)
        if kind == "estop" and data.get("source") == "operator":
            operator_estop = True
        if kind == "alarm_raised":
            detail = data.get("detail")
            title = fmt.alarm_title(
                str(data.get("alarm", "")),
                detail if isinstance(detail, dict) else None,
                str(data.get("title", "")),
            )
            if title == "Emergency stop" and operator_estop:
                title = "Emergency stop (F12 pressed)"
            line = _AlarmLine(when, str(data.get("priority", "")), title)
            alarms[data.get("occurrence")] = line
            entries.append(line)
        elif kind in ("alarm_acknowledged", "alarm_cleared"):
            shown = alarms.get(data.get("occurrence"))
            if shown is not None and not shown.acknowledged and data.get("acknowledged"):
                shown.acknowledged = when
                shown.by = str(data.get("by") or "")
        elif kind == "hold_start":
            open_hold[data.get("index")] = when
        elif kind == "hold_end":
            began = open_hold.pop(data.get("index"), "")
            held = fmt.duration(int(data.get("held_ms") or 0))
            entries.append(
                f"{began or when}  Hold (no skin contact) on "
                f"{_step_name(data.get('index'), steps)}: {held}, output off"
            )
        elif kind == "link_lost":
            entries.append(f"{when}  Connection to the device lost")
        elif kind == "reconnected":
            entries.append(f"{when}  Connection to the device back")
        elif kind == "device_restarted":
            entries.append(f"{when}  The device restarted")
        elif kind == "outcome_unknown":
            entries.append(f"{when}  A command's outcome is not known (connection lost)")
        elif kind == "step_skipped":
            reason = str(data.get("reason") or "")
            entries.append(
                f"{when}  Skipped {_step_name(data.get('index'), steps)}"
                + (f": {fmt.plain_words(reason)}" if reason else "")
            )
        elif kind == "warning":
            entries.append(f"{when}  Warning: {fmt.plain_words(str(data.get('message', '')))}")
    for index, began in open_hold.items():
        entries.append(f"{began}  Hold (no skin contact) on {_step_name(index, steps)}")
    return [e.text() if isinstance(e, _AlarmLine) else e for e in entries]


class EndScreen(Screen[None]):
    """Shown when the session finished; Esc (or ctrl+s then Esc) goes home."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save_notes", "Save notes"),
        # priority: the notes (a TextArea, focused) take F6 for "select line" otherwise.
        Binding("f5", "document('report')", "Report", key_display="F5", priority=True),
        Binding("f6", "document('handout')", "Handout", key_display="F6", priority=True),
        Binding("escape", "home", "Home"),
        # The notes have the focus: the report scrolls with PgUp/PgDn all the same.
        Binding("pageup", "report_up", "Scroll up", show=False, priority=True),
        Binding("pagedown", "report_down", "Scroll down", show=False, priority=True),
    ]

    def __init__(self, snapshot: SessionSnapshot) -> None:
        super().__init__()
        self.final = snapshot
        self.saved_notes = ""
        self._notes = ""
        self._leave_without_notes = False
        #: Documents written from this screen (F5 / F6), in order.
        self.written: list[Written] = []

    @property
    def epm(self) -> EpmApp:
        return cast("EpmApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="end-body") as body:
            body.can_focus = False  # the notes are the one place that takes the keys
            yield Static("", id="end-outcome")
            yield Label("Zones: planned and delivered", classes="section-title")
            steps = DataTable[str](id="end-steps", cursor_type="none", zebra_stripes=True)
            steps.can_focus = False
            yield steps
            yield Label("Interruptions and alarms", classes="section-title")
            yield Static("", id="end-events")
            yield Label("Course", classes="section-title")
            yield Static("", id="end-course")
            yield Label("Aftercare (tell the client)", classes="section-title")
            yield Static("", id="end-aftercare")
        yield Label(
            "Notes (ctrl+s saves them) · F5 report · F6 handout · PgUp/PgDn scroll",
            id="end-notes-title",
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
            text.append(f"\nReason: {fmt.plain_words(snap.outcome_reason)}")
        text.append(
            f"\nDelivered {fmt.duration(snap.session_delivered_ms)} of "
            f"{fmt.duration(self.planned_ms())} planned · {snap.protocol_title} "
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
                fmt.duration(step.planned_ms) if step.planned_ms else "-",
                fmt.duration(step.delivered_ms) if step.kind == "delivery" else "-",
                step.status.value,
            )
        self.query_one("#end-events", Static).update(self.events_text())
        self.query_one("#end-course", Static).update(self.course_text())
        aftercare = "\n".join(f" • {item}" for item in snap.aftercare) or " (none given)"
        self.query_one("#end-aftercare", Static).update(aftercare)
        self.query_one("#end-notes", TextArea).focus()  # typing goes into the notes

    def planned_ms(self) -> int:
        """The session's planned delivery time: its zones today, as the plan had them (the
        record's summary says the same)."""
        return self.final.session_planned_ms

    def events_text(self) -> Text:
        session_id = self.final.session_id
        if session_id is None:
            return Text("No session record was written.", style="dim")
        try:
            events = self.epm.store.events(session_id)
        except RecordsError as exc:
            return Text(f"The session's events cannot be read: {exc}")
        lines = interruption_lines(
            [e for e in events if e.kind in INTERRUPTION_KINDS or e.kind == "estop"],
            self.final.steps,
        )
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

    # --- notes ------------------------------------------------------------------------------

    def notes_text(self) -> str:
        return self._notes.strip()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        self._notes = event.text_area.text
        status = self.query_one("#end-notes-status", Static)
        if len(self._notes) > NOTES_MAX:
            status.update(
                Text(
                    f"The notes are longer than the record holds ({NOTES_MAX} characters): "
                    "shorten them, or they cannot be saved.",
                    style="bold",
                )
            )
        elif self.notes_text() != self.saved_notes:
            status.update("Not saved yet (ctrl+s).")

    def on_unmount(self) -> None:
        """Leaving another way (the command palette's New session, quitting): keep the notes."""
        if self.notes_text() != self.saved_notes and self.final.session_id is not None:
            try:
                self.write_notes(self.notes_text())
            except Exception:  # best effort; the normal way out (Esc) reports failures
                return

    def action_save_notes(self) -> bool:
        """Save the notes to the session's record and say what the record now holds; False
        (and why) when they could not be saved."""
        notes = self.notes_text()
        status = self.query_one("#end-notes-status", Static)
        if not notes and not self.saved_notes:
            status.update("Nothing was written: the notes are empty.")
            return True
        if notes == self.saved_notes:
            status.update("Nothing new to write: the record already holds these notes.")
            return True
        if len(notes) > NOTES_MAX:
            status.update(
                Text(
                    f"Notes NOT saved: the record holds at most {NOTES_MAX} characters.",
                    style="bold reverse",
                )
            )
            return False
        if self.final.session_id is None:
            engine: Any = self.epm.engine
            if engine is not None:
                engine.set_notes(notes)  # kept by the engine; no record will hold them
            status.update(
                Text(
                    "Nothing was written: this session has no record (it ended before it "
                    "began). Write the notes down elsewhere; Esc leaves without them.",
                    style="bold reverse",
                )
            )
            self._leave_without_notes = True
            return False
        try:
            self.write_notes(notes)
            held = self.recorded_notes()
        except Exception as exc:  # keep the text on screen; say why it was not saved
            status.update(Text(f"Notes NOT saved: {exc}", style="bold reverse"))
            return False
        if held is None:
            status.update(
                Text(
                    "Notes written, but the record could not be read back to check them.",
                    style="bold",
                )
            )
            return False
        if held != notes:
            status.update(
                Text("Notes NOT saved: the record does not hold them.", style="bold reverse")
            )
            return False
        self.saved_notes = notes
        status.update("Notes saved to the record." if notes else "Notes removed from the record.")
        return True

    def recorded_notes(self) -> str | None:
        """The notes the record holds now (None when there is no record to read)."""
        session_id = self.final.session_id
        if session_id is None:
            return None
        try:
            return (self.epm.store.get_session(session_id).notes or "").strip()
        except RecordsError:
            return None

    def write_notes(self, notes: str) -> None:
        engine: Any = self.epm.engine
        if engine is not None:
            engine.set_notes(notes)
            return
        if self.final.session_id is None:
            raise RecordsError("this session has no record to hold notes")
        self.epm.store.set_notes(self.final.session_id, notes)

    # --- keys ---------------------------------------------------------------------------------

    def action_document(self, kind: str) -> None:
        """F5 / F6: write the session report or the client's aftercare handout (PDF) into the
        data folder's ``reports/`` — notes saved first, so the report holds them; the file's
        name and SHA-256 go into the session's record. Never over an existing file."""
        status = self.query_one("#end-notes-status", Static)
        session_id = self.final.session_id
        if session_id is None:
            status.update("No document: this session has no record (it ended before it began).")
            return
        if self.notes_text() != self.saved_notes and not self.action_save_notes():
            return  # the notes status says why; the report would miss them
        what = "session report" if kind == "report" else "aftercare handout"
        status.update(f"Writing the {what}…")
        from controller.ui.shared.documents import write_in_background

        write_in_background(self, self.epm.store, session_id, kind, self._document_written)

    def _document_written(self, written: Written) -> None:
        self.written.append(written)
        self.query_one("#end-notes-status", Static).update(written.message)
        self.notify(
            written.message,
            title="Written" if written.result is not None else "Not written",
            severity="information" if written.result is not None else "error",
            timeout=15,
        )

    def action_report_up(self) -> None:
        self.query_one("#end-body", VerticalScroll).scroll_page_up(animate=False)

    def action_report_down(self) -> None:
        self.query_one("#end-body", VerticalScroll).scroll_page_down(animate=False)

    def action_home(self) -> None:
        leave_anyway = self._leave_without_notes
        if (
            self.notes_text() != self.saved_notes
            and not self.action_save_notes()
            and not leave_anyway
        ):
            return
        self.saved_notes = self.notes_text()
        self.epm.finish_session()
        self.epm.return_home()
