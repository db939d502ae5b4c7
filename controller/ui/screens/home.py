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
from textual.widgets import Button, Header, Label

from controller.ui.widgets.device_panel import DevicePanel, DeviceStatusView
from controller.ui.widgets.footer import EpmFooter
from controller.ui.widgets.today_sessions import TodaySessions

if TYPE_CHECKING:
    from controller.ui.app import EpmApp


class HomeScreen(Screen[None]):
    """Device status, today's sessions, and the menu."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new_session", "New session"),
        Binding("l", "library", "Library"),
        Binding("r", "records", "Records"),
        Binding("d", "device", "Device"),
        Binding("c", "retry_connect", "Retry connect"),
    ]

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
            yield Label("Today's sessions", id="today-title", classes="section-title")
            yield TodaySessions(id="today")
        yield EpmFooter()

    def on_mount(self) -> None:
        self.sub_title = "Home"
        self.watch(self.epm, "connection", self._connection_changed, init=True)
        self.set_interval(self.epm.poll_interval_s, self.refresh_device)
        self.refresh_today()

    def on_screen_resume(self) -> None:
        self.refresh_today()
        self.refresh_device()
        self.refresh_bindings()

    def _connection_changed(self, _state: str) -> None:
        self.refresh_device()
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
        if action == "new_session":
            ready = app.connection == "up" and app.device_info is not None
            return True if ready and not app.session_open else None
        if action == "retry_connect":
            return True if app.connection == "failed" else None
        return True

    def action_new_session(self) -> None:
        self.epm.action_new_session()

    def action_library(self) -> None:
        from controller.ui.screens.library import LibraryScreen

        app = self.epm
        self.app.push_screen(cast("Screen[Any]", LibraryScreen(app.library_path, app.store)))

    def action_records(self) -> None:
        from controller.ui.screens.records import RecordsScreen

        self.app.push_screen(cast("Screen[Any]", RecordsScreen(self.epm.store)))

    def action_device(self) -> None:
        from controller.ui.screens.device import DeviceScreen

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
