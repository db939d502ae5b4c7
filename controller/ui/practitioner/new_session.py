"""The new-session wizard: client, protocol, zones and serum lot, checklist, then start.

Why: everything a session record must hold is collected here, in the order a practitioner
works: who is in the chair (and where they are in their course), which approved protocol, which
zones today, which serum lot, and the pre-session checklist. The screen decides nothing about
safety: which protocols may run is ``check_runnable``'s answer, whether the checklist allows a
session is ``evaluate_checklist``'s, and the engine's preflight has the last word.

Keys: ctrl+n (or Enter, everywhere: in a field, on a list) next page, Esc back (on the first
page: back home), ctrl+s start (last page). Space toggles in lists (a zone, an answer); Enter
never does. A key that does not apply yet says why when pressed, and a field that is full says
so instead of dropping what was typed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import (
    Button,
    ContentSwitcher,
    Header,
    Input,
    Label,
    OptionList,
    Static,
)
from textual.widgets.option_list import Option

from controller.records import RecordsError, RecordStore
from controller.records.approvals import check_runnable
from controller.records.courses import course_progress
from controller.records.validation import CLIENT_CODE, CLIENT_NAME_MAX
from controller.session.model import SessionPlan
from controller.ui.practitioner.checklist import ChecklistAnswers, ToggleList
from controller.ui.practitioner.protocol_summary import ProtocolSummary
from controller.ui.shared import formatting as fmt
from controller.ui.shared.footer import EpmFooter
from protocols import build_checklist, evaluate_checklist, load_library

if TYPE_CHECKING:
    from controller.ui.app import EpmApp

PAGES = ("page-client", "page-protocol", "page-zones", "page-checklist", "page-review")
PAGE_TITLES = ("Client", "Protocol", "Zones & serum", "Checklist", "Start")

#: What each field holds (for "at most N characters" messages), by the Input's id.
FIELD_NAMES = {
    "client-code": "A client code",
    "client-name": "A client's name",
    "practitioner": "The practitioner's name",
    "serum-lot": "A serum lot number",
}


class LimitedInput(Input):
    """An Input that says why it refused what was typed or pasted (it was too long), instead
    of only ringing the terminal bell: what was refused is not taken at all, never cut."""

    class Refused(Message):
        """Typing or pasting was refused: the field would have been longer than its limit."""

        def __init__(self, field: LimitedInput) -> None:
            super().__init__()
            self.field = field

        @property
        def control(self) -> LimitedInput:
            return self.field

    def restricted(self) -> None:
        self.post_message(self.Refused(self))


def too_long_message(field_id: str, max_length: int) -> str:
    what = FIELD_NAMES.get(field_id, "This field")
    return (
        f"{what} has at most {max_length} characters: what was typed or pasted beyond that "
        "was not taken. Check the field and shorten it."
    )


@dataclass(frozen=True)
class LibraryEntry:
    """One protocol file of the library and why it may not run here (empty: it may)."""

    result: Any
    refusals: tuple[str, ...]

    @property
    def runnable(self) -> bool:
        return not self.refusals and self.result.protocol is not None

    @property
    def label(self) -> str:
        protocol = self.result.protocol
        if protocol is None:
            return f"{self.result.path.name} (invalid file)"
        return f"{protocol.title} (v{protocol.version})"

    @property
    def detail(self) -> str:
        """An invalid file's first error, ``line 9: ...`` (empty for a valid protocol)."""
        if self.result.protocol is not None or not self.result.errors:
            return ""
        first = self.result.errors[0]
        return f"line {first.line}: {first.message}"


def read_library(
    folder: Path, simulated: bool, store: RecordStore, attached: str
) -> tuple[list[LibraryEntry], str]:
    """Every protocol of ``folder`` with why it may not run here, the usual choice first:
    runnable ones, those for the ``attached`` handpiece before the others, then by title.
    Returns the entries and an error sentence (empty when the folder was read).

    Never raises: a file that cannot be read is an invalid entry (``load_library`` reports
    it), and anything else going wrong is the error sentence, so the screen never waits for
    a library that will not come."""
    try:
        results = load_library(folder)
    except OSError as exc:
        return [], (
            f"The protocol library {folder} cannot be read: {exc}. Start epm with --library FOLDER."
        )
    except Exception as exc:  # the screen must get an answer
        return [], (
            f"The protocol library {folder} cannot be read: epm failed on it "
            f"({type(exc).__name__}). Check it with: epm validate {folder}"
        )
    entries = []
    for result in results:
        try:
            refusals = tuple(check_runnable(result, simulated, store))
        except RecordsError as exc:
            refusals = (f"the approval records cannot be read: {exc}",)
        except Exception as exc:  # one odd result must not hide the others
            refusals = (f"the file cannot be checked here ({type(exc).__name__})",)
        entries.append(LibraryEntry(result, refusals))
    entries.sort(
        key=lambda e: (
            not e.runnable,
            e.result.protocol is not None and e.result.protocol.handpiece.value != attached,
            e.label.casefold(),
        )
    )
    return entries, ""


def client_code_problem(code: str) -> str:
    """Why ``code`` is not a client code (empty when it is one)."""
    if not code.strip():
        return "Type the client's code (the clinic's client number, e.g. C-0042)."
    if not CLIENT_CODE.match(code.strip()):
        return f"'{code}' is not a client code: use 1-32 letters, digits, '-' or '_' (e.g. C-0042)."
    return ""


class NewSessionScreen(Screen[None]):
    """Five pages in a ``ContentSwitcher``; the step line on top shows where you are."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "next", "Next"),
        # Enter goes on wherever nothing else takes it (the lists leave it to the screen).
        Binding("enter", "next", "Next", show=False),
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "start", "Start session"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.page = 0
        self.entries: list[LibraryEntry] = []
        self.selected: LibraryEntry | None = None
        self.library_loaded = False
        self.library_error: str | None = None

    @property
    def epm(self) -> EpmApp:
        return cast("EpmApp", self.app)

    # --- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="wizard-steps")
        with ContentSwitcher(initial=PAGES[0], id="pages"):
            with Vertical(id="page-client", classes="page"):
                with Horizontal(classes="field"):
                    yield Label("Client code", classes="field-label")
                    yield LimitedInput(
                        placeholder="e.g. C-0042", id="client-code", max_length=32, compact=True
                    )
                with Horizontal(classes="field"):
                    yield Label("Name", classes="field-label")
                    yield LimitedInput(
                        placeholder="optional, e.g. Anna B.",
                        id="client-name",
                        max_length=CLIENT_NAME_MAX,
                        compact=True,
                    )
                with Horizontal(classes="field"):
                    yield Label("Practitioner", classes="field-label")
                    yield LimitedInput(id="practitioner", max_length=120, compact=True)
                yield Label(
                    "Clients matching the code (Tab here, Enter picks one and goes on):",
                    classes="field-help",
                )
                yield OptionList(id="client-matches", compact=True)
            with Vertical(id="page-protocol", classes="page"):
                yield OptionList(id="protocols", compact=True)
                yield Static("", id="course")
                with VerticalScroll(id="summary-scroll"):
                    yield ProtocolSummary(id="summary")
            with Vertical(id="page-zones", classes="page"):
                yield Label(
                    "Zones today: space turns one on ✔ or off ✘ · Enter goes on · "
                    "manual steps always run"
                )
                yield ToggleList(id="zones")
                yield Label("Serum lot number (on the serum's label)", id="lot-label")
                yield LimitedInput(
                    placeholder="e.g. LOT-2026-117", id="serum-lot", max_length=64, compact=True
                )
            with Vertical(id="page-checklist", classes="page"):
                yield Label("Checklist: ↑↓ move · y yes · n no · space no/yes · Enter goes on")
                yield ChecklistAnswers(id="checklist")
                yield Static("", id="checklist-status")
            with VerticalScroll(id="page-review", classes="page"):
                yield Static("", id="review")
                with Horizontal(id="review-buttons"):
                    yield Button("Start session (ctrl+s)", id="btn-start", variant="primary")
                    yield Button("Back (Esc)", id="btn-back")
        yield Static("", id="wizard-problem")
        yield EpmFooter()

    def on_mount(self) -> None:
        self.sub_title = "New session"
        self.query_one("#practitioner", Input).value = self.epm.practitioner
        self.load_entries()
        self.show_page(0)

    # --- the library --------------------------------------------------------------------------

    def load_entries(self) -> None:
        """Load the library in a daemon thread (parsing every file takes a noticeable moment;
        the keys, the emergency stop among them, stay responsive meanwhile)."""
        app = self.epm
        library_path, simulated, store = app.library_path, app.simulated, app.store
        attached = self.attached_handpiece()

        def work() -> None:  # never touches the DOM: its result goes back through the app
            entries, error = read_library(library_path, simulated, store, attached)
            app.call_later(self.show_entries, entries, error)

        threading.Thread(target=work, name="epm-ui-library", daemon=True).start()

    def show_entries(self, entries: list[LibraryEntry], error: str) -> None:
        if not self.is_attached:
            return
        self.entries = entries
        self.library_error = error or None
        self.library_loaded = True
        protocol_list = self.query_one("#protocols", OptionList)
        protocol_list.clear_options()
        for n, entry in enumerate(entries):
            prompt = Text(entry.label)
            if not entry.runnable:
                prompt.append("  — cannot run here (see why below)", style="italic")
            if entry.detail:
                prompt.append(f"\n    {entry.detail}", style="dim")
            protocol_list.add_option(Option(prompt, id=f"p{n}"))
        if entries:
            protocol_list.highlighted = 0
        if self.page == 1:
            self.show_protocol(protocol_list.highlighted)

    def attached_handpiece(self) -> str:
        """The handpiece attached now, as the protocol files name it (``scalp_roller``)."""
        device = self.epm.device
        handpiece = device.handpiece if device is not None else None
        if handpiece is None and self.epm.device_info is not None:
            handpiece = self.epm.device_info.handpiece
        return handpiece.name.lower() if handpiece is not None else ""

    def entry_at(self, index: int | None) -> LibraryEntry | None:
        if index is None or not 0 <= index < len(self.entries):
            return None
        return self.entries[index]

    # --- pages --------------------------------------------------------------------------------

    def show_page(self, page: int) -> None:
        self.page = page
        self.query_one("#pages", ContentSwitcher).current = PAGES[page]
        steps = Text()
        for n, title in enumerate(PAGE_TITLES):
            if n:
                steps.append(" › ", style="dim")
            style = "bold reverse" if n == page else ("bold" if n < page else "dim")
            steps.append(f" {n + 1} {title} ", style=style)
        self.query_one("#wizard-steps", Static).update(steps)
        self.problem("")
        focus_targets = ("#client-code", "#protocols", "#zones", "#checklist", "#btn-start")
        if page == 1:
            self.show_protocol(self.query_one("#protocols", OptionList).highlighted)
        if page == 3:
            self.update_checklist_status()
        if page == 4:
            self.update_review()
        self.query_one(focus_targets[page]).focus()
        self.refresh_bindings()

    def problem(self, message: str) -> None:
        self.query_one("#wizard-problem", Static).update(
            Text(message, style="bold") if message else ""
        )

    def page_problem(self, page: int) -> str:
        """Why the wizard may not leave ``page`` forward (empty: it may)."""
        if page == 0:
            issue = client_code_problem(self.query_one("#client-code", Input).value)
            if issue:
                return issue
            if not self.query_one("#practitioner", Input).value.strip():
                return "Type the practitioner's name: it is recorded with the session."
            return ""
        if page == 1:
            if not self.library_loaded:
                return "The protocol library is still loading; a moment please."
            if self.library_error:
                return self.library_error
            entry = self.entry_at(self.query_one("#protocols", OptionList).highlighted)
            if entry is None:
                return "Choose a protocol (the library has none that loads)."
            if not entry.runnable:
                return "This protocol cannot run on this device: " + "; ".join(entry.refusals)
            return ""
        if page == 2:
            if not self.query_one("#zones", ToggleList).selected:
                return "Choose at least one zone (space toggles the highlighted zone)."
            if not self.epm.simulated and not self.query_one("#serum-lot", Input).value.strip():
                return "Type the serum's lot number: on a real device it is required."
            return ""
        if page == 3:
            reasons = self.checklist_reasons()
            if reasons:
                return f"The checklist does not allow a session yet: {reasons[0]}"
            return ""
        return ""

    def action_next(self) -> None:
        if self.page >= len(PAGES) - 1:
            return
        issue = self.page_problem(self.page)
        if issue:
            self.problem(issue)
            return
        if self.page == 1:
            self.choose_protocol()
        self.show_page(self.page + 1)

    def action_back(self) -> None:
        if self.page == 0:
            self.app.pop_screen()
            return
        self.show_page(self.page - 1)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "next":
            return True if self.page < len(PAGES) - 1 else None
        if action == "start":
            return True if self.page == len(PAGES) - 1 else None
        return True

    def disabled_reason(self, action: str) -> str:
        """Why a dimmed key does nothing now (the app shows it when the key is pressed)."""
        if action == "start":
            problems = self.all_problems()
            if problems:
                more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
                message = f"Not ready to start: {problems[0]}{more}"
            else:
                message = "Check the summary first: ctrl+n to the last page, then ctrl+s starts."
            return message
        if action == "next":
            return "This is the last page: ctrl+s starts the session (Esc goes back)."
        return ""

    def show_disabled_reason(self, message: str) -> None:
        """Shown in the page's own problem line, where the other reasons are."""
        self.problem(message)

    def on_limited_input_refused(self, event: LimitedInput.Refused) -> None:
        event.stop()
        field = event.field
        self.problem(too_long_message(field.id or "", field.max_length or 0))

    # --- page 1: client -----------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "client-code":
            self.update_client_matches(event.value)

    def update_client_matches(self, text: str) -> None:
        matches = self.query_one("#client-matches", OptionList)
        matches.clear_options()
        if not text.strip():
            return
        try:
            clients = self.epm.store.find_clients(text.strip(), limit=20)
        except RecordsError as exc:
            self.problem(f"The client list cannot be read: {exc}")
            return
        for client in clients:
            label = client.code + (f"  {client.name}" if client.name else "")
            matches.add_option(Option(label, id=f"client:{client.code}"))
        if not clients:
            matches.add_option(Option(Text("no client with this code yet: a new one", "italic")))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_next()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_list.id == "client-matches":
            option_id = event.option.id or ""
            if option_id.startswith("client:"):
                code = option_id.removeprefix("client:")
                client = next(
                    (c for c in self.epm.store.find_clients(code) if c.code == code), None
                )
                self.query_one("#client-code", Input).value = code
                self.query_one("#client-name", Input).value = (client.name or "") if client else ""
                self.query_one("#client-code", Input).focus()
            self.action_next()
        elif event.option_list.id == "protocols":
            self.action_next()

    # --- page 2: protocol ---------------------------------------------------------------------

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "protocols":
            self.show_protocol(event.option_list.highlighted)

    def show_protocol(self, index: int | None) -> None:
        entry = self.entry_at(index)
        summary = self.query_one("#summary", ProtocolSummary)
        course = self.query_one("#course", Static)
        if entry is None:
            summary.show(None)
            course.update(
                "" if self.library_loaded else Text("Loading the protocol library…", "italic")
            )
            if self.library_error:
                course.update(Text(self.library_error, style="bold"))
            return
        summary.show(entry.result, entry.refusals)
        course.update(self.course_text(entry))

    def course_text(self, entry: LibraryEntry) -> Text:
        protocol = entry.result.protocol
        code = self.query_one("#client-code", Input).value.strip()
        if protocol is None or client_code_problem(code):
            return Text("")
        try:
            progress = course_progress(self.epm.store, code, protocol, today=self.epm.today())
        except RecordsError as exc:
            return Text(f"Course: cannot be read ({exc})")
        text = Text()
        text.append(f"Course for {code}: ", style="bold")
        text.append(progress.summary)
        if self.epm.simulated:
            text.append(" (Simulated sessions never count.)", style="italic")
        attached = self.attached_handpiece()
        wanted = protocol.handpiece.value
        if attached and attached != wanted:
            text.append(
                f"\nHandpiece: this protocol needs the {wanted.replace('_', ' ')}; the device "
                f"has the {attached.replace('_', ' ')} attached. Attach the right one before "
                "starting.",
                style="bold",
            )
        return text

    def choose_protocol(self) -> None:
        entry = self.entry_at(self.query_one("#protocols", OptionList).highlighted)
        if entry is None or entry is self.selected:
            return
        self.selected = entry
        protocol = entry.result.protocol
        zones = self.query_one("#zones", ToggleList)
        zones.set_entries([(fmt.zone(zone.value), zone.value, True) for zone in protocol.zones])
        self.query_one("#lot-label", Label).update(
            f"Serum lot number of {protocol.serum.name}"
            + (" (optional on the simulator)" if self.epm.simulated else " (required)")
        )
        self.query_one("#checklist", ChecklistAnswers).set_items(build_checklist(protocol))

    # --- page 4: checklist --------------------------------------------------------------------

    def checklist_reasons(self) -> list[str]:
        checklist = self.query_one("#checklist", ChecklistAnswers)
        return evaluate_checklist(checklist.items, checklist.answers)

    def on_checklist_answers_changed(self, _event: ChecklistAnswers.Changed) -> None:
        self.problem("")
        self.update_checklist_status()

    def update_checklist_status(self) -> None:
        reasons = self.checklist_reasons()
        unanswered = sum(1 for r in reasons if r.startswith("Not answered"))
        blocking = [r for r in reasons if not r.startswith("Not answered")]
        text = Text()
        if not reasons:
            text.append("All items answered; the checklist allows the session.", style="bold")
        else:
            if blocking:
                text.append("Blocks the session: ", style="bold reverse")
                text.append(" ".join(blocking))
            if unanswered:
                text.append(("\n" if blocking else "") + f"{unanswered} item(s) not answered yet.")
        self.query_one("#checklist-status", Static).update(text)

    # --- page 5: review and start -------------------------------------------------------------

    def plan(self) -> SessionPlan:
        entry = self.selected
        assert entry is not None
        checklist = self.query_one("#checklist", ChecklistAnswers)
        zones = tuple(self.query_one("#zones", ToggleList).selected)
        all_zones = tuple(z.value for z in entry.result.protocol.zones)
        name = self.query_one("#client-name", Input).value.strip()
        return SessionPlan(
            load_result=entry.result,
            client_code=self.query_one("#client-code", Input).value.strip(),
            practitioner=self.query_one("#practitioner", Input).value.strip(),
            serum_lot=self.query_one("#serum-lot", Input).value.strip(),
            checklist_answers={k: bool(v) for k, v in checklist.answers.items()},
            zones=None if set(zones) == set(all_zones) else zones,
            client_name=name or None,
        )

    def all_problems(self) -> list[str]:
        return [p for p in (self.page_problem(n) for n in range(4)) if p]

    def update_review(self) -> None:
        text = Text()
        entry = self.selected
        problems = self.all_problems()
        if entry is not None and entry.result.protocol is not None:
            plan = self.plan()
            protocol = entry.result.protocol
            zones = plan.zones or tuple(z.value for z in protocol.zones)
            text.append("Client: ", style="bold")
            text.append(plan.client_code + (f" ({plan.client_name})" if plan.client_name else ""))
            text.append("\nProtocol: ", style="bold")
            text.append(f"{protocol.title} ({protocol.id} v{protocol.version})")
            text.append("\nZones: ", style="bold")
            text.append(", ".join(fmt.zone(z) for z in zones))
            text.append("\nSerum: ", style="bold")
            text.append(f"{protocol.serum.name}, lot {plan.serum_lot or '(none)'}")
            text.append("\nPractitioner: ", style="bold")
            text.append(plan.practitioner)
            text.append("\n")
            text.append_text(self.course_text(entry))
        if problems:
            text.append("\n\nNot ready:", style="bold reverse")
            for issue in problems:
                text.append(f"\n • {issue}")
        else:
            text.append(
                "\n\nReady. ctrl+s starts the session: the device is checked first "
                "(preflight) and nothing is delivered until you confirm the handpiece "
                "is placed."
            )
        self.query_one("#review", Static).update(text)
        self.query_one("#btn-start", Button).disabled = bool(problems)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "btn-start":
            self.action_start()
        elif event.button.id == "btn-back":
            self.action_back()

    def action_start(self) -> None:
        if self.page != len(PAGES) - 1:
            return
        problems = self.all_problems()
        if problems:
            self.problem(problems[0])
            return
        app = self.epm
        if app.session_open:
            self.problem("A session is already open.")
            return
        plan = self.plan()
        try:
            app.store.get_or_create_client(plan.client_code, plan.client_name)
        except RecordsError as exc:
            self.problem(f"The client cannot be used: {exc}.")
            return
        try:
            app.start_session(plan)
        except Exception as exc:  # the engine refused to be built: say why, stay here
            self.problem(f"The session could not be created: {exc}")
            return
        from controller.ui.practitioner.run import RunScreen

        self.app.push_screen(RunScreen())
