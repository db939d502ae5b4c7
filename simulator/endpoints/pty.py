"""A pseudo-terminal whose slave side any serial program can open, like a USB CDC-ACM port.

The master stays with the simulator. We keep our own descriptor on the slave, so the pty survives
the host closing and reopening it (without it the master would read EIO between hosts). Because
the slave path changes when the pty is recreated after a simulated unplug, hosts get a stable
symlink to it as their port name.

Nobody reading: a real unit's output is lost when no host has the port open, but a pty keeps it
for the next reader. So before writing we look at how much the slave has not read; past
``STALE_LIMIT`` bytes we flush the slave's input, like a device whose buffer overflowed.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import shutil
import tempfile
import termios
import tty
from pathlib import Path

from simulator.endpoints.base import MAX_BACKLOG, Endpoint, log

STALE_LIMIT = 3072


class PtyEndpoint(Endpoint):
    kind = "pty"

    def __init__(self, link_path: str | Path | None = None) -> None:
        self._own_dir: str | None = None
        if link_path is None:
            self._own_dir = tempfile.mkdtemp(prefix="epm-sim-")
            link_path = Path(self._own_dir) / "ttyEPM0"
        self.link_path = Path(link_path)
        self.master = -1
        self.slave = -1
        self.slave_name = ""
        self.pending = bytearray()
        self.flushed_stale = 0
        self._open()

    @property
    def url(self) -> str:
        return str(self.link_path)

    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.master, self.slave = master, slave
        self.slave_name = os.ttyname(slave)
        tmp = self.link_path.with_name(self.link_path.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(self.slave_name, tmp)
        os.replace(tmp, self.link_path)
        log.info("pty %s (link %s)", self.slave_name, self.link_path)

    def _close_pty(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = -1
        self.pending.clear()
        with contextlib.suppress(FileNotFoundError):
            self.link_path.unlink()

    def read_fds(self) -> list[int]:
        return [self.master] if self.master >= 0 else []

    def on_readable(self, fd: int) -> bytes:
        try:
            return os.read(self.master, 65536)
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:
            return b""

    def _unread(self) -> int:
        buf = array.array("i", [0])
        try:
            fcntl.ioctl(self.slave, termios.FIONREAD, buf, True)
        except OSError:
            return 0
        return buf[0]

    def send(self, data: bytes) -> None:
        if self.master < 0:
            return
        if self._unread() >= STALE_LIMIT:
            termios.tcflush(self.slave, termios.TCIFLUSH)
            self.flushed_stale += 1
        if len(self.pending) + len(data) > MAX_BACKLOG:
            return
        self.pending += data
        self._flush()

    def _flush(self) -> None:
        while self.pending and self.master >= 0:
            try:
                n = os.write(self.master, self.pending)
            except (BlockingIOError, InterruptedError):
                if self._unread() >= STALE_LIMIT:
                    termios.tcflush(self.slave, termios.TCIFLUSH)
                    self.flushed_stale += 1
                    continue
                return
            except OSError:
                self.pending.clear()
                return
            del self.pending[:n]

    def write_fds(self) -> list[int]:
        return [self.master] if self.pending and self.master >= 0 else []

    def on_writable(self, fd: int) -> None:
        self._flush()

    def go_away(self) -> None:
        log.info("pty %s unplugged", self.slave_name)
        self._close_pty()

    def come_back(self) -> None:
        if self.master < 0:
            self._open()

    def close(self) -> None:
        self._close_pty()
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)
            self._own_dir = None
