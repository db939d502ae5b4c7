"""Every conformance vector encodes and decodes byte-exact; the bad frames are rejected."""

from __future__ import annotations

from typing import Any

import pytest
from cobs import cobs

from controller.wire import (
    FrameDecoder,
    Nak,
    crc16,
    decode_message,
    encode_frame,
)
from controller.wire import messages as m
from controller.wire.codec import encode_payload
from tests.conftest import DATA

CLASSES: dict[str, type[m.Message]] = {
    "HELLO": m.Hello,
    "GET_STATUS": m.GetStatus,
    "HEARTBEAT": m.Heartbeat,
    "SET_TELEMETRY": m.SetTelemetry,
    "CONFIGURE_STEP": m.ConfigureStep,
    "START": m.Start,
    "PAUSE": m.Pause,
    "RESUME": m.Resume,
    "STOP": m.Stop,
    "ESTOP": m.Estop,
    "CLEAR_FAULTS": m.ClearFaults,
    "SET_AMPLITUDE": m.SetAmplitude,
    "ACK": m.Ack,
    "NAK": m.Nak,
    "HELLO_REPLY": m.HelloReply,
    "STATUS": m.Status,
    "TELEMETRY": m.Telemetry,
    "EVENT_FAULT_RAISED": m.Event,
    "EVENT_STATE_CHANGED": m.Event,
}


def _frames() -> list[dict[str, Any]]:
    import json

    return list(json.loads((DATA / "device-interface-vectors.json").read_text())["frames"])


def test_crc_check_value(vectors: dict[str, Any]) -> None:
    check = vectors["crc_check"]
    assert crc16(check["input_ascii"].encode()) == int(check["crc16"], 16)


def test_every_message_type_has_a_vector() -> None:
    names = {f["name"] for f in _frames()}
    assert set(CLASSES) == names


@pytest.mark.parametrize("frame", _frames(), ids=lambda f: f["name"])
def test_encode_is_byte_exact(frame: dict[str, Any]) -> None:
    msg = CLASSES[frame["name"]](**frame["fields"])
    assert m.message_type(msg) == frame["type"]
    assert m.encode_body(msg).hex() == frame["body_hex"]
    assert encode_payload(frame["seq"], msg).hex() == frame["payload_hex"]
    assert encode_frame(frame["seq"], msg).hex() == frame["wire_hex"]


@pytest.mark.parametrize("frame", _frames(), ids=lambda f: f["name"])
def test_decode_is_exact(frame: dict[str, Any]) -> None:
    decoder = FrameDecoder()
    out = decoder.feed(bytes.fromhex(frame["wire_hex"]))
    assert len(out) == 1
    assert out[0].seq == frame["seq"]
    assert out[0].type == frame["type"]
    assert out[0].body.hex() == frame["body_hex"]
    assert decode_message(out[0]) == CLASSES[frame["name"]](**frame["fields"])
    assert decoder.counters.dropped == 0


def test_frames_split_across_reads_and_back_to_back() -> None:
    stream = b"".join(bytes.fromhex(f["wire_hex"]) for f in _frames())
    decoder = FrameDecoder()
    got = []
    for i in range(0, len(stream), 7):
        got.extend(decoder.feed(stream[i : i + 7]))
    assert [f.seq for f in got] == [f["seq"] for f in _frames()]


@pytest.mark.parametrize("case", ["all_zero_3", "no_zero_254", "no_zero_255", "trailing_zero"])
def test_cobs_vectors(vectors: dict[str, Any], case: str) -> None:
    (vec,) = [c for c in vectors["cobs"] if c["name"] == case]
    assert cobs.encode(bytes.fromhex(vec["decoded_hex"])).hex() == vec["encoded_hex"]
    assert cobs.decode(bytes.fromhex(vec["encoded_hex"])).hex() == vec["decoded_hex"]


def test_cobs_single_zero(vectors: dict[str, Any]) -> None:
    (vec,) = [c for c in vectors["cobs"] if c["name"] == "single_zero"]
    assert cobs.encode(b"\0").hex() == vec["encoded_hex"]


@pytest.mark.parametrize(
    ("name", "counter"),
    [("crc_flipped", "crc"), ("too_short", "too_short"), ("cobs_overrun", "cobs")],
)
def test_bad_frames_are_dropped_and_counted(
    vectors: dict[str, Any], name: str, counter: str
) -> None:
    (vec,) = [b for b in vectors["bad_frames"] if b["name"] == name]
    decoder = FrameDecoder()
    assert decoder.feed(bytes.fromhex(vec["wire_hex"])) == []
    assert getattr(decoder.counters, counter) == 1
    assert decoder.counters.dropped == 1


def test_empty_frame_is_ignored_silently(vectors: dict[str, Any]) -> None:
    (vec,) = [b for b in vectors["bad_frames"] if b["name"] == "empty_frame"]
    decoder = FrameDecoder()
    assert decoder.feed(bytes.fromhex(vec["wire_hex"])) == []
    assert decoder.counters.dropped == 0


def test_oversize_run_then_good_frame(vectors: dict[str, Any]) -> None:
    (vec,) = [b for b in vectors["bad_frames"] if b["name"] == "oversize_no_delimiter_then_good"]
    wire = bytes.fromhex(vec["wire_hex"])
    for chunk in (len(wire), 1, 13, 100):
        decoder = FrameDecoder()
        out = []
        for i in range(0, len(wire), chunk):
            out.extend(decoder.feed(wire[i : i + chunk]))
        assert [(f.seq, f.type) for f in out] == [(2, 2)]
        assert decoder.counters.overlong == 1


def test_refused_request_replies_decode_as_their_naks(vectors: dict[str, Any]) -> None:
    for case in vectors["refused_requests"]:
        decoder = FrameDecoder()
        (frame,) = decoder.feed(bytes.fromhex(case["expected_reply_wire_hex"]))
        assert decode_message(frame) == Nak(**case["expected_nak"])
        # The request passes CRC but does not fit its type (or the type is unknown).
        (request,) = FrameDecoder().feed(bytes.fromhex(case["request_wire_hex"]))
        assert request.seq == frame.seq
