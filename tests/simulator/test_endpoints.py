"""The real endpoints: a pty opened by a raw pyserial client, TCP, and in-process ``sim://``.

These run on the wall clock, so they assert what arrives and in which order, waiting with
generous bounds; never how fast.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import serial

from controller.wire import (
    Ack,
    Estop,
    FrameDecoder,
    GetStatus,
    Hello,
    HelloReply,
    Message,
    MsgType,
    SetTelemetry,
    Start,
    State,
    Status,
    Telemetry,
    decode_message,
    encode_frame,
)
from simulator import Simulator
from simulator.linkfaults import TxQueue
from tests.simulator.helpers import STEP

WAIT = 5.0  # generous bound for anything to arrive on a loaded machine


class Client:
    """A raw pyserial host: writes frames, reads and decodes what comes back."""

    def __init__(self, port: Any) -> None:
        self.port = port
        self.decoder = FrameDecoder()
        self.seen: list[tuple[int, Message]] = []

    def pump(self) -> None:
        data = self.port.read(self.port.in_waiting or 1)
        for frame in self.decoder.feed(data):
            self.seen.append((frame.seq, decode_message(frame)))

    def wait_for(self, match: Callable[[int, Message], bool], timeout: float = WAIT) -> Message:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (seq, msg) in enumerate(self.seen):
                if match(seq, msg):
                    del self.seen[: i + 1]
                    return msg
            self.pump()
        raise AssertionError(f"nothing matched within {timeout} s; saw {self.seen[-5:]}")

    def request(self, seq: int, msg: Message) -> Message:
        self.port.write(encode_frame(seq, msg))
        return self.wait_for(lambda s, m: s == seq)

    def telemetry(self, count: int) -> list[Telemetry]:
        got: list[Telemetry] = []
        while len(got) < count:
            got.append(self.wait_for(lambda s, m: isinstance(m, Telemetry)))  # type: ignore[arg-type]
        return got


@pytest.fixture
def real_sim() -> Iterator[Callable[..., Simulator]]:
    made: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        kwargs.setdefault("seed", 3)
        sim = Simulator(**kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()


@contextlib.contextmanager
def opened(url: str, **kwargs: Any) -> Iterator[Client]:
    port = serial.serial_for_url(url, timeout=0.05, **kwargs)
    try:
        yield Client(port)
    finally:
        port.close()


def _hello_status(client: Client) -> None:
    hello = client.request(1, Hello(1, "test"))
    assert isinstance(hello, HelloReply) and hello.serial.startswith("SIM-")
    status = client.request(2, GetStatus())
    assert isinstance(status, Status) and status.state == State.IDLE
    assert status.boot_id == hello.boot_id


# --- pty ----------------------------------------------------------------------------------


def test_pty_round_trip_and_telemetry(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim(endpoint="pty")
    with opened(sim.url(), exclusive=True) as client:
        client.port.reset_input_buffer()
        _hello_status(client)
        frames = client.telemetry(3)
        assert [t.boot_id for t in frames] == [sim.boot_id] * 3
        dseqs = [t.dseq for t in frames]
        assert dseqs == sorted(dseqs)


def test_pty_survives_the_host_closing_and_reopening(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim(endpoint="pty")
    for _ in range(2):
        with opened(sim.url(), exclusive=True) as client:
            _hello_status(client)


def test_pty_is_exclusive_for_exclusive_opens(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim(endpoint="pty")
    with opened(sim.url(), exclusive=True), pytest.raises(serial.SerialException):
        serial.Serial(sim.url(), exclusive=True)


def test_pty_unplug_raises_on_the_host_and_the_link_comes_back(
    real_sim: Callable[..., Simulator],
) -> None:
    sim = real_sim(endpoint="pty")
    first_path = os.path.realpath(sim.url())
    with opened(sim.url(), exclusive=True) as client:
        _hello_status(client)
        sim.inject("disconnect", duration_s=0.3)
        deadline = time.monotonic() + WAIT
        # pyserial: read() raises SerialException, in_waiting the bare OSError (EIO) of the
        # ioctl - as with an unplugged USB adapter.
        with pytest.raises((serial.SerialException, OSError)):
            while time.monotonic() < deadline:
                client.pump()
    assert sim.wait_until(lambda s: s.snapshot()["connected"], WAIT)
    assert os.path.realpath(sim.url()).startswith("/dev/pts/")
    assert first_path.startswith("/dev/pts/")
    with opened(sim.url(), exclusive=True) as client:
        _hello_status(client)
    assert sim.disconnect_count == 1


def test_pty_drops_output_nobody_reads(real_sim: Callable[..., Simulator]) -> None:
    """A real unit's output is lost while no host reads; a pty would keep it: we flush it."""
    sim = real_sim(endpoint="pty")
    endpoint = sim.endpoint
    assert endpoint is not None
    with opened(sim.url()) as client:
        client.port.write(encode_frame(1, SetTelemetry(1000)))  # then stop reading
        assert sim.wait_until(lambda s: getattr(endpoint, "flushed_stale", 0) > 0, WAIT)
        client.port.reset_input_buffer()
        hello = client.request(2, Hello(1, "t"))
        assert isinstance(hello, HelloReply)


# --- TCP ----------------------------------------------------------------------------------


def test_tcp_round_trip_one_host_at_a_time(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim(endpoint="tcp")
    assert sim.url().startswith("socket://127.0.0.1:")
    with opened(sim.url()) as client:
        _hello_status(client)
        host, port = sim.url().removeprefix("socket://").split(":")
        second = socket.create_connection((host, int(port)), timeout=WAIT)
        with second:
            second.settimeout(WAIT)
            assert second.recv(100) == b""  # closed by the unit: busy
        assert isinstance(client.request(3, GetStatus()), Status)


def test_tcp_unplug_closes_the_connection(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim(endpoint="tcp")
    with opened(sim.url()) as client:
        _hello_status(client)
        sim.inject("disconnect", duration_s=0.2)
        deadline = time.monotonic() + WAIT
        with pytest.raises(serial.SerialException):
            while time.monotonic() < deadline:
                client.pump()
    assert sim.wait_until(lambda s: s.snapshot()["connected"], WAIT)
    with opened(sim.url()) as client:
        _hello_status(client)


# --- in-process sim:// --------------------------------------------------------------------


def test_sim_url_round_trip_and_estop_record(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim(name="bench-unit")
    assert sim.url() == "sim://bench-unit"
    with opened(sim.url()) as client:
        _hello_status(client)
        assert client.request(3, STEP) == Ack(MsgType.CONFIGURE_STEP)
        assert client.request(4, Start()) == Ack(MsgType.START)
        sent = time.perf_counter()
        assert client.request(5, Estop()) == Ack(MsgType.ESTOP)
    transitions = sim.output_transitions()
    assert [(t.on, t.cause) for t in transitions] == [(True, "START"), (False, "ESTOP")]
    estop_receipt = next(r for r in sim.request_receipts() if r.type == MsgType.ESTOP)
    assert sent <= estop_receipt.perf_s <= transitions[-1].perf_s


def test_sim_url_is_exclusive_and_reopens_at_once(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim()
    with opened(sim.url()), pytest.raises(serial.SerialException, match="port busy"):
        serial.serial_for_url(sim.url())
    with opened(sim.url()) as client:  # free again immediately after close
        _hello_status(client)


def test_sim_url_unplug_raises_serial_exception(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim()
    with opened(sim.url()) as client:
        _hello_status(client)
        sim.inject("disconnect", duration_s=None)
        with pytest.raises(serial.SerialException):
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                client.pump()
        with pytest.raises(serial.SerialException):
            client.port.write(encode_frame(9, GetStatus()))
    with pytest.raises(serial.SerialException, match="not present"):
        serial.serial_for_url(sim.url())
    sim.clear("disconnect")
    with opened(sim.url()) as client:
        _hello_status(client)


def test_sim_url_read_honours_the_timeout(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim()
    with opened(sim.url()) as client:
        sim.inject("silent", duration_s=60)
        client.port.reset_input_buffer()
        client.port.timeout = 0.05
        assert client.port.read(10) == b""
        assert client.port.in_waiting == 0
        client.port.timeout = 0
        assert client.port.read(10) == b""
        sim.clear("silent")
        client.port.timeout = 0.05
        assert client.wait_for(lambda s, m: isinstance(m, Telemetry))
        client.port.flush()


def test_sim_url_cancel_read_wakes_a_blocked_reader(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim()
    sim.inject("silent", duration_s=60)
    port = serial.serial_for_url(sim.url(), timeout=None)  # read() blocks until data
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(port.read(100)), daemon=True)
    try:
        reader.start()
        sim.wait_until(lambda s: True, 0.05)  # let the reader block in select()
        port.cancel_read()
        reader.join(WAIT)
        assert not reader.is_alive()
        assert result == [b""]
    finally:
        port.close()


def test_fresh_sim_url_with_options_is_owned_by_the_port() -> None:
    port = serial.serial_for_url("sim://?seed=9&handpiece=comb&speed=2", timeout=0.05)
    try:
        client = Client(port)
        hello = client.request(1, Hello(1, "t"))
        assert isinstance(hello, HelloReply) and hello.handpiece == 3
        owned = port._owned
        assert owned is not None and owned.seed == 9 and owned.speed == 2.0
    finally:
        port.close()
    assert owned.closed


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sim://no-such-unit", "no simulator named 'no-such-unit'"),
        ("sim://?colour=red", "unknown option 'colour'"),
        ("sim://?seed=abc", "not a number"),
        ("sim://?handpiece=brush", "unknown handpiece 'brush'"),
        ("sim://?speed=0", "speed 0.0 is outside"),
    ],
)
def test_bad_sim_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(serial.SerialException, match=message):
        serial.serial_for_url(url)


def test_a_virtual_simulator_has_no_port() -> None:
    sim = Simulator(clock="virtual", name="virtual-unit")
    try:
        with pytest.raises(serial.SerialException, match="virtual clock"):
            serial.serial_for_url("sim://virtual-unit")
        with pytest.raises(RuntimeError, match="virtual-clock simulator has no port"):
            sim.url()
    finally:
        sim.close()


def test_names_are_unique_until_closed(real_sim: Callable[..., Simulator]) -> None:
    real_sim(name="only-one")
    with pytest.raises(ValueError, match="already exists"):
        Simulator(name="only-one", clock="virtual")


# --- clock and pacing ---------------------------------------------------------------------


def test_speed_accelerates_simulated_time_only(real_sim: Callable[..., Simulator]) -> None:
    sim = real_sim(speed=100)
    assert sim.wait_until(lambda s: s.snapshot()["sim_ms"] >= 3000, WAIT)
    snap = sim.snapshot()
    assert snap["sim_ms"] > 10 * snap["link_ms"]


def test_pacing_releases_bytes_at_the_baud_rate() -> None:
    queue = TxQueue(baud=10_000, pace=True)  # 1 ms per byte
    queue.push(b"x" * 10, now_ms=0.0, delay_ms=0)
    queue.push(b"y" * 5, now_ms=0.0, delay_ms=0)
    assert queue.pop_due(9.9) == b""
    assert queue.pop_due(10.0) == b"x" * 10
    assert queue.pop_due(14.9) == b""
    assert queue.pop_due(15.0) == b"y" * 5
    unpaced = TxQueue(baud=10_000, pace=False)
    unpaced.push(b"z" * 100, now_ms=0.0, delay_ms=0)
    assert unpaced.pop_due(0.0) == b"z" * 100


def test_delay_never_reorders_frames() -> None:
    queue = TxQueue()
    queue.push(b"reply", now_ms=0.0, delay_ms=30)
    queue.push(b"event", now_ms=1.0, delay_ms=0)
    assert queue.pop_due(29.0) == b""
    assert queue.pop_due(30.0) == b"replyevent"
