"""Same seed, same scenario, same host inputs: the same bytes. The practitioner model."""

from __future__ import annotations

from collections.abc import Callable

from controller.wire import (
    Contact,
    EventCode,
    Heartbeat,
    Hello,
    HelloReply,
    SetTelemetry,
    Start,
    State,
    encode_frame,
)
from simulator import Simulator, parse_scenario
from tests.simulator.helpers import STEP, Host

SCENARIO = parse_scenario(
    """
seed: 5
practitioner:
  enabled: true
  zone_s: 3
  lift_s: 0.5
  marginal_per_min: 30
  marginal_s: 0.2
events:
  - {at_s: 2.5, fault: drop, direction: tx, probability: 0.2, duration_s: 1}
  - {at_s: 4, fault: overtemp, target_c: 42, rate_c_per_s: 0.5, duration_s: 1}
"""
)


def _session(sim: Simulator) -> bytes:
    """A fixed host conversation; every byte the unit sent."""
    out = bytearray()
    seq = 0
    step = STEP._replace(amplitude_dv=550, amplitude_max_dv=600, current_limit_ua=4000)
    for msg in (Hello(1, "t"), SetTelemetry(200), step, Start()):
        seq += 1
        sim.host_write(encode_frame(seq, msg))
    for _ in range(80):
        sim.advance(100)
        seq = seq % 255 + 1
        sim.host_write(encode_frame(seq, Heartbeat()))
        out += sim.host_read()
    return bytes(out)


def test_same_seed_same_scenario_same_inputs_give_the_same_bytes(
    make_sim: Callable[..., Simulator],
) -> None:
    first = _session(make_sim(scenario=SCENARIO, seed=None))
    second = _session(make_sim(scenario=SCENARIO, seed=None))
    assert len(first) > 10_000
    assert first == second


def test_a_different_seed_gives_a_different_unit_and_run(
    make_sim: Callable[..., Simulator],
) -> None:
    a = make_sim(scenario=SCENARIO, seed=None)
    b = make_sim(scenario=SCENARIO, seed=6)
    assert (a.serial_number, a.boot_id) != (b.serial_number, b.boot_id)
    assert _session(a) != _session(b)


def test_serial_and_boot_id_come_from_the_seed(make_sim: Callable[..., Simulator]) -> None:
    a, b = make_sim(seed=123), make_sim(seed=123)
    assert a.serial_number == b.serial_number
    assert a.serial_number.startswith("SIM-") and len(a.serial_number) == 10
    assert a.boot_id == b.boot_id
    boots = {a.power_cycle() for _ in range(5)}
    assert len(boots) > 1  # each power-up draws a new boot_id
    reply = Host(a).request(Hello(1, "t"))
    assert isinstance(reply, HelloReply) and reply.boot_id == a.boot_id


def test_the_practitioner_lifts_between_zones_and_wobbles(
    make_sim: Callable[..., Simulator],
) -> None:
    calm = SCENARIO.model_copy(update={"events": []})
    host = Host(make_sim(scenario=calm, speed=10))
    host.request(STEP._replace(duration_ms=1_000_000))
    host.request(Start())
    for _ in range(40):  # 4 s of link time = 40 s of simulated time
        host.advance(100)
        host.request(Heartbeat())
    contacts = [e.arg for e in host.events_of(EventCode.CONTACT_CHANGED)]
    assert Contact.NONE in contacts
    assert Contact.MARGINAL in contacts
    states = [e.arg & 0xFF for e in host.events_of(EventCode.STATE_CHANGED)]
    assert State.HOLD in states
    assert states.count(State.RUNNING) >= 2  # back from HOLD at least once


def test_the_practitioner_is_off_by_default(host: Host) -> None:
    host.request(STEP)
    host.request(Start())
    for _ in range(30):
        host.advance(100)
        host.request(Heartbeat())
    assert host.events_of(EventCode.CONTACT_CHANGED) == []
    assert host.sim.state == State.RUNNING
