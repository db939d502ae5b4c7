"""The I/O shell around the core: its threads report failures instead of dying silently, and
the one dispatch thread keeps a bounded backlog for a slow listener."""

from __future__ import annotations

import threading
from collections.abc import Callable

from controller.link import Link, LinkEvent, LinkEventKind, LinkState
from controller.link.dispatch import CAPACITY, Dispatcher
from controller.link.health import HealthRecorder
from controller.wire import messages as m
from controller.wire.codec import DropCounters
from controller.wire.constants import MsgType
from tests.wire_fakes.fake_device import FakeOnPty
from tests.wire_fakes.fixtures import Recorder, wait_until

Fakes = Callable[..., FakeOnPty]
Links = Callable[..., tuple[Link, Recorder]]


def test_an_unexpected_error_in_the_reader_is_a_link_failure_not_a_dead_thread(
    fakes: Fakes, links: Links
) -> None:
    fake = fakes(telemetry_hz=50)
    link, rec = links(fake.path)
    link.open()
    real = link._core.receive_data
    raised: list[bool] = []

    def broken(data: bytes, now: float) -> None:
        if not raised:
            raised.append(True)
            raise RuntimeError("a bug in frame handling")
        real(data, now)

    link._core.receive_data = broken  # type: ignore[method-assign]
    down = rec.wait_kind(LinkEventKind.LINK_DOWN)
    assert "internal error in the link's reader" in down.message
    assert "a bug in frame handling" in down.message
    rec.wait_kind(LinkEventKind.RECONNECTED)  # the reader lived on and reopened the port
    assert link.state is LinkState.UP
    assert link.request(m.Heartbeat()) == m.Ack(MsgType.HEARTBEAT)
    assert all(t.is_alive() for t in link.threads)


class _Slow:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.telemetry = 0
        self.events: list[LinkEvent] = []

    def on_telemetry(self, telemetry: m.Telemetry) -> None:
        self.release.wait(5)
        self.telemetry += 1

    def on_event(self, event: m.Event) -> None:
        return None

    def on_link_event(self, event: LinkEvent) -> None:
        self.events.append(event)


def test_a_slow_listener_loses_telemetry_beyond_the_backlog_never_events() -> None:
    health = HealthRecorder(DropCounters())
    listener = _Slow()
    dispatcher = Dispatcher(listener, health)
    dispatcher.thread.start()
    frames = [m.Telemetry(i, 1, i, 1, 0, 0, 0, 0, 0, 1000, 330, 1) for i in range(CAPACITY + 50)]
    dispatcher.put(frames)
    dispatcher.put([LinkEvent(LinkEventKind.DSEQ_GAP, "gap", lost=3)])
    assert health.count("telemetry_dropped") >= 49
    listener.release.set()
    dispatcher.stop()
    dispatcher.thread.join(5)
    assert [e.kind for e in listener.events] == [LinkEventKind.DSEQ_GAP]
    assert listener.telemetry + health.count("telemetry_dropped") == CAPACITY + 50
    assert wait_until(lambda: not dispatcher.thread.is_alive())


def test_an_unexpected_error_in_the_ticker_is_a_link_failure_not_a_dead_thread(
    fakes: Fakes, links: Links
) -> None:
    fake = fakes()
    link, rec = links(fake.path)
    link.open()
    real = link._core.handle_timer
    raised: list[bool] = []

    def broken(now: float) -> None:
        if not raised:
            raised.append(True)
            raise RuntimeError("a bug in the timers")
        real(now)

    link._core.handle_timer = broken  # type: ignore[method-assign]
    link.checkin()  # kicks the ticker
    down = rec.wait_kind(LinkEventKind.LINK_DOWN)
    assert "internal error in the link's ticker" in down.message
    rec.wait_kind(LinkEventKind.RECONNECTED)
    assert link.request(m.Heartbeat()) == m.Ack(MsgType.HEARTBEAT)
    assert all(t.is_alive() for t in link.threads)
