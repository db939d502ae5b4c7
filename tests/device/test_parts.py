"""DeviceInfo/Status decoding, event decoding, the event queue and the telemetry buffer."""

from __future__ import annotations

import threading

import pytest

from controller.device import (
    DeviceEventKind,
    DeviceInfo,
    DeviceProtocolError,
    Status,
    TelemetryBuffer,
)
from controller.device.events import from_link_event, from_wire_event
from controller.link import LinkEvent, LinkEventKind
from controller.wire import messages as m
from controller.wire.constants import Contact, EventCode, Fault, Handpiece, MsgType, State, Waveform

HELLO = m.HelloReply(
    1,
    "EPM-1",
    "SIM-00042",
    2,
    5,
    1,
    0xBEEF,
    1200,
    10000,
    50,
    2000,
    1,
    5000,
    1_200_000,
    0b01,
    1000,
    3,
)


def test_device_info_from_hello() -> None:
    info = DeviceInfo.from_hello(HELLO, "sim://demo", 921600)
    assert info.firmware == "2.5.1"
    assert info.is_simulator is True
    assert info.handpiece is Handpiece.COMB
    assert info.capabilities.waveforms == frozenset({Waveform.MONO_SQUARE})
    assert (info.url, info.baud, info.boot_id) == ("sim://demo", 921600, 0xBEEF)
    real = DeviceInfo.from_hello(HELLO._replace(serial="EPM1-000123"), "/dev/ttyUSB0", 115200)
    assert real.is_simulator is False


def test_status_from_wire_uses_enums() -> None:
    status = Status.from_wire(m.Status(1, 7, 0b10001, 4, 100, 2000, 2, 300, 1, 2))
    assert status.state is State.FAULT
    assert status.faults == Fault.ESTOP | Fault.OVERTEMP
    assert status.handpiece is Handpiece.FLAT_PROBE
    with pytest.raises(DeviceProtocolError, match="undefined state 9"):
        Status.from_wire(m.Status(1, 9, 0, 0, 0, 0, 1, 0, 0, 0))


@pytest.mark.parametrize(
    ("code", "arg", "kind", "field", "value", "text"),
    [
        (
            EventCode.STATE_CHANGED,
            0x0305,
            DeviceEventKind.STATE_CHANGED,
            "new_state",
            State.HOLD,
            "RUNNING → HOLD",
        ),
        (
            EventCode.STEP_COMPLETE,
            12,
            DeviceEventKind.STEP_COMPLETE,
            "step_id",
            12,
            "Step 12 complete",
        ),
        (
            EventCode.FAULT_RAISED,
            0b10000,
            DeviceEventKind.FAULT_RAISED,
            "faults",
            Fault.OVERTEMP,
            "OVERTEMP",
        ),
        (
            EventCode.FAULTS_CLEARED,
            0b11,
            DeviceEventKind.FAULTS_CLEARED,
            "faults",
            Fault.ESTOP | Fault.WATCHDOG,
            "ESTOP, WATCHDOG",
        ),
        (
            EventCode.CONTACT_CHANGED,
            2,
            DeviceEventKind.CONTACT_CHANGED,
            "contact",
            Contact.MARGINAL,
            "MARGINAL",
        ),
        (
            EventCode.HANDPIECE_CHANGED,
            0,
            DeviceEventKind.HANDPIECE_CHANGED,
            "handpiece",
            Handpiece.NONE,
            "NONE",
        ),
        (
            EventCode.AMPLITUDE_LIMITED,
            355,
            DeviceEventKind.AMPLITUDE_LIMITED,
            "amplitude_dv",
            355,
            "35.5 V",
        ),
        (99, 1, DeviceEventKind.UNKNOWN_EVENT, "arg", 1, "Unknown device event 99"),
    ],
)
def test_device_events_are_decoded(
    code: int, arg: int, kind: DeviceEventKind, field: str, value: object, text: str
) -> None:
    event = from_wire_event(m.Event(5, 1234, code, arg))
    assert event.kind is kind
    assert getattr(event, field) == value
    assert text in event.message
    assert (event.dseq, event.t_ms) == (5, 1234)
    assert event.kind.from_device


def test_every_link_event_kind_has_a_device_event_kind() -> None:
    for kind in LinkEventKind:
        event = from_link_event(LinkEvent(kind, "x", request=MsgType.START), None, None)
        assert event.kind.value == kind.value
        assert not event.kind.from_device
        assert event.request is MsgType.START


def tel(dseq: int) -> m.Telemetry:
    return m.Telemetry(dseq, 1, dseq, 1, 0, 0, 0, 0, 0, 1000, 330, 1)


def test_telemetry_buffer_drops_oldest_and_counts() -> None:
    buf = TelemetryBuffer(capacity=4)
    for i in range(10):
        buf.append(tel(i))
    assert buf.dropped == 6
    assert buf.latest == tel(9)
    assert [t.dseq for t in buf.drain(2)] == [6, 7]
    assert [t.dseq for t in buf.drain()] == [8, 9]
    assert buf.drain() == [] and len(buf) == 0
    with pytest.raises(ValueError, match="at least 1"):
        TelemetryBuffer(0)


def test_telemetry_buffer_under_concurrent_producer() -> None:
    buf = TelemetryBuffer(capacity=100)
    total = 5000

    def produce() -> None:
        for i in range(total):
            buf.append(tel(i % 65536))

    producer = threading.Thread(target=produce)
    producer.start()
    drained: list[m.Telemetry] = []
    while producer.is_alive():
        drained.extend(buf.drain(50))
    producer.join()
    drained.extend(buf.drain())
    assert len(drained) + buf.dropped == total
    dseqs = [t.dseq for t in drained]
    assert dseqs == sorted(dseqs)  # oldest first, never reordered
