"""The control socket: JSON lines over local TCP or a Unix socket."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.wire import Fault, State
from simulator import Simulator
from simulator.control import COMMANDS
from tests.simulator.helpers import Host, into_state


class ControlClient:
    def __init__(self, address: str) -> None:
        if address.startswith("tcp://"):
            host, port = address.removeprefix("tcp://").split(":")
            self.sock = socket.create_connection((host, int(port)), timeout=5)
        else:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(5)
            self.sock.connect(address.removeprefix("unix:"))
        self.reader = self.sock.makefile("rb")

    def send_line(self, line: bytes) -> dict[str, Any]:
        self.sock.sendall(line + b"\n")
        reply: dict[str, Any] = json.loads(self.reader.readline())
        return reply

    def __call__(self, **request: Any) -> dict[str, Any]:
        return self.send_line(json.dumps(request).encode())

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@pytest.fixture
def controlled(
    make_sim: Callable[..., Simulator],
) -> Iterator[tuple[Simulator, ControlClient]]:
    sim = make_sim(control=0)
    assert sim.control_address is not None and sim.control_address.startswith("tcp://127.0.0.1:")
    client = ControlClient(sim.control_address)
    yield sim, client
    client.close()


def test_ping_status_and_catalogue(controlled: tuple[Simulator, ControlClient]) -> None:
    sim, ctl = controlled
    assert ctl(cmd="ping") == {"ok": True, "pong": True}
    status = ctl(cmd="status")["status"]
    assert status["serial"] == sim.serial_number and status["state"] == "IDLE"
    faults = ctl(cmd="faults")["faults"]
    names = [f["fault"] for f in faults]
    assert "overtemp" in names and "disconnect" in names
    assert {f["kind"] for f in faults} == {"device", "link"}


def test_inject_flat_or_with_params_and_clear(
    controlled: tuple[Simulator, ControlClient],
) -> None:
    sim, ctl = controlled
    reply = ctl(cmd="inject", fault="output_stuck", amplitude_dv=70)
    assert reply["ok"] and reply["injected"]["amplitude_dv"] == 70
    assert sim.faults == Fault.OUTPUT_FAULT
    reply = ctl(cmd="inject", fault="drop", params={"direction": "rx", "count": 2})
    assert reply["ok"] and reply["injected"]["count"] == 2
    assert sorted(ctl(cmd="clear")["cleared"]) == ["drop/rx", "output_stuck"]
    assert sim.snapshot()["device_faults"] == []


def test_power_cycle_handpiece_and_reconnect(
    controlled: tuple[Simulator, ControlClient],
) -> None:
    sim, ctl = controlled
    old = sim.boot_id
    reply = ctl(cmd="power_cycle", selftest_fail=True)
    assert reply["ok"] and reply["boot_id"] == sim.boot_id != old
    assert sim.faults == Fault.SELFTEST
    ctl(cmd="power_cycle", selftest_fail=False)
    assert ctl(cmd="handpiece", attach="comb") == {"ok": True, "handpiece": "COMB"}
    assert ctl(cmd="handpiece", attach="none") == {"ok": True, "handpiece": "NONE"}
    assert ctl(cmd="inject", fault="disconnect", duration_s=None)["ok"]
    assert ctl(cmd="status")["status"]["connected"] is False
    assert ctl(cmd="reconnect") == {"ok": True}
    assert ctl(cmd="status")["status"]["connected"] is True


def test_timing_records(controlled: tuple[Simulator, ControlClient]) -> None:
    sim, ctl = controlled
    host = Host(sim)
    into_state(host, State.RUNNING)
    into_state(host, State.FAULT)
    transitions = ctl(cmd="transitions")["transitions"]
    assert [(t["on"], t["cause"]) for t in transitions] == [(True, "START"), (False, "ESTOP")]
    receipts = ctl(cmd="receipts", last=1)["receipts"]
    assert len(receipts) == 1 and receipts[0]["type"] == 0x15
    assert ctl(cmd="receipts", last=0)["receipts"] == []


@pytest.mark.parametrize(
    ("line", "error"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "a request is a JSON object"),
        (b'{"cmd": "explode"}', "unknown cmd 'explode'; use one of: ping"),
        (b'{"cmd": "inject"}', 'inject needs "fault"'),
        (b'{"cmd": "inject", "fault": "melt"}', "unknown fault 'melt'"),
        (b'{"cmd": "inject", "fault": "overtemp", "target_c": 3}', "target_c: Input should be"),
        (b'{"cmd": "inject", "fault": "drop"}', "exactly one of 'probability'"),
        (b'{"cmd": "handpiece", "attach": "brush"}', "unknown handpiece 'brush'"),
        (b'{"cmd": "power_cycle", "selftest_fail": "yes"}', "true or false"),
        (b'{"cmd": "transitions", "last": -1}', "non-negative integer"),
    ],
)
def test_bad_requests_get_a_clear_error_and_change_nothing(
    controlled: tuple[Simulator, ControlClient], line: bytes, error: str
) -> None:
    sim, ctl = controlled
    before = sim.snapshot()
    reply = ctl.send_line(line)
    assert reply["ok"] is False
    assert error in reply["error"]
    after = sim.snapshot()
    assert (after["state"], after["faults"], after["device_faults"], after["link_faults"]) == (
        before["state"],
        before["faults"],
        before["device_faults"],
        before["link_faults"],
    )
    assert ctl(cmd="ping")["ok"]  # the connection survives


def test_unix_socket_control(make_sim: Callable[..., Simulator], tmp_path: Path) -> None:
    path = tmp_path / "ctl.sock"
    sim = make_sim(control=str(path))
    assert sim.control_address == f"unix:{path}"
    client = ControlClient(sim.control_address)
    try:
        assert client(cmd="ping")["ok"]
        assert client(cmd="inject", fault="contact_lost")["ok"]
        assert sim.snapshot()["contact"] == "NONE"
    finally:
        client.close()
    sim.close()
    assert not path.exists()


def test_every_command_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "simulator.md").read_text()
    for command in COMMANDS:
        assert f"`{command}`" in doc, command
