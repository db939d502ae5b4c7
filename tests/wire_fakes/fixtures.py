"""Pytest fixtures shared by tests/link and tests/device: fakes on ptys, links, recorders.

Everything a fixture creates is closed at teardown, and ``no_leaked_threads`` checks that no
link or fake thread outlives its test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controller.link import Link, LinkEvent, LinkEventKind
from controller.wire.messages import Event, Telemetry
from tests.wire_fakes.fake_device import FakeConfig, FakeOnPty

_OUR_THREADS = ("epm-link-", "fake-epm1")


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` every 5 ms until it holds or ``timeout`` s pass (a bounded wait)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        tick.wait(0.005)


class Recorder:
    """A LinkListener that keeps everything and lets tests wait for it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.link_events: list[LinkEvent] = []
        self.telemetry: list[Telemetry] = []
        self.events: list[Event] = []
        self.threads: set[str] = set()
        self.on_link: Callable[[LinkEvent], None] | None = None

    def on_telemetry(self, telemetry: Telemetry) -> None:
        with self._cond:
            self.telemetry.append(telemetry)
            self.threads.add(threading.current_thread().name)
            self._cond.notify_all()

    def on_event(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def on_link_event(self, event: LinkEvent) -> None:
        if self.on_link is not None:
            self.on_link(event)
        with self._cond:
            self.link_events.append(event)
            self._cond.notify_all()

    def kinds(self) -> list[LinkEventKind]:
        with self._cond:
            return [e.kind for e in self.link_events]

    def wait_kind(self, kind: LinkEventKind, count: int = 1, timeout: float = 5.0) -> LinkEvent:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: sum(1 for e in self.link_events if e.kind is kind) >= count, timeout
            )
            assert ok, f"no {kind} within {timeout} s; got {[e.kind for e in self.link_events]}"
            return [e for e in self.link_events if e.kind is kind][count - 1]

    def wait_telemetry(self, count: int, timeout: float = 5.0) -> None:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.telemetry) >= count, timeout)


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leftover = [
        t
        for t in threading.enumerate()
        if t not in before and t.name.startswith(_OUR_THREADS) and t.is_alive()
    ]
    for thread in leftover:
        thread.join(5)
    assert not [t.name for t in leftover if t.is_alive()], "link or fake threads outlived test"


@pytest.fixture
def fakes() -> Iterator[Callable[..., FakeOnPty]]:
    """Factory: a fake EPM-1 on a fresh pty (telemetry off unless asked for)."""
    made: list[FakeOnPty] = []

    def make(**config: Any) -> FakeOnPty:
        config.setdefault("telemetry_hz", 0)
        fake = FakeOnPty(FakeConfig(**config))
        made.append(fake)
        return fake

    yield make
    for fake in made:
        fake.close()


class Supervisor:
    """Stands in for a session's supervision: checks the link in every 20 ms until stopped.

    The link writes nothing of its own accord in an active device state without check-ins
    (interface §3, [1.1]); tests of the link alone use this, tests of that rule stop it.
    """

    def __init__(self, link: Link, period: float = 0.02) -> None:
        self._link = link
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="epm-test-supervisor", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._link.checkin()
            self._stop.wait(self._period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)


@pytest.fixture
def links() -> Iterator[Callable[..., tuple[Link, Recorder]]]:
    """Factory: an unopened Link with a Recorder listener, fast test timings, and (unless
    ``supervised=False``) a :class:`Supervisor` checking it in."""
    made: list[Link] = []
    supervisors: list[Supervisor] = []

    def make(url: str, *, supervised: bool = True, **options: Any) -> tuple[Link, Recorder]:
        recorder = Recorder()
        options.setdefault("handshake_timeout", 0.5)
        options.setdefault("backoff_initial", 0.02)
        options.setdefault("backoff_max", 0.1)
        link = Link(url, listener=recorder, **options)
        made.append(link)
        if supervised:
            supervisors.append(Supervisor(link))
        return link, recorder

    yield make
    for supervisor in supervisors:
        supervisor.stop()
    for link in made:
        link.close()
