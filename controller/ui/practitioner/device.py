"""The device screen: who the unit is, what it can do, its state, the link's counters, and
reconnect / clear faults / use another unit.

Why: when something is off (a unit that faults, a flaky cable), the practitioner or a
technician looks here first: the device's own status and error counters next to the host's
link counters tell a cable problem from a device problem. When another unit answered after a
reconnect (another serial: an adapter re-plugged, another box at the address), the screen
shows both serials and uses the new unit only when the operator confirms it, and never while a
session is open.

The last entries of the service log (docs/service-log.md) show under the counters, refreshed
every second, so the story of a fault (the link lost, a restart, an alarm, an emergency stop) is
on the screen where the technician looks. In a short terminal (24 rows) they take the place of
the unit's identity and capabilities; ``l`` switches between the two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, cast

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Label, Static

from controller import servicelog
from controller.device import Capabilities, DeviceInfo, Status
from controller.device.views import HealthView as LinkHealth
from controller.ui.shared import formatting as fmt
from controller.ui.shared.footer import EpmFooter

if TYPE_CHECKING:
    from controller.ui.app import EpmApp


def info_text(info: DeviceInfo | None, port: str) -> Text:
    text = Text()
    if info is None:
        text.append("Not connected", style="bold")
        text.append(f" ({port})")
        return text
    rows = (
        ("Model", info.model),
        ("Serial", info.serial + ("  (simulator)" if info.is_simulator else "")),
        ("Firmware", info.firmware),
        ("Protocol", f"v{info.proto_version}"),
        ("Port", f"{info.url} at {info.baud} baud"),
        ("Boot id", str(info.boot_id)),
    )
    for n, (name, value) in enumerate(rows):
        text.append(("\n" if n else "") + f"{name:<10}", style="bold")
        text.append(value)
    return text


def other_unit_text(expected: DeviceInfo | None, found: DeviceInfo) -> Text:
    text = Text()
    text.append("Another unit answered", style="bold reverse")
    text.append(f"\nFound     {found.model} {found.serial}")
    if found.is_simulator:
        text.append("  (simulator)")
    if expected is not None:
        text.append(f"\nExpected  {expected.model} {expected.serial}")
    text.append(
        "\nNothing is sent to it but a status read. Press o to use this unit from now on "
        "(no session may be open), or plug the expected unit back in."
    )
    return text


def capabilities_text(caps: Capabilities | None) -> Text:
    text = Text()
    if caps is None:
        return text
    rows = (
        ("Amplitude", f"up to {fmt.volts(caps.max_amplitude_dv)}"),
        ("Current", f"up to {fmt.milliamps(caps.max_current_ua)} r.m.s."),
        ("Pulse", f"{caps.pulse_width_min_us}-{caps.pulse_width_max_us} µs"),
        ("Rate", f"{caps.frequency_min_hz}-{caps.frequency_max_hz} Hz"),
        ("Step", f"up to {fmt.duration(caps.max_step_ms)}"),
        (
            "Waveforms",
            ", ".join(
                sorted(fmt.WAVEFORM_WORDS.get(w.name, fmt.words(w.name)) for w in caps.waveforms)
            ),
        ),
        ("Telemetry", f"up to {caps.max_telemetry_hz} Hz"),
    )
    for n, (name, value) in enumerate(rows):
        text.append(("\n" if n else "") + f"{name:<10}", style="bold")
        text.append(value)
    return text


def status_text(status: Status | None, error: str = "") -> Text:
    text = Text()
    if error:
        text.append(error)
        return text
    if status is None:
        text.append("Not read yet (u reads it).", style="dim")
        return text
    names = status.faults.names() if status.faults else []
    faults = fmt.fault_words(names)
    if names and fmt.is_estop_only(names):
        faults = "emergency stop (clear it with f before a new session)"
    elif names:
        faults += " (f clears them)"
    step = (
        f"{fmt.duration(status.step_elapsed_ms)} of {fmt.duration(status.step_duration_ms)}"
        if status.step_id
        else "none set up"
    )
    rows = (
        ("State", fmt.device_state(status.state.name)),
        ("Faults", faults),
        ("Handpiece", fmt.words(status.handpiece.name)),
        ("Step", step),
        ("Setpoint", fmt.volts(status.amplitude_dv)),
        ("Device rx", f"CRC errors {status.rx_crc_errors}, frame errors {status.rx_frame_errors}"),
    )
    for n, (name, value) in enumerate(rows):
        text.append(("\n" if n else "") + f"{name:<10}", style="bold")
        text.append(value, style="bold reverse" if name == "Faults" and status.faults else "")
    return text


def health_text(health: LinkHealth | None) -> Text:
    text = Text()
    if health is None:
        return Text("No link.", style="dim")
    rtt = (
        f"p50 {health.rtt_p50_ms:.1f} ms, p99 {health.rtt_p99_ms:.1f} ms"
        if health.rtt_p50_ms is not None and health.rtt_p99_ms is not None
        else "--"
    )
    rows = (
        ("State", str(health.state)),
        (
            "Requests",
            f"{health.requests_sent} sent, {health.replies_received} replies, "
            f"{health.retransmissions} retransmitted, {health.requests_given_up} lost",
        ),
        ("RTT", rtt),
        (
            "Frames",
            f"{health.frames_received} received, {health.frames_dropped} dropped "
            f"(CRC {health.crc_errors}, COBS {health.cobs_errors})",
        ),
        ("Telemetry", f"{health.telemetry_received} received, {health.telemetry_lost} lost"),
        (
            "Link",
            f"{health.link_losses} losses, {health.reconnects} reconnects, "
            f"{health.device_restarts} device restarts, {health.estops_sent} ESTOPs",
        ),
    )
    for n, (name, value) in enumerate(rows):
        text.append(("\n" if n else "") + f"{name:<10}", style="bold")
        text.append(value)
    return text


#: Service-log entries the device screen shows (the newest last).
LOG_ENTRIES = 8
#: Below this many rows the service log takes the place of the identity and capabilities.
TALL_ROWS = 36


def service_log_text(entries: list[servicelog.Entry], width: int) -> Text:
    """The last service-log entries, one line each (time, level, area, message), cut to
    ``width``; warnings bold, errors reversed."""
    if not entries:
        return Text("No entries yet (`epm log` reads the whole log).", style="dim")
    text = Text()
    for n, entry in enumerate(entries):
        style = ""
        if entry.levelno >= servicelog.LEVELS["error"]:
            style = "bold reverse"
        elif entry.levelno >= servicelog.LEVELS["warning"]:
            style = "bold"
        text.append(("\n" if n else "") + servicelog.short_line(entry, width), style=style)
    return text


class DeviceScreen(Screen[None]):
    """Info, capabilities, status (read on entry and with u), link health (live) and the last
    service-log entries (live)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "read_status", "Read status"),
        Binding("c", "reconnect", "Reconnect"),
        Binding("f", "clear_faults", "Clear faults"),
        Binding("o", "adopt_other_unit", "Use the other unit"),
        Binding("l", "toggle_log", "Log/unit"),
        Binding("escape", "back", "Back"),
    ]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (TALL_ROWS, "-tall")]  # noqa: RUF012 - Textual reads it

    def __init__(self) -> None:
        super().__init__()
        self.status_error = ""
        self._offered_other = False
        self._log: servicelog.Tail | None = None

    @property
    def epm(self) -> EpmApp:
        return cast("EpmApp", self.app)

    @property
    def status(self) -> Status | None:
        """The device's status as last read (the app's: home and this screen show the same)."""
        app = self.epm
        return app.device_status if app.connection == "up" else None

    @property
    def _reading(self) -> bool:
        return self.epm.status_reading

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="device-body"):
            with Horizontal(classes="device-row", id="dev-unit-row"):
                with VerticalScroll(classes="device-box"):
                    yield Label("Device", classes="section-title")
                    yield Static("", id="dev-info")
                with VerticalScroll(classes="device-box"):
                    yield Label("Capabilities", classes="section-title")
                    yield Static("", id="dev-caps")
            with Vertical(id="dev-log-box"):
                yield Label("Service log (newest last; epm log shows all)", classes="section-title")
                yield Static("", id="dev-log")
            with Horizontal(classes="device-row"):
                with VerticalScroll(classes="device-box"):
                    yield Label("Status (from the device)", classes="section-title")
                    yield Static("", id="dev-status")
                with VerticalScroll(classes="device-box"):
                    yield Label("Link health (host counters)", classes="section-title")
                    yield Static("", id="dev-health")
        yield EpmFooter()

    def on_mount(self) -> None:
        self.sub_title = "Device"
        self.watch(self.epm, "connection", self._connection_changed, init=True)
        # Every status read (after an emergency stop, a fault, a clear, a reconnection: the
        # app reads it on the device's events) shows here at once.
        self.watch(self.epm, "device_status_seq", self._status_read, init=False)
        self.set_interval(self.epm.poll_interval_s, self.refresh_view)

    def _connection_changed(self, state: str) -> None:
        self.refresh_view()
        self.refresh_bindings()
        if state == "up":
            self.action_read_status()

    def _status_read(self, _seq: int) -> None:
        self.status_error = self.epm.device_status_error
        self.refresh_view()
        self.refresh_bindings()

    def _other_unit(self) -> DeviceInfo | None:
        device = self.epm.device
        return device.other_unit() if device is not None else None

    def refresh_view(self) -> None:
        app = self.epm
        info = app.device_info if app.connection == "up" else None
        other = self._other_unit()
        if other is not None:
            shown = other_unit_text(app.device_info, other)
        elif app.connection == "failed":
            shown = Text(app.connect_error or "Not connected.")
        else:
            shown = info_text(info, app.port)
        self.query_one("#dev-info", Static).update(shown)
        if other is not None and not self._offered_other:
            self._offered_other = True
            self.refresh_bindings()
        self.query_one("#dev-caps", Static).update(
            capabilities_text(info.capabilities if info else None)
        )
        self.query_one("#dev-status", Static).update(status_text(self.status, self.status_error))
        device = app.device
        health = device.health() if device is not None and app.connection == "up" else None
        self.query_one("#dev-health", Static).update(health_text(health))
        self.refresh_log()

    def refresh_log(self) -> None:
        """Show the service log's last entries (read again only when its file changed)."""
        if self._log is None:
            data_dir = getattr(self.epm.store, "data_dir", None)
            if data_dir is None:
                return
            self._log = servicelog.Tail(servicelog.log_path(data_dir), LOG_ENTRIES)
        try:
            entries = self._log.entries()
        except OSError:  # unreadable just now (rotating): the next refresh reads it
            return
        box = self.query_one("#dev-log", Static)
        width = max(20, (box.content_size.width or self.size.width - 4))
        box.update(service_log_text(entries, width))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        app = self.epm
        if action == "read_status":
            return True if app.connection == "up" and not self._reading else None
        if action == "reconnect":
            return True if not app.session_open and app.connection != "connecting" else None
        if action == "clear_faults":
            faulted = self.status is not None and bool(self.status.faults)
            return True if faulted and app.connection == "up" and not app.session_open else None
        if action == "adopt_other_unit":
            if self._other_unit() is None:
                return False  # shown only when another unit is waiting
            return True if not app.session_open else None
        if action == "toggle_log":
            return self.has_class("-short")  # a tall terminal shows both
        return True

    def disabled_reason(self, action: str) -> str:
        """Why a dimmed key does nothing now (the app shows it when the key is pressed)."""
        app = self.epm
        if action == "read_status":
            if app.connection != "up":
                return "The device is not connected: press c to reconnect."
            return "The status is being read: a moment please."
        if action == "reconnect":
            if app.session_open:
                return "A session is open: reconnect from the session screen (r) if it asks."
            return "Connecting to the device: a moment please."
        if action == "clear_faults":
            if app.session_open:
                return "A session is open: clear faults on the session screen (c)."
            if app.connection != "up":
                return "The device is not connected: press c to reconnect."
            return "The device reports no fault to clear."
        if action == "adopt_other_unit":
            return "A session is open: end it before using another unit."
        return ""

    def action_read_status(self) -> None:
        self.epm.read_device_status()
        self.refresh_bindings()

    def action_clear_faults(self) -> None:
        self.epm.clear_device_faults()
        self.refresh_bindings()

    def action_reconnect(self) -> None:
        self.status_error = ""
        self.epm.connect_device()

    def action_adopt_other_unit(self) -> None:
        """Ask, then use the other unit from now on (never while a session is open)."""
        from controller.ui.shared.confirm_modal import ConfirmModal

        other = self._other_unit()
        app = self.epm
        if other is None or app.session_open:
            return
        expected = app.device_info.serial if app.device_info is not None else "the unit before"
        question = f"Use {other.model} {other.serial} from now on?"
        explain = (
            f"It answered instead of {expected}. Sessions will run on it, and its records will "
            "name it. Say no to plug the expected unit back in instead."
        )
        self.app.push_screen(ConfirmModal(question, explain), self._adopt_answered)

    def _adopt_answered(self, yes: bool | None) -> None:
        app = self.epm
        device = app.device
        if not yes or device is None or app.session_open:
            return
        try:
            info = device.adopt_other_unit()
        except Exception as exc:  # the unit went away meanwhile: say so, never a traceback
            self.status_error = f"Could not use the other unit: {exc}"
        else:
            app.adopt_device_info(info)
            self._offered_other = False
            self.action_read_status()
        self.refresh_view()
        self.refresh_bindings()

    def action_toggle_log(self) -> None:
        """Short terminal: the service log or the unit's identity and capabilities."""
        self.toggle_class("-unit")

    def action_back(self) -> None:
        self.app.pop_screen()
