"""Request/reply over a real pty against the fake EPM-1: round trips, seq rules, retransmission,
duplicate/late/stray replies, malformed device frames."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.link import Link, LinkClosed, LinkEventKind, LinkLost, LinkState
from controller.wire import messages as m
from controller.wire.constants import Fault, MsgType, NakCode, State
from tests.wire_fakes.fake_device import FakeOnPty, RxRecord
from tests.wire_fakes.fixtures import Recorder, wait_until

Fakes = Callable[..., FakeOnPty]
Links = Callable[..., tuple[Link, Recorder]]

STEP = m.ConfigureStep(7, 1, 0, 400, 500, 500, 100, 0, 0, 0, 0, 5000, 600_000, 1)


def distinct_seqs(records: list[RxRecord]) -> list[int]:
    """Seqs in order, a retransmission (same seq, identical bytes) counted once."""
    out: list[int] = []
    last: RxRecord | None = None
    for rec in records:
        if last is not None and rec.seq == last.seq:
            assert rec.raw == last.raw  # a resend is the identical frame
            continue
        out.append(rec.seq)
        last = rec
    return out


def up(fakes: Fakes, links: Links, **config: object) -> tuple[FakeOnPty, Link, Recorder]:
    fake = fakes(**config)
    link, rec = links(fake.path)
    link.open()
    return fake, link, rec


def test_first_frame_is_hello_then_get_status(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links, telemetry_hz=100)
    types = [r.mtype for r in fake.device.rx()]
    assert types[:2] == [MsgType.HELLO, MsgType.GET_STATUS]
    assert link.state is LinkState.UP
    assert rec.kinds()[0] is LinkEventKind.LINK_UP
    assert link.hello_reply is not None and link.hello_reply.model == "EPM-1"


def test_every_request_type_round_trips(fakes: Fakes, links: Links) -> None:
    fake, link, _ = up(fakes, links)
    dev = fake.device
    assert isinstance(link.request(m.GetStatus()), m.Status)
    assert link.request(m.Heartbeat()) == m.Ack(MsgType.HEARTBEAT)
    assert link.request(m.SetTelemetry(20)) == m.Ack(MsgType.SET_TELEMETRY)
    assert link.request(STEP, epoch=link.epoch) == m.Ack(MsgType.CONFIGURE_STEP)
    assert dev.state is State.READY
    assert link.request(m.SetAmplitude(450), epoch=link.epoch) == m.Ack(MsgType.SET_AMPLITUDE)
    assert link.request(m.Start(), epoch=link.epoch) == m.Ack(MsgType.START)
    assert link.request(m.Pause()) == m.Ack(MsgType.PAUSE)
    assert dev.state is State.PAUSED
    assert link.request(m.Resume(), epoch=link.epoch) == m.Ack(MsgType.RESUME)
    assert dev.state is State.RUNNING
    assert link.request(m.Stop()) == m.Ack(MsgType.STOP)
    assert wait_until(lambda: dev.state is State.IDLE)
    assert link.estop() is True
    assert dev.wait_rx(MsgType.ESTOP)
    assert wait_until(lambda: dev.state is State.FAULT)
    assert link.request(m.ClearFaults(), epoch=link.epoch) == m.Ack(MsgType.CLEAR_FAULTS)
    assert dev.state is State.IDLE
    # A NAK comes back as a reply, not an exception, at this layer.
    assert link.request(m.Start(), epoch=link.epoch) == m.Nak(MsgType.START, NakCode.BAD_STATE, 0)
    seqs = distinct_seqs(dev.rx())
    assert seqs == list(range(1, len(seqs) + 1))  # every request (and ESTOP) got its own seq


def test_seq_wraps_from_255_to_1(fakes: Fakes, links: Links) -> None:
    fake, link, _ = up(fakes, links)
    for _ in range(260):
        link.request(m.Heartbeat())
    seqs = distinct_seqs(fake.device.rx())
    assert 0 not in seqs
    i = seqs.index(255)
    assert seqs[i + 1] == 1


def test_lost_reply_is_retransmitted_with_identical_bytes(fakes: Fakes, links: Links) -> None:
    fake, link, _ = up(fakes, links)
    before = link.health()
    fake.device.drop_replies(1)
    reply = link.request(m.SetTelemetry(25))
    assert reply == m.Ack(MsgType.SET_TELEMETRY)
    sends = fake.device.rx(MsgType.SET_TELEMETRY)
    assert len(sends) == 2
    assert sends[0].seq == sends[1].seq
    assert sends[0].raw == sends[1].raw
    # the resend came no earlier than T_reply after the first send
    assert sends[1].t - sends[0].t >= link.t_reply(MsgType.SET_TELEMETRY, 2) * 0.9
    health = link.health()
    assert health.retransmissions - before.retransmissions == 1
    assert health.reply_timeouts - before.reply_timeouts == 1
    # the retransmitted request is not an RTT sample (Karn's rule)
    assert health.rtt_samples == before.rtt_samples


def test_duplicate_reply_is_ignored_and_counted(fakes: Fakes, links: Links) -> None:
    fake, link, _ = up(fakes, links)
    fake.device.duplicate_replies(1)
    first = link.request(m.GetStatus())
    assert isinstance(first, m.Status)
    assert wait_until(lambda: link.health().duplicate_replies == 1)
    assert link.request(m.Heartbeat()) == m.Ack(MsgType.HEARTBEAT)
    assert link.health().stray_replies == 0


def test_replies_are_matched_by_seq_not_order(fakes: Fakes, links: Links) -> None:
    fake, link, _ = up(fakes, links)
    fake.device.stray_before_replies(1)  # a reply with another seq arrives first
    reply = link.request(m.GetStatus())
    assert isinstance(reply, m.Status)
    assert link.health().stray_replies == 1
    assert link.request(m.Heartbeat()) == m.Ack(MsgType.HEARTBEAT)


def test_slow_reply_then_stored_reply_counts_one_duplicate(fakes: Fakes, links: Links) -> None:
    fake, link, _ = up(fakes, links)
    t_reply = link.t_reply(MsgType.HEARTBEAT)
    fake.device.delay_replies(t_reply * 1.5)
    assert link.request(m.Heartbeat()) == m.Ack(MsgType.HEARTBEAT)
    fake.device.delay_replies(0)
    sends = fake.device.rx(MsgType.HEARTBEAT)
    assert len(sends) == 2 and sends[0].raw == sends[1].raw
    assert wait_until(lambda: link.health().duplicate_replies == 1)


def test_late_reply_after_giving_up_is_ignored(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links)
    fake.device.silence()
    with pytest.raises(LinkLost):
        link.request(m.GetStatus())
    abandoned = fake.device.rx(MsgType.GET_STATUS)[-1].seq
    fake.device.send_reply(abandoned, m.Status(0x1234, 1, 0, 0, 0, 0, 1, 0, 0, 0))
    assert wait_until(lambda: link.health().late_replies == 1)
    assert link.last_status is not None and link.last_status.step_id == 0
    assert rec.kinds().count(LinkEventKind.RECONNECTED) == 0


def test_three_resends_then_link_lost_and_estop_written(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links)
    before = link.health()
    fake.device.silence()
    with pytest.raises(LinkLost) as caught:
        link.request(m.Stop())
    assert "did not answer STOP after 4 sends" in str(caught.value)
    assert caught.value.sent is True
    dev = fake.device
    assert dev.wait_rx(MsgType.ESTOP)
    stops = dev.rx(MsgType.STOP)
    assert len(stops) == 4
    assert len({r.raw for r in stops}) == 1
    estop = dev.rx(MsgType.ESTOP)[0]
    assert estop.t >= stops[-1].t and estop.seq != stops[0].seq
    assert link.state is LinkState.LOST
    lost = rec.wait_kind(LinkEventKind.LINK_LOST)
    assert lost.request is MsgType.STOP and "ESTOP sent" in lost.message
    health = link.health()
    assert health.link_losses == 1 and health.requests_given_up == 1
    assert health.retransmissions - before.retransmissions == 3
    # while lost, requests are refused at once without sending anything
    with pytest.raises(LinkLost) as refused:
        link.request(m.Heartbeat())
    assert refused.value.sent is False


def test_link_recovers_after_loss_by_handshaking(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links)
    fake.device.silence()
    with pytest.raises(LinkLost):
        link.request(m.Heartbeat())
    fake.device.silence(False)
    event = rec.wait_kind(LinkEventKind.RECONNECTED)
    assert event.hello is not None and event.status is not None
    assert link.state is LinkState.UP
    assert link.request(m.Heartbeat()) == m.Ack(MsgType.HEARTBEAT)


def test_device_frame_with_wrong_body_length_is_dropped_and_counted(
    fakes: Fakes, links: Links
) -> None:
    fake, link, rec = up(fakes, links)
    fake.device.send_raw_frame(0, MsgType.TELEMETRY, b"\x01" * 5)
    fake.device.send_raw_frame(0, 0xC7, b"")
    assert wait_until(lambda: link.health().malformed_frames == 1)
    assert wait_until(lambda: link.health().unknown_type_frames == 1)
    assert rec.telemetry == []
    assert link.request(m.Heartbeat()) == m.Ack(MsgType.HEARTBEAT)


def test_corrupted_frames_are_counted_and_the_stream_recovers(fakes: Fakes, links: Links) -> None:
    fake, link, _ = up(fakes, links)
    good = bytearray(fake.device.rx()[0].raw)  # any valid frame's bytes
    good[2] ^= 0x40  # flip a bit: CRC fails
    fake.device.send_raw(bytes(good))
    fake.device.send_raw(b"\x05\x01\x02\x00")  # COBS code says 4 bytes follow: invalid
    fake.device.send_raw(b"\x03\x01\x00")  # decodes to 2 bytes: too short
    assert wait_until(lambda: link.health().crc_errors == 1)
    assert wait_until(lambda: link.health().cobs_errors + link.health().short_frames == 2)
    assert isinstance(link.request(m.GetStatus()), m.Status)


def test_status_reply_updates_device_counters_and_state(fakes: Fakes, links: Links) -> None:
    fake, link, _ = up(fakes, links)
    fake.device.rx_crc_errors = 3
    link.request(m.GetStatus())
    health = link.health()
    assert health.device_rx_crc_errors == 3
    assert link.device_state is State.IDLE


def test_request_after_close_raises_link_closed(fakes: Fakes, links: Links) -> None:
    _, link, rec = up(fakes, links)
    link.close()
    with pytest.raises(LinkClosed):
        link.request(m.Heartbeat())
    assert link.estop() is False
    assert rec.kinds()[-1] is LinkEventKind.CLOSED


def test_estop_rejected_through_request(fakes: Fakes, links: Links) -> None:
    _, link, _ = up(fakes, links)
    with pytest.raises(ValueError, match="estop"):
        link.request(m.Estop())
    with pytest.raises(ValueError, match="not a host request"):
        link.request(m.Ack(1))


def test_fault_from_device_is_learned_from_events(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links)
    link.request(STEP, epoch=link.epoch)
    link.request(m.Start(), epoch=link.epoch)
    fake.device.raise_fault(Fault.OVERTEMP)
    assert wait_until(lambda: link.device_state is State.FAULT)
    assert wait_until(lambda: any(e.event == 3 and e.arg == Fault.OVERTEMP for e in rec.events))
