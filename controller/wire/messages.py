"""Every wire message as an immutable, typed value with its body layout.

Messages are ``NamedTuple``s: immutable, typed, and cheap to build from ``struct.unpack``
output, which matters on the telemetry path (1000 frames/s). The type code and body layout of
each message live in ``_SPECS``; :func:`message_type` and :func:`encode_body` use it.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from controller.wire.constants import MsgType, is_simulator_serial

# --- host requests -----------------------------------------------------------------------


class Hello(NamedTuple):
    proto_version: int = 1
    host_id: str = ""


class GetStatus(NamedTuple):
    pass


class Heartbeat(NamedTuple):
    pass


class SetTelemetry(NamedTuple):
    rate_hz: int


class ConfigureStep(NamedTuple):
    step_id: int
    waveform: int
    polarity: int
    amplitude_dv: int
    amplitude_max_dv: int
    pulse_width_us: int
    frequency_hz: int
    burst_on_ms: int
    burst_off_ms: int
    ramp_up_ms: int
    ramp_down_ms: int
    current_limit_ua: int
    duration_ms: int
    handpiece: int


class Start(NamedTuple):
    pass


class Pause(NamedTuple):
    pass


class Resume(NamedTuple):
    pass


class Stop(NamedTuple):
    pass


class Estop(NamedTuple):
    pass


class ClearFaults(NamedTuple):
    pass


class SetAmplitude(NamedTuple):
    amplitude_dv: int


# --- device replies ----------------------------------------------------------------------


class Ack(NamedTuple):
    cmd_type: int


class Nak(NamedTuple):
    cmd_type: int
    code: int
    detail: int = 0


class HelloReply(NamedTuple):
    proto_version: int
    model: str
    serial: str
    fw_major: int
    fw_minor: int
    fw_patch: int
    boot_id: int
    max_amplitude_dv: int
    max_current_ua: int
    pulse_width_min_us: int
    pulse_width_max_us: int
    frequency_min_hz: int
    frequency_max_hz: int
    max_step_ms: int
    waveforms: int
    max_telemetry_hz: int
    handpiece: int

    @property
    def firmware(self) -> str:
        return f"{self.fw_major}.{self.fw_minor}.{self.fw_patch}"

    @property
    def is_simulator(self) -> bool:
        return is_simulator_serial(self.serial)


class Status(NamedTuple):
    boot_id: int
    state: int
    faults: int
    step_id: int
    step_elapsed_ms: int
    step_duration_ms: int
    handpiece: int
    amplitude_dv: int
    rx_crc_errors: int
    rx_frame_errors: int


# --- device-originated -------------------------------------------------------------------


class Telemetry(NamedTuple):
    dseq: int
    boot_id: int
    t_ms: int
    state: int
    faults: int
    step_id: int
    step_elapsed_ms: int
    amplitude_dv: int
    current_ua: int
    impedance_ohm: int
    temperature_dc: int
    contact: int


class Event(NamedTuple):
    dseq: int
    t_ms: int
    event: int
    arg: int


Message = (
    Hello
    | GetStatus
    | Heartbeat
    | SetTelemetry
    | ConfigureStep
    | Start
    | Pause
    | Resume
    | Stop
    | Estop
    | ClearFaults
    | SetAmplitude
    | Ack
    | Nak
    | HelloReply
    | Status
    | Telemetry
    | Event
)


class _Spec(NamedTuple):
    cls: type[Message]
    fmt: struct.Struct | None  # None: variable body (HELLO) or text fields (HELLO_REPLY)


_EMPTY = struct.Struct("<")

_SPECS: dict[MsgType, _Spec] = {
    MsgType.HELLO: _Spec(Hello, None),
    MsgType.GET_STATUS: _Spec(GetStatus, _EMPTY),
    MsgType.HEARTBEAT: _Spec(Heartbeat, _EMPTY),
    MsgType.SET_TELEMETRY: _Spec(SetTelemetry, struct.Struct("<H")),
    MsgType.CONFIGURE_STEP: _Spec(ConfigureStep, struct.Struct("<HBBHHHHHHHHHIB")),
    MsgType.START: _Spec(Start, _EMPTY),
    MsgType.PAUSE: _Spec(Pause, _EMPTY),
    MsgType.RESUME: _Spec(Resume, _EMPTY),
    MsgType.STOP: _Spec(Stop, _EMPTY),
    MsgType.ESTOP: _Spec(Estop, _EMPTY),
    MsgType.CLEAR_FAULTS: _Spec(ClearFaults, _EMPTY),
    MsgType.SET_AMPLITUDE: _Spec(SetAmplitude, struct.Struct("<H")),
    MsgType.ACK: _Spec(Ack, struct.Struct("<B")),
    MsgType.NAK: _Spec(Nak, struct.Struct("<BBB")),
    MsgType.HELLO_REPLY: _Spec(HelloReply, None),
    MsgType.STATUS: _Spec(Status, struct.Struct("<HBHHIIBHHH")),
    MsgType.TELEMETRY: _Spec(Telemetry, struct.Struct("<HHIBHHIHHIhB")),
    MsgType.EVENT: _Spec(Event, struct.Struct("<HIBI")),
}

_TYPE_OF: dict[type[Message], MsgType] = {spec.cls: t for t, spec in _SPECS.items()}

#: HELLO_REPLY: proto, model[8], serial[12], fw x3, boot_id, then capabilities.
_HELLO_REPLY = struct.Struct("<B8s12sBBBHHHHHHHIBHB")
HELLO_MAX_HOST_ID = 16

REQUEST_TYPES = frozenset(t for t in MsgType if t.is_request)


def message_type(msg: Message) -> MsgType:
    """The wire type code of a message value."""
    return _TYPE_OF[type(msg)]


def fixed_layouts() -> dict[int, tuple[type[Message], struct.Struct, int]]:
    """Type code -> (class, struct, body length) for every message with a fixed struct layout."""
    return {
        int(t): (spec.cls, spec.fmt, spec.fmt.size)
        for t, spec in _SPECS.items()
        if spec.fmt is not None
    }


def fixed_body_length(mtype: MsgType) -> int | None:
    """Body length of a fixed-size type, or None for HELLO (1..17 bytes)."""
    if mtype is MsgType.HELLO:
        return None
    if mtype is MsgType.HELLO_REPLY:
        return _HELLO_REPLY.size
    fmt = _SPECS[mtype].fmt
    assert fmt is not None
    return fmt.size


def body_length_ok(mtype: MsgType, length: int) -> bool:
    """Whether ``length`` is a valid body length for ``mtype``."""
    if mtype is MsgType.HELLO:
        return 1 <= length <= 1 + HELLO_MAX_HOST_ID
    return fixed_body_length(mtype) == length


def longest_reply_body(request: MsgType) -> int:
    """Body length of the longest reply a request can get (for ``T_reply``)."""
    if request is MsgType.HELLO:
        return _HELLO_REPLY.size
    if request is MsgType.GET_STATUS:
        return _SPECS[MsgType.STATUS].fmt.size  # type: ignore[union-attr]
    return 3  # NAK is the longest of ACK/NAK


def _ascii(value: str, size: int) -> bytes:
    raw = value.encode("ascii")
    if len(raw) > size:
        raise ValueError(f"{value!r} is longer than {size} bytes")
    return raw.ljust(size, b"\0")


def _unascii(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def encode_body(msg: Message) -> bytes:
    """The body bytes of ``msg`` (raises ``struct.error``/``ValueError`` on out-of-range)."""
    mtype = _TYPE_OF[type(msg)]
    if isinstance(msg, Hello):
        host = msg.host_id.encode("ascii")
        if len(host) > HELLO_MAX_HOST_ID:
            raise ValueError(f"host_id is longer than {HELLO_MAX_HOST_ID} bytes")
        return struct.pack("<B", msg.proto_version) + host
    if isinstance(msg, HelloReply):
        return _HELLO_REPLY.pack(
            msg.proto_version,
            _ascii(msg.model, 8),
            _ascii(msg.serial, 12),
            *msg[3:],
        )
    fmt = _SPECS[mtype].fmt
    assert fmt is not None
    return fmt.pack(*msg)


def decode_body(mtype: MsgType, body: bytes) -> Message:
    """Decode a body whose length was already checked with :func:`body_length_ok`."""
    spec = _SPECS[mtype]
    if spec.fmt is not None:
        return spec.cls._make(spec.fmt.unpack(body))
    if mtype is MsgType.HELLO:
        return Hello(body[0], body[1:].decode("ascii", errors="replace"))
    fields = _HELLO_REPLY.unpack(body)
    return HelloReply(fields[0], _unascii(fields[1]), _unascii(fields[2]), *fields[3:])
