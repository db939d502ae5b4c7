"""The interface every endpoint offers the runner, and a buffered non-blocking writer."""

from __future__ import annotations

import logging
import os
import socket
from abc import ABC, abstractmethod

log = logging.getLogger("simulator.endpoint")

#: Bytes the host has not taken yet beyond which new output is dropped (a real unit's USB
#: buffer would overflow the same way; our choice of size).
MAX_BACKLOG = 256 * 1024


class Endpoint(ABC):
    """What the runner needs from an endpoint. All methods run on the runner thread."""

    kind: str = ""

    @property
    @abstractmethod
    def url(self) -> str:
        """What a host gives ``serial.serial_for_url`` (or a path) to reach the unit."""

    @abstractmethod
    def read_fds(self) -> list[int]: ...

    @abstractmethod
    def on_readable(self, fd: int) -> bytes:
        """Host bytes from a readable descriptor (b"" when there were none)."""

    @abstractmethod
    def send(self, data: bytes) -> None:
        """Bytes for the host; dropped when no host is attached or it stopped reading."""

    def write_fds(self) -> list[int]:
        return []

    def on_writable(self, fd: int) -> None:  # noqa: B027 - optional hook
        """Continue a partial write."""

    @abstractmethod
    def go_away(self) -> None:
        """Disconnect: the host sees the port vanish."""

    @abstractmethod
    def come_back(self) -> None:
        """Reconnect after :meth:`go_away`."""

    @abstractmethod
    def close(self) -> None: ...

    def service(self) -> None:  # noqa: B027 - optional hook
        """Housekeeping once per runner loop."""


class SocketWriter:
    """Non-blocking writes to one socket with a bounded backlog."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.pending = bytearray()
        self.dropped_bytes = 0

    def send(self, data: bytes) -> bool:
        """Queue and try to write; False when the peer is gone."""
        if len(self.pending) + len(data) > MAX_BACKLOG:
            self.dropped_bytes += len(data)
            return True
        self.pending += data
        return self.flush()

    def flush(self) -> bool:
        while self.pending:
            try:
                n = self.sock.send(self.pending)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            del self.pending[:n]
        return True


def drain_fd(fd: int) -> bytes:
    """Read what a non-blocking descriptor has (b"" if nothing or on error)."""
    try:
        return os.read(fd, 65536)
    except (BlockingIOError, InterruptedError):
        return b""
    except OSError:
        return b""
