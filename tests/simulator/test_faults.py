"""Each catalogue fault produces the effect the interface document specifies."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError
from serial import SerialException

from controller.wire import (
    Ack,
    ClearFaults,
    Contact,
    EventCode,
    Fault,
    FrameDecoder,
    GetStatus,
    Handpiece,
    Heartbeat,
    Hello,
    MsgType,
    Nak,
    NakCode,
    Pause,
    SetTelemetry,
    Start,
    State,
    Status,
    encode_frame,
)
from simulator import FAULT_NAMES, Simulator, parse_fault
from tests.simulator.helpers import STEP, Host, into_state


def _keepalive(host: Host, ms: int, every: int = 100) -> None:
    for _ in range(ms // every):
        host.advance(every)
        host.request(Heartbeat())


def _persists_then_clears(host: Host, repair: Callable[[], None]) -> None:
    assert host.request(ClearFaults()) == Nak(MsgType.CLEAR_FAULTS, NakCode.FAULT_PERSISTS, 0)
    assert host.sim.state == State.FAULT
    repair()
    assert host.request(ClearFaults()) == Ack(MsgType.CLEAR_FAULTS)
    assert host.sim.state == State.IDLE


# --- device faults ------------------------------------------------------------------------


def test_short_circuit_with_output_on_latches_and_is_clearable(host: Host) -> None:
    into_state(host, State.RUNNING)
    host.sim.inject("short_circuit", impedance_ohm=10)
    host.advance(1)
    assert host.sim.state == State.FAULT
    assert host.sim.faults == Fault.SHORT_CIRCUIT
    assert host.sim.output_transitions()[-1].on is False
    host.sim.clear("short_circuit")
    assert host.request(ClearFaults()) == Ack(MsgType.CLEAR_FAULTS)  # never persists


def test_contact_faults_overlap_sensibly(host: Host) -> None:
    host.sim.inject("contact_marginal", impedance_ohm=15_000)
    host.sim.inject("contact_lost", duration_s=0.1)
    host.advance(40)
    assert host.telemetry[-1].contact == Contact.NONE
    host.advance(100)
    assert host.telemetry[-1].contact == Contact.MARGINAL  # the marginal contact is still there
    host.sim.clear("contact_marginal")
    host.advance(40)
    assert host.telemetry[-1].contact == Contact.OK


def test_short_circuit_with_output_off_is_only_reported(host: Host) -> None:
    into_state(host, State.READY)
    host.sim.inject("short_circuit", impedance_ohm=20)
    host.advance(40)
    assert host.sim.state == State.READY
    assert host.telemetry[-1].contact == Contact.SHORT
    assert host.telemetry[-1].impedance_ohm == 20
    assert [e.arg for e in host.events_of(EventCode.CONTACT_CHANGED)] == [Contact.SHORT]


def test_overcurrent_latches_after_its_window_despite_regulation(host: Host) -> None:
    into_state(host, State.RUNNING)
    injected = host.sim.snapshot()["t_ms"]
    host.sim.inject("overcurrent", factor=2.0)
    host.advance(100)
    assert host.sim.state == State.RUNNING  # the window has not shown it for 100 ms yet
    host.request(Heartbeat())
    host.advance(150)
    assert host.sim.state == State.FAULT
    assert host.sim.faults == Fault.OVERCURRENT
    tripped = host.events_of(EventCode.FAULT_RAISED)[-1].t_ms - injected
    # The 100 ms window passes 110 % of the limit after ~30 ms, then 100 ms above it.
    assert 100 < tripped <= 200
    assert "overcurrent" not in host.sim.snapshot()["device_faults"]  # one-shot
    assert host.request(ClearFaults()) == Ack(MsgType.CLEAR_FAULTS)


def test_overtemp_latches_at_41_and_persists_above_40(host: Host) -> None:
    host.sim.inject("overtemp", target_c=42.0, rate_c_per_s=2.0)
    host.advance(4000)
    assert host.sim.state == State.IDLE
    host.advance(2000)
    assert host.sim.state == State.FAULT
    assert host.sim.faults == Fault.OVERTEMP
    raised = host.events_of(EventCode.FAULT_RAISED)[-1]
    hot = [t for t in host.telemetry if t.t_ms <= raised.t_ms]
    assert hot[-1].temperature_dc < 410 <= host.telemetry[-1].temperature_dc

    def cool() -> None:
        while host.telemetry[-1].temperature_dc >= 400:
            host.advance(1000)

    _persists_then_clears(host, cool)


def test_handpiece_removed_while_idle_is_only_an_event(host: Host) -> None:
    host.sim.inject("handpiece_removed")
    host.collect()
    assert host.sim.state == State.IDLE
    assert [e.arg for e in host.events_of(EventCode.HANDPIECE_CHANGED)] == [Handpiece.NONE]
    host.advance(40)
    assert host.telemetry[-1].contact == Contact.NONE
    assert host.status().handpiece == Handpiece.NONE
    reply = host.request(STEP)
    assert reply == Nak(MsgType.CONFIGURE_STEP, NakCode.WRONG_HANDPIECE, 0)


def test_handpiece_removed_while_ready_latches_until_it_is_back(host: Host) -> None:
    into_state(host, State.READY)
    host.sim.inject("handpiece_removed", duration_s=2)
    assert host.sim.faults == Fault.HANDPIECE_REMOVED

    def plug_back() -> None:
        host.advance(2000)
        assert host.events_of(EventCode.HANDPIECE_CHANGED)[-1].arg == Handpiece.SCALP_ROLLER

    _persists_then_clears(host, plug_back)


def test_output_stuck_is_measured_while_off_and_persists(host: Host) -> None:
    host.sim.inject("output_stuck", amplitude_dv=50)
    host.advance(40)
    assert host.sim.faults == Fault.OUTPUT_FAULT
    assert host.telemetry[-1].amplitude_dv == 50
    assert host.telemetry[-1].current_ua > 0

    def repair() -> None:
        host.sim.clear("output_stuck")
        host.advance(40)
        assert host.telemetry[-1].amplitude_dv == 0

    _persists_then_clears(host, repair)


def test_output_stuck_while_running_is_caught_when_output_should_go_off(host: Host) -> None:
    into_state(host, State.RUNNING)
    host.sim.inject("output_stuck", amplitude_dv=80)
    host.advance(50)
    assert host.sim.state == State.RUNNING
    host.request(Pause())
    host.advance(1)
    assert host.sim.faults == Fault.OUTPUT_FAULT


def test_net_dc_on_bi_square_is_an_output_fault(host: Host) -> None:
    host.sim.inject("net_dc")
    into_state(host, State.READY)
    host.request(Start())
    host.advance(1)
    assert host.sim.faults == Fault.OUTPUT_FAULT
    # Nothing is measured while off: it does not persist.
    assert host.request(ClearFaults()) == Ack(MsgType.CLEAR_FAULTS)


def test_net_dc_does_not_affect_mono_square(host: Host) -> None:
    host.sim.inject("net_dc")
    into_state(host, State.RUNNING, STEP._replace(waveform=1))
    host.advance(50)
    assert host.sim.state == State.RUNNING


def test_selftest_failure_latches_until_a_good_power_cycle(host: Host) -> None:
    old_boot = host.sim.boot_id
    host.sim.inject("selftest")
    host.collect()
    assert host.sim.boot_id != old_boot
    assert host.sim.faults == Fault.SELFTEST
    raised = host.events_of(EventCode.FAULT_RAISED)
    assert raised[-1].arg == Fault.SELFTEST and raised[-1].dseq == 0
    assert host.request(ClearFaults()) == Nak(MsgType.CLEAR_FAULTS, NakCode.FAULT_PERSISTS, 0)
    host.sim.inject("reset")  # a reset keeps a failing self-test
    assert host.sim.faults == Fault.SELFTEST
    host.sim.power_cycle(selftest_fail=False)
    assert host.sim.state == State.IDLE and host.sim.faults == Fault.NONE


def test_selftest_failure_from_the_scenario_at_power_up(make_sim: Callable[..., Simulator]) -> None:
    from simulator import parse_scenario

    host = Host(make_sim(scenario=parse_scenario("selftest_fail: true")))
    host.collect()
    assert host.sim.state == State.FAULT
    assert host.events[0].event == EventCode.FAULT_RAISED and host.events[0].dseq == 0
    assert host.request(ClearFaults()) == Nak(MsgType.CLEAR_FAULTS, NakCode.FAULT_PERSISTS, 0)


def test_reset_is_a_power_cycle(host: Host) -> None:
    into_state(host, State.RUNNING)
    host.request(SetTelemetry(500))
    host.advance(30)
    old = host.sim.boot_id
    host.request(GetStatus(), seq=200)
    host.sim.inject("reset")
    host.clear_log()
    host.advance(100)
    assert host.sim.boot_id != old
    assert host.sim.state == State.IDLE
    assert host.sim.output_transitions()[-1].on is False
    assert [t.dseq for t in host.telemetry] == [0, 1, 2, 3, 4]  # dseq from 0, 50 Hz again
    assert host.telemetry[0].t_ms == 20  # t_ms from 0
    assert isinstance(host.request(GetStatus(), seq=200), Status)  # seq memory is gone
    status = host.status()
    assert (status.step_id, status.faults) == (0, 0)


# --- link faults --------------------------------------------------------------------------


def test_drop_tx_next_n_leaves_a_dseq_gap(host: Host) -> None:
    host.advance(40)
    host.sim.inject("drop", direction="tx", count=3)
    host.advance(200)
    dseqs = [t.dseq for t in host.telemetry]
    assert dseqs[:2] == [0, 1]
    assert dseqs[2] == 5
    assert dseqs[2:] == list(range(5, 12))


def test_drop_rx_loses_requests_without_a_reply(host: Host) -> None:
    host.sim.inject("drop", direction="rx", probability=1.0)
    assert host.send(STEP) == []
    assert host.sim.state == State.IDLE
    host.sim.clear("drop")
    assert host.request(STEP) == Ack(MsgType.CONFIGURE_STEP)


def test_duplicate_rx_is_answered_twice_but_executed_once(host: Host) -> None:
    into_state(host, State.READY)
    host.sim.inject("duplicate", direction="rx", count=1)
    replies = host.send(Start(), seq=150)
    assert replies == [(150, Ack(MsgType.START))] * 2
    assert sum(1 for t in host.sim.output_transitions() if t.on) == 1
    assert host.send(Heartbeat(), seq=151) == [(151, Ack(MsgType.HEARTBEAT))]


def test_duplicate_tx_repeats_device_frames(host: Host) -> None:
    host.sim.inject("duplicate", direction="tx", count=2)
    replies = host.send(GetStatus(), seq=7)
    assert [s for s, _ in replies] == [7, 7]
    host.advance(60)
    dseqs = [t.dseq for t in host.telemetry]
    assert dseqs[0] == dseqs[1]


def test_bit_errors_on_rx_are_counted_as_crc_errors(host: Host) -> None:
    host.sim.inject("bit_errors", direction="rx", ber=0.01)
    for _ in range(50):
        host.send(Heartbeat())
    host.sim.clear("bit_errors")
    status = host.status()
    assert status.rx_crc_errors + status.rx_frame_errors > 0


def test_bit_errors_on_tx_corrupt_what_the_host_reads(host: Host) -> None:
    host.sim.inject("bit_errors", direction="tx", ber=0.01)
    host.sim.advance(1000)
    decoder = FrameDecoder()
    decoder.feed(host.sim.host_read())
    assert decoder.counters.dropped > 0
    assert decoder.counters.frames > 0


def test_delay_holds_replies_and_keeps_order(host: Host) -> None:
    host.request(STEP)
    host.sim.inject("delay", ms=30)
    host.clear_log()
    host.sim.host_write(encode_frame(77, Start()))
    assert host.collect() == []
    host.advance(29)
    assert all(s == 0 for s, _ in host.frames) and not host.events
    host.sim.advance(1)
    frames = host.collect()
    assert frames[0] == (77, Ack(MsgType.START))
    assert any(s == 0 and getattr(m, "event", None) == EventCode.STATE_CHANGED for s, m in frames)


def test_silent_sends_nothing_ignores_input_and_the_watchdog_trips(host: Host) -> None:
    into_state(host, State.RUNNING)
    host.sim.inject("silent", duration_s=0.6)
    host.clear_log()
    assert host.send(Heartbeat()) == []
    host.advance(590)
    assert host.frames == []
    assert host.sim.state == State.FAULT  # no valid frame got through for 500 ms
    host.advance(40)
    assert host.telemetry  # talking again


def test_disconnect_in_virtual_mode_raises_until_it_ends(host: Host) -> None:
    host.sim.inject("disconnect", duration_s=0.2)
    with pytest.raises(SerialException):
        host.sim.host_write(encode_frame(1, Hello(1, "t")))
    host.sim.advance(200)
    assert isinstance(host.request(GetStatus()), Status)


# --- the catalogue itself -----------------------------------------------------------------


def test_every_catalogue_fault_parses_with_its_defaults() -> None:
    needs = {"drop": {"count": 1}, "duplicate": {"count": 1}, "bit_errors": {"ber": 0.001}}
    needs["delay"] = {"ms": 10}
    for name in FAULT_NAMES:
        spec = parse_fault(name, needs.get(name, {}))
        assert spec.fault == name


def test_bad_fault_parameters_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown fault 'melt'"):
        parse_fault("melt")
    with pytest.raises(ValidationError, match="exactly one of 'probability'"):
        parse_fault("drop", {"count": 2, "probability": 0.5})
    with pytest.raises(ValidationError, match="greater than 41"):
        parse_fault("overtemp", {"target_c": 40})
    with pytest.raises(ValidationError, match="Extra inputs"):
        parse_fault("reset", {"when": 3})


def test_the_unit_is_left_safe_by_a_rejected_injection(host: Host) -> None:
    into_state(host, State.RUNNING)
    with pytest.raises(ValidationError):
        host.sim.inject("short_circuit", impedance_ohm=500)
    assert host.sim.state == State.RUNNING
    assert host.sim.snapshot()["device_faults"] == []
