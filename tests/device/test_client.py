"""DeviceClient over a real pty against the fake EPM-1."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.device import (
    DeviceClient,
    DeviceEvent,
    DeviceEventKind,
    DeviceRefused,
    LimitsExceeded,
    LinkLost,
    NotConnected,
    OutcomeUnknown,
    TelemetryRateTooHigh,
)
from controller.link import LinkState, NoHandshakeReply, PortBusy, PortNotFound, open_port
from controller.wire import messages as m
from controller.wire.constants import Fault, Handpiece, MsgType, NakCode, State
from tests.wire_fakes.fake_device import FakeOnPty
from tests.wire_fakes.fixtures import wait_until

Fakes = Callable[..., FakeOnPty]
Clients = Callable[..., DeviceClient]

STEP = m.ConfigureStep(7, 1, 0, 400, 500, 500, 100, 0, 0, 0, 0, 5000, 600_000, 1)


class EventLog:
    """Every event a client's listeners get, in order, for tests to wait on."""

    def __init__(self, client: DeviceClient) -> None:
        self._cond = threading.Condition()
        self.events: list[DeviceEvent] = []
        self._taken = 0
        client.add_listener(self._on_event)

    def _on_event(self, event: DeviceEvent) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def kinds(self) -> list[DeviceEventKind]:
        with self._cond:
            return [e.kind for e in self.events]

    def wait(self, kind: DeviceEventKind, timeout: float = 5) -> DeviceEvent:
        """The next event of ``kind`` after those already waited for."""
        with self._cond:
            while True:
                for index in range(self._taken, len(self.events)):
                    if self.events[index].kind is kind:
                        self._taken = index + 1
                        return self.events[index]
                self._taken = len(self.events)
                assert self._cond.wait(timeout), f"no {kind} event; got {self.kinds()}"


LOGS: dict[int, EventLog] = {}


@pytest.fixture
def clients() -> Iterator[Clients]:
    made: list[DeviceClient] = []

    def make(url: str, **options: Any) -> DeviceClient:
        options.setdefault("handshake_timeout", 0.5)
        options.setdefault("backoff", (0.02, 0.1))
        client = DeviceClient(url, **options)
        LOGS[id(client)] = EventLog(client)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
        LOGS.pop(id(client), None)


def connected(fakes: Fakes, clients: Clients, **config: Any) -> tuple[FakeOnPty, DeviceClient]:
    fake = fakes(**config)
    client = clients(fake.path)
    client.connect()
    return fake, client


def wait_event(client: DeviceClient, kind: DeviceEventKind, timeout: float = 5) -> DeviceEvent:
    return LOGS[id(client)].wait(kind, timeout)


def test_connect_returns_device_info(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients, serial="SIM-0007")
    info = client.info
    assert info is not None
    assert (info.model, info.serial, info.firmware) == ("EPM-1", "SIM-0007", "1.2.3")
    assert info.is_simulator and info.url == fake.path and info.baud == 115200
    assert info.capabilities.max_amplitude_dv == 1200
    assert info.handpiece is Handpiece.SCALP_ROLLER
    assert client.link_state is LinkState.UP
    assert wait_event(client, DeviceEventKind.LINK_UP).info == info


def test_connect_errors_are_the_links_clear_errors(fakes: Fakes, clients: Clients) -> None:
    with pytest.raises(PortNotFound):
        clients("/dev/does-not-exist-epm").connect()
    fake = fakes()
    holder = open_port(fake.path)
    try:
        with pytest.raises(PortBusy):
            clients(fake.path).connect()
    finally:
        holder.close()
    fake.device.silence()
    with pytest.raises(NoHandshakeReply):
        clients(fake.path, handshake_timeout=0.2).connect()


def test_requests_before_connect_say_so(clients: Clients) -> None:
    client = clients("/dev/null-epm")
    with pytest.raises(NotConnected, match="connect"):
        client.configure_step(STEP, epoch=client.epoch)
    assert client.estop() is False


def test_session_round_trip_with_typed_results_and_events(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients)
    client.configure_step(STEP, epoch=client.epoch)
    status = client.status()
    assert status.state is State.READY and status.step_id == 7
    client.set_amplitude(450, epoch=client.epoch)
    client.start(epoch=client.epoch)
    client.pause()
    client.resume(epoch=client.epoch)
    client.stop()
    assert wait_until(lambda: fake.device.state is State.IDLE)
    changes = []
    while len(changes) < 5:
        event = wait_event(client, DeviceEventKind.STATE_CHANGED)
        changes.append(event.new_state)
    assert changes == [State.READY, State.RUNNING, State.PAUSED, State.RUNNING, State.STOPPING]


def test_configure_step_refused_locally_sends_nothing(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients)
    with pytest.raises(LimitsExceeded) as caught:
        client.configure_step(
            STEP._replace(amplitude_max_dv=1300, current_limit_ua=12000), epoch=client.epoch
        )
    text = str(caught.value)
    assert text.startswith("CONFIGURE_STEP not sent: ")
    assert "amplitude_max 130.0 V exceeds this device's maximum of 120.0 V" in text
    assert "current limit 12.0 mA exceeds this device's maximum of 10.0 mA" in text
    assert len(caught.value.refusals) == 2
    assert fake.device.rx(MsgType.CONFIGURE_STEP) == []


def test_device_nak_raises_device_refused_naming_the_field(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients)
    fake.device.nak_next(MsgType.CONFIGURE_STEP, NakCode.OUT_OF_RANGE, 6)
    with pytest.raises(DeviceRefused) as caught:
        client.configure_step(STEP, epoch=client.epoch)
    error = caught.value
    assert (error.cmd, error.code_name, error.detail) == (
        MsgType.CONFIGURE_STEP,
        "OUT_OF_RANGE",
        6,
    )
    assert str(error).startswith(
        "CONFIGURE_STEP refused: pulse_width_us (field 6) is out of range for this device"
    )


def test_bad_state_and_fault_persists(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients, fault_persists=True)
    with pytest.raises(DeviceRefused, match="START refused: not allowed while the device is IDLE"):
        client.start(epoch=client.epoch)
    assert client.estop() is True
    wait_event(client, DeviceEventKind.ESTOP_CONFIRMED)
    with pytest.raises(DeviceRefused) as caught:
        client.clear_faults(epoch=client.epoch)
    assert caught.value.code_name == "FAULT_PERSISTS"
    assert fake.device.faults & Fault.ESTOP


def test_handpiece_change_is_tracked_for_local_checks(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients)
    fake.device.set_handpiece(Handpiece.COMB)
    event = wait_event(client, DeviceEventKind.HANDPIECE_CHANGED)
    assert event.handpiece is Handpiece.COMB
    assert client.handpiece is Handpiece.COMB
    with pytest.raises(LimitsExceeded, match="SCALP_ROLLER handpiece but the COMB is attached"):
        client.configure_step(STEP, epoch=client.epoch)
    client.configure_step(STEP._replace(handpiece=3), epoch=client.epoch)


def test_set_amplitude_above_the_step_ceiling_is_refused_locally(
    fakes: Fakes, clients: Clients
) -> None:
    fake, client = connected(fakes, clients)
    client.configure_step(STEP, epoch=client.epoch)
    with pytest.raises(
        LimitsExceeded, match=r"60\.0 V is above the step's amplitude_max of 50\.0 V"
    ):
        client.set_amplitude(600, epoch=client.epoch)
    assert fake.device.rx(MsgType.SET_AMPLITUDE) == []


def test_set_amplitude_zero_names_the_minimum_even_without_a_step(
    fakes: Fakes, clients: Clients
) -> None:
    fake, client = connected(fakes, clients)
    with pytest.raises(LimitsExceeded) as caught:
        client.set_amplitude(0, epoch=client.epoch)
    refusal = caught.value.refusals[0]
    assert refusal.limit == "amplitude_min"
    assert "0.0 V is below the device's minimum of 0.1 V" in str(caught.value)
    assert "amplitude_max" not in str(caught.value)
    assert fake.device.rx(MsgType.SET_AMPLITUDE) == []


def test_telemetry_rate_limited_by_the_link(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients)
    with pytest.raises(TelemetryRateTooHigh) as caught:
        client.set_telemetry(500)
    assert "at most 169 Hz" in str(caught.value)
    assert fake.device.rx(MsgType.SET_TELEMETRY) == []
    client.set_telemetry(169)
    assert fake.device.rx(MsgType.SET_TELEMETRY)[0].body == (169).to_bytes(2, "little")


def test_telemetry_buffer_is_bounded_and_drained(fakes: Fakes, clients: Clients) -> None:
    fake = fakes(telemetry_hz=400)
    client = clients(fake.path, telemetry_capacity=10)
    client.connect()
    assert wait_until(lambda: client.health().telemetry_received >= 60)
    batch = client.drain_telemetry()
    assert 1 <= len(batch) <= 10
    assert client.telemetry_dropped >= 40
    dseqs = [t.dseq for t in batch]
    assert dseqs == sorted(dseqs)
    latest = client.latest_telemetry
    assert latest is not None and latest.dseq >= dseqs[-1]
    assert wait_until(lambda: len(client.drain_telemetry(3)) == 3)


def test_listeners_run_on_the_dispatch_thread_and_survive_errors(
    fakes: Fakes, clients: Clients
) -> None:
    fake = fakes(telemetry_hz=100)
    client = clients(fake.path)
    seen: list[str] = []
    got = threading.Event()

    def on_telemetry(_: m.Telemetry) -> None:
        seen.append(threading.current_thread().name)
        got.set()
        raise RuntimeError("listener bug")

    events: list[DeviceEvent] = []
    remove = client.add_listener(events.append)
    client.add_telemetry_listener(on_telemetry)
    client.connect()
    assert got.wait(5)
    assert set(seen) == {"epm-link-dispatch"}
    assert wait_until(lambda: client.listener_errors >= 2)
    assert client.health().telemetry_received >= 2  # the reader carried on
    assert [e.kind for e in events][:1] == [DeviceEventKind.LINK_UP]
    remove()
    client.estop()
    assert wait_until(lambda: fake.device.state is State.FAULT)
    assert DeviceEventKind.ESTOP_CONFIRMED not in [e.kind for e in events]


def test_start_outcome_unknown_via_the_client(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients)
    client.configure_step(STEP, epoch=client.epoch)
    fake.device.silence()
    with pytest.raises(OutcomeUnknown):
        client.start(epoch=client.epoch)
    kinds = LOGS[id(client)].kinds()
    assert DeviceEventKind.LINK_LOST in kinds and DeviceEventKind.OUTCOME_UNKNOWN in kinds
    with pytest.raises(LinkLost):
        client.status()
    fake.device.silence(False)
    event = wait_event(client, DeviceEventKind.RECONNECTED)
    assert event.info is not None and event.status is not None
    assert client.info == event.info
    assert len({r.seq for r in fake.device.rx(MsgType.START)}) == 1


def test_device_restart_reaches_the_client(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients, telemetry_hz=100)
    assert wait_until(lambda: client.latest_telemetry is not None)
    fake.device.restart(boot_id=0x0BAD)
    wait_event(client, DeviceEventKind.DEVICE_RESTARTED)
    event = wait_event(client, DeviceEventKind.RECONNECTED)
    assert event.info is not None and event.info.boot_id == 0x0BAD
    assert client.info is not None and client.info.boot_id == 0x0BAD


def test_reconnect_after_close_uses_a_fresh_link(fakes: Fakes, clients: Clients) -> None:
    fake, client = connected(fakes, clients)
    first = client.link
    client.close()
    assert not any(t.is_alive() for t in first.threads)
    info = client.connect()
    assert client.link is not first and info.serial == "FAKE-0001"
    assert len(fake.device.rx(MsgType.HELLO)) == 2


def test_connect_again_after_a_failed_connect(fakes: Fakes, clients: Clients) -> None:
    fake = fakes()
    fake.device.silence()
    client = clients(fake.path, handshake_timeout=0.2)
    with pytest.raises(NoHandshakeReply):
        client.connect()
    fake.device.silence(False)
    assert client.connect().serial == "FAKE-0001"
    assert client.link_state is LinkState.UP
