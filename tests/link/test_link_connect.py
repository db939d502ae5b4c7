"""Handshake errors, unplug over a real pty and reconnect through a re-pointed symlink."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.link import (
    Link,
    LinkClosed,
    LinkEvent,
    LinkEventKind,
    LinkLost,
    LinkState,
    NoHandshakeReply,
    PortBusy,
    UnsupportedProtocolVersion,
    WrongDeviceModel,
    open_port,
)
from controller.wire import messages as m
from controller.wire.constants import MsgType, NakCode, State
from tests.wire_fakes.fake_device import FakeOnPty
from tests.wire_fakes.fixtures import Recorder, wait_until

Fakes = Callable[..., FakeOnPty]
Links = Callable[..., tuple[Link, Recorder]]


def point(link_path: Path, target: str) -> None:
    """Atomically (re)point ``link_path`` at ``target``, like udev's by-id symlinks."""
    tmp = link_path.with_suffix(".new")
    os.symlink(target, tmp)
    os.replace(tmp, link_path)


# --- handshake errors ------------------------------------------------------------------------


def test_silent_device_gives_no_handshake_error_and_no_estop(fakes: Fakes, links: Links) -> None:
    fake = fakes()
    fake.device.silence()
    link, _ = links(fake.path, handshake_timeout=0.3)
    with pytest.raises(NoHandshakeReply) as caught:
        link.open()
    error = caught.value
    assert error.attempts == len(fake.device.rx(MsgType.HELLO)) >= 4
    assert error.seconds >= 0.3
    text = str(error)
    assert fake.path in text and "115200 baud" in text
    assert f"HELLO was sent {error.attempts} times" in text
    assert "right port" in text
    assert fake.device.rx(MsgType.ESTOP) == []  # maybe not our device: nothing but HELLO
    assert link.state is LinkState.CLOSED
    open_port(fake.path).close()  # the port was released


def test_nak_unsupported_version(fakes: Fakes, links: Links) -> None:
    fake = fakes(nak_hello=NakCode.UNSUPPORTED_VERSION)
    link, _ = links(fake.path)
    with pytest.raises(UnsupportedProtocolVersion, match="protocol version 1"):
        link.open()


def test_hello_reply_with_other_version(fakes: Fakes, links: Links) -> None:
    fake = fakes(proto_version=2)
    link, _ = links(fake.path)
    with pytest.raises(UnsupportedProtocolVersion) as caught:
        link.open()
    assert caught.value.version == 2
    assert "version 2" in str(caught.value)


def test_wrong_model(fakes: Fakes, links: Links) -> None:
    fake = fakes(model="EPM-2")
    link, _ = links(fake.path)
    with pytest.raises(WrongDeviceModel) as caught:
        link.open()
    assert caught.value.model == "EPM-2"
    assert "'EPM-2'" in str(caught.value) and "not an EPM-1" in str(caught.value)
    assert fake.device.rx(MsgType.GET_STATUS) == []


def test_port_held_by_another_program_is_busy(fakes: Fakes, links: Links) -> None:
    fake = fakes()
    other = open_port(fake.path)
    try:
        link, _ = links(fake.path)
        with pytest.raises(PortBusy):
            link.open()
    finally:
        other.close()
    assert fake.device.rx() == []


def test_telemetry_before_hello_does_not_disturb_the_handshake(fakes: Fakes, links: Links) -> None:
    fake = fakes(telemetry_hz=500)
    assert fake.device.wait_for(lambda: len(fake.device.sent) > 20)
    link, rec = links(fake.path)
    link.open()
    assert fake.device.rx()[0].mtype == MsgType.HELLO
    rec.wait_telemetry(5)
    assert link.health().dseq_gaps == 0


def test_open_twice_is_refused(fakes: Fakes, links: Links) -> None:
    fake = fakes()
    link, _ = links(fake.path)
    link.open()
    with pytest.raises(RuntimeError, match="already opened"):
        link.open()


# --- unplug and reconnect --------------------------------------------------------------------


def test_unplug_closes_port_at_once_and_reconnects_to_the_same_unit_restarted(
    fakes: Fakes, links: Links, tmp_path: Path
) -> None:
    first = fakes(telemetry_hz=100)
    stable = tmp_path / "usb-EPM-1-if00"
    point(stable, first.path)
    link, rec = links(str(stable))
    port_open_at_down: list[bool] = []

    def watch(event: LinkEvent) -> None:
        if event.kind is LinkEventKind.LINK_DOWN:
            port_open_at_down.append(link.port_is_open)

    rec.on_link = watch
    link.open()
    link.request(
        m.ConfigureStep(7, 1, 0, 400, 500, 500, 100, 0, 0, 0, 0, 5000, 600_000, 1), epoch=link.epoch
    )
    first.device.unplug()
    down = rec.wait_kind(LinkEventKind.LINK_DOWN)
    assert port_open_at_down == [False]  # closed before anyone was told
    assert "reconnecting" in down.message
    assert link.state is LinkState.RECONNECTING
    with pytest.raises(LinkLost) as refused:
        link.request(m.Heartbeat())
    assert "reopening" in str(refused.value)
    assert wait_until(lambda: link.health().reconnect_attempts >= 2)  # retried meanwhile
    # The same unit comes back on another pty, power-cycled while it was unplugged.
    second = fakes(boot_id=0x5678, serial="FAKE-0001")
    point(stable, second.path)
    event = rec.wait_kind(LinkEventKind.RECONNECTED)
    restarted = rec.wait_kind(LinkEventKind.DEVICE_RESTARTED)
    assert (restarted.old_boot_id, restarted.new_boot_id) == (0x1234, 0x5678)
    assert "while the link was down" in restarted.message
    assert rec.kinds().index(LinkEventKind.DEVICE_RESTARTED) < rec.kinds().index(
        LinkEventKind.RECONNECTED
    )
    assert event.hello is not None and event.hello.serial == "FAKE-0001"
    assert event.status is not None and event.status.state == State.IDLE
    assert [r.mtype for r in second.device.rx()][:2] == [MsgType.HELLO, MsgType.GET_STATUS]
    assert link.state is LinkState.UP
    assert link.request(m.Heartbeat()) == m.Ack(MsgType.HEARTBEAT)
    health = link.health()
    assert health.port_failures == 1 and health.reconnects == 1


def test_unplug_during_a_request_fails_it_at_once(
    fakes: Fakes, links: Links, tmp_path: Path
) -> None:
    fake = fakes()
    link, rec = links(fake.path)
    link.open()
    link.request(
        m.ConfigureStep(7, 1, 0, 400, 500, 500, 100, 0, 0, 0, 0, 5000, 600_000, 1), epoch=link.epoch
    )
    fake.device.hold_replies(MsgType.START)
    errors: list[Exception] = []

    def start() -> None:
        try:
            link.request(m.Start(), epoch=link.epoch)
        except Exception as exc:
            errors.append(exc)

    starter = threading.Thread(target=start)
    starter.start()
    assert fake.device.wait_rx(MsgType.START)
    fake.device.unplug()
    starter.join(5)
    assert len(errors) == 1 and type(errors[0]).__name__ == "OutcomeUnknown"
    assert "port failed" in str(errors[0])
    rec.wait_kind(LinkEventKind.OUTCOME_UNKNOWN)


def test_reconnect_gives_up_after_the_callers_bound(fakes: Fakes, links: Links) -> None:
    fake = fakes()
    link, rec = links(fake.path, reconnect_timeout=0.3)
    link.open()
    fake.device.unplug()
    failed = rec.wait_kind(LinkEventKind.RECONNECT_FAILED)
    assert "within 0.3 s" in failed.message
    assert link.state is LinkState.CLOSED
    with pytest.raises(LinkClosed):
        link.request(m.Heartbeat())


def test_silent_device_reconnect_gives_up_after_the_bound(fakes: Fakes, links: Links) -> None:
    fake = fakes()
    link, rec = links(fake.path, reconnect_timeout=0.4)
    link.open()
    fake.device.silence()
    with pytest.raises(LinkLost):
        link.request(m.Heartbeat())
    rec.wait_kind(LinkEventKind.RECONNECT_FAILED)
    assert link.state is LinkState.CLOSED
    assert not link.port_is_open
