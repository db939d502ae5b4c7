"""``sim://`` for ``serial.serial_for_url``: the simulator as an in-process serial port.

* ``sim://`` — a fresh simulator owned by the port (closed with it); query parameters
  ``seed``, ``speed``, ``handpiece``, ``scenario`` (a file path), ``baud`` with ``pace``.
  Unplugging does not destroy the device: when the port is closed while its simulator is
  unplugged (a ``disconnect`` fault, or a replug), the simulator lives on and the next open of
  the same URL in this process attaches to it again, as a host re-opening a real port finds
  the unit it had (or the one that was plugged in instead).
* ``sim://<name>`` — attach to a running simulator created with ``Simulator(name=...)`` (or
  its automatic name; ``Simulator.url()`` gives the URL).

It behaves like a port: ``read(n)`` honours the timeout, ``in_waiting``, ``write``, ``flush``,
``reset_input_buffer``, ``close``; one host at a time (a second open raises ``SerialException``
"port busy"); a simulated unplug raises ``SerialException`` on the next read or write.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
import urllib.parse
from typing import TYPE_CHECKING, Any

from serial.serialutil import (
    PortNotOpenError,
    SerialBase,
    SerialException,
    SerialTimeoutException,
    Timeout,
    to_bytes,
)

from simulator import registry

if TYPE_CHECKING:
    from simulator.core import Simulator

_DISCONNECTED = (
    "device reports readiness to read but returned no data (device disconnected or "
    "multiple access on port?)"
)
_PARAMS = ("seed", "speed", "handpiece", "scenario", "baud", "pace")
#: Owned simulators whose port was closed while they were unplugged, by URL: the next open of
#: that URL re-attaches to the same unit.
_UNPLUGGED: dict[str, Simulator] = {}
#: Owned simulators attached to an open port now, by URL (the latest open last).
_ATTACHED: dict[str, list[Simulator]] = {}
_attached_lock = threading.Lock()


def owned_simulator(url: str) -> Simulator | None:
    """The simulator a port opened on the anonymous ``url`` (``sim://``, ``sim://?speed=..``)
    owns in this process now: the one attached to the latest open port of that exact URL, or
    the one waiting unplugged for the next open; None when there is none (never opened,
    closed). For fault injection from the same process (the UI's training panel)."""
    with _attached_lock:
        for sim in reversed(_ATTACHED.get(url, [])):
            if not sim.closed:
                return sim
    waiting = _UNPLUGGED.get(url)
    return waiting if waiting is not None and not waiting.closed else None


def _parse(url: str) -> tuple[str, dict[str, Any]]:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() != "sim":
        raise SerialException(f"expected a sim:// URL, not {url!r}")
    name = urllib.parse.unquote(parts.netloc + parts.path.rstrip("/"))
    kwargs: dict[str, Any] = {}
    for key, values in urllib.parse.parse_qs(parts.query, keep_blank_values=True).items():
        value = values[-1]
        try:
            if key == "seed":
                kwargs["seed"] = int(value)
            elif key == "speed":
                kwargs["speed"] = float(value)
            elif key == "baud":
                kwargs["baud"] = int(value)
            elif key == "pace":
                kwargs["pace"] = value.lower() in ("", "1", "true", "yes", "on")
            elif key in ("handpiece", "scenario"):
                kwargs[key] = value
            else:
                raise SerialException(
                    f"unknown option {key!r} in {url!r}; sim:// takes {', '.join(_PARAMS)}"
                )
        except ValueError:
            raise SerialException(f"option {key}={value!r} in {url!r} is not a number") from None
    if name and kwargs:
        raise SerialException(
            f"{url!r}: options only apply to a fresh simulator (sim://?...); "
            f"{name!r} is already configured"
        )
    return name, kwargs


class Serial(SerialBase):  # type: ignore[misc]  # pyserial ships no type hints
    """An in-process port to a simulator; see the module docstring."""

    def open(self) -> None:
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:  # type: ignore[has-type]
            raise SerialException("Port is already open.")
        from simulator.core import Simulator

        name, kwargs = _parse(self._port)
        self._owned: Simulator | None = None
        if name:
            sim = registry.lookup(name)
            if sim is None:
                known = ", ".join(registry.names()) or "none"
                raise SerialException(
                    f"could not open port {self._port}: no simulator named {name!r} "
                    f"(running: {known}); create one with Simulator(name={name!r})"
                )
        else:
            sim = _UNPLUGGED.get(self._port)
            if sim is None or sim.closed:
                try:
                    sim = Simulator(**kwargs)
                except ValueError as exc:
                    raise SerialException(f"could not open port {self._port}: {exc}") from None
            self._owned = sim
        try:
            self._endpoint = sim._inproc()
            self._sock, self._token = self._endpoint.attach()
        except SerialException:
            if self._owned is not None and not self._keep_unplugged(self._owned):
                self._owned.close()
            raise
        _UNPLUGGED.pop(self._port, None)
        if self._owned is not None:
            with _attached_lock:
                _ATTACHED.setdefault(self._port, []).append(self._owned)
        self._sim = sim
        self._sock.setblocking(False)
        self._rx = bytearray()
        self._eof = False
        self._cancel_r, self._cancel_w = os.pipe()
        os.set_blocking(self._cancel_r, False)
        os.set_blocking(self._cancel_w, False)
        self.is_open = True

    def close(self) -> None:
        if not self.is_open:
            return
        self.is_open = False
        self.cancel_read()
        with contextlib.suppress(OSError):
            self._sock.close()
        for fd in (self._cancel_r, self._cancel_w):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._endpoint.detach(self._token)
        if self._owned is not None:
            with _attached_lock:
                attached = _ATTACHED.get(self._port, [])
                if self._owned in attached:
                    attached.remove(self._owned)
                if not attached:
                    _ATTACHED.pop(self._port, None)
        if self._owned is not None and not self._keep_unplugged(self._owned):
            self._owned.close()

    def _keep_unplugged(self, sim: Simulator) -> bool:
        """An unplugged owned simulator outlives its port (see the module docstring)."""
        if sim.closed or not sim._gone():
            return False
        _UNPLUGGED[self._port] = sim
        return True

    def _reconfigure_port(self) -> None:
        """Baud rate, parity and the like mean nothing in process; accepted and ignored."""

    # --- reading --------------------------------------------------------------------------

    def _fill(self) -> None:
        """Move what the socket holds into the buffer without blocking."""
        while not self._eof:
            try:
                chunk = self._sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._eof = True
                return
            self._rx += chunk

    def _raise_if_gone(self) -> None:
        if self._eof and not self._rx:
            raise SerialException(_DISCONNECTED)

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        self._fill()
        self._raise_if_gone()
        return len(self._rx)

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        timeout = Timeout(self._timeout)
        while True:
            if not self.is_open:
                raise PortNotOpenError()
            self._fill()
            if len(self._rx) >= size or (self._eof and self._rx):
                break
            self._raise_if_gone()
            if timeout.expired():
                break
            try:
                ready, _, _ = select.select(
                    [self._sock.fileno(), self._cancel_r], [], [], timeout.time_left()
                )
            except (OSError, ValueError):
                # Closed by another thread while we waited.
                raise PortNotOpenError() from None
            if self._cancel_r in ready:
                with contextlib.suppress(OSError):
                    os.read(self._cancel_r, 4096)
                break
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    def cancel_read(self) -> None:
        """Wake a read() waiting in another thread; it returns what it has."""
        with contextlib.suppress(OSError, AttributeError):
            os.write(self._cancel_w, b"\0")

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        self._fill()
        self._rx.clear()

    # --- writing --------------------------------------------------------------------------

    def write(self, data: Any) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        view = memoryview(to_bytes(data))
        total = len(view)
        timeout = Timeout(self._write_timeout)
        while view:
            try:
                n = self._sock.send(view)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as exc:
                if exc.errno in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                    raise SerialException(f"write failed: {_DISCONNECTED}") from None
                raise SerialException(f"write failed: {exc}") from None
            view = view[n:]
            if not view:
                break
            if timeout.expired():
                raise SerialTimeoutException("Write timeout")
            select.select([], [self._sock], [], timeout.time_left())
        return total

    def flush(self) -> None:
        """Bytes are with the simulator as soon as write() returns."""
        if not self.is_open:
            raise PortNotOpenError()

    def reset_output_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()

    @property
    def out_waiting(self) -> int:
        return 0

    # --- modem lines: a simulated USB CDC-ACM port has none that matter -------------------

    def _update_break_state(self) -> None:
        """Ignored."""

    def _update_rts_state(self) -> None:
        """Ignored."""

    def _update_dtr_state(self) -> None:
        """Ignored."""

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True
