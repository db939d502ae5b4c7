"""Fixtures for the UI tests: a scripted session engine, a fixed device, a record store on a
fixed clock, apps built by the real factory, and waiting on conditions (never bare sleeps).

``FakeEngine`` implements ``SessionControl`` with a snapshot the test sets; it records every
request and emergency stop, so the screens' behaviour is asserted without the real engine.
``FixedDevice`` answers like a connected EPM-1 simulator with fixed counters, so snapshots are
deterministic. Flow tests use the real ``DeviceClient`` on the in-process simulator.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from controller.device import Capabilities, DeviceInfo, Status
from controller.link import LinkHealth, LinkState
from controller.records import RecordStore
from controller.session.alarms import ALARM_SPECS, Alarm, AlarmCode
from controller.session.model import (
    Action,
    DeviceView,
    LinkView,
    LiveView,
    Phase,
    SessionNotice,
    SessionPlan,
    SessionSnapshot,
    StepStatus,
    StepView,
)
from controller.ui.app import EpmApp
from controller.wire import Fault, Handpiece, State, Telemetry, Waveform
from protocols import bundled_library_path

os.environ.setdefault("TEXTUAL_ANIMATIONS", "none")

#: Noon, 2 March 2026, UTC: the frozen "now" of the store and of "today".
NOON_UTC = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
TODAY = dt.date(2026, 3, 2)
SIM_SERIAL = "SIM-000042"
LIBRARY = bundled_library_path()


# --- waiting -------------------------------------------------------------------------------


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], bool], timeout: float = 10.0, what: str = ""
) -> None:
    """Let the app run until ``condition()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        # A plain sleep lets the app (same event loop) run; pilot.pause() would also post a
        # message to every widget on each poll, which costs more than the wait itself.
        await asyncio.sleep(0.02)
    await settle(pilot)  # then let the app finish what the change set off (mounting...)


async def settle(pilot: Pilot[Any], timeout: float = 10.0) -> None:
    """Wait until the app, the screen and the focused widget processed what is queued now.

    Cheaper than ``pilot.pause()``, which queues a callback on every widget of the screen;
    keys and the messages they cause go through these three.
    """
    app = pilot.app
    done = asyncio.Event()
    nodes = [node for node in (app, app.screen, app.focused) if node is not None]
    left = len(nodes)

    def one_done() -> None:
        nonlocal left
        left -= 1
        if left == 0:
            done.set()

    for node in nodes:
        if not node.call_later(one_done):
            one_done()
    await asyncio.wait_for(done.wait(), timeout)
    await asyncio.sleep(0)


async def press(pilot: Pilot[Any], *keys: str, gap: float = 0.0) -> None:
    """Press ``keys`` like ``pilot.press``, without its wait for an idle CPU.

    ``pilot.press`` waits (up to 1 s per key, twice) until the process's CPU time stops
    advancing; with the in-process simulator's thread running, it never does, so every key
    would cost 2 s. This posts the same key events and waits only for the screen to process
    its messages.
    """
    from textual import events
    from textual.keys import REPLACED_KEYS, _character_to_key, _get_unicode_name_from_key

    app = pilot.app
    for typed in keys:
        key = _character_to_key(typed) if len(typed) == 1 and not typed.isalnum() else typed
        try:
            name = _get_unicode_name_from_key(REPLACED_KEYS.get(key, key))
            char: str | None = unicodedata.lookup(name)
        except KeyError:
            char = key if len(key) == 1 else None
        event = events.Key(key, char)
        event.set_sender(app)
        app.post_message(event)
        await settle(pilot)  # the app took the key (and forwarded it to the focused widget)
        await settle(pilot)  # the focused widget handled what was forwarded
        await asyncio.sleep(gap)


# --- a fixed device -----------------------------------------------------------------------------

CAPABILITIES = Capabilities(
    max_amplitude_dv=1200,
    max_current_ua=10000,
    pulse_width_min_us=50,
    pulse_width_max_us=2000,
    frequency_min_hz=1,
    frequency_max_hz=5000,
    max_step_ms=1_200_000,
    waveforms=frozenset({Waveform.MONO_SQUARE, Waveform.BI_SQUARE}),
    max_telemetry_hz=1000,
)


def device_info(serial: str = SIM_SERIAL, url: str = "sim://fixed") -> DeviceInfo:
    return DeviceInfo(
        model="EPM-1",
        serial=serial,
        firmware="1.0.0",
        boot_id=0x1234,
        capabilities=CAPABILITIES,
        handpiece=Handpiece.SCALP_ROLLER,
        is_simulator=serial.startswith("SIM-"),
        url=url,
        baud=115200,
        proto_version=1,
    )


def link_health(state: LinkState = LinkState.UP) -> LinkHealth:
    counters = [
        field.name
        for field in dataclasses.fields(LinkHealth)
        if field.type in ("int", int) and field.name != "state"
    ]
    zero = dict.fromkeys(counters, 0)
    zero.update(
        requests_sent=12,
        replies_received=12,
        frames_received=512,
        telemetry_received=500,
        events_received=2,
        rtt_samples=12,
    )
    return LinkHealth(
        state=state,
        rtt_p50_ms=1.2,
        rtt_p99_ms=3.4,
        last_frame_age_s=0.01,
        device_rx_crc_errors=0,
        device_rx_frame_errors=0,
        **zero,
    )


class FixedDevice:
    """Duck-types ``DeviceClient`` for the UI: connects at once, fixed health, counts ESTOPs.

    ``fail_with`` makes ``connect()`` raise it (the home screen's error path).
    """

    def __init__(self, serial: str = SIM_SERIAL, url: str = "sim://fixed") -> None:
        self.url = url
        self.baud = 115200
        self.serial = serial
        self.fail_with: BaseException | None = None
        self.connects = 0
        self.estops = 0
        self.closed = False
        self.cleared = 0
        self.faults = Fault.NONE
        self.handpiece: Handpiece | None = Handpiece.SCALP_ROLLER
        self.connected = threading.Event()
        self.epoch = 1
        #: When set, ``connect()`` waits for it (the home screen's "connecting…").
        self.gate: threading.Event | None = None
        self.info: DeviceInfo | None = None

    def connect(self) -> DeviceInfo:
        self.connects += 1
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_with is not None:
            raise self.fail_with
        self.connected.set()
        self.info = device_info(self.serial, self.url)
        return self.info

    def health(self) -> LinkHealth:
        return link_health()

    def other_unit(self) -> DeviceInfo | None:
        """No other unit answered (tests that need one override this)."""
        return None

    def estop(self) -> bool:
        self.estops += 1
        self.faults |= Fault.ESTOP
        return True

    def status(self) -> Status:
        return Status(
            boot_id=0x1234,
            state=State.FAULT if self.faults else State.IDLE,
            faults=self.faults,
            step_id=0,
            step_elapsed_ms=0,
            step_duration_ms=0,
            handpiece=Handpiece.SCALP_ROLLER,
            amplitude_dv=0,
            rx_crc_errors=0,
            rx_frame_errors=0,
        )

    def clear_faults(self, *, epoch: int) -> None:
        assert epoch == self.epoch
        self.cleared += 1
        self.faults = Fault.NONE

    def abandon(self, reason: str, timeout: float = 5.0) -> bool:
        """As the real engine: end the open session as interrupted (here: remember why)."""
        self.abandoned.append(reason)
        self.closed = True
        return True

    def close(self) -> None:
        self.closed = True


# --- a scripted engine -------------------------------------------------------------------------

STEPS = (
    StepView(
        1,
        "manual",
        "Cleanse the scalp and apply the serum",
        None,
        180_000,
        0,
        StepStatus.DONE,
        instructions="Part the hair, cleanse, apply the serum.",
    ),
    StepView(2, "delivery", "Frontal", "frontal", 300_000, 123_400, StepStatus.ACTIVE, 600),
    StepView(3, "delivery", "Midscalp", "midscalp", 300_000, 0, StepStatus.PENDING, 600),
    StepView(4, "delivery", "Crown", "crown", 360_000, 0, StepStatus.PENDING, 600),
)

ALLOWED: dict[Phase, frozenset[Action]] = {
    Phase.PREFLIGHT: frozenset(),
    Phase.REFUSED: frozenset(),
    Phase.MANUAL: frozenset({Action.CONFIRM, Action.SKIP, Action.END}),
    Phase.PLACE: frozenset(
        {Action.CONFIRM, Action.SKIP, Action.END, Action.INTENSITY_UP, Action.INTENSITY_DOWN}
    ),
    Phase.DELIVERING: frozenset(
        {Action.PAUSE, Action.STOP, Action.INTENSITY_UP, Action.INTENSITY_DOWN}
    ),
    Phase.HOLD: frozenset({Action.PAUSE, Action.STOP, Action.INTENSITY_DOWN}),
    Phase.PAUSED: frozenset(
        {
            Action.RESUME,
            Action.STOP,
            Action.SKIP,
            Action.END,
            Action.INTENSITY_UP,
            Action.INTENSITY_DOWN,
        }
    ),
    Phase.STOPPING: frozenset(),
    Phase.FAULT: frozenset({Action.ACKNOWLEDGE, Action.CLEAR_FAULTS, Action.END}),
    Phase.LINK_LOST: frozenset({Action.ACKNOWLEDGE, Action.END}),
    Phase.RECOVERY: frozenset({Action.ACKNOWLEDGE, Action.CONTINUE, Action.END}),
    Phase.FINISHED: frozenset(),
}

MESSAGES: dict[Phase, str] = {
    Phase.PREFLIGHT: "Checking the device, the handpiece and the protocol…",
    Phase.REFUSED: "The session cannot start.",
    Phase.MANUAL: "Cleanse the scalp and apply the serum; press Enter when done.",
    Phase.PLACE: "Place the handpiece on the frontal zone, then press Enter to start.",
    Phase.DELIVERING: "Delivering to the frontal zone. Keep the roller moving on the skin.",
    Phase.HOLD: "No skin contact: output is off and the zone's time is frozen.",
    Phase.PAUSED: "Paused: output off. Press p to resume.",
    Phase.STOPPING: "Output ramping down.",
    Phase.FAULT: "The device reported a fault and turned output off.",
    Phase.LINK_LOST: "The connection to the device is lost; reconnecting…",
    Phase.RECOVERY: "Reconnected. Check the client, then continue or end.",
    Phase.FINISHED: "The session has ended.",
}


def live_view(**changes: Any) -> LiveView:
    base = LiveView(
        device_state="RUNNING",
        amplitude_dv=412,
        setpoint_dv=420,
        current_ua=2310,
        current_limit_ua=6000,
        impedance_ohm=1840,
        temperature_dc=334,
        contact="ok",
        faults=(),
        age_s=0.02,
    )
    return dataclasses.replace(base, **changes)


def alarm(code: AlarmCode, occurrence: int = 1, **changes: Any) -> Alarm:
    spec = ALARM_SPECS[code]
    base = Alarm(
        code=code,
        priority=spec.priority,
        message=spec.message,
        raised_at=100.0,
        latching=spec.latching,
        occurrence=occurrence,
    )
    return dataclasses.replace(base, **changes)


def snapshot(phase: Phase = Phase.DELIVERING, **changes: Any) -> SessionSnapshot:
    base = SessionSnapshot(
        phase=phase,
        simulated=True,
        client_code="C-0042",
        protocol_id="aga-early-scalp",
        protocol_version=1,
        protocol_title="Early androgenetic alopecia, frontal, midscalp and crown",
        session_id=None,
        step_index=1 if phase is Phase.MANUAL else 2,
        steps=STEPS,
        zone_planned_ms=300_000,
        zone_delivered_ms=123_400,
        session_planned_ms=960_000,
        session_delivered_ms=123_400,
        manual_remaining_ms=95_000 if phase is Phase.MANUAL else None,
        setpoint_dv=420,
        live=live_view(
            contact="none" if phase is Phase.HOLD else "ok",
            amplitude_dv=412 if phase is Phase.DELIVERING else 0,
            impedance_ohm=2_000_000 if phase is Phase.HOLD else 1840,
            current_ua=2310 if phase is Phase.DELIVERING else 0,
        ),
        device=DeviceView("EPM-1", SIM_SERIAL, "1.0.0", "scalp_roller", True),
        link=LinkView("up", "sim://fixed", 0, 0, 0, 1.2, 3.4, 500, 0, 0.01),
        alarms=(),
        allowed=ALLOWED[phase],
        message=MESSAGES[phase],
        aftercare=("Do not wash the hair for 48 hours.", "No intense exercise for 24 hours."),
    )
    return dataclasses.replace(base, **changes)


def telemetry_batch(n: int, amplitude_dv: int = 412, start_dseq: int = 0) -> list[Telemetry]:
    return [
        Telemetry(
            dseq=(start_dseq + i) & 0xFFFF,
            boot_id=0x1234,
            t_ms=1000 + 20 * (start_dseq + i),
            state=State.RUNNING,
            faults=0,
            step_id=2,
            step_elapsed_ms=123_400,
            amplitude_dv=amplitude_dv + (i % 7),
            current_ua=2300 + (i % 11) * 10,
            impedance_ohm=1800 + (i % 5) * 20,
            temperature_dc=334,
            contact=1,
        )
        for i in range(n)
    ]


class FakeEngine:
    """``SessionControl`` with a snapshot the test sets; records requests and E-STOPs.

    ``bytes_go_out`` is what ``emergency_stop`` answers without a device (False: the port is
    gone and the operator must be told to stop the unit by hand).

    ``set(phase=..., ...)`` replaces the snapshot and tells the listeners (as the real engine
    does on its own thread). ``emergency_stop`` also reaches the device when one is given.
    """

    def __init__(self, snap: SessionSnapshot | None = None, device: Any = None) -> None:
        self._snap = snap or snapshot(Phase.PREFLIGHT)
        self.device = device
        self.bytes_go_out = True
        self.requests: list[tuple[Action, str | None]] = []
        self.estops: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self.listeners: list[Callable[[SessionNotice], None]] = []
        self.telemetry: deque[Telemetry] = deque()
        self.drains = 0
        self.started = threading.Event()
        self.plan: SessionPlan | None = None
        self.start_error: Exception | None = None
        self.closed = False
        self.on_start: Callable[[FakeEngine], None] | None = None
        #: When set, ``set_notes`` writes into it as the real engine does (session_id known).
        self.store: RecordStore | None = None
        #: Reasons given to ``abandon`` (quitting with the session open: recorded interrupted).
        self.abandoned: list[str] = []

    def start(self) -> None:
        self.started.set()
        if self.start_error is not None:
            raise self.start_error
        if self.on_start is not None:
            self.on_start(self)

    def snapshot(self) -> SessionSnapshot:
        return self._snap

    def set(self, kind: str = "phase", **changes: Any) -> None:
        phase = changes.get("phase")
        if phase is not None and "allowed" not in changes:
            changes["allowed"] = ALLOWED[phase]
        if phase is not None and "message" not in changes:
            changes["message"] = MESSAGES[phase]
        self._snap = dataclasses.replace(self._snap, **changes)
        notice = SessionNotice(kind, self._snap)
        for listener in list(self.listeners):
            listener(notice)

    def request(self, action: Action, reason: str | None = None) -> None:
        self.requests.append((action, reason))

    def emergency_stop(self, source: str = "operator") -> bool:
        self.estops.append((source, self._snap.phase.value))
        if self.device is not None:
            return bool(self.device.estop())
        return self.bytes_go_out

    def drain_telemetry(self) -> list[Telemetry]:
        self.drains += 1
        out = list(self.telemetry)
        self.telemetry.clear()
        return out

    def add_listener(self, callback: Callable[[SessionNotice], None]) -> None:
        self.listeners.append(callback)

    def set_notes(self, notes: str) -> None:
        self.notes.append(notes)
        sid = self._snap.session_id
        if self.store is not None and sid is not None:
            self.store.set_notes(sid, notes)

    def abandon(self, reason: str, timeout: float = 5.0) -> bool:
        """As the real engine: end the open session as interrupted (here: remember why)."""
        self.abandoned.append(reason)
        self.closed = True
        return True

    def close(self) -> None:
        self.closed = True


# --- stores and apps ----------------------------------------------------------------------------


@pytest.fixture
def utc_tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time = UTC, so times on screen do not depend on the machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with RecordStore.open(tmp_path / "epm-data", clock=lambda: NOON_UTC) as opened:
        yield opened


def make_app(
    store: RecordStore,
    device: Any = None,
    engine: FakeEngine | None = None,
    **kwargs: Any,
) -> EpmApp:
    """An ``EpmApp`` on a fixed device (default) with ``engine`` as the session engine."""
    device = FixedDevice() if device is None else device

    def factory(dev: Any, st: RecordStore, plan: SessionPlan) -> Any:
        assert engine is not None, "this test did not expect a session to start"
        engine.plan = plan
        if engine.device is None:
            engine.device = dev
        return engine

    kwargs.setdefault("today", lambda: TODAY)
    kwargs.setdefault("animate_alarms", False)
    return EpmApp(
        store=store,
        device=device,
        library_path=LIBRARY,
        practitioner="Dana Practitioner",
        engine_factory=factory,
        **kwargs,
    )


def running_app(store: RecordStore, engine: FakeEngine, **kwargs: Any) -> EpmApp:
    """An app whose session is already running on ``engine`` (the run screen is pushed by the
    test with :func:`show_run_screen`)."""
    app = make_app(store, engine=engine, **kwargs)
    return app


async def show_run_screen(app: EpmApp, pilot: Pilot[Any], engine: FakeEngine) -> Any:
    """Make ``engine`` the app's running session and show the run screen, as the new-session
    screen does after ``start``."""
    from controller.ui.practitioner.run import RunScreen

    await wait_for(pilot, lambda: app.connection == "up", what="device connected")
    if engine.device is None:
        engine.device = app.device
    app.attach_engine(engine, None)
    screen = RunScreen()
    await app.push_screen(screen)
    await wait_for(pilot, lambda: screen.snapshot is not None, what="run screen shows a snapshot")
    return screen
