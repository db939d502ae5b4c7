"""``epm sim`` as a user runs it: a subprocess that prints one JSON line and stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import serial

from controller.cli import main
from controller.wire import FrameDecoder, Hello, HelloReply, decode_message, encode_frame

ROOT = Path(__file__).parents[2]
TIMEOUT = 20


def _epm(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "controller", "sim", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.fixture
def epm_sim() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=TIMEOUT)


def _ready(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line, proc.stderr.read() if proc.stderr else ""
    info: dict[str, object] = json.loads(line)
    return info


def test_epm_sim_prints_its_url_and_stops_cleanly_on_sigint(
    epm_sim: list[subprocess.Popen[str]],
) -> None:
    proc = _epm("--seed", "4", "--control", "0")
    epm_sim.append(proc)
    info = _ready(proc)
    assert set(info) >= {"url", "control", "serial", "boot_id"}
    assert str(info["serial"]).startswith("SIM-")
    assert str(info["control"]).startswith("tcp://127.0.0.1:")
    url = str(info["url"])
    port = serial.Serial(url, timeout=0.05, exclusive=True)
    try:
        port.reset_input_buffer()
        port.write(encode_frame(1, Hello(1, "cli-test")))
        decoder = FrameDecoder()
        reply = None
        for _ in range(200):
            frames = [f for f in decoder.feed(port.read(port.in_waiting or 1)) if f.seq == 1]
            if frames:
                reply = decode_message(frames[0])
                break
        assert isinstance(reply, HelloReply) and reply.boot_id == info["boot_id"]
    finally:
        port.close()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out == ""  # the one JSON line was all
    assert "stopped" in err
    assert not Path(url).exists()  # the pty link is gone with it


def test_epm_sim_over_tcp_stops_on_sigterm(epm_sim: list[subprocess.Popen[str]]) -> None:
    proc = _epm("--tcp", "0", "--handpiece", "comb", "--speed", "5")
    epm_sim.append(proc)
    info = _ready(proc)
    assert str(info["url"]).startswith("socket://127.0.0.1:")
    port = serial.serial_for_url(str(info["url"]), timeout=0.05)
    try:
        port.write(encode_frame(1, Hello(1, "t")))
        decoder = FrameDecoder()
        reply = None
        for _ in range(200):
            frames = [f for f in decoder.feed(port.read(port.in_waiting or 1)) if f.seq == 1]
            if frames:
                reply = decode_message(frames[0])
                break
        assert isinstance(reply, HelloReply) and reply.handpiece == 3
    finally:
        port.close()
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0


def test_a_bad_scenario_is_located_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nevents:\n  - at_s: 2\n    fault: overtemp\n    target_c: 20\n")
    assert main(["sim", "--scenario", str(bad)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{bad}:5:5: events[0].target_c: Input should be greater than 41" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pace"], "--pace needs --baud"),
        (["--baud", "0"], "--baud 0 must be a positive rate"),
        (["--speed", "0"], "--speed 0 must be above 0"),
        (["--tcp", "70000"], "is not a TCP port"),
        (["--tcp", "0", "--pty-link", "/tmp/x"], "--pty-link only applies to the pty"),
        (["--control", "99999"], "--control 99999 is not a TCP port"),
    ],
)
def test_bad_options_exit_2_with_a_reason(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sim", *args]) == 2
    out, err = capsys.readouterr()
    assert message in err and out == ""
