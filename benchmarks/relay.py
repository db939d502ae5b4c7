"""A byte-pacing relay: a serial line's baud-rate timing between two ptys, which have none.

A pty hands a write to the other side at once, whatever baud rate the two ends set. The relay
sits between a host and a device and gives each direction the timing of an 8N1 line at
``baud``: a byte written by one side reaches the other no sooner than ``10 / baud`` seconds
after the previous byte finished (or after it was written, on an idle line), so a frame of
``n`` bytes takes ``n × 10 / baud`` from the sender's write to its last byte arriving.

* **Host side**: a pty the relay creates; the host opens its slave (:attr:`Relay.host_path`).
* **Device side**: either a pty the relay creates, whose slave a device opens
  (:attr:`Relay.device_path`; the pymodbus server, the bare echo), or an existing tty the relay
  opens (``device=PATH``: the simulator's own pty, which it serves from the master side).

One thread per direction waits in ``select()`` on its source, stamps what arrives with
``perf_counter`` (monotonic), and writes each byte once it is due. Bytes inside a long burst go
out in slices of at most :data:`SLICE_S`; the last byte queued (a frame's end, when the sender
has written nothing after it) is timed exactly: the thread sleeps until :data:`SPIN_S` before
it is due, then busy-waits, still reading its source. Nothing is ever written early.

The relay measures its own overhead: for every burst end, how late its last byte was written
after it was due (``lateness``), per direction. It also times each side's turnaround: from the
moment it handed on a burst's end to the first byte of the other side's next burst (the
device's processing of a request, the host's from a reply to its next request). It never looks
at the bytes.

Run it in a process of its own (its busy-wait would otherwise share the measured program's
GIL): ``python -m benchmarks.relay --baud 115200 [--device PATH]`` prints one JSON line
(``{"host": ..., "device": ...}``); then it answers each line on its standard input with one
JSON line: ``stats`` (the figures since the last ``stats``, then starts them anew), ``peek``
(the same without starting anew), ``forget`` (the next bytes each side sends are not an answer
to what it was sent before: call it after a pause). End of input stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import select
import sys
import threading
import time
import tty
from typing import Any

BITS_PER_BYTE = 10
#: Busy-wait this long before a burst's last byte is due (a sleep may overshoot by ~0.1 ms).
SPIN_S = 0.0003
#: Bytes inside a burst longer than this are handed on in slices of it (never early).
SLICE_S = 0.0005
#: Idle wait between checks of the stop flag.
IDLE_S = 0.1
#: Lateness samples kept per direction between two ``stats`` calls.
MAX_SAMPLES = 200_000
_PR_SET_TIMERSLACK = 29


def _tight_timer_slack() -> None:
    """Ask Linux to wake this thread within 1 µs of a timeout (default slack is 50 µs)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_TIMERSLACK, 1, 0, 0, 0)


def _percentile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class _Direction:
    """One direction of the line: read ``src`` and write each byte to ``dst`` once it is due."""

    def __init__(self, name: str, src: int, dst: int, baud: int, stop: threading.Event) -> None:
        self.name = name
        self.src, self.dst = src, dst
        self.byte_s = BITS_PER_BYTE / baud
        self._stop = stop
        #: Bytes read and not yet written. They are taken as back to back on the line, the
        #: last ending at ``_line_free``: exact unless the relay fell behind, when an earlier
        #: byte may be taken to end later than it did (late, never early).
        self._queue = bytearray()
        #: When the line is free again (the last queued byte's end).
        self._line_free = -1.0
        self._lock = threading.Lock()
        self.lateness: list[float] = []
        #: The other direction, and when this one last handed on the end of a burst (the far
        #: side has it all from then on); an answer is timed from there.
        self.peer: _Direction | None = None
        self.last_end: float | None = None
        #: How long the far side of ``peer`` took to answer: from ``peer.last_end`` to the first
        #: byte of the next burst read here (its processing, plus the relay's wake-up).
        self.answers: list[float] = []
        self.bytes = 0
        self.bursts = 0
        self.thread = threading.Thread(target=self._run, name=f"relay-{name}", daemon=True)

    # --- timing ----------------------------------------------------------------------------

    def _arrived(self, data: bytes, now: float) -> None:
        """``data`` was written by the sender at ``now``: it follows the line's last byte."""
        self._queue += data
        self._line_free = max(now, self._line_free) + len(data) * self.byte_s

    def _due_count(self, now: float) -> int:
        """How many queued bytes have finished on the line by ``now``."""
        if not self._queue:
            return 0
        if now >= self._line_free:
            return len(self._queue)
        # Bytes from the end backwards: the last ends at _line_free, each earlier one byte_s
        # sooner.
        pending = int((self._line_free - now) / self.byte_s) + 1
        return max(0, len(self._queue) - pending)

    def _next_due(self) -> float:
        """When the first queued byte finishes on the line."""
        return self._line_free - (len(self._queue) - 1) * self.byte_s

    # --- the thread ------------------------------------------------------------------------

    def _read(self, now: float) -> None:
        try:
            data = os.read(self.src, 65536)
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:  # the far end closed its side for a moment
                time.sleep(0.001)
                return
            raise
        if data:
            peer = self.peer
            if not self._queue and now >= self._line_free and peer is not None:
                answered, peer.last_end = peer.last_end, None
                if answered is not None and len(self.answers) < MAX_SAMPLES:
                    self.answers.append(now - answered)
            self._arrived(data, now)

    def _write_due(self) -> None:
        now = time.perf_counter()
        n = self._due_count(now)
        if n == 0:
            return
        last = n == len(self._queue)
        try:
            written = os.write(self.dst, self._queue[:n])
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno == errno.EIO:
                return
            raise
        if last and written == n:
            with self._lock:
                if len(self.lateness) < MAX_SAMPLES:
                    self.lateness.append(now - self._line_free)
                self.bursts += 1
            self.last_end = time.perf_counter()
        del self._queue[:written]
        with self._lock:
            self.bytes += written

    def _run(self) -> None:
        _tight_timer_slack()
        src = self.src
        while not self._stop.is_set():
            now = time.perf_counter()
            if not self._queue:
                readable, _, _ = select.select([src], [], [], IDLE_S)
                if readable:
                    self._read(time.perf_counter())
                continue
            end = self._line_free
            target = min(end, max(self._next_due(), now + SLICE_S))
            exact = target >= end
            wait = target - now - (SPIN_S if exact else 0.0)
            if wait > 0:
                readable, _, _ = select.select([src], [], [], wait)
                if readable:
                    self._read(time.perf_counter())
                    continue
            if exact:
                # Busy-wait the last stretch, still reading (select with no timeout releases
                # the GIL, so the other direction's thread is not held up).
                while time.perf_counter() < target and not self._stop.is_set():
                    readable, _, _ = select.select([src], [], [], 0)
                    if readable:
                        self._read(time.perf_counter())
                        break
                else:
                    self._write_due()
                continue
            self._write_due()

    def forget(self) -> None:
        """Time no answer to what was handed on before now (a pause is not an answer)."""
        self.last_end = None

    def stats(self, reset: bool) -> dict[str, Any]:
        with self._lock:
            late, answers = sorted(self.lateness), sorted(self.answers)
            nbytes, bursts = self.bytes, self.bursts
            if reset:
                self.lateness, self.answers = [], []
                self.bytes = self.bursts = 0
        return {
            "bytes": nbytes,
            "bursts": bursts,
            "late_us": _us(late),
            "answer_us": _us(answers),
        }


def _us(ordered: list[float]) -> dict[str, float]:
    if not ordered:
        return {"n": 0}
    return {
        "n": len(ordered),
        "p50": round(_percentile(ordered, 0.50) * 1e6, 1),
        "p99": round(_percentile(ordered, 0.99) * 1e6, 1),
        "max": round(ordered[-1] * 1e6, 1),
    }


class Relay:
    """The relay's two ptys and two threads (see the module docstring). A context manager."""

    def __init__(self, baud: int, device: str | None = None) -> None:
        self.baud = baud
        self._fds: list[int] = []
        host_master, host_slave = self._pty()
        self.host_path = os.ttyname(host_slave)
        if device is None:
            dev_master, dev_slave = self._pty()
            self.device_path: str | None = os.ttyname(dev_slave)
            dev_fd = dev_master
        else:
            dev_fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            self._fds.append(dev_fd)
            tty.setraw(dev_fd)
            self.device_path = None
        self._stop = threading.Event()
        self.to_device = _Direction("to-device", host_master, dev_fd, baud, self._stop)
        self.to_host = _Direction("to-host", dev_fd, host_master, baud, self._stop)
        self.to_device.peer, self.to_host.peer = self.to_host, self.to_device

    def _pty(self) -> tuple[int, int]:
        # We keep a descriptor on the slave so the master never reads EIO between opens.
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self._fds += [master, slave]
        return master, slave

    def start(self) -> Relay:
        self.to_device.thread.start()
        self.to_host.thread.start()
        return self

    def stats(self, reset: bool = True) -> dict[str, Any]:
        """Per direction: bytes and bursts handed on, how late each burst's end went out, and
        how long the far side took to answer (``to_device``: the host's turnaround from a
        reply to its next request; ``to_host``: the device's from a request to its reply)."""
        return {
            "to_device": self.to_device.stats(reset),
            "to_host": self.to_host.stats(reset),
        }

    def forget(self) -> None:
        self.to_device.forget()
        self.to_host.forget()

    def close(self) -> None:
        self._stop.set()
        for direction in (self.to_device, self.to_host):
            if direction.thread.is_alive():
                direction.thread.join(1.0)
        for fd in self._fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds = []

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay", description=__doc__)
    parser.add_argument("--baud", type=int, required=True)
    parser.add_argument("--device", help="an existing tty to relay to (default: a new pty)")
    args = parser.parse_args(argv)
    with Relay(args.baud, args.device) as relay:
        print(json.dumps({"host": relay.host_path, "device": relay.device_path}), flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "forget":
                relay.forget()
                print("{}", flush=True)
            elif command in ("stats", "peek"):
                print(json.dumps(relay.stats(reset=command == "stats")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
