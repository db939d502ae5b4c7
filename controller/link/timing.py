"""Wire-time arithmetic: how long frames take at a baud rate, ``T_reply``, telemetry capacity.

The interface document fixes these formulas (§1, §3, §4); they live in one place so the link,
the device client, the benchmarks and the documentation all use the same numbers.
"""

from __future__ import annotations

from controller.wire.constants import (
    PAYLOAD_OVERHEAD,
    RETRIES,
    TELEMETRY_WIRE_BYTES,
    MsgType,
)
from controller.wire.messages import longest_reply_body

DEFAULT_BAUD = 115200
#: Fixed part of ``T_reply`` (interface §3).
T_REPLY_BASE_S = 0.050
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit


def frame_wire_bytes(body_len: int) -> int:
    """Bytes on the wire for a frame with a ``body_len``-byte body, at most (COBS + delimiter).

    COBS adds one code byte per started 254-byte block (at least one); the 0x00 delimiter
    adds another.
    """
    if body_len < 0:
        raise ValueError(f"body length {body_len} is negative")
    payload = body_len + PAYLOAD_OVERHEAD
    return payload + payload // 254 + 1 + 1


def wire_time(nbytes: int, baud: int) -> float:
    """Seconds ``nbytes`` take on the wire at ``baud`` (``bytes × 10 / baud``)."""
    if baud <= 0:
        raise ValueError(f"baud rate {baud} must be positive")
    return nbytes * BITS_PER_BYTE / baud


def t_reply(request: MsgType, request_wire_bytes: int, baud: int) -> float:
    """``T_reply`` for a request: 50 ms + 2 × (wire time of request + longest reply)."""
    reply_bytes = frame_wire_bytes(longest_reply_body(request))
    return T_REPLY_BASE_S + 2 * wire_time(request_wire_bytes + reply_bytes, baud)


def give_up_after(request: MsgType, request_wire_bytes: int, baud: int) -> float:
    """Time from the first send until the link declares itself lost (1 + 3 resends)."""
    return (RETRIES + 1) * t_reply(request, request_wire_bytes, baud)


def max_telemetry_rate(baud: int, max_telemetry_hz: int) -> int:
    """Highest telemetry rate the link can carry: ``rate × 34 × 10 ≤ baud / 2``, ≤ device max."""
    if baud <= 0:
        raise ValueError(f"baud rate {baud} must be positive")
    by_link = baud // (2 * TELEMETRY_WIRE_BYTES * BITS_PER_BYTE)
    return max(0, min(max_telemetry_hz, by_link))


def pick_telemetry_rate(baud: int, max_telemetry_hz: int, wanted_hz: int | None = None) -> int:
    """The telemetry rate to ask for: ``wanted_hz`` (default: as fast as allowed), capped.

    Raises ``ValueError`` when the link cannot carry even 1 Hz or ``wanted_hz`` is below 1.
    """
    cap = max_telemetry_rate(baud, max_telemetry_hz)
    if cap < 1:
        raise ValueError(
            f"at {baud} baud the link cannot carry telemetry (needs at least "
            f"{2 * TELEMETRY_WIRE_BYTES * BITS_PER_BYTE} baud); use 115200 baud or faster"
        )
    if wanted_hz is None:
        return cap
    if wanted_hz < 1:
        raise ValueError(f"telemetry rate {wanted_hz} Hz must be at least 1 Hz")
    return min(wanted_hz, cap)
