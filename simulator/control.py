"""The control socket: JSON lines over local TCP or a Unix socket, outside the device protocol.

One request per line, one reply per line. Every reply has ``"ok"``; failures carry ``"error"``
saying what was wrong and how to put it right. Commands (docs/simulator.md has examples):

``ping`` · ``status`` · ``faults`` (the catalogue) · ``inject`` (``fault`` plus its parameters,
flat or under ``params``) · ``clear`` (optional ``fault``) · ``power_cycle`` (optional
``selftest_fail``) · ``handpiece`` (``attach``: a handpiece name, ``none`` to remove it) ·
``reconnect`` · ``transitions`` / ``receipts`` (optional ``last``: how many).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from simulator.catalogue import describe_catalogue

if TYPE_CHECKING:
    from simulator.core import Simulator

log = logging.getLogger("simulator.control")

MAX_LINE = 64 * 1024
COMMANDS = (
    "ping",
    "status",
    "faults",
    "inject",
    "clear",
    "power_cycle",
    "handpiece",
    "reconnect",
    "transitions",
    "receipts",
)


class CommandError(ValueError):
    """A control request that cannot be carried out; the message goes back to the client."""


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"]]
        # The discriminated union puts the fault name first; it is not a parameter.
        where = ".".join(loc[1:])
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def execute(sim: Simulator, request: Any) -> dict[str, Any]:
    """Carry out one decoded request; raises :class:`CommandError` for a bad one."""
    if not isinstance(request, dict):
        raise CommandError('a request is a JSON object such as {"cmd": "status"}')
    cmd = request.get("cmd")
    if cmd not in COMMANDS:
        raise CommandError(f"unknown cmd {cmd!r}; use one of: {', '.join(COMMANDS)}")
    if cmd == "ping":
        return {"pong": True}
    if cmd == "status":
        return {"status": sim.snapshot()}
    if cmd == "faults":
        return {"faults": describe_catalogue()}
    if cmd == "inject":
        fault = request.get("fault")
        if not isinstance(fault, str):
            raise CommandError('inject needs "fault": a catalogue name (see the faults command)')
        params = dict(request.get("params") or {})
        params.update({k: v for k, v in request.items() if k not in ("cmd", "fault", "params")})
        try:
            spec = sim.inject(fault, **params)
        except ValidationError as exc:
            raise CommandError(f"bad parameters for {fault}: {_validation_message(exc)}") from None
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return {"injected": spec.model_dump(exclude={"at_s"})}
    if cmd == "clear":
        fault = request.get("fault")
        if fault is not None and not isinstance(fault, str):
            raise CommandError('"fault" must be a catalogue name or absent (clear all)')
        return {"cleared": sim.clear(fault)}
    if cmd == "power_cycle":
        selftest = request.get("selftest_fail")
        if selftest is not None and not isinstance(selftest, bool):
            raise CommandError('"selftest_fail" must be true or false')
        return {"boot_id": sim.power_cycle(selftest_fail=selftest)}
    if cmd == "handpiece":
        name = request.get("attach")
        if not isinstance(name, str):
            raise CommandError('handpiece needs "attach": scalp_roller, flat_probe, comb or none')
        try:
            sim.attach_handpiece(name)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return {"handpiece": sim.snapshot()["handpiece"]}
    if cmd == "reconnect":
        sim.reconnect()
        return {}
    last = request.get("last", 100)
    if not isinstance(last, int) or last < 0:
        raise CommandError('"last" must be a non-negative integer')
    records = sim.output_transitions() if cmd == "transitions" else sim.request_receipts()
    chosen = records[-last:] if last else []
    return {cmd: [r._asdict() for r in chosen]}


def handle_line(sim: Simulator, line: bytes) -> dict[str, Any]:
    """One request line to one reply object (never raises for bad input)."""
    try:
        request = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return {"ok": False, "error": f"not JSON ({exc}); send one JSON object per line"}
    try:
        return {"ok": True, **execute(sim, request)}
    except CommandError as exc:
        return {"ok": False, "error": str(exc)}


class ControlServer:
    """Serves :func:`handle_line` to local clients; daemon threads, all closed by :meth:`close`."""

    def __init__(self, sim: Simulator, where: int | str) -> None:
        self._sim = sim
        self._path: Path | None = None
        if isinstance(where, int):
            self._listener = socket.create_server(("127.0.0.1", where))
            port = self._listener.getsockname()[1]
            self.address = f"tcp://127.0.0.1:{port}"
        else:
            self._path = Path(where)
            with contextlib.suppress(FileNotFoundError):
                if self._path.is_socket():
                    self._path.unlink()
            self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener.bind(str(self._path))
            self._listener.listen()
            self.address = f"unix:{self._path}"
        self._lock = threading.Lock()
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="epm-sim-control", daemon=True)
        self._thread.start()
        log.info("control socket %s", self.address)

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed:
                    conn.close()
                    return
                thread = threading.Thread(
                    target=self._serve, args=(conn,), name="epm-sim-control-client", daemon=True
                )
                self._clients[conn] = thread
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn, conn.makefile("rb") as reader:
                while True:
                    line = reader.readline(MAX_LINE + 1)
                    if not line:
                        return
                    if len(line) > MAX_LINE:
                        reply: dict[str, Any] = {"ok": False, "error": "line too long"}
                    elif not line.strip():
                        continue
                    else:
                        reply = handle_line(self._sim, line)
                    conn.sendall(json.dumps(reply).encode() + b"\n")
        except OSError:
            return
        finally:
            with self._lock:
                self._clients.pop(conn, None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            clients = list(self._clients.items())
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._listener.close()
        for conn, _ in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(2.0)
        for _, thread in clients:
            thread.join(2.0)
        if self._path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._path)
