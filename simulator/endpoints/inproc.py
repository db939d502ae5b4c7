"""The in-process endpoint behind ``sim://`` URLs: one socket pair per attached host.

A socket pair gives the host's ``Serial`` a real descriptor to wait on (read timeouts, EOF on
unplug) with no threads of its own. Attach and detach run on the host's thread under a lock;
only the runner closes device-side sockets, so a descriptor is never closed while the runner's
select() may still be watching it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from serial import SerialException

from simulator.endpoints.base import Endpoint, SocketWriter, log


class InprocEndpoint(Endpoint):
    kind = "inproc"

    def __init__(self, name: str, wake: Callable[[], None]) -> None:
        self.name = name
        self._wake = wake
        self._lock = threading.Lock()
        self._conn: SocketWriter | None = None
        self._retired: list[socket.socket] = []
        self._token = 0
        self.gone = False

    @property
    def url(self) -> str:
        return f"sim://{self.name}"

    # --- host thread ----------------------------------------------------------------------

    def attach(self) -> tuple[socket.socket, int]:
        """A new host opens the port: its end of a fresh socket pair and a token for detach."""
        with self._lock:
            if self.gone:
                raise SerialException(
                    f"could not open port {self.url}: device not present (the simulator "
                    "disconnected it; it comes back when the disconnect ends)"
                )
            if self._conn is not None:
                raise SerialException(
                    f"could not open port {self.url}: port busy (another host has it open; "
                    "one host per device)"
                )
            device, host = socket.socketpair()
            device.setblocking(False)
            self._conn = SocketWriter(device)
            self._token += 1
            token = self._token
        self._wake()
        return host, token

    def detach(self, token: int) -> None:
        """The host closed the port; the device side is retired for the runner to close."""
        with self._lock:
            if token == self._token and self._conn is not None:
                self._retired.append(self._conn.sock)
                self._conn = None
        self._wake()

    # --- runner thread --------------------------------------------------------------------

    def service(self) -> None:
        with self._lock:
            retired, self._retired = self._retired, []
        for sock in retired:
            with contextlib.suppress(OSError):
                sock.close()

    def read_fds(self) -> list[int]:
        with self._lock:
            return [self._conn.sock.fileno()] if self._conn is not None else []

    def write_fds(self) -> list[int]:
        with self._lock:
            if self._conn is not None and self._conn.pending:
                return [self._conn.sock.fileno()]
            return []

    def _current(self, fd: int) -> SocketWriter | None:
        with self._lock:
            conn = self._conn
        if conn is None or conn.sock.fileno() != fd:
            return None
        return conn

    def on_readable(self, fd: int) -> bytes:
        conn = self._current(fd)
        if conn is None:
            return b""
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:
            # The host closed its end without detach (it died): free the port.
            with self._lock:
                if self._conn is conn:
                    self._retired.append(conn.sock)
                    self._conn = None
        return data

    def send(self, data: bytes) -> None:
        with self._lock:
            conn = self._conn
        if conn is not None and not conn.send(data):
            with self._lock:
                if self._conn is conn:
                    self._retired.append(conn.sock)
                    self._conn = None

    def on_writable(self, fd: int) -> None:
        conn = self._current(fd)
        if conn is not None:
            conn.flush()

    def go_away(self) -> None:
        with self._lock:
            self.gone = True
            conn, self._conn = self._conn, None
        if conn is not None:
            log.info("%s unplugged", self.url)
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.sock.close()

    def come_back(self) -> None:
        with self._lock:
            self.gone = False

    def close(self) -> None:
        self.go_away()
        self.service()
