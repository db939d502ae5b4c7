"""The identity faults: ``replug_other_unit`` and ``restart_unplugged`` (interface §3, rev. 1.1).

Both take the endpoint away as ``disconnect`` does; behind the unplug another unit takes the
old one's place (a new serial) or the same unit restarts (a new boot_id). The host learns which
from the HELLO_REPLY after it re-opens the port.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import serial
from pydantic import ValidationError
from serial import SerialException

from controller.wire import (
    Fault,
    GetStatus,
    Hello,
    HelloReply,
    SetTelemetry,
    State,
    Status,
    Telemetry,
)
from simulator import FAULT_NAMES, Simulator, parse_fault, parse_scenario
from simulator.catalogue import UNPLUG_FAULTS, describe_catalogue
from tests.simulator.helpers import Host, into_state
from tests.simulator.test_control import ControlClient
from tests.simulator.test_endpoints import WAIT, Client, opened

IDENTITY_FAULTS = ("replug_other_unit", "restart_unplugged")


def _hello(host: Host) -> HelloReply:
    reply = host.request(Hello(1, "identity-test"))
    assert isinstance(reply, HelloReply)
    return reply


def _assert_unplugged(sim: Simulator) -> None:
    assert sim.snapshot()["connected"] is False
    with pytest.raises(SerialException, match="disconnected"):
        sim.host_write(b"\x00")
    with pytest.raises(SerialException, match="disconnected"):
        sim.host_read()


def _replugged_serial(sim: Simulator, **params: object) -> str:
    """Replug on a virtual-clock unit and return the serial its HELLO_REPLY reports after."""
    sim.inject("replug_other_unit", duration_s=0.1, **params)
    sim.advance(100)
    return _hello(Host(sim)).serial


# --- virtual clock ------------------------------------------------------------------------


def test_replug_other_unit_swaps_the_unit_behind_the_unplug(host: Host) -> None:
    sim = host.sim
    first = _hello(host)
    host.advance(2000)
    into_state(host, State.RUNNING)
    host.advance(100)
    old_t_ms = host.telemetry[-1].t_ms
    sim.inject("replug_other_unit", duration_s=0.5)
    assert sim.output_transitions()[-1].on is False  # the old unit is gone, output with it
    sim.advance(499)
    _assert_unplugged(sim)
    sim.advance(1)
    host.clear_log()
    reply = _hello(host)
    assert reply.model == first.model == "EPM-1"
    assert reply.serial.startswith("SIM-") and reply.serial != first.serial
    assert reply.boot_id != first.boot_id
    assert sim.serial_number == reply.serial == sim.snapshot()["serial"]
    status = host.status()
    assert (status.state, status.faults, status.step_id) == (State.IDLE, 0, 0)
    assert status.boot_id == reply.boot_id
    # dseq and t_ms count from 0 at the power-up behind the unplug, at 50 Hz.
    first_frame = host.telemetry[0]
    assert first_frame.boot_id == reply.boot_id
    assert first_frame.t_ms == 500 < old_t_ms
    assert first_frame.dseq == first_frame.t_ms // 20 - 1
    assert sim.disconnect_count == 1


def test_restart_unplugged_is_a_power_cycle_hidden_by_the_unplug(host: Host) -> None:
    sim = host.sim
    first = _hello(host)
    host.advance(2000)
    into_state(host, State.RUNNING)
    host.request(SetTelemetry(500))
    host.advance(100)
    old_t_ms = host.telemetry[-1].t_ms
    sim.inject("restart_unplugged", duration_s=0.3)
    transition = sim.output_transitions()[-1]
    assert (transition.on, transition.cause) == (False, "power cycle")
    sim.advance(299)
    _assert_unplugged(sim)
    sim.advance(1)
    host.clear_log()
    reply = _hello(host)
    assert reply.serial == first.serial == sim.serial_number
    assert reply.boot_id != first.boot_id
    assert sim.boot_id == reply.boot_id
    status = host.status()
    assert (status.state, status.faults, status.step_id) == (State.IDLE, 0, 0)
    first_frame = host.telemetry[0]
    assert first_frame.t_ms == 300 < old_t_ms
    assert first_frame.dseq == first_frame.t_ms // 20 - 1  # 50 Hz again from the power-up


def test_replug_serial_comes_from_the_seed(make_sim: Callable[..., Simulator]) -> None:
    a, b, other = make_sim(seed=5), make_sim(seed=5), make_sim(seed=6)
    originals = {a.serial_number}
    new_a, new_b = _replugged_serial(a), _replugged_serial(b)
    assert new_a == new_b and new_a not in originals
    assert _replugged_serial(other) != new_a
    # A second replug brings yet another unit, the same one again for the same seed.
    again_a, again_b = _replugged_serial(a), _replugged_serial(b)
    assert again_a == again_b and again_a not in (*originals, new_a)


def test_replug_to_a_chosen_serial(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim()
    assert _replugged_serial(sim, serial="SIM-BENCH-02") == "SIM-BENCH-02"
    assert sim.serial_number == "SIM-BENCH-02"


def test_the_other_unit_has_none_of_the_old_units_faults(host: Host) -> None:
    sim = host.sim
    sim.inject("selftest")
    sim.inject("output_stuck", amplitude_dv=50)
    sim.inject("delay", ms=5, duration_s=60)
    host.advance(10)
    assert sim.faults == Fault.SELFTEST | Fault.OUTPUT_FAULT
    sim.inject("replug_other_unit", duration_s=0.1)
    sim.advance(100)
    host.advance(100)
    snap = sim.snapshot()
    assert (snap["state"], snap["faults"], snap["device_faults"]) == ("IDLE", [], [])
    assert snap["selftest_failed"] is False and snap["output_dv"] == 0
    assert host.telemetry[-1].amplitude_dv == 0
    assert snap["link_faults"] == ["delay"]  # the cable is still the same


def test_the_restarted_unit_keeps_its_hardware_conditions(host: Host) -> None:
    host.sim.inject("output_stuck", amplitude_dv=50)
    host.advance(10)
    host.sim.inject("restart_unplugged", duration_s=0.1)
    boot_id = host.sim.boot_id
    host.sim.advance(100)
    assert host.sim.snapshot()["device_faults"] == ["output_stuck"]
    # The restarted unit measured the stuck output again (its FAULT_RAISED went out while
    # unplugged, so the host reads it from STATUS), like after a reset.
    status = host.status()
    assert (status.boot_id, status.state, status.faults) == (
        boot_id,
        State.FAULT,
        Fault.OUTPUT_FAULT,
    )


def test_clear_ends_the_unplug_it_names_and_keeps_the_swap(host: Host) -> None:
    sim = host.sim
    old_serial = sim.serial_number
    sim.inject("replug_other_unit", duration_s=60)
    assert sim.clear("disconnect") == []
    _assert_unplugged(sim)
    assert sim.clear("replug_other_unit") == ["replug_other_unit"]
    reply = _hello(host)
    assert reply.serial == sim.serial_number != old_serial
    sim.inject("restart_unplugged", duration_s=60)
    assert sim.clear() == ["restart_unplugged"]
    assert _hello(host).boot_id != reply.boot_id


def test_identity_faults_from_a_scenario(make_sim: Callable[..., Simulator]) -> None:
    scenario = parse_scenario(
        """
        events:
          - {at_s: 0.2, fault: replug_other_unit, duration_s: 0.1, serial: SIM-SCEN-1}
          - {at_s: 1.0, fault: restart_unplugged, duration_s: 0.1}
        """
    )
    sim = make_sim(scenario=scenario)
    host = Host(sim)
    first = _hello(host)
    sim.advance(201)  # the event acts from the tick after 0.2 s
    _assert_unplugged(sim)
    sim.advance(100)
    replugged = _hello(host)
    assert (replugged.serial, sim.serial_number) == ("SIM-SCEN-1", "SIM-SCEN-1")
    assert first.serial != replugged.serial
    host.advance(600)
    sim.advance(100)
    _assert_unplugged(sim)
    sim.advance(100)
    restarted = _hello(host)
    assert restarted.serial == "SIM-SCEN-1" and restarted.boot_id != replugged.boot_id
    assert host.status().state == State.IDLE


def test_identity_faults_over_the_control_socket(make_sim: Callable[..., Simulator]) -> None:
    sim = make_sim(control=0)
    assert sim.control_address is not None
    ctl = ControlClient(sim.control_address)
    try:
        catalogue = {f["fault"]: f for f in ctl(cmd="faults")["faults"]}
        assert catalogue["replug_other_unit"]["params"] == {"duration_s": "1.0", "serial": "None"}
        assert catalogue["restart_unplugged"]["params"] == {"duration_s": "1.0"}
        reply = ctl(cmd="inject", fault="replug_other_unit", serial="SIM-CTL-7", duration_s=30)
        assert reply == {
            "ok": True,
            "injected": {"fault": "replug_other_unit", "duration_s": 30.0, "serial": "SIM-CTL-7"},
        }
        status = ctl(cmd="status")["status"]
        assert (status["serial"], status["connected"], status["state"]) == (
            "SIM-CTL-7",
            False,
            "IDLE",
        )
        assert ctl(cmd="clear", fault="replug_other_unit")["cleared"] == ["replug_other_unit"]
        assert ctl(cmd="status")["status"]["connected"] is True
        boot_id = sim.boot_id
        assert ctl(cmd="inject", fault="restart_unplugged")["ok"]
        assert ctl(cmd="reconnect") == {"ok": True}
        status = ctl(cmd="status")["status"]
        assert (status["serial"], status["connected"]) == ("SIM-CTL-7", True)
        assert status["boot_id"] != boot_id
        bad = ctl(cmd="inject", fault="replug_other_unit", serial="EPM-0001")
        assert (
            bad["ok"] is False and "serial: a simulated unit's serial begins with" in bad["error"]
        )
    finally:
        ctl.close()


# --- the catalogue ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("replug_other_unit", {"duration_s": None}, "valid number"),
        ("replug_other_unit", {"duration_s": 0}, "greater than 0"),
        ("replug_other_unit", {"duration_s": float("inf")}, "less than or equal"),
        ("restart_unplugged", {"duration_s": float("nan")}, "less than or equal"),
        ("restart_unplugged", {"duration_s": None}, "valid number"),
        ("replug_other_unit", {"serial": "EPM-123456"}, "begins with 'SIM-'"),
        ("replug_other_unit", {"serial": "SIM-123456789"}, "at most 12"),
        ("replug_other_unit", {"serial": "SIM-\u00e9"}, "printable ASCII"),
        ("replug_other_unit", {"serial": "SIM-\x00"}, "printable ASCII"),
        ("restart_unplugged", {"serial": "SIM-1"}, "Extra inputs"),
    ],
)
def test_identity_fault_parameters_are_checked(
    name: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_fault(name, params)


def test_identity_faults_are_catalogued_and_documented() -> None:
    entries = {f["fault"]: f for f in describe_catalogue()}
    for name in IDENTITY_FAULTS:
        assert name in FAULT_NAMES and name in UNPLUG_FAULTS
        assert entries[name]["kind"] == "link"  # durations are link (wall-clock) seconds
        assert parse_fault(name).duration_s == 1.0  # type: ignore[union-attr]
    assert parse_fault("replug_other_unit", {"serial": "SIM-ABCDEFGH"}).serial == "SIM-ABCDEFGH"  # type: ignore[union-attr]
    doc = (Path(__file__).parents[2] / "docs" / "simulator.md").read_text()
    for name in FAULT_NAMES:
        assert f"| `{name}` |" in doc, name


# --- real endpoints -----------------------------------------------------------------------


def _open_kwargs(kind: str) -> dict[str, object]:
    return {"exclusive": True} if kind == "pty" else {}


def _handshake(client: Client, seq: int) -> HelloReply:
    client.port.reset_input_buffer()
    hello = client.request(seq, Hello(1, "identity-test"))
    assert isinstance(hello, HelloReply)
    status = client.request(seq + 1, GetStatus())
    assert isinstance(status, Status)
    assert (status.state, status.faults, status.boot_id) == (State.IDLE, 0, hello.boot_id)
    return hello


def _until_the_port_fails(client: Client) -> None:
    deadline = time.monotonic() + WAIT
    # pty: pyserial's in_waiting raises the bare OSError (EIO) of its ioctl.
    with pytest.raises((serial.SerialException, OSError)):
        while time.monotonic() < deadline:
            client.pump()


@pytest.mark.parametrize("kind", ["inproc", "pty", "tcp"])
@pytest.mark.parametrize("fault", IDENTITY_FAULTS)
def test_identity_faults_on_real_endpoints(
    make_sim: Callable[..., Simulator], kind: str, fault: str
) -> None:
    sim = make_sim(clock="real", endpoint=kind, seed=3)
    with opened(sim.url(), **_open_kwargs(kind)) as client:
        before = _handshake(client, 1)
        sim.inject(fault, duration_s=0.3)
        _until_the_port_fails(client)
    assert sim.wait_until(lambda s: s.snapshot()["connected"], WAIT)
    with opened(sim.url(), **_open_kwargs(kind)) as client:
        after = _handshake(client, 3)  # seq continues across the reconnect
        telemetry = client.wait_for(lambda s, m: isinstance(m, Telemetry))
    assert isinstance(telemetry, Telemetry) and telemetry.boot_id == after.boot_id
    assert after.boot_id != before.boot_id
    assert after.serial == sim.serial_number
    if fault == "replug_other_unit":
        assert after.serial.startswith("SIM-") and after.serial != before.serial
    else:
        assert after.serial == before.serial
    assert sim.disconnect_count == 1


def test_sim_url_is_not_present_until_the_other_unit_is_back(
    make_sim: Callable[..., Simulator],
) -> None:
    sim = make_sim(clock="real")
    with opened(sim.url()) as client:
        before = _handshake(client, 1)
        sim.inject("replug_other_unit", duration_s=60, serial="SIM-OTHER-1")
        _until_the_port_fails(client)
        with pytest.raises(serial.SerialException):
            client.port.write(b"\x00")
    assert sim.wait_until(lambda s: s.serial_number == "SIM-OTHER-1", WAIT)
    with pytest.raises(serial.SerialException, match="not present"):
        serial.serial_for_url(sim.url())
    assert sim.clear("replug_other_unit") == ["replug_other_unit"]
    with opened(sim.url()) as client:
        after = _handshake(client, 3)
    assert (after.serial, before.serial == after.serial) == ("SIM-OTHER-1", False)


def test_same_seed_same_new_serial_in_real_time_and_virtually(
    make_sim: Callable[..., Simulator],
) -> None:
    units = [make_sim(clock="real", seed=11) for _ in range(2)]
    old = units[0].serial_number
    for sim in units:
        sim.inject("replug_other_unit", duration_s=0.2)
    for sim in units:
        assert sim.wait_until(lambda s: s.serial_number != old, WAIT)
    assert units[0].serial_number == units[1].serial_number
    assert units[0].serial_number == _replugged_serial(make_sim(seed=11))
    assert units[0].wait_until(lambda s: s.snapshot()["connected"], WAIT)
    with opened(units[0].url()) as client:
        assert _handshake(client, 1).serial == units[1].serial_number
