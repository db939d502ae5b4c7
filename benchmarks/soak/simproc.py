"""A station's EPM-1: ``epm sim`` on a pty in a process of its own, driven by its control socket.

Why a process of its own and a pty (not the in-process ``sim://`` endpoint): a clinic's unit is
its own hardware. In-process, the simulator's runner would share the station's GIL, its memory
and threads would be counted as the station's, and the link would never open a real file
descriptor, so a port left open by a reconnect could not show in the station's descriptor count.
On a pty every unplug closes the port under the link and every reconnect opens a new one, as a
USB adapter does. The faults go in through the control socket (a Unix socket in the station's
folder), which is never the device protocol.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: Device states in which the unit may be delivering (``controller.wire.constants``).
ACTIVE_STATES = frozenset({"RUNNING", "PAUSED", "HOLD", "STOPPING"})


class SimError(RuntimeError):
    """The simulator process did not start or refused a control command."""


class SimProcess:
    """``python -m controller sim --pty-link ... --control ...`` and a client for its socket."""

    def __init__(self, folder: Path, *, speed: float, seed: int) -> None:
        self.folder = folder
        self.control_path = folder / "sim-control.sock"
        self.log_path = folder / "sim.log"
        args = [
            sys.executable,
            "-m",
            "controller",
            "sim",
            "--speed",
            f"{speed:g}",
            "--seed",
            str(seed),
            "--pty-link",
            str(folder / "ttyEPM-soak"),
            "--control",
            str(self.control_path),
            "--log-level",
            "warning",
        ]
        self._log = self.log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._log, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.close()
            raise SimError(f"epm sim did not start; see {self.log_path}")
        ready = json.loads(line)
        self.url = str(ready["url"])
        self.serial = str(ready["serial"])
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.connect(str(self.control_path))
        self._reader = self._sock.makefile("rb")

    # --- control ---------------------------------------------------------------------------

    def command(self, cmd: str, **fields: Any) -> dict[str, Any]:
        self._sock.sendall(json.dumps({"cmd": cmd, **fields}).encode() + b"\n")
        line = self._reader.readline()
        if not line:
            raise SimError(f"the simulator's control socket closed (command {cmd})")
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise SimError(f"simulator refused {cmd} {fields}: {reply.get('error')}")
        return reply

    def inject(self, fault: str, params: dict[str, Any]) -> None:
        self.command("inject", fault=fault, params=params)

    def clear(self, fault: str | None = None) -> list[str]:
        fields = {} if fault is None else {"fault": fault}
        return list(self.command("clear", **fields)["cleared"])

    def status(self) -> dict[str, Any]:
        return dict(self.command("status")["status"])

    def status_then_inject(self, fault: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Read the unit's state and inject ``fault`` in one write: the simulator takes the two
        lines one after the other, so almost nothing can happen in between. Returns the state
        read just before the injection, and the injection's reply."""
        lines = [{"cmd": "status"}, {"cmd": "inject", "fault": fault, "params": params}]
        self._sock.sendall(b"".join(json.dumps(x).encode() + b"\n" for x in lines))
        replies = [json.loads(self._reader.readline() or b"{}") for _ in lines]
        for reply in replies:
            if not reply.get("ok"):
                raise SimError(f"simulator refused {lines}: {reply.get('error')}")
        return str(replies[0]["status"]["state"]), replies[1]

    def power_cycle(self) -> int:
        """Switch the unit off and on with a passing self-test (the technician's service);
        returns its new boot_id."""
        return int(self.command("power_cycle", selftest_fail=False)["boot_id"])

    def last_transitions(self, last: int = 3) -> list[dict[str, Any]]:
        return list(self.command("transitions", last=last)["transitions"])

    def wait_inactive(self, timeout: float) -> tuple[dict[str, Any], float]:
        """The unit's status once it is seen inactive (or at ``timeout``), and how long that
        took: a unit the host could not reach turns output off by its own watchdog."""
        start = time.monotonic()
        while True:
            status = self.status()
            waited = time.monotonic() - start
            if status["state"] not in ACTIVE_STATES or waited >= timeout:
                return status, waited
            time.sleep(0.01)

    def rss_kib(self) -> int | None:
        """The simulator process's resident memory (for the figures; it is not the station)."""
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return None

    def close(self) -> None:
        for closer in (getattr(self, "_reader", None), getattr(self, "_sock", None)):
            if closer is not None:
                with contextlib.suppress(OSError):
                    closer.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
