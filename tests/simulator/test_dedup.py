"""§3 de-duplication: a retransmission is answered from memory and never executed twice."""

from __future__ import annotations

from controller.wire import (
    Ack,
    ConfigureStep,
    Estop,
    EventCode,
    Fault,
    GetStatus,
    Hello,
    HelloReply,
    MsgType,
    Nak,
    NakCode,
    Resume,
    SetAmplitude,
    Start,
    State,
    Status,
    Stop,
    encode_frame,
)
from tests.simulator.helpers import STEP, Host, into_state


def test_a_retransmitted_start_is_not_executed_again(host: Host) -> None:
    host.request(STEP)
    wire = encode_frame(40, Start())
    first = host.send_raw(wire)
    host.advance(5)
    host.clear_log()
    again = host.send_raw(wire)
    assert again == first == [(40, Ack(MsgType.START))]
    assert host.events == []  # no second STATE_CHANGED
    assert sum(1 for t in host.sim.output_transitions() if t.on) == 1


def test_start_retransmitted_after_estop_gets_starts_stored_reply(host: Host) -> None:
    host.request(STEP)
    start = encode_frame(50, Start())
    assert host.send_raw(start) == [(50, Ack(MsgType.START))]
    assert host.request(Estop(), seq=51) == Ack(MsgType.ESTOP)
    assert host.sim.state == State.FAULT
    # Not FAULT_LATCHED: the stored ACK of START; the unit stays in FAULT, output off.
    assert host.send_raw(start) == [(50, Ack(MsgType.START))]
    assert host.sim.state == State.FAULT
    assert [t.on for t in host.sim.output_transitions()] == [True, False]


def test_estop_with_the_last_seq_is_still_executed(host: Host) -> None:
    into_state(host, State.READY)
    host.request(Start(), seq=60)
    assert host.request(Estop(), seq=60) == Ack(MsgType.ESTOP)
    assert host.sim.faults == Fault.ESTOP


def test_estop_leaves_the_memory_untouched(host: Host) -> None:
    host.request(STEP, seq=70)
    host.request(Estop(), seq=71)
    host.request(Estop(), seq=72)
    # seq 70 is still the last executed request: its stored ACK comes back.
    assert host.send_raw(encode_frame(70, Stop())) == [(70, Ack(MsgType.CONFIGURE_STEP))]


def test_estop_with_any_body_length_is_executed(host: Host) -> None:
    into_state(host, State.RUNNING)
    assert host.raw_request(9, MsgType.ESTOP, b"\x01\x02\x03") == Ack(MsgType.ESTOP)
    assert host.sim.faults == Fault.ESTOP
    assert host.status().rx_frame_errors == 0


def test_hello_is_always_executed_and_clears_the_memory(host: Host) -> None:
    host.request(SetAmplitude(5), seq=80)  # NAK BAD_STATE, stored
    hello = encode_frame(80, Hello(1, "t"))
    replies = host.send_raw(hello)
    assert isinstance(replies[0][1], HelloReply)
    # The memory is empty now: seq 80 again is executed, not answered from memory.
    assert isinstance(host.request(GetStatus(), seq=80), Status)
    assert isinstance(host.send_raw(hello)[0][1], HelloReply)


def test_a_nak_is_stored_like_any_reply(host: Host) -> None:
    wire = encode_frame(90, Resume())
    assert host.send_raw(wire) == [(90, Nak(MsgType.RESUME, NakCode.BAD_STATE))]
    into_state(host, State.READY)
    assert host.send_raw(wire) == [(90, Nak(MsgType.RESUME, NakCode.BAD_STATE))]


def test_only_the_last_request_is_remembered(host: Host) -> None:
    host.request(STEP, seq=10)
    host.request(GetStatus(), seq=11)
    second: ConfigureStep = STEP._replace(step_id=2)
    # seq 10 is not the last any more: executed as a new request.
    assert host.send_raw(encode_frame(10, second)) == [(10, Ack(MsgType.CONFIGURE_STEP))]
    assert host.status().step_id == 2


def test_a_different_request_with_the_last_seq_gets_the_stored_reply(host: Host) -> None:
    """§4 check 0 looks at the seq only: whatever the type, it is a retransmission."""
    host.request(STEP, seq=20)
    assert host.send_raw(encode_frame(20, Start())) == [(20, Ack(MsgType.CONFIGURE_STEP))]
    assert host.sim.state == State.READY


def test_duplicate_frames_on_the_wire_execute_once(host: Host) -> None:
    host.request(STEP)
    host.clear_log()
    wire = encode_frame(33, Start())
    replies = host.send_raw(wire + wire)
    assert replies == [(33, Ack(MsgType.START)), (33, Ack(MsgType.START))]
    assert len(host.events_of(EventCode.STATE_CHANGED)) == 1
