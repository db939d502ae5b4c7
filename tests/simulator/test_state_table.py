"""Every cell of the §5 state × request table, every NAK code, and the §4 order of checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.wire import (
    Ack,
    ClearFaults,
    ConfigureStep,
    Estop,
    EventCode,
    Fault,
    GetStatus,
    Heartbeat,
    Hello,
    HelloReply,
    Message,
    MsgType,
    Nak,
    NakCode,
    Pause,
    Resume,
    SetAmplitude,
    SetTelemetry,
    Start,
    State,
    Status,
    Stop,
    encode_frame,
)
from simulator import Simulator
from tests.simulator.helpers import STEP, Host, into_state

IDL, R, RUN, P, H, S, F = (
    State.IDLE,
    State.READY,
    State.RUNNING,
    State.PAUSED,
    State.HOLD,
    State.STOPPING,
    State.FAULT,
)
STATES = (IDL, R, RUN, P, H, S, F)
B = "B"  # NAK BAD_STATE
FL = "F"  # NAK FAULT_LATCHED
SAME = "="  # the normal reply, no state change

REQUESTS: dict[str, Message] = {
    "HELLO": Hello(1, "t"),
    "GET_STATUS": GetStatus(),
    "HEARTBEAT": Heartbeat(),
    "SET_TELEMETRY": SetTelemetry(100),
    "CONFIGURE_STEP": STEP._replace(step_id=2),
    "START": Start(),
    "PAUSE": Pause(),
    "RESUME": Resume(),
    "STOP": Stop(),
    "SET_AMPLITUDE": SetAmplitude(250),
    "ESTOP": Estop(),
    "CLEAR_FAULTS": ClearFaults(),
}

# The §5 table, column by column (IDLE, READY, RUNNING, PAUSED, HOLD, STOPPING, FAULT).
TABLE: dict[str, tuple[object, ...]] = {
    "HELLO": (SAME, SAME, F, F, F, F, SAME),
    "GET_STATUS": (SAME,) * 7,
    "HEARTBEAT": (SAME,) * 7,
    "SET_TELEMETRY": (SAME,) * 7,
    "CONFIGURE_STEP": (R, R, B, B, B, B, FL),
    "START": (B, RUN, B, B, B, B, FL),
    "PAUSE": (B, B, P, SAME, P, B, FL),
    "RESUME": (B, B, SAME, RUN, B, B, FL),
    "STOP": (SAME, IDL, S, IDL, IDL, SAME, FL),
    "SET_AMPLITUDE": (B, SAME, SAME, SAME, SAME, B, FL),
    "ESTOP": (F, F, F, F, F, F, SAME),
    "CLEAR_FAULTS": (SAME, SAME, SAME, SAME, SAME, SAME, IDL),
}

CELLS = [(name, state, TABLE[name][i]) for name in TABLE for i, state in enumerate(STATES)]


def _normal_reply_ok(name: str, reply: Message) -> bool:
    if name == "HELLO":
        return isinstance(reply, HelloReply)
    if name == "GET_STATUS":
        return isinstance(reply, Status)
    return reply == Ack(MsgType[name])


@pytest.mark.parametrize(
    ("name", "state", "expected"), CELLS, ids=[f"{n}-{s.name}" for n, s, _ in CELLS]
)
def test_state_table_cell(
    make_sim: Callable[..., Simulator], name: str, state: State, expected: object
) -> None:
    host = Host(make_sim())
    into_state(host, state)
    reply = host.request(REQUESTS[name])
    mtype = MsgType[name]
    if expected == B:
        assert reply == Nak(mtype, NakCode.BAD_STATE, 0)
        assert host.sim.state == state
    elif expected == FL:
        assert reply == Nak(mtype, NakCode.FAULT_LATCHED, 0)
        assert host.sim.state == state
    elif expected == SAME:
        assert _normal_reply_ok(name, reply), reply
        assert host.sim.state == state
    else:
        assert _normal_reply_ok(name, reply), reply
        assert host.sim.state == expected


def test_hello_in_an_active_state_latches_watchdog_after_replying(
    make_sim: Callable[..., Simulator],
) -> None:
    host = Host(make_sim())
    into_state(host, RUN)
    host.clear_log()
    seq = host.next_seq()
    host.sim.host_write(encode_frame(seq, Hello(1, "t")))
    frames = host.collect()
    assert isinstance(frames[0][1], HelloReply) and frames[0][0] == seq
    events = [m for s, m in frames[1:]]
    assert [(e.event, e.arg) for e in events] == [
        (EventCode.FAULT_RAISED, Fault.WATCHDOG),
        (EventCode.STATE_CHANGED, (RUN << 8) | F),
    ]
    assert host.sim.output_transitions()[-1].on is False
    assert host.sim.faults == Fault.WATCHDOG


@pytest.mark.parametrize("state", [RUN, P, H, S])
def test_hello_nakked_in_an_active_state_still_latches_watchdog(
    make_sim: Callable[..., Simulator], state: State
) -> None:
    host = Host(make_sim())
    into_state(host, state)
    assert host.request(Hello(2, "t")) == Nak(MsgType.HELLO, NakCode.UNSUPPORTED_VERSION, 0)
    assert host.sim.faults == Fault.WATCHDOG
    assert host.sim.state == F


def test_hello_with_a_wrong_length_in_an_active_state_still_latches_watchdog(
    host: Host,
) -> None:
    into_state(host, RUN)
    assert host.raw_request(9, MsgType.HELLO, b"") == Nak(MsgType.HELLO, NakCode.MALFORMED, 0)
    assert host.sim.faults == Fault.WATCHDOG


def test_estop_in_fault_latches_the_bit_and_raises_only_if_new(host: Host) -> None:
    into_state(host, RUN)
    host.request(Hello(1, "t"))  # FAULT with WATCHDOG only
    host.clear_log()
    assert host.request(Estop()) == Ack(MsgType.ESTOP)
    assert host.sim.faults == Fault.WATCHDOG | Fault.ESTOP
    assert [(e.event, e.arg) for e in host.events] == [(EventCode.FAULT_RAISED, Fault.ESTOP)]
    host.clear_log()
    assert host.request(Estop()) == Ack(MsgType.ESTOP)
    assert host.events == []


def test_clear_faults_reports_what_it_cleared(host: Host) -> None:
    into_state(host, F)
    host.clear_log()
    assert host.request(ClearFaults()) == Ack(MsgType.CLEAR_FAULTS)
    assert [(e.event, e.arg) for e in host.events] == [
        (EventCode.FAULTS_CLEARED, Fault.ESTOP),
        (EventCode.STATE_CHANGED, (F << 8) | IDL),
    ]
    assert host.status().faults == 0


def test_set_amplitude_effects_by_state(make_sim: Callable[..., Simulator]) -> None:
    for state in (R, RUN, P, H):
        host = Host(make_sim())
        into_state(host, state)
        host.request(SetAmplitude(420))
        assert host.status().amplitude_dv == 420, state


def test_stop_in_ready_discards_the_step(host: Host) -> None:
    into_state(host, R)
    host.request(Stop())
    assert host.request(Start()) == Nak(MsgType.START, NakCode.BAD_STATE, 0)
    status = host.status()
    assert (status.state, status.step_id) == (IDL, STEP.step_id)


# --- every NAK code ----------------------------------------------------------------------


def test_nak_malformed(host: Host) -> None:
    assert host.raw_request(3, MsgType.START, b"\x00") == Nak(MsgType.START, NakCode.MALFORMED)


def test_nak_unknown_type_for_unassigned_and_device_types(host: Host) -> None:
    assert host.raw_request(3, 0x20, b"") == Nak(0x20, NakCode.UNKNOWN_TYPE)
    assert host.raw_request(4, MsgType.ACK, b"\x02") == Nak(MsgType.ACK, NakCode.UNKNOWN_TYPE)


def test_nak_bad_state(host: Host) -> None:
    assert host.request(Start()) == Nak(MsgType.START, NakCode.BAD_STATE)


def test_nak_out_of_range_set_telemetry(host: Host) -> None:
    for rate in (0, 1001):
        reply = host.request(SetTelemetry(rate))
        assert reply == Nak(MsgType.SET_TELEMETRY, NakCode.OUT_OF_RANGE, 1)
    assert host.request(SetTelemetry(1000)) == Ack(MsgType.SET_TELEMETRY)
    assert host.request(SetTelemetry(1)) == Ack(MsgType.SET_TELEMETRY)


def test_nak_out_of_range_set_amplitude_above_the_step_ceiling(host: Host) -> None:
    into_state(host, RUN)
    for value in (0, STEP.amplitude_max_dv + 1):
        reply = host.request(SetAmplitude(value))
        assert reply == Nak(MsgType.SET_AMPLITUDE, NakCode.OUT_OF_RANGE, 1)
    assert host.request(SetAmplitude(STEP.amplitude_max_dv)) == Ack(MsgType.SET_AMPLITUDE)


def test_nak_fault_latched(host: Host) -> None:
    into_state(host, F)
    assert host.request(STEP) == Nak(MsgType.CONFIGURE_STEP, NakCode.FAULT_LATCHED)


def test_nak_wrong_handpiece(host: Host) -> None:
    reply = host.request(STEP._replace(handpiece=3))
    assert reply == Nak(MsgType.CONFIGURE_STEP, NakCode.WRONG_HANDPIECE, 0)


def test_nak_fault_persists_clears_nothing(host: Host) -> None:
    host.request(Estop())
    host.sim.inject("handpiece_removed")
    assert host.sim.faults == Fault.ESTOP | Fault.HANDPIECE_REMOVED
    reply = host.request(ClearFaults())
    assert reply == Nak(MsgType.CLEAR_FAULTS, NakCode.FAULT_PERSISTS, 0)
    assert host.sim.faults == Fault.ESTOP | Fault.HANDPIECE_REMOVED
    host.sim.clear("handpiece_removed")
    assert host.request(ClearFaults()) == Ack(MsgType.CLEAR_FAULTS)
    assert host.sim.state == IDL


def test_nak_unsupported_version(host: Host) -> None:
    reply = host.request(Hello(0, "t"))
    assert reply == Nak(MsgType.HELLO, NakCode.UNSUPPORTED_VERSION, 0)


# --- CONFIGURE_STEP: each field's own range, then the cross-field rules ------------------

OWN_RANGE_CASES = [
    (2, {"waveform": 0}),
    (2, {"waveform": 3}),
    (3, {"polarity": 4}),
    (4, {"amplitude_dv": 0}),
    (4, {"amplitude_dv": 1201, "amplitude_max_dv": 1200}),
    (5, {"amplitude_max_dv": 0}),
    (5, {"amplitude_max_dv": 1201}),
    (6, {"pulse_width_us": 49}),
    (6, {"pulse_width_us": 2001}),
    (7, {"frequency_hz": 0}),
    (7, {"frequency_hz": 5001}),
    (8, {"burst_on_ms": 9, "burst_off_ms": 10}),
    (8, {"burst_on_ms": 2001, "burst_off_ms": 10}),
    (9, {"burst_on_ms": 10, "burst_off_ms": 9}),
    (9, {"burst_on_ms": 10, "burst_off_ms": 5001}),
    (10, {"ramp_up_ms": 60_001}),
    (11, {"ramp_down_ms": 10_001}),
    (12, {"current_limit_ua": 499}),
    (12, {"current_limit_ua": 10_001}),
    (13, {"duration_ms": 0}),
    (13, {"duration_ms": 1_200_001}),
    (14, {"handpiece": 0}),
    (14, {"handpiece": 4}),
]


@pytest.mark.parametrize(("detail", "changes"), OWN_RANGE_CASES)
def test_configure_step_own_range(host: Host, detail: int, changes: dict[str, int]) -> None:
    reply = host.request(STEP._replace(**changes))
    assert reply == Nak(MsgType.CONFIGURE_STEP, NakCode.OUT_OF_RANGE, detail)
    assert host.sim.state == IDL


def test_configure_step_field_1_takes_any_value(host: Host) -> None:
    for step_id in (0, 0xFFFF):
        assert host.request(STEP._replace(step_id=step_id)) == Ack(MsgType.CONFIGURE_STEP)


def test_configure_step_range_boundaries_are_accepted(host: Host) -> None:
    edges = STEP._replace(
        waveform=1,
        polarity=3,
        amplitude_dv=1200,
        amplitude_max_dv=1200,
        pulse_width_us=50,
        frequency_hz=5000,
        burst_on_ms=2000,
        burst_off_ms=5000,
        ramp_up_ms=60_000,
        ramp_down_ms=10_000,
        current_limit_ua=500,
        duration_ms=1_200_000,
    )
    assert host.request(edges) == Ack(MsgType.CONFIGURE_STEP)
    low = STEP._replace(pulse_width_us=2000, frequency_hz=1, burst_on_ms=0, burst_off_ms=0)
    assert host.request(low._replace(duration_ms=1, current_limit_ua=10_000)) == Ack(
        MsgType.CONFIGURE_STEP
    )


def test_configure_step_lowest_bad_field_wins(host: Host) -> None:
    reply = host.request(STEP._replace(polarity=9, frequency_hz=0, handpiece=7))
    assert reply == Nak(MsgType.CONFIGURE_STEP, NakCode.OUT_OF_RANGE, 3)


CROSS_FIELD_CASES = [
    # amplitude_dv ≤ amplitude_max_dv
    (4, {"amplitude_dv": 601, "amplitude_max_dv": 600}),
    # BI_SQUARE requires polarity 0
    (3, {"waveform": 2, "polarity": 1}),
    (3, {"waveform": 2, "polarity": 2}),
    # polarity 3 requires bursting
    (3, {"waveform": 1, "polarity": 3, "burst_on_ms": 0, "burst_off_ms": 0}),
    # burst_off_ms is 0 exactly when burst_on_ms is 0
    (9, {"burst_on_ms": 100, "burst_off_ms": 0}),
    (9, {"burst_on_ms": 0, "burst_off_ms": 100}),
    # a burst holds at least one pulse: burst_on_ms ≥ 1000 / frequency_hz
    (8, {"burst_on_ms": 10, "burst_off_ms": 10, "frequency_hz": 99}),
    # duty cycle ≤ 0.5 (BI_SQUARE counts two phases)
    (6, {"pulse_width_us": 1001, "frequency_hz": 250}),
    (6, {"waveform": 1, "pulse_width_us": 2000, "frequency_hz": 251}),
]


@pytest.mark.parametrize(("detail", "changes"), CROSS_FIELD_CASES)
def test_configure_step_cross_field_rule(host: Host, detail: int, changes: dict[str, int]) -> None:
    reply = host.request(STEP._replace(**changes))
    assert reply == Nak(MsgType.CONFIGURE_STEP, NakCode.OUT_OF_RANGE, detail)


def test_cross_field_rules_at_their_boundaries_pass(host: Host) -> None:
    ok = [
        {"amplitude_dv": 600, "amplitude_max_dv": 600},
        {"burst_on_ms": 10, "burst_off_ms": 10, "frequency_hz": 100},
        {"pulse_width_us": 1000, "frequency_hz": 250},
        {"waveform": 1, "pulse_width_us": 2000, "frequency_hz": 250},
        {"waveform": 1, "polarity": 3, "burst_on_ms": 100, "burst_off_ms": 100},
    ]
    for changes in ok:
        assert host.request(STEP._replace(**changes)) == Ack(MsgType.CONFIGURE_STEP), changes


def test_cross_field_rules_apply_in_the_documented_order(host: Host) -> None:
    # Breaks amplitude (4), BI polarity (3), burst pairing (9) and duty (6): the first wins.
    everything = STEP._replace(
        amplitude_dv=601, polarity=1, burst_on_ms=100, pulse_width_us=2000, frequency_hz=5000
    )
    order = [4, 3, 9, 6]
    fixes: list[dict[str, int]] = [
        {"amplitude_dv": 300},
        {"polarity": 0},
        {"burst_on_ms": 0},
        {"pulse_width_us": 50},
    ]
    step = everything
    for detail, fix in zip(order, fixes, strict=True):
        reply = host.request(step)
        assert reply == Nak(MsgType.CONFIGURE_STEP, NakCode.OUT_OF_RANGE, detail)
        step = step._replace(**fix)
    assert host.request(step) == Ack(MsgType.CONFIGURE_STEP)


def test_energy_rule_detail_5_with_a_more_powerful_model() -> None:
    from simulator.capabilities import Capabilities
    from simulator.stepcheck import check_configure_step

    strong = Capabilities(max_amplitude_dv=5000)
    # (500 V)² / 500 Ω × 2 ms × 2 phases = 2 J > 300 mJ.
    step = STEP._replace(amplitude_dv=100, amplitude_max_dv=5000, pulse_width_us=2000)
    assert check_configure_step(step, strong) == 5
    # 273.8 V, 1 ms, 2 phases → 299.9 mJ passes; 274 V → 300.3 mJ fails.
    one_ms = step._replace(pulse_width_us=1000)
    assert check_configure_step(one_ms._replace(amplitude_max_dv=2738), strong) == 0
    assert check_configure_step(one_ms._replace(amplitude_max_dv=2740), strong) == 5
    # With EPM-1's own ranges the energy rule cannot fail.
    from simulator.capabilities import EPM1

    worst = step._replace(amplitude_dv=1200, amplitude_max_dv=1200, frequency_hz=250)
    assert check_configure_step(worst, EPM1) == 6  # duty 1.0: the duty rule comes first
    assert check_configure_step(worst._replace(pulse_width_us=1000), EPM1) == 0


def test_waveform_must_be_in_the_capability_mask() -> None:
    from simulator.capabilities import Capabilities
    from simulator.stepcheck import check_configure_step

    mono_only = Capabilities(waveforms=0b01)
    assert check_configure_step(STEP, mono_only) == 2
    assert check_configure_step(STEP._replace(waveform=1), mono_only) == 0


# --- the order of checks 1–6 --------------------------------------------------------------


def test_unknown_type_is_checked_before_length(host: Host) -> None:
    assert host.raw_request(3, 0x3E, b"\x01\x02") == Nak(0x3E, NakCode.UNKNOWN_TYPE)


def test_length_is_checked_before_fault_latched(host: Host) -> None:
    into_state(host, F)
    assert host.raw_request(9, MsgType.START, b"\x01") == Nak(MsgType.START, NakCode.MALFORMED)


def test_fault_latched_is_checked_before_bad_state(host: Host) -> None:
    into_state(host, F)
    assert host.request(Pause()) == Nak(MsgType.PAUSE, NakCode.FAULT_LATCHED)


def test_bad_state_is_checked_before_values(host: Host) -> None:
    into_state(host, RUN)
    assert host.request(STEP._replace(polarity=9)) == Nak(MsgType.CONFIGURE_STEP, NakCode.BAD_STATE)
    assert host.request(SetTelemetry(0)) == Nak(MsgType.SET_TELEMETRY, NakCode.OUT_OF_RANGE, 1)


def test_values_are_checked_before_the_handpiece(host: Host) -> None:
    reply = host.request(STEP._replace(handpiece=2, duration_ms=0))
    assert reply == Nak(MsgType.CONFIGURE_STEP, NakCode.OUT_OF_RANGE, 13)


def test_configure_step_in_ready_replaces_the_step(host: Host) -> None:
    into_state(host, R)
    replacement: ConfigureStep = STEP._replace(step_id=9, amplitude_dv=111, duration_ms=777)
    host.clear_log()
    host.request(replacement)
    status = host.status()
    assert (status.step_id, status.amplitude_dv, status.step_duration_ms) == (9, 111, 777)
    assert host.events_of(EventCode.STATE_CHANGED) == []
