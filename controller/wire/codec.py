"""Framing (``COBS(payload) 0x00``), CRC check and message decoding, plus a streaming decoder.

``payload = seq:u8 | type:u8 | body | crc:u16le``. COBS comes from the ``cobs`` package (a C
implementation, well kept and tested against the reference vectors) rather than hand-written
stuffing code.
"""

from __future__ import annotations

import struct
from binascii import crc_hqx
from dataclasses import dataclass, fields
from typing import NamedTuple

from cobs import cobs
from cobs.cobs import DecodeError as CobsError

from controller.wire.constants import MAX_BODY, MAX_WIRE_RUN, MsgType
from controller.wire.crc import crc16
from controller.wire.messages import (
    Message,
    body_length_ok,
    decode_body,
    encode_body,
    fixed_layouts,
    message_type,
)

_CRC = struct.Struct("<H")
cobs_decode = cobs.decode
_TYPES: dict[int, MsgType] = {t.value: t for t in MsgType}
#: type code -> (class, struct, body length) for the fixed-layout messages (the hot path).
_FIXED = fixed_layouts()


class DecodeError(ValueError):
    """A frame that cannot be used. ``kind`` names the :class:`DropCounters` field it counts in."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class DecodedFrame(NamedTuple):
    """A frame that passed COBS, length and CRC checks; its body is not interpreted yet."""

    seq: int
    type: int
    body: bytes


@dataclass
class DropCounters:
    """What a receiver dropped, by reason, and how many good frames it passed on."""

    frames: int = 0
    cobs: int = 0
    too_short: int = 0
    crc: int = 0
    overlong: int = 0
    malformed: int = 0
    unknown_type: int = 0

    @property
    def dropped(self) -> int:
        return self.cobs + self.too_short + self.crc + self.overlong + self.malformed

    @property
    def frame_errors(self) -> int:
        """Dropped frames other than CRC failures, as the device's ``rx_frame_errors`` counts
        them (an unknown type is answered with NAK UNKNOWN_TYPE, so it is not counted here)."""
        return self.cobs + self.too_short + self.overlong + self.malformed

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


def encode_payload(seq: int, msg: Message) -> bytes:
    """``seq | type | body | crc`` for a message (not yet COBS-encoded)."""
    if not 0 <= seq <= 255:
        raise ValueError(f"seq {seq} is outside 0..255")
    head = bytes((seq, message_type(msg))) + encode_body(msg)
    if len(head) - 2 > MAX_BODY:
        raise ValueError(f"body of {len(head) - 2} bytes exceeds {MAX_BODY}")
    return head + _CRC.pack(crc16(head))


def encode_frame(seq: int, msg: Message) -> bytes:
    """The bytes on the wire for ``msg`` with ``seq``: ``COBS(payload) 0x00``."""
    return bytes(cobs.encode(encode_payload(seq, msg))) + b"\0"


def encode_raw(seq: int, mtype: int, body: bytes) -> bytes:
    """Wire bytes for an arbitrary type and body (for NAK tests and fault injection)."""
    head = bytes((seq, mtype)) + body
    return bytes(cobs.encode(head + _CRC.pack(crc16(head)))) + b"\0"


def decode_payload(payload: bytes) -> DecodedFrame:
    """Check length and CRC of a COBS-decoded payload."""
    if len(payload) < 4:
        raise DecodeError("too_short", f"payload of {len(payload)} bytes is shorter than 4")
    head = payload[:-2]
    if crc16(head) != _CRC.unpack_from(payload, len(payload) - 2)[0]:
        raise DecodeError("crc", "CRC mismatch")
    return DecodedFrame(head[0], head[1], head[2:])


def decode_message(frame: DecodedFrame) -> Message:
    """Interpret a frame's body by its type; raises :class:`DecodeError` if it does not fit."""
    fast = _FIXED.get(frame.type)
    if fast is not None and len(frame.body) == fast[2]:
        return fast[0]._make(fast[1].unpack(frame.body))
    mtype = _TYPES.get(frame.type)
    if mtype is None:
        raise DecodeError("unknown_type", f"unknown message type 0x{frame.type:02X}")
    if not body_length_ok(mtype, len(frame.body)):
        raise DecodeError(
            "malformed", f"{mtype.name} body of {len(frame.body)} bytes has the wrong length"
        )
    return decode_body(mtype, frame.body)


class FrameDecoder:
    """Splits a byte stream into checked frames, resynchronising at every 0x00.

    Feed it whatever the port returned; it returns the frames completed by those bytes. Frames
    whose COBS decoding fails, that are shorter than 4 bytes or whose CRC does not match are
    dropped and counted; more than :data:`MAX_WIRE_RUN` bytes without a delimiter are discarded
    up to the next 0x00. Corruption therefore never costs more than the frame it hit.
    """

    __slots__ = ("_buf", "_discarding", "counters")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._discarding = False
        self.counters = DropCounters()

    def reset(self) -> None:
        """Forget a partial frame (after reopening the port)."""
        self._buf.clear()
        self._discarding = False

    def feed(self, data: bytes) -> list[DecodedFrame]:
        out: list[DecodedFrame] = []
        parts = data.split(b"\0")
        tail = parts.pop()  # bytes after the last delimiter: an unfinished frame
        counters = self.counters
        for part in parts:
            chunk = part
            if self._discarding:
                self._discarding = False
                continue
            if self._buf:
                self._buf += chunk
                chunk = bytes(self._buf)
                self._buf.clear()
            if not chunk:
                continue
            if len(chunk) > MAX_WIRE_RUN:
                counters.overlong += 1
                continue
            try:
                payload = cobs_decode(chunk)
            except CobsError:
                counters.cobs += 1
                continue
            if len(payload) < 4:
                counters.too_short += 1
                continue
            head = payload[:-2]
            if crc_hqx(head, 0xFFFF) != payload[-2] | (payload[-1] << 8):
                counters.crc += 1
                continue
            counters.frames += 1
            out.append(DecodedFrame(head[0], head[1], bytes(head[2:])))
        if tail and not self._discarding:
            self._buf += tail
            if len(self._buf) > MAX_WIRE_RUN:
                self._buf.clear()
                self._discarding = True
                counters.overlong += 1
        return out
