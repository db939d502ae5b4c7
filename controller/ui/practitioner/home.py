"""The home screen: the device and its link, today's sessions, and the ways in.

Why: it is what the practitioner sees between clients. It answers "is the right unit connected
and healthy?" and "who came today?", and leads to a new session, the protocol library, the
records and the device screen, each one key away (and clickable).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, cast

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Header, Label, Static

from controller.ui.practitioner.device_panel import DevicePanel, DeviceStatusView
from controller.ui.practitioner.today_sessions import TodaySessions
from controller.ui.shared import formatting as fmt
from controller.ui.shared.footer import EpmFooter

if TYPE_CHECKING:
    from controller.ui.app import EpmApp


def latched_notice(faults: list[str], pressed_here: bool) -> str:
    """What the home screen says about faults the device still latches (no session open).

    Plain words, no alarm: the fault belongs to what happened before, not to the client now
    in the chair; it must be cleared deliberately (f) before a new session."""
    if fmt.is_estop_only(faults):
        what = "an emergency stop"
    else:
        what = f"a latched fault ({fmt.fault_words(faults)})"
    origin = " (pressed here, no session was running)" if pressed_here else " from the last session"
    return (
        f"The device reports {what}{origin}: clear it before a new session. "
        "Check the client and the device, then press f to clear it."
    )


def latched_short(faults: list[str]) -> str:
    """Why no new session may start while the device latches ``faults``."""
    if fmt.is_estop_only(faults):
        what = "an emergency stop"
    else:
        what = f"a fault ({fmt.fault_words(faults)})"
    return f"The device still reports {what}: press f on the home screen to clear it first."


class HomeScreen(Screen[None]):
    """Device status, today's sessions, and the menu."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_session", "New session"),
        Binding("l", "library", "Library"),
        Binding("r", "records", "Records"),
        Binding("d", "device", "Device"),
        Binding("c", "retry_connect", "Retry"),
        Binding("f", "clear_faults", "Clear E-stop / faults"),
        Binding(
            "t", "training_faults", "Faults", tooltip="Simulator only: inject faults for training"
        ),
    ]

    def action_training_faults(self) -> None:
        from controller.ui.practitioner.training import open_training_panel

        open_training_panel(self.epm)

    @property
    def epm(self) -> EpmApp:
        return cast("EpmApp", self.app)

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="home-body"):
            yield DevicePanel(id="device-panel")
            with Horizontal(id="home-menu"):
                yield Button("New session (n)", id="btn-new", variant="primary", compact=True)
                yield Button("Library (l)", id="btn-library", compact=True)
                yield Button("Records (r)", id="btn-records", compact=True)
                yield Button("Device (d)", id="btn-device", compact=True)
            # Below the buttons: when it appears or goes, the buttons stay where they are.
            yield Static("", id="home-notice")
            yield Static("", id="home-sync")
            yield Label("Today's sessions", id="today-title", classes="section-title")
            yield TodaySessions(id="today")
        yield EpmFooter()

    def on_mount(self) -> None:
        self.sub_title = "Home"
        self.watch(self.epm, "connection", self._connection_changed, init=True)
        self.watch(self.epm, "device_status_seq", self._device_status_changed, init=True)
        self.set_interval(self.epm.poll_interval_s, self.refresh_device)
        self.set_interval(self.epm.poll_interval_s, self.refresh_sync)
        self.refresh_today()
        self.refresh_sync()

    def on_screen_resume(self) -> None:
        if self.epm.sync_worker is not None:
            self.epm.sync_worker.sync_now()  # a session may just have ended: send it now
        self.refresh_sync()
        self.refresh_today()
        self.refresh_device()
        self.refresh_state()
        self.epm.read_device_status()  # what happened meanwhile (a session's E-stop) shows

    def _connection_changed(self, _state: str) -> None:
        self.refresh_device()
        self.refresh_state()

    def _device_status_changed(self, _seq: int) -> None:
        self.refresh_state()

    def refresh_state(self) -> None:
        """The latched-fault notice, the keys and the New session button, from the app."""
        app = self.epm
        notice = self.query_one("#home-notice", Static)
        faults = app.latched_faults if not app.session_open else []
        if faults:
            notice.update(latched_notice(faults, app.estop_without_session))
        elif app.device_status_error and app.connection == "up":
            notice.update(app.device_status_error)
        else:
            notice.update("")
        notice.set_class(bool(faults), "-latched")
        notice.display = bool(faults) or bool(app.device_status_error and app.connection == "up")
        self.refresh_bindings()
        self.query_one("#btn-new", Button).disabled = self.check_action("new_session", ()) is None

    def status_view(self) -> DeviceStatusView:
        app = self.epm
        device = app.device
        health = None
        handpiece = None
        if device is not None and app.connection == "up":
            health = device.health()
            if device.handpiece is not None:
                handpiece = device.handpiece.name
            if device.info is not None:
                app.adopt_device_info(device.info)  # a reconnection may have found another
        return DeviceStatusView(
            state=app.connection,
            port=app.port,
            info=app.device_info,
            handpiece=handpiece,
            health=health,
            error=app.connect_error,
        )

    def refresh_device(self) -> None:
        if not self.is_current:
            return  # hidden under another screen: refreshed again when it comes back
        self.query_one(DevicePanel).show(self.status_view())

    def refresh_sync(self) -> None:
        """The clinic server line (hidden without a server)."""
        from controller.records.models import parse_iso
        from controller.records.sync_state import read_state
        from controller.ui.practitioner.sync_line import sync_line

        line = self.query_one("#home-sync", Static)
        offline_days = self.epm.store.offline_days
        if offline_days is None:
            line.display = False
            return
        try:
            state = read_state(self.epm.store)
        except Exception:  # a records problem must not take the home screen down
            state = None
        now = parse_iso(self.epm.store.now())  # the records clock, as the states it compares
        line.update(sync_line(state, now, offline_days))
        line.display = True

    def refresh_today(self) -> None:
        try:
            sessions = self.epm.store.today_sessions()
        except Exception as exc:  # a records problem must not take the home screen down
            self.notify(f"Today's sessions cannot be read: {exc}", severity="error")
            return
        self.query_one(TodaySessions).show(sessions)
        title = f"Today's sessions ({len(sessions)})" if sessions else "Today's sessions: none yet"
        self.query_one("#today-title", Label).update(title)

    # --- keys -------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        app = self.epm
        if action == "training_faults":
            return app.simulated  # the key exists only on a simulator
        if action == "new_session":
            ready = app.connection == "up" and app.device_info is not None
            if not ready or app.session_open or app.latched_faults:
                return None
            return True
        if action == "retry_connect":
            return app.connection == "failed"  # shown only when there is something to retry
        if action == "clear_faults":
            if not app.latched_faults:
                return False  # offered only when the device latches something
            return True if not app.session_open else None
        return True

    def disabled_reason(self, action: str) -> str:
        """Why a dimmed key does nothing now (the app shows it when the key is pressed)."""
        app = self.epm
        if action == "new_session":
            if app.connection == "connecting":
                return "Connecting to the device: a moment please."
            if app.connection != "up" or app.device_info is None:
                return "The device is not connected: press c to try again."
            if app.session_open:
                return "A session is already open."
            faults = app.latched_faults
            if faults:
                return latched_short(faults)
        if action == "retry_connect":
            if app.connection == "up":
                return "The device is connected: nothing to retry."
            return "Connecting to the device: a moment please."
        if action == "clear_faults":
            return "A session is open: clear faults on the session screen."
        return ""

    def action_new_session(self) -> None:
        self.epm.action_new_session()

    def action_clear_faults(self) -> None:
        """A deliberate clear of what the device latched (the last session's E-stop)."""
        self.epm.clear_device_faults()

    def action_library(self) -> None:
        from controller.ui.technician.library import LibraryScreen

        app = self.epm
        self.app.push_screen(cast("Screen[Any]", LibraryScreen(app.library_path, app.store)))

    def action_records(self) -> None:
        from controller.ui.technician.records import RecordsScreen

        self.app.push_screen(cast("Screen[Any]", RecordsScreen(self.epm.store)))

    def action_device(self) -> None:
        from controller.ui.practitioner.device import DeviceScreen

        self.app.push_screen(DeviceScreen())

    def action_retry_connect(self) -> None:
        self.epm.connect_device()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {
            "btn-new": self.action_new_session,
            "btn-library": self.action_library,
            "btn-records": self.action_records,
            "btn-device": self.action_device,
        }
        handler = actions.get(event.button.id or "")
        if handler is not None:
            handler()
