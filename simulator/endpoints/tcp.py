"""A TCP port for ``socket://127.0.0.1:PORT``: one host at a time, like a serial port.

A second connection while one is open is closed at once (the host sees the port as busy). A
simulated unplug closes the connection and refuses new ones until the unit comes back.
"""

from __future__ import annotations

import contextlib
import socket

from simulator.endpoints.base import Endpoint, SocketWriter, log


class TcpEndpoint(Endpoint):
    kind = "tcp"

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.listener = socket.create_server((host, port), reuse_port=False)
        self.listener.setblocking(False)
        self.host, self.port = self.listener.getsockname()[:2]
        self.conn: SocketWriter | None = None
        self.gone = False
        self.refused = 0

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def read_fds(self) -> list[int]:
        fds = [self.listener.fileno()]
        if self.conn is not None:
            fds.append(self.conn.sock.fileno())
        return fds

    def write_fds(self) -> list[int]:
        if self.conn is not None and self.conn.pending:
            return [self.conn.sock.fileno()]
        return []

    def on_readable(self, fd: int) -> bytes:
        if fd == self.listener.fileno():
            self._accept()
            return b""
        if self.conn is None or fd != self.conn.sock.fileno():
            return b""
        try:
            data = self.conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            data = b""
        if not data:
            log.info("tcp host left")
            self._drop_conn()
        return data

    def _accept(self) -> None:
        try:
            sock, peer = self.listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        if self.conn is not None or self.gone:
            self.refused += 1
            log.info("tcp connection from %s refused (%s)", peer, "gone" if self.gone else "busy")
            sock.close()
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = SocketWriter(sock)
        log.info("tcp host connected from %s", peer)

    def _drop_conn(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError):
                self.conn.sock.close()
            self.conn = None

    def send(self, data: bytes) -> None:
        if self.conn is not None and not self.conn.send(data):
            self._drop_conn()

    def on_writable(self, fd: int) -> None:
        if self.conn is not None and not self.conn.flush():
            self._drop_conn()

    def go_away(self) -> None:
        self.gone = True
        self._drop_conn()

    def come_back(self) -> None:
        self.gone = False

    def close(self) -> None:
        self._drop_conn()
        with contextlib.suppress(OSError):
            self.listener.close()
