"""Behaviour over time on the virtual clock: watchdog, stops, contact, steps, telemetry, events.

No wall-clock assertions: the virtual clock makes every bound exact and repeatable.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.wire import (
    Ack,
    Contact,
    Estop,
    Event,
    EventCode,
    Fault,
    Heartbeat,
    Hello,
    MsgType,
    Pause,
    Resume,
    SetAmplitude,
    SetTelemetry,
    Start,
    State,
    Stop,
    Telemetry,
    encode_frame,
)
from controller.wire.codec import encode_raw
from simulator import Simulator
from tests.simulator.helpers import STEP, Host, into_state


def _keepalive(host: Host, ms: int, every: int = 100) -> None:
    for _ in range(ms // every):
        host.advance(every)
        host.request(Heartbeat())


# --- watchdog -----------------------------------------------------------------------------


@pytest.mark.parametrize("state", [State.RUNNING, State.PAUSED, State.HOLD, State.STOPPING])
def test_watchdog_fires_500_ms_after_the_last_valid_frame(
    make_sim: Callable[..., Simulator], state: State
) -> None:
    step = STEP._replace(ramp_down_ms=5000)
    host = Host(make_sim())
    into_state(host, state, step)
    last = host.sim.link_ms
    host.advance(489)
    assert host.sim.state == state
    host.advance(21)
    assert host.sim.state == State.FAULT
    assert host.sim.faults == Fault.WATCHDOG
    fired = [t for t in host.sim.output_transitions() if not t.on][-1]
    if state in (State.RUNNING, State.STOPPING):
        assert 490 <= fired.link_ms - last <= 510


def test_watchdog_bound_is_exact_to_the_millisecond(host: Host) -> None:
    into_state(host, State.RUNNING)
    host.request(Heartbeat())
    start = host.sim.request_receipts()[-1].link_ms
    host.advance(499)
    assert host.sim.state == State.RUNNING
    host.advance(1)
    assert host.sim.state == State.FAULT
    assert host.sim.output_transitions()[-1].link_ms - start == 500


def test_valid_frames_reset_the_watchdog(host: Host) -> None:
    into_state(host, State.RUNNING)
    for _ in range(10):
        host.advance(450)
        assert host.request(Heartbeat()) == Ack(MsgType.HEARTBEAT)
    assert host.sim.state == State.RUNNING
    # A retransmission is a valid frame too.
    wire = encode_frame(200, Heartbeat())
    for _ in range(3):
        host.advance(450)
        host.send_raw(wire)
    assert host.sim.state == State.RUNNING


def test_invalid_frames_do_not_reset_the_watchdog(host: Host) -> None:
    into_state(host, State.RUNNING)
    host.request(Heartbeat())
    start = host.sim.link_ms
    good = bytearray(encode_frame(100, Heartbeat()))
    good[2] ^= 0x01  # CRC fails
    junk = [bytes(good), encode_raw(101, MsgType.HEARTBEAT, b"\x01"), encode_raw(102, 0x3D, b"")]
    for wire in junk:
        host.advance(150)
        host.send_raw(wire)
    host.advance(500 - 450 - 1)
    assert host.sim.state == State.RUNNING
    host.advance(1)
    assert host.sim.state == State.FAULT
    assert host.sim.output_transitions()[-1].link_ms - start == 500


def test_no_watchdog_outside_active_states(host: Host) -> None:
    into_state(host, State.READY)
    host.advance(3000)
    assert host.sim.state == State.READY


# --- ESTOP, PAUSE, STOP: output goes off at once ---------------------------------------


@pytest.mark.parametrize(
    ("request_msg", "state_after"),
    [(Estop(), State.FAULT), (Pause(), State.PAUSED)],
    ids=["ESTOP", "PAUSE"],
)
def test_output_is_off_when_the_reply_leaves(
    host: Host, request_msg: Estop | Pause, state_after: State
) -> None:
    into_state(host, State.RUNNING)
    received = host.sim.link_ms
    host.request(request_msg)
    off = host.sim.output_transitions()[-1]
    assert off.on is False
    assert off.link_ms == received  # same instant of the virtual clock: well inside 5 ms
    receipt = host.sim.request_receipts()[-1]
    assert receipt.type == MsgType[type(request_msg).__name__.upper()]
    assert 0 <= off.perf_s - receipt.perf_s < 1.0
    host.collect()
    last = host.telemetry[-1] if host.telemetry else None
    host.advance(20)
    assert host.sim.state == state_after
    assert all(t.amplitude_dv == 0 for t in host.telemetry if t is not last)


def test_stop_starts_the_ramp_down_at_once_and_ends_without_step_complete(host: Host) -> None:
    step = STEP._replace(ramp_down_ms=400)
    into_state(host, State.RUNNING, step)
    host.request(SetTelemetry(1000))
    host.request(Stop())
    host.clear_log()
    host.advance(200)
    halfway = host.telemetry[-1]
    assert halfway.state == State.STOPPING
    assert 140 <= halfway.amplitude_dv <= 160  # 300 → 0 over 400 ms
    host.advance(210)
    assert host.sim.state == State.IDLE
    assert host.events_of(EventCode.STEP_COMPLETE) == []


# --- contact ------------------------------------------------------------------------------


def test_contact_none_goes_to_hold_within_a_tick_and_returns_after_300_ms(host: Host) -> None:
    into_state(host, State.RUNNING)
    host.request(SetTelemetry(1000))
    lost_at = host.sim.link_ms
    host.sim.inject("contact_lost")
    host.advance(1)
    assert host.sim.state == State.HOLD
    off = host.sim.output_transitions()[-1]
    assert (off.on, off.cause) == (False, "HOLD")
    assert off.link_ms - lost_at <= 10
    changes = [e.arg for e in host.events_of(EventCode.CONTACT_CHANGED)]
    assert changes == [Contact.NONE]
    host.advance(200)
    host.request(Heartbeat())
    host.sim.clear("contact_lost")
    back_at = host.sim.link_ms
    host.advance(299)
    assert host.sim.state == State.HOLD
    host.advance(2)
    assert host.sim.state == State.RUNNING
    on = host.sim.output_transitions()[-1]
    assert on.on and 299 <= on.link_ms - back_at <= 301


def test_brief_contact_does_not_end_hold(host: Host) -> None:
    into_state(host, State.HOLD)
    host.sim.clear("contact_lost")
    host.advance(200)
    host.sim.inject("contact_lost")
    host.advance(200)
    host.request(Heartbeat())
    assert host.sim.state == State.HOLD


def test_marginal_contact_keeps_running_and_is_reported(host: Host) -> None:
    into_state(host, State.RUNNING)
    host.sim.inject("contact_marginal", impedance_ohm=15_000)
    host.advance(40)
    assert host.sim.state == State.RUNNING
    assert host.telemetry[-1].contact == Contact.MARGINAL
    assert 10_000 < host.telemetry[-1].impedance_ohm <= 20_000


def test_hold_returns_with_a_ramp_from_zero(host: Host) -> None:
    step = STEP._replace(ramp_up_ms=1000)
    into_state(host, State.RUNNING, step)
    _keepalive(host, 1000)
    host.request(SetTelemetry(1000))
    host.sim.inject("contact_lost", duration_s=0.1)
    _keepalive(host, 400)  # 100 ms lost, 300 ms back
    host.advance(50)  # then 50 ms of ramp
    host.clear_log()
    host.advance(1)
    assert host.sim.state == State.RUNNING
    assert 0 < host.telemetry[-1].amplitude_dv < 30


# --- steps: accounting, end, ramps, SET_AMPLITUDE -----------------------------------------


def test_delivered_time_counts_only_running(host: Host) -> None:
    step = STEP._replace(ramp_up_ms=300, duration_ms=100_000)
    into_state(host, State.RUNNING, step)
    _keepalive(host, 1000)
    running_1 = host.status().step_elapsed_ms
    host.request(Pause())
    _keepalive(host, 700)
    assert host.status().step_elapsed_ms == running_1
    host.request(Resume())
    _keepalive(host, 500)
    host.sim.inject("contact_lost", duration_s=0.5)
    host.advance(1)
    assert host.sim.state == State.HOLD
    # Lost for 500 ms, back after 300 ms more, then 200 ms of running.
    _keepalive(host, 1000)
    assert host.sim.state == State.RUNNING
    elapsed = host.status().step_elapsed_ms
    # Resumed 500 ms, the tick that lost contact, 200 ms after the 800 ms in HOLD.
    assert elapsed == running_1 + 500 + 1 + 200


def test_step_end_ramps_down_then_idle_with_step_complete(host: Host) -> None:
    step = STEP._replace(duration_ms=600, ramp_down_ms=300, step_id=77)
    into_state(host, State.RUNNING, step)
    host.clear_log()
    _keepalive(host, 600)
    assert host.sim.state == State.STOPPING
    status = host.status()
    assert status.step_elapsed_ms == 600 == status.step_duration_ms
    host.request(Stop())  # changes nothing during the final ramp-down
    assert host.sim.state == State.STOPPING
    _keepalive(host, 300)
    assert host.sim.state == State.IDLE
    codes = [(e.event, e.arg) for e in host.events]
    assert codes[-3:] == [
        (EventCode.STATE_CHANGED, (State.RUNNING << 8) | State.STOPPING),
        (EventCode.STEP_COMPLETE, 77),
        (EventCode.STATE_CHANGED, (State.STOPPING << 8) | State.IDLE),
    ] or codes[-2:] == [
        (EventCode.STEP_COMPLETE, 77),
        (EventCode.STATE_CHANGED, (State.STOPPING << 8) | State.IDLE),
    ]
    # The step is still described after it ended, until the next CONFIGURE_STEP.
    status = host.status()
    assert (status.step_id, status.step_elapsed_ms, status.step_duration_ms) == (77, 600, 600)
    host.request(STEP._replace(step_id=78))
    status = host.status()
    assert (status.step_id, status.step_elapsed_ms) == (78, 0)


def test_ramp_up_rises_from_zero_and_counts_as_delivered(host: Host) -> None:
    step = STEP._replace(ramp_up_ms=1000)
    into_state(host, State.READY, step)
    host.request(SetTelemetry(1000))
    host.request(Start())
    host.clear_log()
    host.advance(250)
    quarter = host.telemetry[-1]
    assert 70 <= quarter.amplitude_dv <= 80
    assert quarter.step_elapsed_ms == 250
    host.request(Heartbeat())
    host.advance(250)
    amps = [t.amplitude_dv for t in host.telemetry]
    assert amps == sorted(amps)


def test_set_amplitude_increase_ramps_at_10_v_per_s_and_decrease_is_immediate(host: Host) -> None:
    into_state(host, State.RUNNING)
    host.request(SetTelemetry(1000))
    host.request(SetAmplitude(400))  # below the poration threshold: no current regulation
    host.clear_log()
    _keepalive(host, 500)
    assert 345 <= host.telemetry[-1].amplitude_dv <= 351  # 300 + 10 V/s × 0.5 s
    _keepalive(host, 600)
    assert host.telemetry[-1].amplitude_dv == 400
    assert host.events_of(EventCode.AMPLITUDE_LIMITED) == []
    host.request(SetAmplitude(200))
    host.clear_log()
    host.advance(1)
    assert host.telemetry[-1].amplitude_dv == 200


def test_set_amplitude_in_pause_is_the_next_ramp_target(host: Host) -> None:
    step = STEP._replace(ramp_up_ms=100)
    into_state(host, State.RUNNING, step)
    host.request(Pause())
    host.request(SetAmplitude(450))
    host.request(Resume())
    host.request(SetTelemetry(1000))
    host.advance(150)
    assert host.telemetry[-1].amplitude_dv == 450


# --- telemetry and events -----------------------------------------------------------------


def test_telemetry_flows_from_power_up_at_50_hz(host: Host) -> None:
    host.advance(1000)
    assert len(host.telemetry) == 50
    assert [t.dseq for t in host.telemetry] == list(range(50))
    assert [t.t_ms for t in host.telemetry][:3] == [20, 40, 60]


def test_set_telemetry_changes_the_rate_and_hello_resets_it(host: Host) -> None:
    host.request(SetTelemetry(200))
    host.clear_log()
    host.advance(1000)
    assert len(host.telemetry) == 200
    host.request(Hello(1, "t"))
    host.clear_log()
    host.advance(1000)
    assert len(host.telemetry) == 50


def test_telemetry_flows_in_every_state(make_sim: Callable[..., Simulator]) -> None:
    for state in State:
        host = Host(make_sim())
        into_state(host, state)
        host.clear_log()
        host.advance(100)
        assert len(host.telemetry) == 5, state
        assert host.telemetry[-1].state == state


def test_events_and_telemetry_share_one_dseq_counter(host: Host) -> None:
    host.request(STEP)
    host.request(Start())
    host.advance(100)
    host.request(Pause())
    host.advance(100)
    device = [m for s, m in host.frames if isinstance(m, Telemetry | Event)]
    assert [m.dseq for m in device] == list(range(len(device)))
    assert any(isinstance(m, Event) for m in device)


def test_dseq_wraps_at_16_bits(host: Host) -> None:
    host.request(SetTelemetry(1000))
    host.advance(100)
    assert [t.dseq for t in host.telemetry][:3] == [0, 1, 2]
    host.sim.engine.firmware.dseq = 0xFFFD  # skip 65 s of telemetry
    host.clear_log()
    host.request(Estop())  # events take dseqs from the same counter
    host.advance(3)
    frames = [m for _, m in host.frames if isinstance(m, Telemetry | Event)]
    assert [m.dseq for m in frames] == [0xFFFD, 0xFFFE, 0xFFFF, 0, 1]


def test_reply_goes_out_before_the_events_it_caused(host: Host) -> None:
    host.request(STEP)
    host.sim.host_write(encode_frame(99, Start()))
    frames = host.collect()
    assert frames[0] == (99, Ack(MsgType.START))
    assert all(s == 0 for s, _ in frames[1:])
    assert isinstance(frames[1][1], Event)


def test_events_carry_the_device_clock(host: Host) -> None:
    host.advance(1234)
    host.request(Estop())
    raised = host.events_of(EventCode.FAULT_RAISED)[0]
    assert raised.t_ms == 1234
    assert raised.arg == Fault.ESTOP


def test_t_ms_follows_simulated_time_at_speed(make_sim: Callable[..., Simulator]) -> None:
    host = Host(make_sim(speed=10))
    host.advance(100)
    assert host.telemetry[-1].t_ms == 1000
    assert len(host.telemetry) == 5  # the rate stays on link time
