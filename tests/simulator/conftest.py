"""Fixtures for the simulator tests: virtual-clock units and real-time units that always close."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from simulator import Simulator, register_url_handler
from tests.simulator.helpers import Host


@pytest.fixture
def make_sim() -> Iterator[Callable[..., Simulator]]:
    """Build simulators (virtual clock unless told otherwise); all are closed afterwards."""
    made: list[Simulator] = []

    def make(**kwargs: Any) -> Simulator:
        kwargs.setdefault("clock", "virtual")
        kwargs.setdefault("seed", 1)
        sim = Simulator(**kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        sim.close()


@pytest.fixture
def host(make_sim: Callable[..., Simulator]) -> Host:
    """A host on a fresh virtual-clock unit (seed 1, scalp roller on good contact)."""
    return Host(make_sim())


@pytest.fixture(scope="session", autouse=True)
def _url_handler() -> None:
    register_url_handler()


@pytest.fixture(autouse=True)
def _no_simulator_threads_left() -> Iterator[None]:
    """Every simulator a test starts is closed by its end: no runner or control thread lives on."""
    yield
    deadline = time.monotonic() + 5.0
    for thread in threading.enumerate():
        if thread.name.startswith("epm-sim"):
            thread.join(max(0.0, deadline - time.monotonic()))
    alive = [t.name for t in threading.enumerate() if t.name.startswith("epm-sim")]
    assert alive == [], f"threads left running: {alive}"
