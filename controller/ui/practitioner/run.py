"""The run screen: what to do next, the output and the zone's time left at a glance, the scalp
map, live readings, alarms, and the keys.

Why: this is the screen in front of the practitioner while a client is treated, read from the
chair between two moves of the handpiece. It shows the engine's state and sends the
practitioner's requests; it decides nothing about safety. Keys that do not apply now are shown
disabled (``check_action`` returns None from ``SessionSnapshot.allowed``) and say why when
pressed; the footer shows the five keys that matter in the phase (``footer_actions``), the
help screen (F1) lists every key.

Live data: ONE ``set_interval(1/20)`` timer drains the engine's telemetry buffer, reads
``engine.snapshot()`` and updates each widget once per batch. Discrete notices (phase change,
alarm, finished) arrive as :class:`~controller.ui.messages.SessionUpdate` messages and only
trigger an immediate refresh; telemetry never travels as messages. The readings' age is the
snapshot's own (``LiveView.age_s``, measured by the engine from when it received them).

What a choice was made on: every request carries the snapshot's ``seen`` from the moment the
choice was made — when a question opened (skip, end, stop) or when the key was pressed (the
snapshot that was on screen at the key's timestamp) — so the engine can refuse a choice the
session has moved past. Keys that start or raise output count only when pressed after the
screen and the current step were shown: keys typed ahead are discarded.

Questions (a reason for a skip or an early end, "Stop the session?") open in a panel under the
readings, which stay visible and keep updating; F12 works everywhere.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, ClassVar, cast

from textual import events
from textual._time import get_time  # the clock of every Message's ``time`` (key presses)
from textual.app import ComposeResult
from textual.binding import Binding, BindingsMap, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Header, Label, Static

from controller.device.views import TelemetrySample as Telemetry
from controller.session.alarms import Priority
from controller.session.model import Action, Phase, Seen, SessionControl, SessionSnapshot
from controller.ui.messages import EngineStartFinished, SessionUpdate
from controller.ui.practitioner.alarm_banner import AlarmBanner
from controller.ui.practitioner.alarm_modal import AlarmModal
from controller.ui.practitioner.big_readings import BigReadings
from controller.ui.practitioner.instruction import Instruction
from controller.ui.practitioner.link_health import LinkHealthLine
from controller.ui.practitioner.live_readings import LiveReadings
from controller.ui.practitioner.prompt_panel import CONFIRM, REASON, PromptPanel
from controller.ui.practitioner.run_text import readings, why_not
from controller.ui.practitioner.scalp_map import ScalpMap
from controller.ui.practitioner.step_list import StepList
from controller.ui.practitioner.zone_progress import SessionBars, ZoneProgress
from controller.ui.shared import formatting as fmt
from controller.ui.shared.footer import EpmFooter

if TYPE_CHECKING:
    from controller.ui.app import EpmApp

#: The title of a disabled key's explanation (withdrawn when the step or phase changes).
NOT_NOW = "Not now"
#: The drain timer's rate (the engineering notes measured 15-20 Hz as the sweet spot).
REFRESH_HZ = 20
#: Screen width from which steps are shown beside the readings instead of below.
WIDE_FROM_COLUMNS = 110
#: ... and at least this many rows: the big figures are drawn 5 rows tall.
TALL_FROM_ROWS = 36
#: How many recent ``seen`` values are kept to find the one on screen at a key's timestamp.
SEEN_LOG = 64
#: The same "not now" explanation is not repeated within this many seconds (held keys).
EXPLAIN_AGAIN_S = 2.0

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

#: Actions that start or raise output: their key counts only if it was pressed after the screen
#: and the current phase and step were shown (a key typed ahead is discarded, never queued).
START_ACTIONS = frozenset({"confirm_start", "confirm_done", "resume", "continue", "intensity_up"})

#: The five keys that matter in each phase, in the footer's order (every key still works; F1
#: lists them all). F12 and F1 are always shown by the footer itself.
FOOTER_KEYS: dict[Phase, tuple[str, ...]] = {
    Phase.PREFLIGHT: (),
    Phase.REFUSED: ("leave",),
    Phase.MANUAL: ("confirm_done", "skip", "end", "stop", "acknowledge"),
    Phase.PLACE: ("confirm_start", "intensity_up", "intensity_down", "skip", "end"),
    Phase.DELIVERING: ("pause", "intensity_up", "intensity_down", "stop", "acknowledge"),
    Phase.HOLD: ("pause", "intensity_down", "stop", "end", "acknowledge"),
    Phase.PAUSED: ("resume", "intensity_down", "stop", "skip", "end"),
    Phase.STOPPING: ("acknowledge",),
    Phase.FAULT: ("acknowledge", "clear_faults", "continue", "skip", "end"),
    Phase.LINK_LOST: ("acknowledge", "reconnect", "end"),
    Phase.RECOVERY: ("acknowledge", "clear_faults", "continue", "skip", "end"),
    Phase.FINISHED: (),
}

#: What the questions ask, keyed by the action they lead to.
PROMPT_ACTIONS: dict[str, Action] = {"stop": Action.STOP, "skip": Action.SKIP, "end": Action.END}
PROMPT_OPEN = (
    "Answer the question under the readings first (Enter), or press Esc to close it. "
    "F12 stops output at any time."
)


class RunScreen(Screen[None]):
    """Shows the app's running engine; pushed by the new-session screen after ``start``."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "confirm_start", "Start zone", key_display="⏎"),
        Binding("enter", "confirm_done", "Done", key_display="⏎"),
        Binding("plus,up", "intensity_up", "+1 V", key_display="+"),
        Binding("minus,down", "intensity_down", "-1 V", key_display="-"),
        Binding("space,p", "pause", "Pause", key_display="Space"),
        Binding("space,p", "resume", "Resume", key_display="Space"),
        Binding("s", "stop", "Stop"),
        Binding("k", "skip", "Skip"),
        Binding("e", "end", "End early"),
        Binding("a", "acknowledge", "Ack alarm"),
        Binding("c", "clear_faults", "Clear faults"),
        Binding("n", "continue", "Continue"),
        Binding("r", "reconnect", "Reconnect"),
        Binding("escape", "leave", "Back"),
        Binding("t", "training_faults", "Faults (training)", show=False),
    ]

    #: Nothing is focused until a question opens (the keys are the screen's).
    AUTO_FOCUS = ""
    #: The screen's own keys (not Textual's), as the key handler looks them up.
    RUN_KEYS: ClassVar[dict[str, list[Binding]]] = BindingsMap(BINDINGS).key_to_bindings

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
        # When the screen was last shown (ScreenResume), and when the phase and step now shown
        # appeared: keys that start output must be younger than both.
        self._resumed_at = float("inf")
        self._basis: tuple[Phase, int | None] | None = None
        self._basis_at = float("inf")
        # (time shown, seen) of the recent snapshots, to find the one a key was pressed on.
        self._seen_log: deque[tuple[float, Seen | None]] = deque(maxlen=SEEN_LOG)
        self._key_seen: Seen | None = None
        self._key_active = False
        # The open question: what it was opened on.
        self._prompt_seen: Seen | None = None
        self._prompt_basis: tuple[Phase, int | None] | None = None
        self._last_frame: Telemetry | None = None
        self._last_frame_at: float | None = None
        self._explained: tuple[str, float] = ("", 0.0)
        self._prompt: PromptPanel | None = None

    @property
    def epm(self) -> EpmApp:
        return cast("EpmApp", self.app)

    @property
    def engine(self) -> SessionControl | None:
        return self.epm.engine

    @property
    def prompt(self) -> PromptPanel:
        if self._prompt is None:
            self._prompt = self.query_one(PromptPanel)
        return self._prompt

    # --- layout -------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="run-main"):
            yield AlarmBanner(flash=self.epm.animate_alarms, id="alarm-banner")
            yield Instruction(id="instruction")
            yield Static("", id="start-error")
            with Horizontal(id="run-body"):
                # A grid: the map spans the figures and the readings; on a wide screen the
                # readings span the map's column instead (longer sparklines).
                with Grid(id="run-left"):
                    with Vertical(id="run-figures"):
                        with Horizontal(id="big-row"):
                            yield BigReadings(id="big")
                            yield ZoneProgress(id="zone-progress")
                        yield SessionBars(id="bars")
                    yield ScalpMap(id="scalp-map")
                    yield LiveReadings(id="live")
                with VerticalScroll(id="run-right", can_focus=False):
                    yield Label("Steps", classes="section-title")
                    yield StepList(id="steps")
            yield PromptPanel(id="prompt")
            yield LinkHealthLine(id="link")
        yield EpmFooter()

    def on_mount(self) -> None:
        self.epm.session_screen = self
        plan = self.epm.session_plan
        if plan is not None:
            self.sub_title = f"Session · client {plan.client_code}"
        self.set_interval(1 / REFRESH_HZ, self.refresh_from_engine)
        self.refresh_from_engine()

    def on_screen_resume(self, event: events.ScreenResume) -> None:
        # Keys pressed before this moment were typed at another screen (or a window over
        # this one): they never start output here.
        self._resumed_at = event.time

    def on_resize(self, event: Resize) -> None:
        self.set_class(event.size.width >= WIDE_FROM_COLUMNS, "-wide")
        tall = event.size.width >= WIDE_FROM_COLUMNS and event.size.height >= TALL_FROM_ROWS
        self.set_class(tall, "-tall")
        for widget in self.query("BigReadings, ZoneProgress, GrowingDigits"):
            widget.set_class(tall, "-tall")

    # --- live data: one timer, one batch ------------------------------------------------------

    def refresh_from_engine(self) -> None:
        """Drain telemetry, read the snapshot, update each widget once (the 20 Hz timer)."""
        engine = self.engine
        if engine is None:
            return
        self.ticks += 1
        batch = engine.drain_telemetry()
        self.frames_drained += len(batch)
        if batch:
            self._last_frame, self._last_frame_at = batch[-1], get_time()
        snap = engine.snapshot()
        if snap is self.snapshot and not batch:
            if snap.live is None and self._last_frame is not None:
                self.show_readings(snap)  # aged by the screen's clock: keep it moving
            return  # nothing new (the engine handed back the very same snapshot)
        self.apply(snap, batch)

    def apply(self, snap: SessionSnapshot, batch: Sequence[Telemetry] = ()) -> None:
        """Update every widget once from ``snap`` and this batch of telemetry."""
        self.snapshot = snap
        now = get_time()
        basis = (snap.phase, snap.step_index)
        if basis != self._basis:
            self._basis, self._basis_at = basis, now
            self.withdraw_explanations()
        if not self._seen_log or self._seen_log[-1][1] != snap.seen:
            self._seen_log.append((now, snap.seen))
        self.query_one(AlarmBanner).show_alarms(snap.alarms)
        self.query_one(Instruction).show(snap)
        self.query_one(ZoneProgress).show(snap)
        self.query_one(SessionBars).show(snap)
        self.show_readings(snap, batch)
        self.query_one(ScalpMap).show(snap.steps, snap.step_index, snap.phase)
        self.show_steps(snap)
        self.query_one(LinkHealthLine).show(snap.link)
        self.set_class(snap.phase is Phase.REFUSED, "-refused")
        self.check_prompt(snap)
        key = (snap.phase, snap.allowed, self.start_error, self.prompt.is_open, self._waiting(snap))
        if key != self._bindings_key:
            self._bindings_key = key
            self.refresh_bindings()
        self.raise_new_alarms(snap)
        if snap.phase is Phase.FINISHED and not self._ended:
            self._ended = True
            self.prompt.close(None)
            self.show_end(snap)

    def show_readings(self, snap: SessionSnapshot, batch: Sequence[Telemetry] = ()) -> None:
        """The big output and setpoint and the smaller readings, with their freshness."""
        frame_age = None if self._last_frame_at is None else get_time() - self._last_frame_at
        now = readings(snap, self._last_frame, frame_age)
        step = snap.current_step
        max_dv = step.amplitude_max_dv if step is not None else None
        self.query_one(BigReadings).show(now, snap.setpoint_dv, max_dv)
        self.query_one(LiveReadings).show(now, batch)

    def show_steps(self, snap: SessionSnapshot) -> None:
        """Update the step list and keep the current step in view."""
        steps = self.query_one(StepList)
        if steps.show(snap.steps, snap.step_index) and snap.step_index is not None:
            box = self.query_one("#run-right", VerticalScroll)
            # Line 0 is the "Steps" title; keep one step of context above the current one.
            y = max(0, snap.step_index - 2) * steps.lines_per_step
            box.scroll_to(y=y, animate=False)

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
            self.send(Action.ACKNOWLEDGE, seen=self._current_seen())

    def show_end(self, snap: SessionSnapshot) -> None:
        from controller.ui.practitioner.end import EndScreen

        self.app.push_screen(EndScreen(snap))

    # --- keys ---------------------------------------------------------------------------------

    @staticmethod
    def _waiting(snap: SessionSnapshot | None) -> bool:
        """A manual step's minimum time is not over yet (Enter does not confirm it)."""
        return (
            snap is not None
            and snap.phase is Phase.MANUAL
            and bool(snap.manual_remaining_ms and snap.manual_remaining_ms > 0)
        )

    def action_training_faults(self) -> None:
        from controller.ui.practitioner.training import open_training_panel

        open_training_panel(self.epm)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        snap = self.snapshot
        allowed = snap.allowed if snap is not None else frozenset()
        phase = snap.phase if snap is not None else Phase.PREFLIGHT
        if action == "training_faults":
            return bool(getattr(self.app, "simulated", False))  # only ever on a simulator
        if action == "leave":
            return self.start_error is not None or phase in (Phase.REFUSED, Phase.FINISHED)
        if self._prompt is not None and self._prompt.is_open and hasattr(self, f"action_{action}"):
            return None  # a question is open: the screen's keys wait for its answer
        if action in ("confirm_start", "confirm_done"):
            manual = phase is Phase.MANUAL
            if (action == "confirm_done") != manual:
                return False
            if Action.CONFIRM not in allowed or (manual and self._waiting(snap)):
                return None
            return True
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

    def footer_actions(self) -> tuple[str, ...]:
        """The keys the footer shows now (see :data:`FOOTER_KEYS`); none while a question is
        open (the question's own keys are shown)."""
        if self._prompt is not None and self._prompt.is_open:
            return ()
        if self.start_error is not None:
            return ("leave",)
        phase = self.snapshot.phase if self.snapshot is not None else Phase.PREFLIGHT
        return FOOTER_KEYS.get(phase, ())

    async def on_key(self, event: events.Key) -> None:
        """The screen's keys, handled here rather than by Textual's binding lookup, because
        each press needs its own moment: a disabled key is explained, a key that starts output
        but was pressed before the current step was on screen is discarded, and the request
        carries what was on screen when the key was pressed."""
        prompt = self.prompt
        if prompt.is_open and not prompt.has_focus_within:  # focus went elsewhere (a click)
            if event.key == "escape":
                event.stop()
                prompt.action_cancel()
                return
            prompt.take_keyboard()  # the question has it back
        if prompt.handles(event.key):
            return  # the open question's keys (Enter, Esc, y/n, its Input's keys)
        bindings = self.RUN_KEYS.get(event.key)
        if not bindings:
            return
        chosen: Binding | None = None
        disabled: Binding | None = None
        for binding in bindings:
            state = self.check_action(binding.action, ())
            if state:
                chosen = binding
                break
            if state is None and disabled is None:
                disabled = binding
        if chosen is None and disabled is None:
            return  # hidden here (e.g. Esc during a session): not this screen's key now
        event.stop()
        event.prevent_default()
        if prompt.is_open:
            self.explain(PROMPT_OPEN)
            return
        if chosen is None:
            assert disabled is not None
            self.explain(why_not(disabled.action, self.snapshot))
            return
        if chosen.action in START_ACTIONS and event.time < max(self._resumed_at, self._basis_at):
            self.explain(
                f"{chosen.description} ignored: it was pressed before the screen showed "
                f"{self._shown_now()}. Look, then press it again."
            )
            return
        self._key_seen, self._key_active = self._seen_at(event.time), True
        try:
            await self.run_action(chosen.action)
        finally:
            self._key_seen, self._key_active = None, False

    def _shown_now(self) -> str:
        """``PLACE HANDPIECE (step 2)``: what the screen shows now, in its own words."""
        snap = self.snapshot
        if snap is None:
            return "this session"
        label = fmt.PHASE_LABELS.get(snap.phase, snap.phase.value)
        return f"{label} (step {snap.step_index})" if snap.step_index is not None else label

    def withdraw_explanations(self) -> None:
        """Take back the "Not now" explanations: they spoke of the step or phase that just
        ended ("wait 4 s more" must not stand beside the next step). Textual keeps its toasts
        in ``App._notifications`` (Textual is pinned exactly; see docs/dependencies.md)."""
        notes = getattr(self.app, "_notifications", None)
        if notes is None:
            return
        stale = [note for note in notes if note.title == NOT_NOW]
        for note in stale:
            self.app._unnotify(note)

    def explain(self, text: str) -> None:
        """Say why a key did nothing (a notice line; the same one not twice in a row)."""
        now = get_time()
        last, at = self._explained
        if text == last and now - at < EXPLAIN_AGAIN_S:
            return
        self._explained = (text, now)
        self.notify(text, title=NOT_NOW, severity="warning", timeout=5)

    # --- what a choice was made on --------------------------------------------------------

    def _current_seen(self) -> Seen | None:
        return self.snapshot.seen if self.snapshot is not None else None

    def _seen_at(self, when: float) -> Seen | None:
        """The ``seen`` of the snapshot that was on screen at ``when`` (a key's timestamp)."""
        for shown_at, seen in reversed(self._seen_log):
            if shown_at <= when:
                return seen
        return self._seen_log[0][1] if self._seen_log else self._current_seen()

    def _choice_seen(self) -> Seen | None:
        """What the choice being made now was made on: the key's moment, else the screen."""
        return self._key_seen if self._key_active else self._current_seen()

    def send(self, action: Action, reason: str | None = None, seen: Seen | None = None) -> None:
        """Queue ``action`` with what it was decided on (``seen``; None: the engine's now)."""
        engine = self.engine
        if engine is None:
            return
        if seen is None:
            engine.request(action, reason)
        else:
            engine.request(action, reason, seen=seen)

    # --- actions ------------------------------------------------------------------------------

    def action_confirm_start(self) -> None:
        self.send(Action.CONFIRM, seen=self._choice_seen())

    def action_confirm_done(self) -> None:
        self.send(Action.CONFIRM, seen=self._choice_seen())

    def action_intensity_up(self) -> None:
        self.send(Action.INTENSITY_UP, seen=self._choice_seen())

    def action_intensity_down(self) -> None:
        self.send(Action.INTENSITY_DOWN, seen=self._choice_seen())

    def action_pause(self) -> None:
        self.send(Action.PAUSE, seen=self._choice_seen())

    def action_resume(self) -> None:
        self.send(Action.RESUME, seen=self._choice_seen())

    def action_acknowledge(self) -> None:
        self.send(Action.ACKNOWLEDGE, seen=self._choice_seen())

    def action_clear_faults(self) -> None:
        self.send(Action.CLEAR_FAULTS, seen=self._choice_seen())

    def action_continue(self) -> None:
        self.send(Action.CONTINUE, seen=self._choice_seen())

    def action_reconnect(self) -> None:
        self.send(Action.RECONNECT, seen=self._choice_seen())

    def action_stop(self) -> None:
        self.open_prompt(
            "stop",
            CONFIRM,
            "Stop the session?  y/n",
            "Output ramps down and the session ends; it cannot be resumed. "
            "For an emergency press F12 instead.",
            "y or Enter: stop · n or Esc: keep going · F12: emergency stop",
        )

    def action_skip(self) -> None:
        step = self.snapshot.current_step if self.snapshot else None
        if step is not None:
            name = fmt.zone(step.zone) if step.kind == "delivery" and step.zone else step.title
            what = f"step {step.index} ({name})"
        else:
            what = "this step"
        self.open_prompt(
            "skip",
            REASON,
            f"Skip {what}: why is it skipped?",
            "The record keeps the reason; the rest of this step is not delivered.",
            "Enter: skip · Esc: cancel, nothing is skipped · F12: emergency stop",
        )

    def action_end(self) -> None:
        self.open_prompt(
            "end",
            REASON,
            "End the session early: why?",
            "Output stops and the rest is not delivered; the record keeps the reason.",
            "Enter: end the session · Esc: cancel, the session goes on · F12: emergency stop",
        )

    def open_prompt(self, key: str, kind: str, question: str, explain: str, hint: str) -> None:
        """Open the question under the readings; what is on screen now is what it decides on."""
        self._prompt_seen = self._choice_seen()
        snap = self.snapshot
        self._prompt_basis = (snap.phase, snap.step_index) if snap is not None else None
        self.prompt.open(key, kind, question, explain, hint, answered=partial(self.answered, key))
        self.refresh_bindings()

    def check_prompt(self, snap: SessionSnapshot) -> None:
        """While a question is open, say so when the session has moved on since it opened."""
        prompt = self.prompt
        if not prompt.is_open or self._prompt_basis is None:
            return
        seen = self._prompt_seen
        moved = (snap.phase, snap.step_index) != self._prompt_basis or (
            seen is not None and snap.seen is not None and snap.seen != seen
        )
        if not moved:
            prompt.note("")
            return
        step = snap.current_step
        where = f"step {step.index}, " if step is not None else ""
        label = fmt.PHASE_LABELS.get(snap.phase, snap.phase.value)
        then = (
            "y still stops the session."
            if prompt.key == "stop"
            else "this answer will be refused: Esc, look, and decide again."
        )
        prompt.note(f"The session changed while this was open (now {where}{label}): {then}")

    def answered(self, key: str, value: str | bool | None) -> None:
        """The question closed: send its action with what it was opened on (unless
        cancelled)."""
        seen, self._prompt_seen, self._prompt_basis = self._prompt_seen, None, None
        self.refresh_bindings()
        action = PROMPT_ACTIONS.get(key)
        if action is None or value is None or value is False:
            return  # cancelled: nothing is sent
        self.send(action, value if isinstance(value, str) else None, seen=seen)

    def action_leave(self) -> None:
        """After a refusal (or a failed start): back to the new-session screen to fix it."""
        snap = self.snapshot
        finished = snap is not None and snap.phase in (Phase.REFUSED, Phase.FINISHED)
        if not finished and self.start_error is None:
            return
        self.epm.finish_session(force=self.start_error is not None)
        self.app.pop_screen()
