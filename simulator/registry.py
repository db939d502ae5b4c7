"""Simulators by name, so ``sim://<name>`` can reach one created through the Python API."""

from __future__ import annotations

import itertools
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.core import Simulator

_lock = threading.Lock()
_by_name: dict[str, Simulator] = {}
_counter = itertools.count(1)


def register(sim: Simulator, name: str | None) -> str:
    """Register ``sim`` under ``name`` (or a fresh ``sim-N``); a taken name is a ValueError."""
    with _lock:
        if name is None:
            name = f"sim-{next(_counter)}"
            while name in _by_name:
                name = f"sim-{next(_counter)}"
        elif name in _by_name:
            raise ValueError(
                f"a simulator named {name!r} already exists; close it first or pick another name"
            )
        if not name or "/" in name or "?" in name:
            raise ValueError(f"simulator name {name!r} must be non-empty without '/' or '?'")
        _by_name[name] = sim
        return name


def unregister(name: str) -> None:
    with _lock:
        _by_name.pop(name, None)


def lookup(name: str) -> Simulator | None:
    with _lock:
        return _by_name.get(name)


def names() -> list[str]:
    with _lock:
        return sorted(_by_name)


def for_url(url: str) -> Simulator | None:
    """The simulator running in this process that a host opening ``url`` reaches, or None.

    ``sim://<name>`` is the simulator of that name; an anonymous ``sim://`` (``sim://?...``)
    the one an open port of that exact URL owns (see ``protocol_sim.owned_simulator``); any
    other URL (a pty link path, ``socket://``) the registered simulator serving it. A real
    device's port is never one of these, so None also means "not a simulator of ours".
    """
    url = url.strip()
    if url.lower().startswith("sim://"):
        from serial.serialutil import SerialException

        from simulator.urlhandler import protocol_sim

        try:
            name, _ = protocol_sim._parse(url)
        except SerialException:  # a malformed sim:// URL reaches nothing
            return None
        return lookup(name) if name else protocol_sim.owned_simulator(url)
    with _lock:
        candidates = list(_by_name.values())
    for sim in candidates:
        endpoint = sim.endpoint
        if endpoint is not None and not sim.closed and endpoint.url == url:
            return sim
    return None
