"""``EpmApp``, the practitioner's and technician's terminal UI, and ``create_app``, its factory.

Why one factory: the ``epm`` command and the tests build the app the same way (store opened
exclusively and recovered, device client on the configured port or the built-in simulator,
bundled or given protocol library), so what the tests drive is what the clinic runs. The device
client, the record store and the session-engine factory are injected into the constructor.

The app holds the state other screens read (``store``, ``library_path``, ``device``,
``device_info``, ``simulated``, ``engine``, ``practitioner``) and the keys that work everywhere:
F12 / ctrl+e emergency stop (a priority binding: it works on every screen, with any widget
focused, and calls the engine's ``emergency_stop()`` directly — never confirmed, never
queued), ctrl+q quit (refused while a session is delivering; with a session still open, twice,
and the engine records it interrupted at once), ctrl+c the same as ctrl+q, F1 help, ctrl+p the
command palette. It decides nothing about safety: the engine does.

It also keeps the device's own status (``device_status``), read again on every change the
device reports (an emergency stop, a fault, a clear, a reconnection), so the home and device
screens always show the unit as it is; and a key a screen shows dimmed says why when pressed
(the screen's ``disabled_reason``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual.actions import SkipAction
from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import CommandPalette, Provider
from textual.dom import DOMNode
from textual.driver import Driver
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen

from controller.device import DeviceClient, DeviceInfo, Status
from controller.records import RecordStore
from controller.session.model import (
    ACTIVE_PHASES,
    Phase,
    SessionControl,
    SessionNotice,
    SessionPlan,
)
from controller.ui.messages import (
    DeviceConnected,
    DeviceConnectFailed,
    EngineStartFinished,
    SessionUpdate,
)
from controller.ui.shared.estop_key import with_estop_key
from controller.ui.shared.sim_banner import SimBanner
from controller.ui.theme import DEFAULT_THEME, THEMES

if TYPE_CHECKING:
    from controller.config import Config
    from controller.server.worker import SyncWorker
    from controller.servicelog import ServiceLog
    from controller.ui.practitioner.run import RunScreen

#: Builds the session engine for a plan: ``SessionEngine(device, store, plan)`` by default.
EngineFactory = Callable[[DeviceClient, RecordStore, SessionPlan], SessionControl]

#: Phases in which quitting is refused outright (output may be on, or about to be).
QUIT_REFUSED_PHASES = ACTIVE_PHASES | {Phase.PREFLIGHT}
#: Outside those, a session that is still open needs ctrl+q twice within this many seconds.
QUIT_CONFIRM_S = 3.0
#: The built-in simulator's URL scheme.
SIM_SCHEME = "sim://"


def epm_commands_provider() -> type[Provider]:
    """The command palette's epm commands (the technician-side engineer's provider)."""
    from controller.ui.commands import EpmCommands

    return cast("type[Provider]", EpmCommands)


#: After this long without the device, the session says reconnecting gave up and offers
#: Reconnect (r) and End; the link keeps trying in the background all the same.
RECONNECT_LIMIT_S = 30.0


def engine_factory_for(manual_speed: float = 1.0) -> EngineFactory:
    """The real session engine's factory (imported lazily: the UI needs it only for sessions).

    ``manual_speed`` runs manual-step timers faster, for an accelerated built-in simulator
    only (the engine refuses it on a real device).
    """

    def build(device: DeviceClient, store: RecordStore, plan: SessionPlan) -> SessionControl:
        from controller.session.engine import SessionEngine

        engine = SessionEngine(
            device,
            store,
            plan,
            manual_speed=manual_speed,
            reconnect_limit_s=RECONNECT_LIMIT_S,
        )
        return cast(SessionControl, engine)

    return build


default_engine_factory = engine_factory_for(1.0)


def builtin_simulator_url(speed: float = 1.0) -> str:
    """The URL of a fresh in-process simulator, accelerated ``speed`` times."""
    return f"{SIM_SCHEME}?speed={speed:g}" if speed != 1 else SIM_SCHEME


def resolve_port(port: str | None, sim_speed: float = 1.0, config: Config | None = None) -> str:
    """``--port`` wins, then ``$EPM_PORT``, then ``device.port`` in the configuration file;
    with none of them, the built-in simulator."""
    from controller.config import resolve

    return str(resolve(config, "device.port", port).value) or builtin_simulator_url(sim_speed)


#: Why a session still open when the practitioner quits (ctrl+q twice) ended.
QUIT_REASON = "epm was closed with the session still open"

#: Device events after which the device's state is read again (the screens that show it
#: refresh on them): its state or faults changed, it came back, or another unit was adopted.
DEVICE_STATE_EVENTS = frozenset(
    {
        "state_changed",
        "fault_raised",
        "faults_cleared",
        "handpiece_changed",
        "reconnected",
        "device_restarted",
        "status_refreshed",
        "estop_confirmed",
        "unit_adopted",
    }
)


@dataclasses.dataclass(frozen=True)
class EstopSent:
    """What an emergency stop reached: ``session`` (through the engine), ``device`` (no
    session running) or ``none`` (no device connected), and whether the bytes went out."""

    target: str
    sent: bool


class EmergencyStopSent(Message):
    """The driver's input thread already sent ESTOP; the screens are told on the loop."""

    def __init__(self, key: str, result: EstopSent) -> None:
        super().__init__()
        self.key = key
        self.result = result


class EstopKeyFailed(Message):
    """Sending ESTOP from the input thread raised: the loop tries again at once."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key


class DeviceChanged(Message):
    """The device reported a change of state (posted from the link's thread)."""


class DeviceStatusRead(Message):
    """A status read finished: ``status`` (None when it failed, ``error`` says why)."""

    def __init__(self, status: Status | None, error: str) -> None:
        super().__init__()
        self.status = status
        self.error = error


#: What the operator must do when the ESTOP's bytes could not be written (no port).
log = logging.getLogger(__name__)

ESTOP_NOT_SENT = (
    "Emergency stop NOT sent: the device cannot be reached. Lift the handpiece off the skin "
    "(no contact turns output off) and switch the unit off at its power switch."
)


class EpmApp(App[int]):
    """The terminal UI. Build it with :func:`create_app` (or pass the parts in tests)."""

    CSS_PATH = "app.tcss"
    TITLE = "EPM-1 session controller"
    COMMANDS = App.COMMANDS | {epm_commands_provider}
    ENABLE_COMMAND_PALETTE = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "f12",
            "emergency_stop",
            "E-STOP",
            key_display="F12",
            priority=True,
            id="emergency-stop",
            tooltip="Emergency stop: output off at once (never asked)",
        ),
        Binding("ctrl+e", "emergency_stop", "E-STOP", show=False, priority=True),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="quit"),
        # ctrl+c (with nothing selected to copy) quits the same way, never "press ctrl+q".
        Binding("ctrl+c", "help_quit", "Quit (as ctrl+q)", show=False),
        Binding("f1", "help", "Help", key_display="F1", id="help"),
    ]

    simulated: reactive[bool] = reactive(False)
    """True on the built-in simulator and whenever the device's serial begins with ``SIM-``."""
    device_serial: reactive[str] = reactive("")
    connection: reactive[str] = reactive("connecting")
    """``connecting``, ``up`` or ``failed`` (see ``connect_error``)."""
    device_status_seq: reactive[int] = reactive(0)
    """Counts the device status reads (see ``device_status``): screens that show the device's
    state watch it and show the latest read."""

    def __init__(
        self,
        *,
        store: RecordStore,
        device: DeviceClient | None,
        library_path: Path,
        practitioner: str = "",
        engine_factory: EngineFactory | None = None,
        recovered: Iterable[int] = (),
        today: Callable[[], dt.date] | None = None,
        animate_alarms: bool = True,
        connect_on_start: bool = True,
        poll_interval_s: float = 1.0,
        owns_resources: bool = False,
        sync_worker: SyncWorker | None = None,
        service_log: ServiceLog | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        #: The service log this app installed (closed last, with the other resources).
        self.service_log = service_log
        #: The background sync with the clinic server (None: no server configured). Started
        #: on mount, stopped before the records close.
        self.sync_worker = sync_worker
        self.device = device
        self.library_path = Path(library_path)
        self.practitioner = practitioner
        self.engine: SessionControl | None = None
        self.session_plan: SessionPlan | None = None
        self.device_info: DeviceInfo | None = None
        self.connect_error = ""
        self.recovered = tuple(recovered)
        self.today: Callable[[], dt.date] = today or dt.date.today
        self.animate_alarms = animate_alarms
        self.poll_interval_s = poll_interval_s
        self.engine_factory: EngineFactory = engine_factory or default_engine_factory
        self.session_screen: RunScreen | None = None
        self.estops_requested = 0
        self._connect_on_start = connect_on_start
        self._owns_resources = owns_resources
        # Not ``_closed``: Textual's MessagePump uses that name and sets it when the app's
        # loop ends, which made closing skip the engine and the device (the record stayed
        # running).
        self._resources_closed = False
        self._quit_asked_at: float | None = None
        self._quit_with_open_session = False
        #: The device's status as last read (None before the first read), why the last read
        #: failed, and whether an emergency stop was pressed here with no session running.
        self.device_status: Status | None = None
        self.device_status_error = ""
        self.estop_without_session = False
        self._status_reading = False
        self._status_again = False
        self._device_listening = False
        self._builtin_sim = device is not None and device.url.startswith(SIM_SCHEME)
        self.set_reactive(EpmApp.simulated, self._builtin_sim)
        # Only epm's themes are offered (the palette's theme switch lists these): each keeps
        # the fixed alarm colours distinct (see ``theme``).
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = DEFAULT_THEME
        ours = {theme.name for theme in THEMES}
        for name in list(self.available_themes):
            if name not in ours:
                self.unregister_theme(name)

    # --- state other screens read ----------------------------------------------------------

    @property
    def port(self) -> str:
        return self.device.url if self.device is not None else ""

    @property
    def session_open(self) -> bool:
        """A session exists and has not finished (or been refused)."""
        engine = self.engine
        return engine is not None and not engine.snapshot().finished

    # --- start-up and the SIMULATOR marker on every screen -----------------------------------

    def get_default_screen(self) -> Screen[Any]:
        from controller.ui.practitioner.home import HomeScreen

        return HomeScreen()

    def on_mount(self) -> None:
        self.screen_change_signal.subscribe(self, self._screen_changed)
        self._screen_changed(self.screen)
        if self.recovered:
            ids = ", ".join(f"#{n}" for n in self.recovered)
            self.notify(
                f"{len(self.recovered)} session(s) were still open when epm last stopped "
                f"(crash, kill or power loss) and are now recorded as interrupted: {ids}. "
                "Check the client's course in Records (r).",
                title="Interrupted sessions found",
                severity="warning",
                timeout=20,
            )
        if self.sync_worker is not None:
            self.sync_worker.start()
        if self._connect_on_start and self.device is not None:
            self.connect_device()
        elif self.device is None:
            self.connection = "failed"
            self.connect_error = "No device is configured: start epm with --port URL."

    def _screen_changed(self, screen: Screen[Any]) -> None:
        screen.call_later(self.ensure_sim_banner, screen)

    def ensure_sim_banner(self, screen: Screen[Any]) -> None:
        """Mount a :class:`SimBanner` on ``screen`` unless it has one (every screen gets one)."""
        if isinstance(screen, CommandPalette) or not screen.is_attached:
            return
        if screen.query(SimBanner):
            return
        shown, serial = self.simulated, self.device_serial
        if isinstance(screen, ModalScreen):
            screen.mount(SimBanner(docked=True, shown=shown, serial=serial))
            return
        first = next((c for c in screen.children if c.styles.dock in ("", "none")), None)
        if first is not None:
            screen.mount(SimBanner(shown=shown, serial=serial), before=first)
        else:
            screen.mount(SimBanner(shown=shown, serial=serial))

    # --- the device connection ------------------------------------------------------------

    def connect_device(self) -> None:
        """Connect (handshake) in a daemon thread; the result arrives as a message.

        A daemon thread rather than a Textual worker: ``connect()`` blocks for up to its
        handshake timeout and cannot poll cancellation, and it must never delay quitting.
        """
        device = self.device
        if device is None or self._resources_closed:
            return
        self.connection = "connecting"
        self.connect_error = ""

        def work() -> None:
            try:
                info = device.connect()
            except Exception as exc:  # every failure becomes a plain message, never a traceback
                self.post_message(DeviceConnectFailed(connect_failure_message(exc, device.url)))
            else:
                self.post_message(DeviceConnected(info))

        threading.Thread(target=work, name="epm-ui-connect", daemon=True).start()

    def on_device_connected(self, message: DeviceConnected) -> None:
        self.connect_error = ""
        self.adopt_device_info(message.info)
        self.listen_to_device()
        self.connection = "up"
        self.read_device_status()

    def adopt_device_info(self, info: DeviceInfo) -> None:
        """Take the device's identity from its latest handshake (after a reconnection or a
        restart of the same unit, or once the operator adopted another unit on the device
        screen; a unit that merely answered is never adopted here): the SIMULATOR marker
        follows the serial."""
        if info == self.device_info:
            return
        self.device_info = info
        self.device_serial = info.serial
        self.simulated = self._builtin_sim or info.is_simulator

    def on_device_connect_failed(self, message: DeviceConnectFailed) -> None:
        self.connect_error = message.message
        self.device_status = None
        self.connection = "failed"

    # --- the device's own state (home and device screens show it) ---------------------------

    def listen_to_device(self) -> None:
        """Have the device's state read again whenever it reports a change (once)."""
        device = self.device
        add_listener = getattr(device, "add_listener", None)
        if self._device_listening or not callable(add_listener):
            return
        self._device_listening = True

        def heard(event: object) -> None:  # the link's thread: post only
            kind = str(getattr(event, "kind", ""))
            if kind in DEVICE_STATE_EVENTS:
                self.post_message(DeviceChanged())

        add_listener(heard)

    def on_device_changed(self, _message: DeviceChanged) -> None:
        from controller.ui.practitioner.device import DeviceScreen

        if self.session_open and not isinstance(self.screen, DeviceScreen):
            return  # the session's own screen shows the device; home reads it on return
        self.read_device_status()

    def read_device_status(self) -> None:
        """Read the device's status in a daemon thread; the result arrives as a message and
        bumps ``device_status_seq``. Reads asked for while one runs are merged into one more."""
        device = self.device
        if device is None or self._resources_closed or self.connection != "up":
            return
        if self._status_reading:
            self._status_again = True
            return
        self._status_reading = True

        def work() -> None:
            try:
                status: Status | None = device.status()
                error = ""
            except Exception as exc:  # shown on the screens, never a traceback
                status, error = None, f"Reading the device's status failed: {exc}"
            self.post_message(DeviceStatusRead(status, error))

        threading.Thread(target=work, name="epm-ui-status", daemon=True).start()

    def on_device_status_read(self, message: DeviceStatusRead) -> None:
        self._status_reading = False
        if message.status is not None:
            self.device_status = message.status
            if not message.status.faults:
                self.estop_without_session = False
        self.device_status_error = message.error
        self.device_status_seq += 1
        if self._status_again:
            self._status_again = False
            self.read_device_status()

    def clear_device_faults(self) -> None:
        """Ask the device to clear its latched faults (no session may be open), then read its
        status again. The result shows on the screens; a refusal as the status error."""
        device = self.device
        if device is None or self.session_open or self.connection != "up":
            return
        epoch = device.epoch  # decided now, on the connection the screens show
        self._status_reading = True

        def work() -> None:
            error = ""
            status: Status | None = None
            try:
                device.clear_faults(epoch=epoch)
            except Exception as exc:
                error = f"Clearing the faults failed: {exc}"
            try:
                status = device.status()
            except Exception as exc:
                error = error or f"Reading the device's status failed: {exc}"
            self.post_message(DeviceStatusRead(status, error))

        threading.Thread(target=work, name="epm-ui-clear-faults", daemon=True).start()

    @property
    def status_reading(self) -> bool:
        """A status read (or a clear of the faults) is under way."""
        return self._status_reading

    @property
    def latched_faults(self) -> list[str]:
        """The faults the device reported latched at its last status read (names)."""
        status = self.device_status
        if status is None or self.connection != "up" or not status.faults:
            return []
        return list(status.faults.names())

    # --- sessions ----------------------------------------------------------------------------

    def start_session(self, plan: SessionPlan) -> SessionControl:
        """Create the engine for ``plan``, listen to it, and run its ``start()`` (preflight)
        in a daemon thread. Returns the engine at once (emergency stop works from now on)."""
        if self.device is None:
            raise RuntimeError("no device: connect one before starting a session")
        from controller import servicelog

        servicelog.protect(plan.client_code, plan.client_name)  # never in the service log
        engine = self.engine_factory(self.device, self.store, plan)
        self.attach_engine(engine, plan)
        start = cast(Callable[[], object], getattr(engine, "start"))  # noqa: B009

        def work() -> None:
            try:
                start()
            except Exception as exc:
                self.post_message(EngineStartFinished(f"The session could not start: {exc}"))
            else:
                self.post_message(EngineStartFinished(None))

        threading.Thread(target=work, name="epm-ui-session-start", daemon=True).start()
        return engine

    def attach_engine(self, engine: SessionControl, plan: SessionPlan | None) -> None:
        """Make ``engine`` the app's session and listen to its notices."""
        self.engine = engine
        self.session_plan = plan
        engine.add_listener(self.forward_notice)

    def forward_notice(self, notice: SessionNotice) -> None:
        """Runs on the engine's thread: only post (thread-safe), never touch widgets."""
        self.post_message(SessionUpdate(notice))

    def on_session_update(self, message: SessionUpdate) -> None:
        screen = self.session_screen
        if screen is not None and screen.is_attached:
            screen.post_message(SessionUpdate(message.notice))
        if message.notice.kind == "finished":
            self.read_device_status()  # what the session left on the device (a latched E-stop)

    def on_engine_start_finished(self, message: EngineStartFinished) -> None:
        screen = self.session_screen
        if screen is not None and screen.is_attached:
            screen.post_message(EngineStartFinished(message.error))

    def finish_session(self, *, force: bool = False) -> None:
        """Forget the finished session (the end screen calls this on its way home).

        ``force`` forgets one whose ``start()`` raised (it never reached a final phase)."""
        engine = self.engine
        if engine is not None and not force and not engine.snapshot().finished:
            return
        self.engine = None
        self.session_plan = None
        self.session_screen = None
        stop_engine(engine, "the session was closed on the end screen")

    def return_home(self) -> None:
        """Pop every screen above the home screen."""
        from controller.ui.practitioner.home import HomeScreen

        while len(self.screen_stack) > 1 and not isinstance(self.screen, HomeScreen):
            self.pop_screen()

    # --- keys that work everywhere -------------------------------------------------------------

    def get_driver_class(self) -> type[Driver]:
        """The platform's driver with F12 / Ctrl+E acted on in its input thread (see
        :mod:`controller.ui.shared.estop_key`): the stop never waits for the event loop."""
        return with_estop_key(super().get_driver_class())

    def estop_from_input(self, key: str) -> None:
        """F12 parsed by the driver's input thread: ESTOP from this thread, then tell the
        screens through the loop. Never raises (it runs in Textual's input thread)."""
        try:
            sent = self._send_estop()
        except Exception:  # the input thread must live: the loop's binding path tries again
            log.exception("ESTOP from the input thread failed")
            self.post_message(EstopKeyFailed(key))
            return
        self.post_message(EmergencyStopSent(key, sent))

    def action_emergency_stop(self) -> None:
        """F12 reaching the loop (tests' pilot, the command palette): ESTOP now, on this
        thread. Never confirmed; never queued behind anything once here."""
        self._tell_estop(self._send_estop())

    def on_emergency_stop_sent(self, message: EmergencyStopSent) -> None:
        self._tell_estop(message.result)

    def on_estop_key_failed(self, message: EstopKeyFailed) -> None:
        self.action_emergency_stop()

    def _send_estop(self) -> EstopSent:
        """The device part, safe from any thread: what was stopped and whether bytes went."""
        engine = self.engine
        if engine is not None:
            return EstopSent("session", engine.emergency_stop("operator"))
        device = self.device
        if device is not None and self.device_info is not None:
            sent = device.estop()
            if sent:
                self.estop_without_session = True
            return EstopSent("device", sent)
        return EstopSent("none", False)

    def _tell_estop(self, result: EstopSent) -> None:
        """The UI part, on the loop: read the device's state and say what happened."""
        self.estops_requested += 1
        if result.target == "none":
            self.notify("No device is connected: there is no output to stop.", title="E-STOP")
            return
        self.read_device_status()  # the screens show the device's state after the stop
        if not result.sent:
            message = ESTOP_NOT_SENT
        elif result.target == "session":
            message = "Emergency stop sent: output off."
        else:
            message = (
                "Emergency stop sent to the device (no session was running). Clear it on the "
                "home screen (f) or the Device screen (f) before the next session."
            )
        self.notify(
            message,
            title="E-STOP" if result.sent else "E-STOP NOT SENT",
            severity="error",
            timeout=10 if result.sent else 60,
        )

    async def action_quit(self) -> None:
        engine = self.engine
        if engine is not None:
            snap = engine.snapshot()
            if snap.phase in QUIT_REFUSED_PHASES:
                self.notify(
                    "A session is running: stop it first (s on the session screen), then quit.",
                    title="Cannot quit now",
                    severity="warning",
                )
                return
            if not snap.finished:
                now = time.monotonic()
                if self._quit_asked_at is None or now - self._quit_asked_at > QUIT_CONFIRM_S:
                    self._quit_asked_at = now
                    self.notify(
                        "A session is still open; it will be recorded as interrupted. "
                        "Press ctrl+q again to quit anyway.",
                        title="Quit?",
                        severity="warning",
                    )
                    return
                # Record it as interrupted now, while everything is still open, then leave.
                self._quit_with_open_session = True
                self.close_resources()
        self.exit(0)

    def action_help_quit(self) -> None:
        """ctrl+c (when nothing is selected to copy) quits the way ctrl+q does, with the same
        refusal and confirmation; Textual's own answer ("Press ctrl+q") would be wrong while
        a session refuses ctrl+q."""
        self.call_later(self.action_quit)

    # --- keys that do not apply now say why ----------------------------------------------------

    async def run_action(
        self,
        action: str | Any,
        default_namespace: DOMNode | None = None,
        namespaces: Any = None,
    ) -> bool:
        """Run ``action``; when its screen disabled it (``check_action`` returned None: the
        key is shown dimmed), show the screen's ``disabled_reason(action)`` instead of doing
        nothing silently: in the screen's own ``show_disabled_reason`` when it has one, else
        as a notification."""
        handled = await super().run_action(action, default_namespace, namespaces)
        if handled or not isinstance(action, str):
            return handled
        target: DOMNode = self if default_namespace is None else default_namespace
        explain = getattr(target, "disabled_reason", None)
        if not callable(explain):
            return handled
        name, _, _ = action.partition("(")
        if "." in name:
            return handled
        try:
            if target.check_action(name, ()) is not None:
                return handled
        except SkipAction:  # pragma: no cover - check_action does not raise it here
            return handled
        reason = explain(name)
        if not reason:
            return handled
        show = getattr(target, "show_disabled_reason", None)
        if callable(show):
            show(str(reason))
        else:
            self.notify(str(reason), title="Not now", severity="warning")
        return True

    def action_help(self) -> None:
        from controller.ui.shared.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_new_session(self) -> None:
        """Open the new-session screen (when a device is connected and no session is open)."""
        from controller.ui.practitioner.new_session import NewSessionScreen

        if self.session_open:
            self.notify("A session is already open.", severity="warning")
            return
        self.finish_session()  # a finished one still on its end screen: done with it
        if self.connection != "up" or self.device_info is None:
            self.notify(
                "The device is not connected: connect it first (c on the home screen).",
                title="No device",
                severity="warning",
            )
            return
        if self.latched_faults:
            from controller.ui.practitioner.home import latched_short

            self.notify(latched_short(self.latched_faults), title="Not now", severity="warning")
            return
        self.return_home()
        self.push_screen(NewSessionScreen())

    # --- shutting down -------------------------------------------------------------------------

    def close_resources(self) -> None:
        """Close the engine and the device (ESTOP first if it delivers), and the store if this
        app opened it. Idempotent."""
        if self._resources_closed:
            return
        self._resources_closed = True
        engine, self.engine = self.engine, None
        if self._quit_with_open_session:
            stop_engine(engine, QUIT_REASON, interrupted=True)
        else:
            stop_engine(engine, "epm was closed")
        if self.device is not None:
            self.device.close()
        if self.sync_worker is not None:
            self.sync_worker.stop()
        if self._owns_resources:
            self.store.close()
        if self.service_log is not None:
            self.service_log.close()  # last: what closing did is in it

    def on_unmount(self) -> None:
        self.close_resources()

    def _handle_exception(self, error: Exception) -> None:
        """An exception no handler caught ends the app (Textual prints it on exit): it goes
        to the service log first, with its traceback."""
        log.error(
            "the terminal UI failed: %s: %s",
            type(error).__name__,
            error,
            exc_info=error,
            extra={"event": "ui_exception"},
        )
        super()._handle_exception(error)


#: How long closing waits for the engine to end a session before it sends ESTOP itself.
ENGINE_SHUTDOWN_S = 3.0


def stop_engine(engine: object, reason: str, *, interrupted: bool = False) -> None:
    """End ``engine``'s thread (the real engine's ``shutdown``; a fake's ``close``).

    ``interrupted``: the practitioner quit with the session still open; it is recorded as
    interrupted at once (the engine's ``abandon(reason)`` when it has one, else its
    ``shutdown(reason)``)."""
    if engine is None:
        return
    abandon = getattr(engine, "abandon", None)
    if interrupted and callable(abandon):
        abandon(reason)
        return
    shutdown = getattr(engine, "shutdown", None)
    if callable(shutdown):
        shutdown(reason, timeout=ENGINE_SHUTDOWN_S)
        return
    close = getattr(engine, "close", None)
    if callable(close):
        close()


def connect_failure_message(exc: BaseException, url: str) -> str:
    """A connection failure in plain words with what to do (never a traceback)."""
    from controller.device import LinkError

    if isinstance(exc, LinkError):
        return str(exc)
    return (
        f"Connecting to {url} failed: {exc.__class__.__name__}: {exc}. Check the port with "
        "--port (or EPM_PORT, or `epm config set device.port PORT`), check the cable and that "
        "the device is on, then press c to retry."
    )


def create_app(
    *,
    port: str | None = None,
    baud: int | None = None,
    data_dir: str | Path | None = None,
    library: str | Path | None = None,
    sim_speed: float = 1.0,
    practitioner: str | None = None,
    engine_factory: EngineFactory | None = None,
    store: RecordStore | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    today: Callable[[], dt.date] | None = None,
    animate_alarms: bool = True,
    connect_on_start: bool = True,
) -> EpmApp:
    """Build the app the way ``epm`` runs it.

    Opens the record store exclusively (unless one is given) and marks sessions left open by
    an earlier process as interrupted; makes ``sim://`` openable and points the device client
    at ``port``, ``$EPM_PORT``, ``device.port`` in the data folder's ``config.yaml`` or the
    built-in simulator (baud rate and practitioner likewise: flag, environment, file, default).
    Raises the records', the library's and the configuration's clear errors
    (``StoreLockedError``, ``DataDirError``, ``FileNotFoundError``, ``ConfigError``).
    """
    import getpass

    import simulator
    from controller import servicelog
    from controller.config import effective, load_config
    from protocols import bundled_library_path

    library_path = Path(library).expanduser() if library else bundled_library_path()
    if not library_path.is_dir():
        raise FileNotFoundError(
            f"the protocol library {library_path} is not a folder: give --library a folder of "
            "protocol files (or leave it out for the bundled library)"
        )
    config = load_config(data_dir if store is None else store.data_dir)
    settings = effective(config, port=port, baud=baud, practitioner=practitioner)
    owns = store is None
    if store is None:
        kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
        store = RecordStore.open(data_dir, exclusive=True, **kwargs)
    store.offline_days = int(config.server_offline_days) if config.server_url else None
    service_log = servicelog.install(store.data_dir, process="ui")
    try:
        recovered = store.recover_interrupted()
        if recovered:
            logging.getLogger("epm.ui").warning(
                "%d session(s) left open by an earlier run recorded as interrupted",
                len(recovered),
                extra={"event": "sessions_recovered", "sessions": list(recovered)},
            )
        simulator.register_url_handler()
        url = settings.port or builtin_simulator_url(sim_speed)
        device = DeviceClient(url, settings.baud, host_id="epm-ui", reconnect_timeout=None)
        builtin = url == builtin_simulator_url(sim_speed)
        if engine_factory is None and builtin and sim_speed != 1:
            engine_factory = engine_factory_for(sim_speed)
    except BaseException:
        if owns:
            store.close()
        service_log.close()
        raise
    name = settings.practitioner
    if not name:
        try:
            name = getpass.getuser()
        except Exception:
            name = ""
    sync_worker = None
    if config.server_url:
        from controller.server.worker import SyncWorker

        sync_worker = SyncWorker(store, config.server_url, name=config.station_name or None)
    return EpmApp(
        sync_worker=sync_worker,
        store=store,
        device=device,
        library_path=library_path,
        practitioner=name,
        engine_factory=engine_factory,
        recovered=recovered,
        today=today,
        animate_alarms=animate_alarms,
        connect_on_start=connect_on_start,
        owns_resources=owns,
        service_log=service_log,
    )
