"""The interface vectors on the device's side: requests in, the exact replies out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from controller.wire import (
    FrameDecoder,
    Hello,
    HelloReply,
    MsgType,
    Nak,
    Status,
    decode_message,
    encode_frame,
)
from simulator import Simulator
from tests.conftest import DATA
from tests.simulator.helpers import Host


def _vectors() -> dict[str, Any]:
    import json

    return dict(json.loads((DATA / "device-interface-vectors.json").read_text()))


REFUSED = _vectors()["refused_requests"]
HOST_REQUESTS = [f for f in _vectors()["frames"] if 0x01 <= f["type"] <= 0x3F]


@pytest.mark.parametrize("vector", REFUSED, ids=lambda v: v["name"])
def test_refused_request_gets_the_exact_reply_bytes(
    make_sim: Callable[..., Simulator], vector: dict[str, Any]
) -> None:
    sim = make_sim()
    sim.read_messages()  # nothing but power-up output; the vector's seq was never used
    sim.host_write(bytes.fromhex(vector["request_wire_hex"]))
    out = sim.host_read()
    assert out.hex() == vector["expected_reply_wire_hex"]
    frame = FrameDecoder().feed(out)[0]
    assert decode_message(frame) == Nak(**vector["expected_nak"])


def test_refused_request_repeated_with_the_same_seq_gets_the_stored_reply(
    make_sim: Callable[..., Simulator],
) -> None:
    sim = make_sim()
    vector = REFUSED[0]
    sim.host_write(bytes.fromhex(vector["request_wire_hex"]))
    first = sim.host_read()
    sim.host_write(bytes.fromhex(vector["request_wire_hex"]))
    assert sim.host_read() == first


@pytest.mark.parametrize("vector", HOST_REQUESTS, ids=lambda v: v["name"])
def test_every_request_vector_is_answered_with_its_seq(
    make_sim: Callable[..., Simulator], vector: dict[str, Any]
) -> None:
    """Each request vector, sent to a fresh unit, gets exactly one reply carrying its seq."""
    sim = make_sim()
    sim.host_write(bytes.fromhex(vector["wire_hex"]))
    replies = [(s, m) for s, m in sim.read_messages() if s != 0]
    assert len(replies) == 1
    seq, reply = replies[0]
    assert seq == vector["seq"]
    expected = {
        MsgType.HELLO: HelloReply,
        MsgType.GET_STATUS: Status,
    }.get(MsgType(vector["type"]))
    if expected is not None:
        assert isinstance(reply, expected)
    else:
        assert getattr(reply, "cmd_type", None) == vector["type"]


def test_hello_reply_carries_epm1_capabilities(host: Host) -> None:
    reply = host.request(Hello(1, "epm-host"))
    assert isinstance(reply, HelloReply)
    assert reply.model == "EPM-1"
    assert reply.serial.startswith("SIM-") and reply.serial[4:].isdigit()
    assert len(reply.serial) == 10
    assert (reply.max_amplitude_dv, reply.max_current_ua) == (1200, 10_000)
    assert (reply.pulse_width_min_us, reply.pulse_width_max_us) == (50, 2000)
    assert (reply.frequency_min_hz, reply.frequency_max_hz) == (1, 5000)
    assert reply.max_step_ms == 1_200_000
    assert reply.waveforms == 0b11
    assert reply.max_telemetry_hz == 1000
    assert reply.handpiece == 1
    assert reply.boot_id == host.sim.boot_id


@pytest.mark.parametrize("bad", _vectors()["bad_frames"], ids=lambda v: v["name"])
def test_bad_frames_get_no_reply_and_are_counted(host: Host, bad: dict[str, Any]) -> None:
    replies = host.send_raw(bytes.fromhex(bad["wire_hex"]))
    status = host.status()
    name = bad["name"]
    if name == "oversize_no_delimiter_then_good":
        # The over-long run is dropped, the GET_STATUS after it answered (seq 2).
        assert [(s, type(m)) for s, m in replies] == [(2, Status)]
        assert status.rx_frame_errors == 1
    elif name == "empty_frame":
        assert replies == []
        assert (status.rx_crc_errors, status.rx_frame_errors) == (0, 0)
    elif name == "crc_flipped":
        assert replies == []
        assert (status.rx_crc_errors, status.rx_frame_errors) == (1, 0)
    else:
        assert replies == []
        assert (status.rx_crc_errors, status.rx_frame_errors) == (0, 1)


def test_wrong_body_length_counts_as_frame_error(host: Host) -> None:
    reply = host.raw_request(9, MsgType.GET_STATUS, b"\x01")
    assert reply == Nak(MsgType.GET_STATUS, 1, 0)
    assert host.status().rx_frame_errors == 1


def test_corruption_costs_one_frame_only(host: Host) -> None:
    good = encode_frame(5, Hello(1, "x"))
    broken = bytearray(encode_frame(4, Hello(1, "y")))
    broken[3] ^= 0x40
    replies = host.send_raw(bytes(broken) + good)
    assert [s for s, _ in replies] == [5]
