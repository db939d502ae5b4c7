"""The app as a whole: the factory, the SIMULATOR marker on every screen, the keys that work
everywhere (emergency stop, quit, help), the home and device screens, the device connection
and its errors, themes that keep the alarm colours distinct, and ``epm`` with no command.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

import pytest
from textual.screen import Screen
from textual.theme import Theme

from controller.cli.default import run_default
from controller.device import DeviceInfo
from controller.link import PortNotFound
from controller.records import RecordStore, StoreLockedError
from controller.session.alarms import AlarmCode, Priority
from controller.session.model import Phase
from controller.ui.app import EpmApp, builtin_simulator_url, create_app, resolve_port
from controller.ui.practitioner.alarm_banner import AlarmBanner
from controller.ui.practitioner.device import DeviceScreen
from controller.ui.practitioner.device_panel import DevicePanel
from controller.ui.practitioner.home import HomeScreen
from controller.ui.practitioner.new_session import NewSessionScreen
from controller.ui.practitioner.run import RunScreen
from controller.ui.shared.confirm_modal import ConfirmModal
from controller.ui.shared.sim_banner import SimBanner
from controller.ui.theme import THEMES, alarm_colours, theme_conflicts
from tests.ui.conftest import (
    SIM_SERIAL,
    FakeEngine,
    FixedDevice,
    alarm,
    device_info,
    make_app,
    press,
    show_run_screen,
    snapshot,
    wait_for,
)


def banner_shown(screen: Screen[Any]) -> bool:
    banners = list(screen.query(SimBanner))
    return len(banners) == 1 and banners[0].has_class("-shown")


async def wait_banner(pilot: Any, app: EpmApp) -> bool:
    screen = app.screen
    await wait_for(
        pilot,
        lambda: any(b.is_mounted for b in screen.query(SimBanner)),
        what=f"banner on {screen}",
    )
    await pilot.pause(0.05)
    return banner_shown(screen)


# --- the factory and ``epm`` ------------------------------------------------------------------


def test_port_comes_from_the_option_then_epm_port_then_the_simulator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EPM_PORT", "/dev/serial/by-id/usb-EPM-1")
    assert resolve_port("socket://localhost:7000") == "socket://localhost:7000"
    assert resolve_port(None) == "/dev/serial/by-id/usb-EPM-1"
    monkeypatch.setenv("EPM_PORT", "  ")
    assert resolve_port(None) == "sim://"
    assert resolve_port(None, 10) == builtin_simulator_url(10) == "sim://?speed=10"


def test_create_app_recovers_interrupted_sessions_and_uses_the_simulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EPM_PORT", raising=False)
    data = tmp_path / "data"
    with RecordStore.open(data) as earlier:  # a session left open by a crashed epm
        earlier.get_or_create_client("C-7")
        left_open = earlier.begin_session(
            client_code="C-7",
            protocol_id="aga-early-scalp",
            protocol_version=1,
            protocol_sha256="ab" * 32,
            protocol_title="t",
            serum_name="s",
            serum_lot="",
            practitioner="p",
            device_model="EPM-1",
            device_serial="SIM-1",
            device_firmware="1",
            device_boot_id=1,
            device_port="sim://",
            checklist={},
            planned_zones=["crown"],
        )
        earlier._open_sessions.discard(left_open)  # as if that process had died
    app = create_app(data_dir=data, sim_speed=5, connect_on_start=False)
    try:
        assert app.recovered == (left_open,)
        assert app.store.get_session(left_open).outcome == "interrupted"
        assert app.device is not None and app.device.url == "sim://?speed=5"
        assert app.simulated  # the built-in simulator is marked before it even answers
        with pytest.raises(StoreLockedError):
            RecordStore.open(data, exclusive=True)  # the app holds the folder
    finally:
        app.close_resources()


async def test_interrupted_sessions_are_announced_at_start(store: RecordStore) -> None:
    app = make_app(store, recovered=[3, 5])
    notices: list[str] = []
    app.notify = lambda message, **_: notices.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: bool(notices))
    assert "2 session(s)" in notices[0] and "#3, #5" in notices[0]
    assert "interrupted" in notices[0]


def test_epm_without_a_command_explains_a_locked_records_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    args = argparse.Namespace(
        port=None,
        baud=115200,
        data_dir=str(data),
        library=None,
        sim_speed=1.0,
        practitioner=None,
    )
    with RecordStore.open(data, exclusive=True):
        assert run_default(args) == 1
    err = capsys.readouterr().err
    assert err.startswith("epm: cannot start:") and "Traceback" not in err
    args.sim_speed = 0
    assert run_default(args) == 2
    assert "--sim-speed" in capsys.readouterr().err
    args.sim_speed, args.library = 1.0, str(tmp_path / "missing")
    assert run_default(args) == 1
    assert "--library" in capsys.readouterr().err


# --- the SIMULATOR marker ---------------------------------------------------------------------


async def test_simulator_marker_is_on_every_screen(store: RecordStore) -> None:
    from controller.ui.shared.help import HelpScreen  # the other engineer's: no banner of its own

    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        assert await wait_banner(pilot, app)
        assert "SIM-000042" in str(app.screen.query_one(SimBanner).render())
        seen = [type(app.screen).__name__]
        for screen in (
            NewSessionScreen(),
            DeviceScreen(),
            HelpScreen(),
        ):
            await app.push_screen(screen)
            assert await wait_banner(pilot, app), type(screen).__name__
            seen.append(type(screen).__name__)
            app.pop_screen()
        run = await show_run_screen(app, pilot, engine)
        assert await wait_banner(pilot, app)
        app.push_screen(ConfirmModal("Stop the session?"))  # any modal, over the run screen
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmModal))
        assert await wait_banner(pilot, app)  # modals too (docked on top)
        assert app.screen.query_one(SimBanner).has_class("-docked")
        await press(pilot, "n")
        await wait_for(pilot, lambda: app.screen is run)
        # Exactly one banner per screen, however often a screen is shown again.
        assert len(run.query(SimBanner)) == 1
    assert seen == ["HomeScreen", "NewSessionScreen", "DeviceScreen", "HelpScreen"]


async def test_no_simulator_marker_on_a_real_device(store: RecordStore) -> None:
    device = FixedDevice(serial="EPM1-000123", url="/dev/ttyUSB0")
    app = make_app(store, device=device)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        assert not app.simulated
        assert not await wait_banner(pilot, app)
        assert not app.screen.query_one(SimBanner).display


# --- keys that work everywhere ----------------------------------------------------------------


async def test_emergency_stop_works_without_a_session_and_from_the_help_screen(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        await app.push_screen(NewSessionScreen())
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "client-code")
        await press(pilot, "x", "f12")  # no session, the client-code Input focused
        assert app.device.estops == 1  # straight to the device
        assert app.screen.query_one("#client-code").value == "x"
        app.pop_screen()
        await show_run_screen(app, pilot, engine)
        await press(pilot, "f1")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")
        await press(pilot, "f12")  # a session: through the engine, from another screen
        assert [source for source, _ in engine.estops] == ["operator"]
        assert app.device.estops == 2


async def test_an_emergency_stop_that_could_not_be_sent_says_what_to_do_by_hand(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    notices: list[tuple[str, str]] = []
    app.notify = lambda message, **kw: notices.append((message, kw.get("title", "")))  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await show_run_screen(app, pilot, engine)
        engine.device = None
        engine.bytes_go_out = False  # the port is gone: ESTOP's bytes could not be written
        await press(pilot, "f12")
        await wait_for(pilot, lambda: bool(notices), what="the E-STOP notice")
    message, title = notices[-1]
    assert title == "E-STOP NOT SENT"
    assert "NOT sent" in message and "Lift the handpiece" in message
    assert "switch the unit off" in message


async def test_quit_is_refused_while_delivering_and_asks_twice_while_open(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    notices: list[str] = []
    app.notify = lambda message, **_: notices.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await show_run_screen(app, pilot, engine)
        for phase in (Phase.DELIVERING, Phase.HOLD, Phase.PAUSED, Phase.PREFLIGHT):
            engine.set(phase=phase)
            await press(pilot, "ctrl+q", "ctrl+q")
            assert app.is_running, phase
            assert "stop it first" in notices[-1]
        engine.set(phase=Phase.PLACE)
        await press(pilot, "ctrl+q")
        assert app.is_running and "ctrl+q again" in notices[-1]
        await press(pilot, "ctrl+q")
        await wait_for(pilot, lambda: not app.is_running, what="the app to quit")
    assert app.return_value == 0


# --- home, connection, device screen ----------------------------------------------------------


async def test_home_shows_the_device_and_a_failed_connection_with_retry(
    store: RecordStore,
) -> None:
    device = FixedDevice()
    device.fail_with = PortNotFound(
        "No serial port /dev/ttyUSB0: check the cable and that the device is on.",
        url="/dev/ttyUSB0",
    )
    device.gate = threading.Event()
    app = make_app(store, device=device)
    async with app.run_test(size=(80, 24)) as pilot:
        home = app.screen
        await wait_for(pilot, lambda: "connecting…" in str(home.query_one(DevicePanel).render()))
        device.gate.set()
        await wait_for(pilot, lambda: app.connection == "failed")
        assert isinstance(home, HomeScreen)
        panel = str(home.query_one(DevicePanel).render())
        assert "NOT CONNECTED" in panel and "check the cable" in panel
        assert "Traceback" not in panel and "Press c to try again" in panel
        assert home.active_bindings["c"].enabled
        assert not home.active_bindings["n"].enabled  # no new session without a device
        button = home.query_one("#btn-device")
        place = button.region  # the buttons stay put while the panel's text changes
        await press(pilot, "n")
        assert isinstance(app.screen, HomeScreen)
        device.fail_with = None
        await press(pilot, "c")
        await wait_for(pilot, lambda: app.connection == "up")
        await wait_for(pilot, lambda: "SIM-000042" in str(home.query_one(DevicePanel).render()))
        assert (
            home.active_bindings["n"].enabled and "c" not in home.active_bindings
        )  # hidden once up
        assert device.connects == 2
        # The mouse works too (never required). The device panel keeps its height from
        # connecting to connected, so the button is where it was: one click, no retries (a
        # click on a button that moved used to land on its neighbour on a busy machine).
        await wait_for(pilot, lambda: button.region == place, what="the buttons in place")
        await pilot.click("#btn-device")
        await wait_for(pilot, lambda: isinstance(app.screen, DeviceScreen), what="device screen")


async def test_home_lists_todays_sessions(store: RecordStore) -> None:
    store.get_or_create_client("C-0042")
    sid = store.begin_session(
        client_code="C-0042",
        protocol_id="aga-early-scalp",
        protocol_version=1,
        protocol_sha256="ab" * 32,
        protocol_title="t",
        serum_name="s",
        serum_lot="L1",
        practitioner="p",
        device_model="EPM-1",
        device_serial="SIM-000042",
        device_firmware="1.0.0",
        device_boot_id=1,
        device_port="sim://",
        checklist={},
        planned_zones=["crown"],
    )
    store.end_session(sid, "completed")
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        table = app.screen.query_one("#today")
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert row[1:] == ["C-0042", "aga-early-scalp v1", "completed", "SIM"]
        assert "Today's sessions (1)" in str(app.screen.query_one("#today-title").render())


async def test_device_screen_reads_status_and_clears_faults(store: RecordStore) -> None:
    app = make_app(store)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        app.device.faults = app.device.faults.__class__.ESTOP
        await press(pilot, "d")
        screen = app.screen
        assert isinstance(screen, DeviceScreen)
        await wait_for(pilot, lambda: screen.status is not None, what="status read")
        assert "emergency stop" in str(screen.query_one("#dev-status").render())
        assert "Amplitude up to 120.0 V" in str(screen.query_one("#dev-caps").render())
        assert screen.active_bindings["f"].enabled
        await press(pilot, "f")
        await wait_for(pilot, lambda: app.device.cleared == 1)
        await wait_for(pilot, lambda: screen.status is not None and not screen.status.faults)
        assert not screen.active_bindings["f"].enabled
        await press(pilot, "c")
        await wait_for(pilot, lambda: app.device.connects == 2 and app.connection == "up")
        await press(pilot, "escape")
        await wait_for(pilot, lambda: isinstance(app.screen, HomeScreen))


# --- themes -----------------------------------------------------------------------------------


def test_themes_keep_the_alarm_colours_distinct() -> None:
    for theme in THEMES:
        assert theme_conflicts(theme) == [], theme.name
    reddish = Theme(name="bad", primary="#e03030", accent="#20d0d0", dark=True)
    problems = theme_conflicts(reddish)
    assert any("primary" in p and "high" in p for p in problems)
    assert any("accent" in p and "low" in p for p in problems)
    assert [alarm_colours(p).background for p in Priority] == ["#FF0000", "#FFFF00", "#00FFFF"]
    from controller.ui.app import epm_commands_provider
    from controller.ui.commands import EpmCommands

    assert epm_commands_provider() is EpmCommands  # the palette's epm commands are registered


async def test_theme_switch_keeps_alarm_colours(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.FAULT, alarms=(alarm(AlarmCode.DEVICE_FAULT),)))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        assert set(app.available_themes) == {t.name for t in THEMES}
        screen = await show_run_screen(app, pilot, engine)
        await wait_for(pilot, lambda: isinstance(app.screen, Screen) and app.screen is not screen)
        app.pop_screen()  # the alarm's modal
        banner = screen.query_one(AlarmBanner)
        before = banner.styles.background.hex
        app.theme = "epm-light"
        await pilot.pause(0)
        assert isinstance(app.screen, RunScreen)
        assert banner.styles.background.hex == before == "#FF0000"


class _SwappedDevice(FixedDevice):
    """A fixed device behind which another unit answered after a reconnect."""

    def __init__(self) -> None:
        super().__init__()
        self.other: DeviceInfo | None = None
        self.adopted = 0

    def other_unit(self) -> DeviceInfo | None:
        return self.other

    def adopt_other_unit(self) -> DeviceInfo:
        assert self.other is not None
        self.adopted += 1
        self.info, self.other = self.other, None
        return self.info


async def test_another_unit_is_shown_on_the_device_screen_and_used_only_when_confirmed(
    store: RecordStore,
) -> None:
    device = _SwappedDevice()
    app = make_app(store, device=device)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        await app.push_screen(DeviceScreen())
        screen = app.screen
        assert "o" not in screen.active_bindings  # offered only when another unit waits
        device.other = device_info("SIM-000999")

        def shown() -> str:
            return str(screen.query_one("#dev-info").render())

        await wait_for(pilot, lambda: "Another unit answered" in shown(), what="the other unit")
        await wait_for(pilot, lambda: "o" in screen.active_bindings)
        assert "SIM-000999" in shown() and SIM_SERIAL in shown()
        await press(pilot, "o")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmModal")
        await press(pilot, "n")  # not confirmed: nothing changes
        await wait_for(pilot, lambda: app.screen is screen)
        assert device.adopted == 0 and app.device_serial == SIM_SERIAL
        await press(pilot, "o")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmModal")
        await press(pilot, "y")
        await wait_for(pilot, lambda: device.adopted == 1, what="adopted")
        await wait_for(pilot, lambda: app.device_serial == "SIM-000999")
        await wait_for(pilot, lambda: "Another unit answered" not in shown())
