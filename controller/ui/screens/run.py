"""The run screen: what to do next, the zone countdown, live readings, alarms, and the keys.

Why: this is the screen in front of the practitioner while a client is treated. It shows the
engine's state and sends the practitioner's requests; it decides nothing about safety. Keys
that do not apply now are shown disabled (``check_action`` returns None from
``SessionSnapshot.allowed``), never hidden, so the practitioner learns one fixed layout.

Live data: ONE ``set_interval(1/20)`` timer drains the engine's telemetry buffer, reads
``engine.snapshot()`` and updates each widget once per batch. Discrete notices (phase change,
alarm, finished) arrive as :class:`~controller.ui.messages.SessionUpdate` messages and only
trigger an immediate refresh; telemetry never travels as messages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Header, Label, Static

from controller.session.alarms import Priority
from controller.session.model import Action, Phase, SessionControl, SessionSnapshot
from controller.ui.messages import EngineStartFinished, SessionUpdate
from controller.ui.widgets.alarm_banner import AlarmBanner
from controller.ui.widgets.alarm_modal import AlarmModal
from controller.ui.widgets.confirm_modal import ConfirmModal
from controller.ui.widgets.footer import EpmFooter
from controller.ui.widgets.instruction import Instruction
from controller.ui.widgets.link_health import LinkHealthLine
from controller.ui.widgets.live_readings import LiveReadings
from controller.ui.widgets.reason_modal import ReasonModal
from controller.ui.widgets.step_list import StepList
from controller.ui.widgets.zone_progress import ZoneProgress
from controller.wire import Telemetry

if TYPE_CHECKING:
    from controller.ui.app import EpmApp

#: The drain timer's rate (the engineering notes measured 15-20 Hz as the sweet spot).
REFRESH_HZ = 20
#: Screen width from which steps are shown beside the readings instead of below.
WIDE_FROM_COLUMNS = 110

#: Screen actions that map one-to-one onto an engine Action.
ACTIONS: dict[str, Action] = {
    "intensity_up": Action.INTENSITY_UP,
    "intensity_down": Action.INTENSITY_DOWN,
    "stop": Action.STOP,
    "skip": Action.SKIP,
    "end": Action.END,
    "acknowledge": Action.ACKNOWLEDGE,
    "clear_faults": Action.CLEAR_FAULTS,
    "continue": Action.CONTINUE,
    "reconnect": Action.RECONNECT,
}


class RunScreen(Screen[None]):
    """Shows the app's running engine; pushed by the new-session screen after ``start``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "confirm_start", "Start zone", key_display="⏎"),
        Binding("enter", "confirm_done", "Done", key_display="⏎"),
        Binding("plus,up", "intensity_up", "+1 V", key_display="+"),
        Binding("minus,down", "intensity_down", "-1 V", key_display="-"),
        Binding("p,space", "pause", "Pause", key_display="p"),
        Binding("p,space", "resume", "Resume", key_display="p"),
        Binding("s", "stop", "Stop"),
        Binding("k", "skip", "Skip zone"),
        Binding("e", "end", "End early"),
        Binding("a", "acknowledge", "Ack"),
        Binding("c", "clear_faults", "Clear faults"),
        Binding("n", "continue", "Continue"),
        Binding("r", "reconnect", "Reconnect"),
        Binding("escape", "leave", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: SessionSnapshot | None = None
        self.start_error: str | None = None
        self.ticks = 0
        self.frames_drained = 0
        self._bindings_key: object = None
        self._alarms_seen: set[tuple[str, int]] = set()
        self._alarm_modal_open = False
        self._ended = False

    @property
    def epm(self) -> EpmApp:
        return cast("EpmApp", self.app)

    @property
    def engine(self) -> SessionControl | None:
        return self.epm.engine

    # --- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="run-main"):
            yield AlarmBanner(flash=self.epm.animate_alarms, id="alarm-banner")
            yield Instruction(id="instruction")
            yield Static("", id="start-error")
            with Horizontal(id="run-body"):
                with Vertical(id="run-left"):
                    yield ZoneProgress(id="zone-progress")
                    yield LiveReadings(id="live")
                with VerticalScroll(id="run-right", can_focus=False):
                    yield Label("Steps", classes="section-title")
                    yield StepList(id="steps")
            yield LinkHealthLine(id="link")
        yield EpmFooter()

    def on_mount(self) -> None:
        self.epm.session_screen = self
        plan = self.epm.session_plan
        if plan is not None:
            self.sub_title = f"Session · client {plan.client_code}"
        self.set_interval(1 / REFRESH_HZ, self.refresh_from_engine)
        self.refresh_from_engine()

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width >= WIDE_FROM_COLUMNS, "-wide")

    # --- live data: one timer, one batch ------------------------------------------------------

    def refresh_from_engine(self) -> None:
        """Drain telemetry, read the snapshot, update each widget once (the 20 Hz timer)."""
        engine = self.engine
        if engine is None:
            return
        self.ticks += 1
        batch = engine.drain_telemetry()
        self.frames_drained += len(batch)
        snap = engine.snapshot()
        if snap is self.snapshot and not batch:
            return  # nothing new (the engine handed back the very same snapshot)
        self.apply(snap, batch)

    def apply(self, snap: SessionSnapshot, batch: Sequence[Telemetry] = ()) -> None:
        """Update every widget once from ``snap`` and this batch of telemetry."""
        self.snapshot = snap
        step = snap.current_step
        self.query_one(AlarmBanner).show_alarms(snap.alarms)
        self.query_one(Instruction).show(snap)
        self.query_one(ZoneProgress).show(snap)
        self.query_one(LiveReadings).show(
            snap.live,
            snap.setpoint_dv,
            step.amplitude_max_dv if step is not None else None,
            batch,
        )
        self.show_steps(snap)
        self.query_one(LinkHealthLine).show(snap.link)
        self.set_class(snap.phase is Phase.REFUSED, "-refused")
        key = (snap.phase, snap.allowed, self.start_error)
        if key != self._bindings_key:
            self._bindings_key = key
            self.refresh_bindings()
        self.raise_new_alarms(snap)
        if snap.phase is Phase.FINISHED and not self._ended:
            self._ended = True
            self.show_end(snap)

    def show_steps(self, snap: SessionSnapshot) -> None:
        """Update the step list and keep the current step in view."""
        steps = self.query_one(StepList)
        if steps.show(snap.steps, snap.step_index) and snap.step_index is not None:
            box = self.query_one("#run-right", VerticalScroll)
            # Line 0 is the "Steps" title; keep one step of context above the current one.
            box.scroll_to(y=max(0, snap.step_index - 2), animate=False)

    def on_session_update(self, message: SessionUpdate) -> None:
        """A discrete notice: refresh now instead of at the next tick."""
        message.stop()
        self.refresh_from_engine()

    def on_engine_start_finished(self, message: EngineStartFinished) -> None:
        message.stop()
        if message.error:
            self.start_error = message.error
            self.query_one("#start-error", Static).update(
                f"{message.error}\nNothing was delivered. Press Esc to go back."
            )
            self.add_class("-start-failed")
        self.refresh_from_engine()

    def raise_new_alarms(self, snap: SessionSnapshot) -> None:
        """Ring and open the alarm modal for each new, unacknowledged high-priority alarm."""
        for alarm in snap.alarms:
            key = (str(alarm.code), alarm.occurrence)
            if key in self._alarms_seen:
                continue
            self._alarms_seen.add(key)
            if alarm.priority is Priority.HIGH and not alarm.acknowledged:
                self.app.bell()
                if not self._alarm_modal_open:
                    self._alarm_modal_open = True
                    self.app.push_screen(AlarmModal(alarm), self._alarm_modal_closed)

    def _alarm_modal_closed(self, acknowledged: bool | None) -> None:
        self._alarm_modal_open = False
        if acknowledged:
            self.send(Action.ACKNOWLEDGE)

    def show_end(self, snap: SessionSnapshot) -> None:
        from controller.ui.screens.end import EndScreen

        self.app.push_screen(EndScreen(snap))

    # --- keys ---------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        snap = self.snapshot
        allowed = snap.allowed if snap is not None else frozenset()
        phase = snap.phase if snap is not None else Phase.PREFLIGHT
        if action == "leave":
            leave = self.start_error is not None or phase in (Phase.REFUSED, Phase.FINISHED)
            return leave
        if action in ("confirm_start", "confirm_done"):
            manual = phase is Phase.MANUAL
            if (action == "confirm_done") != manual:
                return False
            return True if Action.CONFIRM in allowed else None
        if action == "pause":
            if Action.PAUSE in allowed:
                return True
            return False if Action.RESUME in allowed else None
        if action == "resume":
            return Action.RESUME in allowed
        mapped = ACTIONS.get(action)
        if mapped is not None:
            return True if mapped in allowed else None
        return True

    def send(self, action: Action, reason: str | None = None) -> None:
        engine = self.engine
        if engine is not None:
            engine.request(action, reason)

    def action_confirm_start(self) -> None:
        self.send(Action.CONFIRM)

    def action_confirm_done(self) -> None:
        self.send(Action.CONFIRM)

    def action_intensity_up(self) -> None:
        self.send(Action.INTENSITY_UP)

    def action_intensity_down(self) -> None:
        self.send(Action.INTENSITY_DOWN)

    def action_pause(self) -> None:
        self.send(Action.PAUSE)

    def action_resume(self) -> None:
        self.send(Action.RESUME)

    def action_acknowledge(self) -> None:
        self.send(Action.ACKNOWLEDGE)

    def action_clear_faults(self) -> None:
        self.send(Action.CLEAR_FAULTS)

    def action_continue(self) -> None:
        self.send(Action.CONTINUE)

    def action_reconnect(self) -> None:
        self.send(Action.RECONNECT)

    def action_stop(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.send(Action.STOP)

        self.app.push_screen(
            ConfirmModal(
                "Stop the session?",
                "Output ramps down and the session ends; it cannot be resumed. "
                "For an emergency press F12 instead.",
            ),
            answered,
        )

    def action_skip(self) -> None:
        def answered(reason: str | None) -> None:
            if reason:
                self.send(Action.SKIP, reason)

        step = self.snapshot.current_step if self.snapshot else None
        what = f"step {step.index}" if step is not None else "this step"
        self.app.push_screen(
            ReasonModal(f"Skip {what}", "Why is it skipped? The record keeps the reason."),
            answered,
        )

    def action_end(self) -> None:
        def answered(reason: str | None) -> None:
            if reason:
                self.send(Action.END, reason)

        self.app.push_screen(
            ReasonModal(
                "End the session early",
                "Why does the session end early? Output stops and the rest is not delivered.",
            ),
            answered,
        )

    def action_leave(self) -> None:
        """After a refusal (or a failed start): back to the new-session screen to fix it."""
        snap = self.snapshot
        finished = snap is not None and snap.phase in (Phase.REFUSED, Phase.FINISHED)
        if not finished and self.start_error is None:
            return
        self.epm.finish_session(force=self.start_error is not None)
        self.app.pop_screen()
