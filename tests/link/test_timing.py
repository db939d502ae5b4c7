"""Wire-time arithmetic against hand-computed figures and the real encoder."""

from __future__ import annotations

import pytest

from controller.link.timing import (
    frame_wire_bytes,
    give_up_after,
    max_telemetry_rate,
    pick_telemetry_rate,
    t_reply,
    wire_time,
)
from controller.wire import encode_frame
from controller.wire import messages as m
from controller.wire.codec import encode_raw
from controller.wire.constants import MsgType
from controller.wire.messages import encode_body


@pytest.mark.parametrize(
    "msg",
    [
        m.GetStatus(),
        m.Hello(1, "epm"),
        m.Hello(1, "x" * 16),
        m.ConfigureStep(1, 1, 0, 400, 500, 500, 100, 0, 0, 0, 0, 5000, 2000, 1),
        m.Status(1, 3, 0, 7, 100, 2000, 1, 400, 0, 0),
        m.Telemetry(9, 2, 3, 3, 0, 7, 100, 400, 2000, 1000, 330, 1),
        m.Nak(0x10, 4, 6),
    ],
)
def test_frame_wire_bytes_matches_the_encoder(msg: m.Message) -> None:
    assert len(encode_frame(5, msg)) == frame_wire_bytes(len(encode_body(msg)))


def test_telemetry_is_34_bytes_on_the_wire() -> None:
    assert frame_wire_bytes(28) == 34


def test_longest_payload_gets_two_cobs_code_bytes() -> None:
    # 254-byte payload without zeros: two COBS code bytes, plus the delimiter.
    body = bytes(range(1, 251))
    assert frame_wire_bytes(250) == 257
    assert len(encode_raw(1, 0x80, body)) <= frame_wire_bytes(250)


def test_t_reply_get_status_at_115200_by_hand() -> None:
    # request: 0-byte body -> 6 bytes; reply STATUS: 22-byte body -> 28 bytes.
    expected = 0.050 + 2 * (6 + 28) * 10 / 115200
    assert t_reply(MsgType.GET_STATUS, 6, 115200) == pytest.approx(expected)
    assert expected == pytest.approx(0.0559, abs=1e-4)


def test_t_reply_ack_requests_use_nak_as_longest_reply() -> None:
    # START: 6 bytes; longest reply NAK: 3-byte body -> 9 bytes.
    assert t_reply(MsgType.START, 6, 921600) == pytest.approx(0.050 + 2 * 15 * 10 / 921600)


def test_give_up_after_is_four_reply_windows() -> None:
    assert give_up_after(MsgType.HEARTBEAT, 6, 115200) == pytest.approx(
        4 * t_reply(MsgType.HEARTBEAT, 6, 115200)
    )


def test_wire_time_rejects_nonsense_baud() -> None:
    assert wire_time(10, 100) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="positive"):
        wire_time(1, 0)


@pytest.mark.parametrize(
    ("baud", "device_max", "expected"),
    [(115200, 1000, 169), (230400, 1000, 338), (921600, 1000, 1000), (921600, 500, 500)],
)
def test_max_telemetry_rate(baud: int, device_max: int, expected: int) -> None:
    assert max_telemetry_rate(baud, device_max) == expected
    assert expected * 34 * 10 <= baud / 2


def test_pick_telemetry_rate_caps_and_refuses() -> None:
    assert pick_telemetry_rate(115200, 1000) == 169
    assert pick_telemetry_rate(115200, 1000, 50) == 50
    assert pick_telemetry_rate(115200, 1000, 500) == 169
    with pytest.raises(ValueError, match="at least 1 Hz"):
        pick_telemetry_rate(115200, 1000, 0)
    with pytest.raises(ValueError, match="cannot carry telemetry"):
        pick_telemetry_rate(300, 1000)
