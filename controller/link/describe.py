"""One readable line per frame, for ``epm monitor`` and for logs.

Fields are printed by name, with enum names for codes (state, faults, waveform, NAK code,
event, ...) so a technician can read a capture without the interface document at hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from enum import IntEnum

from controller.wire.codec import (
    DecodedFrame,
    DecodeError,
    DropCounters,
    FrameDecoder,
    decode_message,
)
from controller.wire.constants import (
    Contact,
    EventCode,
    Fault,
    Handpiece,
    MsgType,
    NakCode,
    Polarity,
    State,
    Waveform,
)
from controller.wire.messages import Event, Message, message_type

HOST_TO_DEVICE = "H>D"
DEVICE_TO_HOST = "D>H"

_FIELD_ENUMS: dict[str, type[IntEnum]] = {
    "state": State,
    "waveform": Waveform,
    "polarity": Polarity,
    "handpiece": Handpiece,
    "contact": Contact,
    "cmd_type": MsgType,
    "code": NakCode,
    "event": EventCode,
}


def direction_of(mtype: int) -> str:
    """Direction implied by the type range: requests go to the device, the rest come back."""
    return HOST_TO_DEVICE if 0x01 <= mtype <= 0x3F else DEVICE_TO_HOST


def _enum_text(enum_cls: type[IntEnum], value: int) -> str:
    try:
        return enum_cls(value).name
    except ValueError:
        return str(value)


def _field_text(name: str, value: object) -> str:
    if isinstance(value, int) and name in _FIELD_ENUMS:
        return _enum_text(_FIELD_ENUMS[name], value)
    if name == "faults" and isinstance(value, int):
        return "|".join(Fault(value).names()) or "0"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def describe_message(msg: Message) -> str:
    """``TYPE field=value ...`` for a decoded message."""
    parts = [message_type(msg).name]
    for name, value in msg._asdict().items():
        if isinstance(msg, Event) and name == "arg":
            parts.append(f"arg={_event_arg(msg)}")
            continue
        parts.append(f"{name}={_field_text(name, value)}")
    return " ".join(parts)


def _event_arg(event: Event) -> str:
    arg = event.arg
    if event.event == EventCode.STATE_CHANGED:
        old = _enum_text(State, (arg >> 8) & 0xFF)
        new = _enum_text(State, arg & 0xFF)
        return f"{old}->{new}"
    if event.event in (EventCode.FAULT_RAISED, EventCode.FAULTS_CLEARED):
        return "|".join(Fault(arg & 0xFFFF).names()) or "0"
    if event.event == EventCode.CONTACT_CHANGED:
        return _enum_text(Contact, arg)
    if event.event == EventCode.HANDPIECE_CHANGED:
        return _enum_text(Handpiece, arg)
    return str(arg)


def describe_frame(frame: DecodedFrame) -> str:
    """``seq=N TYPE fields`` for a checked frame; a body that does not fit says so."""
    try:
        msg = decode_message(frame)
    except DecodeError as exc:
        return f"seq={frame.seq} DROPPED ({exc}) body={frame.body.hex()}"
    return f"seq={frame.seq} {describe_message(msg)}"


def format_line(t: float, direction: str, frame: DecodedFrame) -> str:
    """The monitor's line: time, direction, seq, type and fields."""
    return f"{t:10.3f} {direction} {describe_frame(frame)}"


DROP_REASONS = {
    "crc": "CRC error",
    "cobs": "COBS decoding failed",
    "too_short": "frame shorter than 4 bytes",
    "overlong": "over 256 bytes without a delimiter",
}


def feed_in_order(decoder: FrameDecoder, data: bytes) -> Iterator[DecodedFrame | str]:
    """Feed ``data`` and yield frames and drop descriptions in the order they occurred."""
    start = 0
    while start < len(data):
        end = data.find(0, start)
        end = len(data) if end < 0 else end + 1
        before = decoder.counters.as_dict()
        yield from decoder.feed(data[start:end])
        yield from drops_since(before, decoder.counters)
        start = end


def drops_since(before: dict[str, int], counters: DropCounters) -> list[str]:
    """Plain descriptions of the drops counted since ``before`` (a ``counters.as_dict()``)."""
    now = counters.as_dict()
    out: list[str] = []
    for key, reason in DROP_REASONS.items():
        added = now[key] - before.get(key, 0)
        if added:
            out.append(f"DROPPED {added} frame(s): {reason}")
    return out
