"""``epm monitor``: live listening on a pty and reading spy:// captures (hexdump and raw)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cobs import cobs

from controller.cli import main
from controller.link import Link
from controller.link.capture import RX, TX, parse_capture
from controller.wire import encode_frame
from controller.wire import messages as m
from controller.wire.constants import MsgType
from controller.wire.messages import encode_body
from tests.wire_fakes.fake_device import FakeOnPty
from tests.wire_fakes.fixtures import Recorder

Fakes = Callable[..., FakeOnPty]
Links = Callable[..., tuple[Link, Recorder]]

HELLO_REPLY = m.HelloReply(
    1, "EPM-1", "SIM-1", 1, 0, 0, 0x1234, 1200, 10000, 50, 2000, 1, 5000, 1_200_000, 3, 1000, 1
)


def lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_capture_of_a_real_session_is_decoded_with_directions(
    fakes: Fakes, links: Links, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = fakes(telemetry_hz=100)
    capture = tmp_path / "session.txt"
    link, rec = links(f"spy://{fake.path}?file={capture}")
    link.open()
    link.request(
        m.ConfigureStep(7, 2, 0, 400, 500, 500, 100, 0, 0, 0, 0, 5000, 600_000, 1), epoch=link.epoch
    )
    rec.wait_telemetry(3)
    link.close()
    assert main(["monitor", "--file", str(capture)]) == 0
    out = lines(capsys)
    host = [line for line in out if " H>D " in line]
    assert re.match(r"^\s+\d+\.\d{3} H>D seq=1 HELLO proto_version=1 host_id='epm'$", host[0])
    assert any("D>H seq=1 HELLO_REPLY proto_version=1 model='EPM-1'" in line for line in out)
    assert any("H>D seq=2 GET_STATUS" in line for line in out)
    configure = next(line for line in out if "CONFIGURE_STEP" in line)
    assert (
        "waveform=BI_SQUARE polarity=POSITIVE" in configure
        and "handpiece=SCALP_ROLLER" in configure
    )
    assert any("D>H seq=3 ACK cmd_type=CONFIGURE_STEP" in line for line in out)
    telemetry = [line for line in out if "TELEMETRY" in line]
    assert telemetry and all("D>H seq=0" in line and "contact=OK" in line for line in telemetry)
    assert any("EVENT" in line and "arg=IDLE->READY" in line for line in out)
    assert not any("DROPPED" in line for line in out)


def test_hexdump_parser_splits_directions_and_skips_control_lines() -> None:
    content = (
        b"000000.000 Q-RX cancel_read\n"
        b"000000.010 TX   0000  03 01 02 00                                       ....\n"
        b"000000.020 RX   0000  00 01 02 03 04 05 06 07  08 09 0A 0B 0C 0D 0E 0F"
        b"  ................\n"
        b"000000.020 RX   0010  41 42                                             AB\n"
        b"000000.030 RX   <empty>\n"
    )
    chunks = parse_capture(content)
    assert [(c.t, c.direction) for c in chunks] == [(0.010, TX), (0.020, RX)]
    assert chunks[0].data == b"\x03\x01\x02\x00"
    assert chunks[1].data == bytes(range(16)) + b"AB"


def test_raw_capture_with_colour_marks_directions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capture = tmp_path / "raw.bin"
    capture.write_bytes(
        b"\x1b[31m"
        + encode_frame(5, m.Hello(1, "clinic"))
        + b"\x1b[32m"
        + encode_frame(5, HELLO_REPLY)
        + encode_frame(0, m.Event(9, 100, 3, 0b10001))
    )
    assert main(["monitor", "--file", str(capture)]) == 0
    out = lines(capsys)
    assert len(out) == 3
    assert "H>D seq=5 HELLO proto_version=1 host_id='clinic'" in out[0]
    assert "D>H seq=5 HELLO_REPLY" in out[1] and "serial='SIM-1'" in out[1]
    assert "D>H seq=0 EVENT dseq=9 t_ms=100 event=FAULT_RAISED arg=ESTOP|OVERTEMP" in out[2]


def test_raw_capture_without_colour_infers_direction_and_reports_drops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = encode_body(m.Status(1, 3, 0, 7, 10, 20, 1, 400, 0, 0))
    corrupted = cobs.encode(b"\x04\x83" + body + b"\xde\xad") + b"\x00"  # wrong CRC
    capture = tmp_path / "plain.bin"
    capture.write_bytes(
        encode_frame(4, m.GetStatus())
        + bytes(corrupted)
        + encode_frame(4, m.Nak(MsgType.START, 3, 0))
    )
    assert main(["monitor", "--file", str(capture)]) == 0
    out = lines(capsys)
    assert "H>D seq=4 GET_STATUS" in out[0]
    assert "DROPPED 1 frame(s): CRC error" in out[1]
    assert "D>H seq=4 NAK cmd_type=START code=BAD_STATE detail=0" in out[2]


def test_count_stops_early(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "many.bin"
    capture.write_bytes(b"".join(encode_frame(i, m.Heartbeat()) for i in range(1, 20)))
    assert main(["monitor", "--file", str(capture), "--count", "4"]) == 0
    assert len(lines(capsys)) == 4


def test_live_port_is_only_listened_to(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    fake = fakes(telemetry_hz=200)
    assert main(["monitor", fake.path, "--count", "3", "--duration", "10"]) == 0
    out = lines(capsys)
    assert len(out) == 3 and all("D>H seq=0 TELEMETRY" in line for line in out)
    assert fake.device.rx() == []  # not even a HELLO was sent


def test_live_duration_ends_a_quiet_watch(fakes: Fakes, capsys: pytest.CaptureFixture[str]) -> None:
    fake = fakes()
    assert main(["monitor", fake.path, "--duration", "0.2"]) == 0
    assert lines(capsys) == []


@pytest.mark.parametrize(
    ("argv", "code", "text"),
    [
        (["monitor"], 2, "either a port URL or --file"),
        (["monitor", "/dev/x", "--file", "y"], 2, "either a port URL or --file"),
        (["monitor", "--file", "/nonexistent/capture.txt"], 1, "cannot read capture"),
        (["monitor", "/nonexistent/ttyUSB7"], 1, "No serial port at /nonexistent/ttyUSB7"),
        (["monitor", "/dev/x", "--count", "0"], 2, "--count must be at least 1"),
    ],
)
def test_bad_input_gets_a_clear_message(
    argv: list[str], code: int, text: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == code
    assert text in capsys.readouterr().err
