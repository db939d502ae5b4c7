"""Our link beside Modbus RTU (pymodbus), through the same byte-pacing relay.

Run ``python -m benchmarks peer_bench`` (or ``make bench``, or ``python -m
benchmarks.peer_bench``). At 115200 and 921600 baud, in one run:

* **Floor.** A bare echo behind the relay (:mod:`benchmarks.relay`): a process that answers
  each request of N bytes with M bytes and does nothing else, timed by a client that writes and
  reads the raw pty. Two sizes: ours (a GET_STATUS frame with the host's leading 0x00, 7 bytes,
  answered by a STATUS frame, 28 bytes) and Modbus's (a Read Holding Registers request, 8 bytes,
  answered with 11 registers, 27 bytes). It is what the relay, the ptys and three Python
  processes cost with no protocol at all.
* **Round trip.** Ours: ``DeviceClient.status()`` (GET_STATUS → STATUS, 22 bytes of payload)
  against ``epm sim`` in its own process, telemetry at 1 Hz (the lowest rate there is: the
  Modbus exchange has no stream beside it). Modbus: a pymodbus RTU server in its own process,
  holding as many 16-bit registers as STATUS carries (22 / 2 = 11), read with function 0x03 by
  the sync ``ModbusSerialClient`` and by the async ``AsyncModbusSerialClient`` (a server each).
  :data:`TRIALS` round trips per stack after :data:`WARMUP`, p50/p99, each as a ratio to its
  own wire time (``bytes × 10 / baud``: ours 6 + 28 bytes as the interface document counts
  them, Modbus 8 + 27 bytes with their CRCs).
* **Where our time goes.** Our round trip step by step (:meth:`OurStack.split`), and each
  side's turnaround as the relay sees it (from handing a frame's last byte on to the first
  byte of the answer), for every stack: the device's (echo, simulator, pymodbus server) and the
  host's (from a reply to the next request).
* **With telemetry.** Our round trip with telemetry at the highest rate allowed, as during a
  session.
* **Telemetry.** Ours: pushed at the highest rate the interface document allows at that baud
  (``rate × 34 × 10 ≤ baud / 2``, at most the device's 1000 Hz) for :data:`TELEMETRY_S`,
  samples received per second and ``dseq`` losses. Modbus: the same 28-byte payload (14
  registers) polled by each client as fast as the read completes for :data:`POLL_S`.

Each stack has a relay of its own (the same code and settings: a line is point to point), so
that all five stay connected and their round trips are taken in :data:`ROUNDS` rounds, in turn:
whatever else the machine does meanwhile falls on each of them alike.

Modbus RTU's 3.5-character silence (t3.5; 1.75 ms fixed above 19200 baud) ends a frame on a
real RTU line. pymodbus does not keep it (its framers find a frame's end by its length) and the
relay does not add it, so the measured Modbus figures have none; their wire time counts bytes
only, the same basis as ours, and the report adds the floor a conforming RTU line would have
(bytes + 2 × t3.5: the server's wait to see the request end, and the silence before the next
request).

Every party is a program of its own: the clients measured here, each relay, each device (the
echo, ``epm sim``, the pymodbus server), so none shares another's GIL. A result's ``failures``
lists correctness problems (a wrong register value, a failed read, a resend, a dropped
frame); the timing targets are reported, not failed.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import os
import random
import select
import statistics
import subprocess
import sys
import time
import tty
from collections.abc import Callable
from typing import Any, TextIO

from controller.device import DeviceClient
from controller.link import frame_wire_bytes, max_telemetry_rate, wire_time
from controller.link.health import percentile
from controller.wire.constants import MsgType
from controller.wire.messages import fixed_body_length

BAUDS = (115200, 921600)
TRIALS = 1000
#: The round trips of every stack are taken in this many rounds, in turn.
ROUNDS = 20
WARMUP = 30
#: Reads closer together than this are one piece of a reply (the relay's slices are 0.5 ms).
CLUSTER_S = 0.0002
TELEMETRY_S = 10.0
POLL_S = 5.0
SEED = 11

#: Payloads of STATUS and TELEMETRY (interface §4) and the 16-bit registers that hold them.
STATUS_BODY = fixed_body_length(MsgType.STATUS) or 22
TELEMETRY_BODY = fixed_body_length(MsgType.TELEMETRY) or 28
STATUS_REGS = (STATUS_BODY + 1) // 2
TELEMETRY_REGS = (TELEMETRY_BODY + 1) // 2
#: Where the Modbus server keeps them (holding registers, device id 1).
STATUS_ADDR, TELEMETRY_ADDR, DEVICE_ID = 0, 100, 1

#: Our exchange on the wire: GET_STATUS (6 bytes) and STATUS (28); the host's leading 0x00
#: (interface §2, rev. 1.1) goes through the relay too but the document's wire times leave it out.
OUR_REQUEST = frame_wire_bytes(0)
OUR_REPLY = frame_wire_bytes(STATUS_BODY)
LEADING_ZERO = 1


def modbus_reply_bytes(regs: int) -> int:
    """Read Holding Registers reply: address, function, byte count, 2 per register, CRC."""
    return 3 + 2 * regs + 2


#: Read Holding Registers request: address, function, start, count, CRC.
MODBUS_REQUEST = 8


def modbus_t35(baud: int) -> float:
    """t3.5 of the Modbus serial-line spec: 3.5 characters of 11 bits, 1.75 ms above 19200."""
    return 0.00175 if baud > 19200 else 3.5 * 11 / baud


# --- helper processes ------------------------------------------------------------------------


class _Helper:
    """A program of its own that prints one JSON line once ready."""

    def __init__(self, args: list[str], *, stdin: bool = False, what: str) -> None:
        self.what = what
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ready = self._line(15.0)

    def _line(self, timeout: float) -> dict[str, Any]:
        out = self.proc.stdout
        assert out is not None
        readable, _, _ = select.select([out], [], [], timeout)
        line = out.readline() if readable else ""
        if not line:
            self.close()
            raise RuntimeError(f"{self.what} did not answer")
        result: dict[str, Any] = json.loads(line)
        return result

    def ask(self, command: str, timeout: float = 5.0) -> dict[str, Any]:
        stdin: TextIO | None = self.proc.stdin
        assert stdin is not None
        stdin.write(command + "\n")
        stdin.flush()
        return self._line(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _relay(baud: int, device: str | None = None) -> _Helper:
    args = ["-m", "benchmarks.relay", "--baud", str(baud)]
    if device is not None:
        args += ["--device", device]
    return _Helper(args, stdin=True, what="the relay")


def _role(*args: object) -> list[str]:
    return ["-m", "benchmarks.peer_bench", "--role", *(str(a) for a in args)]


# --- the device-side roles (run as ``python -m benchmarks.peer_bench --role ...``) ------------


def _open_raw(path: str) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def serve_echo(path: str, request: int, reply: int) -> None:
    """Answer every ``request`` bytes read from ``path`` with ``reply`` bytes, at once."""
    fd = _open_raw(path)
    answer = b"\x5a" * reply
    print(json.dumps({"ready": path}), flush=True)
    got = 0
    while True:
        data = os.read(fd, 4096)
        if not data:
            return
        got += len(data)
        while got >= request:
            got -= request
            os.write(fd, answer)


def register_values() -> tuple[list[int], list[int]]:
    """The values the Modbus server holds (and the clients check): STATUS and TELEMETRY."""
    status = [(0x1000 + 17 * i) & 0xFFFF for i in range(STATUS_REGS)]
    telemetry = [(0x2000 + 31 * i) & 0xFFFF for i in range(TELEMETRY_REGS)]
    return status, telemetry


def serve_modbus(path: str, baud: int) -> None:
    """A pymodbus RTU server on ``path`` with the STATUS and TELEMETRY registers."""
    from pymodbus.server import ModbusSerialServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    status, telemetry = register_values()
    device = SimDevice(
        DEVICE_ID,
        simdata=[
            SimData(STATUS_ADDR, values=status, datatype=DataType.REGISTERS),
            SimData(TELEMETRY_ADDR, values=telemetry, datatype=DataType.REGISTERS),
        ],
    )

    async def serve() -> None:
        server = ModbusSerialServer(device, port=path, baudrate=baud, timeout=1)
        await server.serve_forever(background=True)
        print(json.dumps({"ready": path}), flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


# --- the stacks ------------------------------------------------------------------------------


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _summary(samples: list[float], wire_s: float) -> dict[str, float]:
    ordered = sorted(samples)
    p50, p99 = percentile(ordered, 0.50), percentile(ordered, 0.99)
    return {
        "n": len(ordered),
        "p50_ms": _ms(p50),
        "p99_ms": _ms(p99),
        "mean_ms": _ms(statistics.fmean(ordered)),
        "max_ms": _ms(ordered[-1]),
        "wire_ms": _ms(wire_s),
        "ratio_p50": round(p50 / wire_s, 2),
        "ratio_p99": round(p99 / wire_s, 2),
    }


def _timed(call: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        samples.append(time.perf_counter() - t0)
    return samples


def _check(registers: list[int], want: list[int], what: str, failures: list[str]) -> None:
    if registers != want and len(failures) < 20:
        failures.append(f"{what}: read {registers}, the server holds {want}")


class Stack(abc.ABC):
    """One request/reply stack behind a relay of its own: ``block(n)`` times n round trips."""

    name = ""
    label = ""
    wire_bytes = 0

    def __init__(self, baud: int, relay: _Helper, failures: list[str]) -> None:
        self.baud, self.relay, self.failures = baud, relay, failures
        self.errors = 0

    @abc.abstractmethod
    def block(self, n: int) -> list[float]:
        """``n`` round trips in a row, each one's seconds (every stack has its own)."""

    def wire_s(self) -> float:
        return wire_time(self.wire_bytes, self.baud)


class EchoStack(Stack):
    """The floor: raw pty writes and reads, a bare echo behind the relay."""

    def __init__(
        self,
        baud: int,
        relay: _Helper,
        failures: list[str],
        *,
        request: int,
        reply: int,
        wire_bytes: int,
        name: str,
    ) -> None:
        super().__init__(baud, relay, failures)
        self.name, self.wire_bytes = name, wire_bytes
        self.label = f"floor: bare echo, {request} -> {reply} bytes"
        self.request, self.reply = b"\xa5" * request, reply
        self.fd = _open_raw(relay.ready["host"])

    def _once(self) -> None:
        os.write(self.fd, self.request)
        got = 0
        while got < self.reply:
            got += len(os.read(self.fd, 4096))

    def block(self, n: int) -> list[float]:
        return _timed(self._once, n)

    def close(self) -> None:
        os.close(self.fd)


class ModbusSyncStack(Stack):
    name = "modbus_sync"
    label = "pymodbus ModbusSerialClient"
    wire_bytes = MODBUS_REQUEST + modbus_reply_bytes(STATUS_REGS)

    def __init__(self, baud: int, relay: _Helper, failures: list[str]) -> None:
        from pymodbus.client import ModbusSerialClient

        super().__init__(baud, relay, failures)
        self.values = register_values()
        self.client = ModbusSerialClient(relay.ready["host"], baudrate=baud, timeout=1, retries=0)
        if not self.client.connect():
            raise RuntimeError(f"pymodbus could not open {relay.ready['host']}")

    def _read(self, addr: int, count: int, want: list[int]) -> None:
        reply = self.client.read_holding_registers(addr, count=count, device_id=DEVICE_ID)
        if reply.isError():
            self.errors += 1
            return
        _check(list(reply.registers), want, f"{self.baud} {self.name}", self.failures)

    def block(self, n: int) -> list[float]:
        return _timed(lambda: self._read(STATUS_ADDR, STATUS_REGS, self.values[0]), n)

    def poll(self, seconds: float) -> tuple[int, float]:
        """Read the telemetry registers back to back for ``seconds``: (reads, elapsed)."""
        polls = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            self._read(TELEMETRY_ADDR, TELEMETRY_REGS, self.values[1])
            polls += 1
        return polls, time.perf_counter() - t0

    def close(self) -> None:
        self.client.close()


class ModbusAsyncStack(ModbusSyncStack):
    """``AsyncModbusSerialClient`` on an event loop of its own; each block runs inside it."""

    name = "modbus_async"
    label = "pymodbus AsyncModbusSerialClient"

    def __init__(self, baud: int, relay: _Helper, failures: list[str]) -> None:
        from pymodbus.client import AsyncModbusSerialClient

        Stack.__init__(self, baud, relay, failures)
        self.values = register_values()
        self.loop = asyncio.new_event_loop()
        host = relay.ready["host"]

        async def connect() -> Any:
            client = AsyncModbusSerialClient(
                host, baudrate=baud, timeout=1, retries=0, reconnect_delay=0
            )
            if not await client.connect():
                raise RuntimeError(f"pymodbus could not open {host}")
            return client

        self.aclient = self.loop.run_until_complete(connect())

    async def _aread(self, addr: int, count: int, want: list[int]) -> None:
        reply = await self.aclient.read_holding_registers(addr, count=count, device_id=DEVICE_ID)
        if reply.isError():
            self.errors += 1
            return
        _check(list(reply.registers), want, f"{self.baud} {self.name}", self.failures)

    def block(self, n: int) -> list[float]:
        async def trials() -> list[float]:
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                await self._aread(STATUS_ADDR, STATUS_REGS, self.values[0])
                samples.append(time.perf_counter() - t0)
            return samples

        return self.loop.run_until_complete(trials())

    def poll(self, seconds: float) -> tuple[int, float]:
        async def polls() -> tuple[int, float]:
            count = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                await self._aread(TELEMETRY_ADDR, TELEMETRY_REGS, self.values[1])
                count += 1
            return count, time.perf_counter() - t0

        return self.loop.run_until_complete(polls())

    def close(self) -> None:
        async def close() -> None:
            self.aclient.close()
            await asyncio.sleep(0.05)

        self.loop.run_until_complete(close())
        self.loop.close()


class OurStack(Stack):
    """``DeviceClient.status()`` against ``epm sim`` (its own process) behind the relay."""

    name = "ours"
    label = "ours: DeviceClient.status()"
    wire_bytes = OUR_REQUEST + OUR_REPLY

    def __init__(self, baud: int, relay: _Helper, failures: list[str]) -> None:
        super().__init__(baud, relay, failures)
        self.client = DeviceClient(relay.ready["host"], baud, handshake_timeout=3.0)
        self.info = self.client.connect()
        self.boot_id = self.info.boot_id
        self.allowed = max_telemetry_rate(baud, self.info.capabilities.max_telemetry_hz)
        self.client.set_telemetry(1)  # the lowest rate: Modbus has no stream beside it
        self.with_frame: list[float] = []

    def _once(self) -> None:
        status = self.client.status()
        if status.boot_id != self.boot_id:
            self.errors += 1

    def block(self, n: int) -> list[float]:
        """``n`` round trips; those that shared the line with a TELEMETRY frame (received while
        the request was out) are also kept apart in :attr:`with_frame`."""
        health = self.client.link._core.health  # a counter read outside the timed part
        samples = []
        for _ in range(n):
            before = health.count("telemetry_received")
            t0 = time.perf_counter()
            self._once()
            samples.append(time.perf_counter() - t0)
            if health.count("telemetry_received") != before:
                self.with_frame.append(samples[-1])
        return samples

    def split(self, n: int) -> dict[str, Any]:
        """Where a round trip's time goes, step by step (p50/p99 of each step, in µs).

        Timed by wrapping the link's own steps for the duration (as ``link_bench`` does; a
        wrapper costs well under a microsecond): the port's ``write`` and ``read``, the core's
        ``take_completions`` and ``Link.request``. Steps: ``to_write`` (the caller's request
        to the port's write: waiter, locks, core, frame), ``port_write`` (pyserial's write),
        ``device_relay_wire`` (until the reader's read returns the first bytes of the reply's
        last piece: relay, wire, the simulator's turnaround, the reader waking; the relay hands
        a long reply on in slices of 0.5 ms and the reader takes each as it comes),
        ``reader`` (from there until the core has the completion: the reader's reads of that
        piece, decoding, matching), ``handover`` (until ``Link.request`` returns in the
        caller's thread), ``typed_status`` (the device layer's ``Status``). ``reads`` is how
        many reads the reader needed for that last piece.
        """
        link = self.client.link
        port = link._port  # the benchmark times the link's own port, as session_bench does
        core = link._core
        assert port is not None
        marks: dict[str, float] = {}
        reads: list[float] = []
        counts: list[int] = []
        real_write, real_read = port.write, port.read
        real_take, real_request = core.take_completions, link.request

        def write(data: bytes) -> Any:
            marks.setdefault("write_in", time.perf_counter())
            out = real_write(data)
            marks.setdefault("write_out", time.perf_counter())
            return out

        def read(size: int = 1) -> bytes:
            data = real_read(size)
            if data and "write_out" in marks:
                reads.append(time.perf_counter())
            return data

        def take() -> Any:
            out = real_take()
            if out and "completed" not in marks and reads:
                marks["completed"] = time.perf_counter()
                i = len(reads) - 1
                while i > 0 and reads[i] - reads[i - 1] < CLUSTER_S:
                    i -= 1
                marks["reply_wake"] = reads[i]
                counts.append(len(reads) - i)
            return out

        def request(*args: Any, **kwargs: Any) -> Any:
            out = real_request(*args, **kwargs)
            marks.setdefault("returned", time.perf_counter())
            return out

        steps = (
            ("to_write", "start", "write_in"),
            ("port_write", "write_in", "write_out"),
            ("device_relay_wire", "write_out", "reply_wake"),
            ("reader", "reply_wake", "completed"),
            ("handover", "completed", "returned"),
            ("typed_status", "returned", "end"),
        )
        parts: dict[str, list[float]] = {name: [] for name, _, _ in steps}
        totals: list[float] = []
        port.write, port.read = write, read  # type: ignore[method-assign]
        core.take_completions = take  # type: ignore[method-assign]
        link.request = request  # type: ignore[method-assign]
        try:
            for _ in range(n):
                marks.clear()
                reads.clear()
                marks["start"] = time.perf_counter()
                self._once()
                marks["end"] = time.perf_counter()
                if not all(k in marks for _, k, _ in steps):
                    continue
                for name, a, b in steps:
                    parts[name].append(marks[b] - marks[a])
                totals.append(marks["end"] - marks["start"])
        finally:
            port.write, port.read = real_write, real_read  # type: ignore[method-assign]
            core.take_completions = real_take  # type: ignore[method-assign]
            link.request = real_request  # type: ignore[method-assign]
        out: dict[str, Any] = {}
        for name, values in (*parts.items(), ("total", totals)):
            values.sort()
            out[name] = {
                "p50_us": round(percentile(values, 0.5) * 1e6, 1),
                "p99_us": round(percentile(values, 0.99) * 1e6, 1),
            }
        out["reads"] = {
            "p50": percentile(sorted(counts), 0.5),
            "max": max(counts, default=0),
        }
        return out

    def with_telemetry(self, n: int) -> dict[str, Any]:
        """Round trips with telemetry at the highest rate allowed, each after a random pause
        (a loop of back-to-back requests would lock onto the telemetry's period and meet a
        frame on the line every time)."""
        rng = random.Random(SEED)
        self.client.set_telemetry(self.allowed)
        time.sleep(0.3)
        period = 1.0 / self.allowed
        samples = []
        for _ in range(n):
            time.sleep(rng.uniform(0, period))
            t0 = time.perf_counter()
            self._once()
            samples.append(time.perf_counter() - t0)
        return _summary(samples, self.wire_s())

    def telemetry(self, seconds: float) -> dict[str, Any]:
        """Telemetry at the highest rate allowed for ``seconds``: received and lost."""
        self.client.set_telemetry(self.allowed)
        time.sleep(0.3)
        before = self.client.health()
        time.sleep(seconds)
        after = self.client.health()
        received = after.telemetry_received - before.telemetry_received
        lost = after.telemetry_lost - before.telemetry_lost
        return {
            "rate_hz": self.allowed,
            "seconds": seconds,
            "received": received,
            "lost": lost,
            "samples_per_s": round(received / seconds, 1),
            "loss_percent": round(100 * lost / max(1, received + lost), 3),
        }

    def close(self) -> None:
        health = self.client.health()
        self.client.close()
        if health.retransmissions:
            self.failures.append(f"{self.baud}: our link resent {health.retransmissions} requests")
        if health.frames_dropped:
            self.failures.append(f"{self.baud}: our link dropped {health.frames_dropped} frames")


# --- one baud rate ---------------------------------------------------------------------------


def _relay_figures(stats: dict[str, Any]) -> dict[str, Any]:
    return {
        "device_turnaround_us": stats["to_host"]["answer_us"],
        "bursts_to_host": stats["to_host"]["bursts"],
        "host_turnaround_us": stats["to_device"]["answer_us"],
        "late_us": {
            "to_device": stats["to_device"]["late_us"],
            "to_host": stats["to_host"]["late_us"],
        },
    }


def bench_baud(baud: int, failures: list[str]) -> dict[str, Any]:
    """Every stack at ``baud``: round trips interleaved, then ours alone, then telemetry."""
    with contextlib.ExitStack() as stack:

        def relay(device: str | None = None) -> _Helper:
            helper = _relay(baud, device)
            stack.callback(helper.close)
            return helper

        def device(args: list[str], what: str) -> _Helper:
            helper = _Helper(args, what=what)
            stack.callback(helper.close)
            return helper

        stacks: list[Stack] = []
        for name, request, reply, wire_bytes in (
            ("floor_ours", OUR_REQUEST + LEADING_ZERO, OUR_REPLY, OUR_REQUEST + OUR_REPLY),
            (
                "floor_modbus",
                MODBUS_REQUEST,
                modbus_reply_bytes(STATUS_REGS),
                MODBUS_REQUEST + modbus_reply_bytes(STATUS_REGS),
            ),
        ):
            r = relay()
            device(_role("echo", r.ready["device"], request, reply), "the echo")
            echo = EchoStack(
                baud, r, failures, request=request, reply=reply, wire_bytes=wire_bytes, name=name
            )
            stack.callback(echo.close)
            stacks.append(echo)
        for kind in (ModbusSyncStack, ModbusAsyncStack):
            r = relay()
            device(_role("modbus-server", r.ready["device"], baud), "the pymodbus server")
            peer = kind(baud, r, failures)
            stack.callback(peer.close)
            stacks.append(peer)
        sim_args = ["-m", "controller", "sim", "--baud", str(baud), "--seed", str(SEED)]
        sim_args += ["--control", "none", "--log-level", "warning"]
        sim = device(sim_args, "epm sim")
        r = relay(str(sim.ready["url"]))
        our = OurStack(baud, r, failures)
        stack.callback(our.close)
        stacks.append(our)

        # Round trips, interleaved: every stack gets its share of whatever else the machine is
        # doing at the time.
        for s in stacks:
            s.block(WARMUP)
            s.relay.ask("stats")
        our.with_frame.clear()
        samples: dict[str, list[float]] = {s.name: [] for s in stacks}
        for round_no in range(ROUNDS):
            shift = round_no % len(stacks)
            for s in stacks[shift:] + stacks[:shift]:
                s.relay.ask("forget")
                samples[s.name] += s.block(TRIALS // ROUNDS)
        out: dict[str, Any] = {"baud": baud, "rtt": {}}
        for s in stacks:
            out["rtt"][s.name] = {
                "label": s.label,
                "wire_bytes": s.wire_bytes,
                **_summary(samples[s.name], s.wire_s()),
                "relay": _relay_figures(s.relay.ask("stats")),
            }
        shared = sorted(our.with_frame)
        clean = sorted(samples["ours"])
        for t in shared:
            clean.remove(t)
        out["rtt"]["ours"]["telemetry_alongside"] = {
            "trials": len(shared),
            "their_rtt_ms": [_ms(t) for t in shared],
            "p99_ms_without_them": _ms(percentile(clean, 0.99)),
        }
        out["rtt"]["modbus_sync"]["rtu_floor_ms"] = _ms(
            wire_time(ModbusSyncStack.wire_bytes, baud) + 2 * modbus_t35(baud)
        )

        # Ours alone: where the time goes, with telemetry streaming, telemetry throughput.
        out["ours_split"] = our.split(TRIALS)
        out["ours_with_telemetry"] = our.with_telemetry(TRIALS)
        out["telemetry"] = {"ours": our.telemetry(TELEMETRY_S)}
        poll_bytes = MODBUS_REQUEST + modbus_reply_bytes(TELEMETRY_REGS)
        for s in stacks:
            if isinstance(s, ModbusSyncStack):
                polls, elapsed = s.poll(POLL_S)
                out["telemetry"][s.name] = {
                    "polls": polls,
                    "seconds": round(elapsed, 2),
                    "samples_per_s": round(polls / elapsed, 1),
                    "wire_bound_per_s": round(1 / wire_time(poll_bytes, baud), 1),
                    "rtu_bound_per_s": round(
                        1 / (wire_time(poll_bytes, baud) + 2 * modbus_t35(baud)), 1
                    ),
                }
                if s.errors:
                    failures.append(f"{baud}: {s.name}: {s.errors} reads failed")
        if our.errors:
            failures.append(f"{baud}: {our.errors} STATUS replies with another boot_id")
    out["targets"] = _targets(out)
    return out


def _targets(r: dict[str, Any]) -> dict[str, bool]:
    rtt = r["rtt"]
    verdict = {}
    for peer in ("modbus_sync", "modbus_async"):
        for q in ("p50", "p99"):
            verdict[f"ahead of {peer} at {q}"] = rtt["ours"][f"{q}_ms"] < rtt[peer][f"{q}_ms"]
    verdict["within 10 % of the floor at p50"] = (
        rtt["ours"]["p50_ms"] <= 1.10 * rtt["floor_ours"]["p50_ms"]
    )
    return verdict


def run() -> dict[str, Any]:
    """Every baud rate; print the figures and return them (``failures``: correctness only)."""
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    failures: list[str] = []
    started = time.perf_counter()
    results: dict[str, Any] = {
        "trials": TRIALS,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "bauds": {},
    }
    for baud in BAUDS:
        results["bauds"][baud] = bench_baud(baud, failures)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["failures"] = failures
    _print(results)
    return results


# --- printing --------------------------------------------------------------------------------


def _print(results: dict[str, Any]) -> None:
    print(
        f"Our link beside Modbus RTU (pymodbus), each through a byte-pacing relay; "
        f"{results['trials']} round trips per stack, interleaved in {ROUNDS} rounds; load average "
        f"{results['load_average_at_start']} at start, {results['load_average_at_end']} at end"
    )
    for baud, r in results["bauds"].items():
        floor = r["rtt"]["floor_ours"]["p50_ms"]
        print(
            f"\n{baud} baud: round trip                p50 ms   p99 ms  wire ms  p50/wire  "
            f"p99/wire  p50/floor  turnaround p50 (p99) us: device | host"
        )
        for s in r["rtt"].values():
            dev, host = s["relay"]["device_turnaround_us"], s["relay"]["host_turnaround_us"]
            print(
                f"  {s['label']:<36} {s['p50_ms']:7.3f}  {s['p99_ms']:7.3f}  {s['wire_ms']:6.3f}"
                f"  {s['ratio_p50']:8.2f}  {s['ratio_p99']:8.2f}  {s['p50_ms'] / floor:9.2f}  "
                f"{dev.get('p50')} ({dev.get('p99')}) | {host.get('p50')} ({host.get('p99')})"
            )
        alongside = r["rtt"]["ours"]["telemetry_alongside"]
        times = ", ".join(f"{t:.2f}" for t in alongside["their_rtt_ms"])
        print(
            f"  ours: {alongside['trials']} round trips shared the line with a 1 Hz TELEMETRY "
            f"frame{f' ({times} ms)' if times else ''}; p99 without them "
            f"{alongside['p99_ms_without_them']:.3f} ms"
        )
        print(
            f"  Modbus RTU with its silences (bytes + 2 x t3.5): "
            f"{r['rtt']['modbus_sync']['rtu_floor_ms']:.3f} ms"
        )
        w = r["ours_with_telemetry"]
        tlm = r["telemetry"]["ours"]
        print(
            f"  ours with telemetry at {tlm['rate_hz']} Hz (a random pause before each): "
            f"p50 {w['p50_ms']:.3f} ms, p99 {w['p99_ms']:.3f} ms"
        )
        split = r["ours_split"]
        print(
            "  ours step by step, p50 (p99) us: "
            + ", ".join(
                f"{k} {v['p50_us']} ({v['p99_us']})" for k, v in split.items() if k != "reads"
            )
            + f"; reader's reads for the reply's last piece: {split['reads']['p50']}"
        )
        print(
            f"  telemetry, ours pushed at {tlm['rate_hz']} Hz: {tlm['samples_per_s']} samples/s, "
            f"{tlm['lost']} lost of {tlm['received'] + tlm['lost']} ({tlm['loss_percent']} %)"
        )
        for peer in ("modbus_sync", "modbus_async"):
            p = r["telemetry"][peer]
            print(
                f"  telemetry, {r['rtt'][peer]['label']} polling back to back: "
                f"{p['samples_per_s']} samples/s (bound: {p['wire_bound_per_s']}/s by bytes, "
                f"{p['rtu_bound_per_s']}/s with 2 x t3.5)"
            )
        late = r["rtt"]["floor_ours"]["relay"]["late_us"]
        print(
            "  relay: a burst's end handed on late by p50/p99/max us: "
            + ", ".join(
                f"{k} {v.get('p50')}/{v.get('p99')}/{v.get('max')}" for k, v in late.items()
            )
            + " (floor run)"
        )
        print(
            "  targets: "
            + "; ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in r["targets"].items())
        )
    print(f"\n({results['seconds']} s)")
    for failure in results["failures"]:
        print(f"FAIL {failure}")


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--role"]:
        role, *rest = argv[1:]
        if role == "echo":
            serve_echo(rest[0], int(rest[1]), int(rest[2]))
        elif role == "modbus-server":
            serve_modbus(rest[0], int(rest[1]))
        else:
            raise SystemExit(f"unknown role {role}")
        return 0
    result = run()
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
