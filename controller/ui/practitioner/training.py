"""The training panel: a trainer injects faults into the simulator while a trainee runs a session.

Why: the alarms, HOLD, the lost link and the other unit are best learnt by seeing them, and
only a simulator can be made to fail on purpose. The panel lists the faults in plain words;
Enter injects the highlighted one (asking for the seconds of a link loss), Esc closes. Each
injection is recorded in the running session (a ``training_fault`` event) through
:class:`~controller.session.training.TrainingFaults`, which also refuses everything on a real
device. It is a modal screen: the run screen stays visible (and live) underneath, and F12 still
stops the unit.

Open it with :func:`open_training_panel` (the app or the run screen binds a key to it, shown
only while ``app.simulated``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList
from textual.widgets.option_list import Option

from controller.session.training import (
    Injection,
    TrainingError,
    TrainingFault,
    TrainingFaults,
    seconds,
)

if TYPE_CHECKING:
    from controller.ui.app import EpmApp

#: What the panel says on a real device (the app's SIMULATOR marker is off).
REAL_DEVICE = (
    "Training faults are for the simulator only: epm is connected to a real EPM-1. Nothing "
    "can be injected into a real device."
)
#: How often the panel re-reads whether a session is open.
SESSION_POLL_S = 0.5


def training_faults_for(app: EpmApp) -> TrainingFaults:
    """The training service for ``app``'s device and its current session engine."""
    from simulator import simulator_for_url

    info = app.device_info
    return TrainingFaults(
        app.port,
        find_simulator=simulator_for_url,
        device_serial=info.serial if info is not None else None,
        session=lambda: app.engine,
    )


def panel_refusal(app: EpmApp, service: TrainingFaults) -> str | None:
    """Why the panel may not inject here (None: it may)."""
    if not app.simulated:
        return REAL_DEVICE
    return service.refusal()


def open_training_panel(app: EpmApp, service: TrainingFaults | None = None) -> None:
    """Show the training panel, or say why not (a real device, no simulator in reach)."""
    if isinstance(app.screen, TrainingPanel):
        return
    service = service if service is not None else training_faults_for(app)
    refusal = panel_refusal(app, service)
    if refusal is not None:
        app.notify(refusal, title="No training faults", severity="warning", timeout=10)
        return
    app.push_screen(TrainingPanel(service))


class SecondsPrompt(ModalScreen[float | None]):
    """Asks for a number of seconds (prefilled with the default); dismisses with it or None."""

    DEFAULT_CSS = """
    SecondsPrompt {
        align: center middle;
    }
    SecondsPrompt > Vertical {
        width: 60;
        max-width: 95%;
        height: auto;
        padding: 0 1;
        border: thick $warning;
        background: $surface;
    }
    SecondsPrompt #problem {
        color: $error;
        height: auto;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, prompt: str, default: float) -> None:
        super().__init__()
        self.title_text = title
        self.prompt = prompt
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title")
            yield Label(self.prompt)
            yield Input(value=f"{self.default:g}", id="seconds", max_length=12)
            yield Label("", id="problem")
            yield Label("Enter injects · Esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#seconds", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            value = seconds(event.value or self.default)
        except TrainingError as exc:
            self.query_one("#problem", Label).update(str(exc))
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)


class TrainingPanel(ModalScreen[None]):
    """The faults of the training catalogue; Enter injects the highlighted one, Esc closes."""

    DEFAULT_CSS = """
    TrainingPanel {
        align: center middle;
    }
    TrainingPanel > Vertical {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        padding: 0 1;
        border: thick $warning;
        background: $surface;
    }
    TrainingPanel #title {
        text-style: bold;
    }
    TrainingPanel #faults {
        height: auto;
        max-height: 10;
    }
    TrainingPanel #effect, TrainingPanel #result, TrainingPanel #session {
        height: auto;
        width: 100%;
    }
    TrainingPanel #result.-refused {
        color: $error;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("enter", "inject", "Inject", key_display="⏎", show=True),
    ]

    def __init__(self, service: TrainingFaults) -> None:
        super().__init__()
        self.service = service
        self.injections: list[Injection] = []
        """What this panel injected, in order (the newest last)."""
        self.refused: str | None = None
        self.busy = False

    @property
    def epm(self) -> EpmApp:
        from controller.ui.app import EpmApp

        app = self.app
        assert isinstance(app, EpmApp)
        return app

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Training faults — SIMULATOR", id="title")
            yield Label("", id="session")
            yield OptionList(
                *(Option(fault.title, id=fault.name) for fault in self.service.catalogue()),
                id="faults",
                compact=True,
            )
            yield Label("", id="effect")
            yield Label("", id="result")
            yield Label("⏎ injects the highlighted fault · Esc closes · F12 E-STOP", classes="hint")

    def on_mount(self) -> None:
        faults = self.query_one("#faults", OptionList)
        self.refused = panel_refusal(self.epm, self.service)
        if self.refused is not None:  # pushed directly on a real device: offer nothing
            faults.clear_options()
            faults.disabled = True
            self.show_result(self.refused, refused=True)
            return
        faults.highlighted = 0
        faults.focus()
        self.show_effect(faults.highlighted)
        self.refresh_session()
        self.set_interval(SESSION_POLL_S, self.refresh_session)

    # --- what the panel shows -----------------------------------------------------------------

    def refresh_session(self) -> None:
        if not self.is_attached:
            return
        session_id = self.service.session_id()
        text = (
            f"Session #{session_id} is running: each injection is recorded in it."
            if session_id is not None
            else "No session is running: injections are not recorded."
        )
        self.query_one("#session", Label).update(text)

    def fault_at(self, index: int | None) -> TrainingFault | None:
        catalogue = self.service.catalogue()
        if index is None or not 0 <= index < len(catalogue):
            return None
        return catalogue[index]

    def show_effect(self, index: int | None) -> None:
        fault = self.fault_at(index)
        self.query_one("#effect", Label).update("" if fault is None else fault.effect)

    def show_result(self, text: str, *, refused: bool = False) -> None:
        if not self.is_attached:  # closed while an injection ran
            return
        result = self.query_one("#result", Label)
        result.update(text)
        result.set_class(refused, "-refused")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        self.show_effect(event.option_index)

    # --- injecting ------------------------------------------------------------------------------

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.choose(self.fault_at(event.option_index))

    def action_inject(self) -> None:
        self.choose(self.fault_at(self.query_one("#faults", OptionList).highlighted))

    def choose(self, fault: TrainingFault | None) -> None:
        if fault is None or self.busy or self.refused is not None:
            return
        if fault.ask is None:
            self.start_injection(fault, {})
            return
        default = float(fault.params.get(fault.ask, 5.0))

        def answered(value: float | None) -> None:
            if value is None:
                self.show_result("Cancelled: nothing was injected.")
                return
            assert fault.ask is not None
            self.start_injection(fault, {fault.ask: value})

        self.app.push_screen(
            SecondsPrompt(fault.title, fault.ask_prompt or "How many seconds?", default),
            answered,
        )

    def start_injection(self, fault: TrainingFault, params: dict[str, Any]) -> None:
        self.busy = True
        self.show_result(f"Injecting: {fault.title}…")
        self.inject_in_thread(fault.name, params)

    @work(thread=True, group="training-inject")
    def inject_in_thread(self, name: str, params: dict[str, Any]) -> None:
        """The record is committed to disk first: never on the UI's event loop."""
        try:
            injection = self.service.inject(name, **params)
        except TrainingError as exc:
            self.app.call_from_thread(self.injection_failed, str(exc))
        else:
            self.app.call_from_thread(self.injection_done, injection)

    def injection_done(self, injection: Injection) -> None:
        self.busy = False
        self.injections.append(injection)
        self.show_result(injection.message)
        self.refresh_session()

    def injection_failed(self, message: str) -> None:
        self.busy = False
        self.show_result(message, refused=True)

    def action_close(self) -> None:
        self.dismiss(None)
