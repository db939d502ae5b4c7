"""A manual reconnect that fails never ends reconnecting: the client goes on trying in the
background (the link it replaced may have been doing so) until the unit answers, which is
reported as ``reconnected``; bounded by ``reconnect_timeout`` like the link's own attempts."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from controller.device import DeviceClient, DeviceEvent, DeviceEventKind
from controller.link import LinkError, LinkState
from simulator import Simulator
from tests.integration.helpers import EngineEnv, engine_env
from tests.wire_fakes.fixtures import wait_until

__all__ = ["engine_env"]


class Events:
    def __init__(self, client: DeviceClient) -> None:
        self._lock = threading.Lock()
        self.events: list[DeviceEvent] = []
        client.add_listener(self._on)

    def _on(self, event: DeviceEvent) -> None:
        with self._lock:
            self.events.append(event)

    def kinds(self, since: int = 0) -> list[DeviceEventKind]:
        with self._lock:
            return [e.kind for e in self.events[since:]]

    def __len__(self) -> int:
        with self._lock:
            return len(self.events)


@pytest.fixture
def sim(engine_env: EngineEnv) -> Simulator:
    return engine_env.sim(20)


@pytest.fixture
def client(sim: Simulator) -> Iterator[DeviceClient]:
    device = DeviceClient(sim.url(), backoff=(0.05, 0.2), handshake_timeout=0.5)
    try:
        yield device
    finally:
        device.close()


def test_a_failed_manual_reconnect_leaves_reconnecting_running(
    sim: Simulator, client: DeviceClient
) -> None:
    events = Events(client)
    client.connect()
    sim.inject("disconnect", duration_s=None)  # unplugged until reconnected
    assert wait_until(lambda: client.link_state is LinkState.RECONNECTING)
    with pytest.raises(LinkError):
        client.connect()  # the operator tries now; the unit is still away
    before = len(events)
    sim.reconnect()  # the cable is back: no further press needed
    assert wait_until(lambda: client.link_state is LinkState.UP, 5)
    assert wait_until(lambda: DeviceEventKind.RECONNECTED in events.kinds(before))
    assert DeviceEventKind.LINK_UP not in events.kinds(before)
    assert wait_until(lambda: not client.reconnecting)
    assert client.status().state is not None  # requests flow again


def test_reconnecting_after_a_failed_attempt_is_bounded_like_the_links(
    sim: Simulator,
) -> None:
    client = DeviceClient(
        sim.url(), backoff=(0.05, 0.2), handshake_timeout=0.5, reconnect_timeout=0.4
    )
    try:
        events = Events(client)
        client.connect()
        sim.inject("disconnect", duration_s=None)
        assert wait_until(lambda: DeviceEventKind.RECONNECT_FAILED in events.kinds())
        assert client.link_state is LinkState.CLOSED  # the link gave up
        before = len(events)
        with pytest.raises(LinkError):
            client.connect()
        assert client.reconnecting  # a manual attempt starts trying again ...
        assert wait_until(lambda: DeviceEventKind.RECONNECT_FAILED in events.kinds(before))
        assert wait_until(lambda: not client.reconnecting)  # ... for as long as the link would
    finally:
        client.close()


def test_a_first_connect_that_fails_does_not_retry(sim: Simulator, client: DeviceClient) -> None:
    sim.inject("disconnect", duration_s=None)
    with pytest.raises(LinkError):
        client.connect()
    assert not client.reconnecting  # no unit was ever connected: nothing to reconnect to


def test_closing_the_client_stops_reconnecting(sim: Simulator, client: DeviceClient) -> None:
    client.connect()
    sim.inject("disconnect", duration_s=None)
    assert wait_until(lambda: client.link_state is LinkState.RECONNECTING)
    with pytest.raises(LinkError):
        client.connect()
    assert client.reconnecting
    client.close()
    assert not client.reconnecting
    sim.reconnect()
    assert client.link_state is LinkState.CLOSED
