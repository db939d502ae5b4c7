"""Heartbeat, ESTOP that jumps the queue, outcome-unknown requests, dseq gaps, device restarts,
and what close() does - measured from the fake device's side of a real pty."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable

import pytest

from controller.link import Link, LinkEventKind, LinkLost, LinkState, OutcomeUnknown
from controller.wire import messages as m
from controller.wire.constants import Fault, MsgType, State
from tests.wire_fakes.fake_device import FakeOnPty
from tests.wire_fakes.fixtures import Recorder, wait_until

Fakes = Callable[..., FakeOnPty]
Links = Callable[..., tuple[Link, Recorder]]

STEP = m.ConfigureStep(7, 1, 0, 400, 500, 500, 100, 0, 0, 0, 0, 5000, 600_000, 1)


def up(fakes: Fakes, links: Links, **config: object) -> tuple[FakeOnPty, Link, Recorder]:
    fake = fakes(**config)
    link, rec = links(fake.path)
    link.open()
    return fake, link, rec


def running(fakes: Fakes, links: Links, **config: object) -> tuple[FakeOnPty, Link, Recorder]:
    fake, link, rec = up(fakes, links, **config)
    link.request(STEP, epoch=link.epoch)
    link.request(m.Start(), epoch=link.epoch)
    assert fake.device.state is State.RUNNING
    return fake, link, rec


# --- heartbeat -------------------------------------------------------------------------------


def test_heartbeat_keeps_a_frame_on_the_wire_every_100_ms_while_running(
    fakes: Fakes, links: Links
) -> None:
    fake, link, _ = running(fakes, links)
    dev = fake.device
    start_t = dev.rx(MsgType.START)[-1].t
    assert dev.wait_rx(MsgType.HEARTBEAT, count=12, timeout=10)
    frames = [r for r in dev.rx() if r.t >= start_t]
    beats = [r for r in frames if r.mtype == MsgType.HEARTBEAT]
    window = beats[-1].t - start_t
    assert len(beats) / window >= 5.0  # nominal ~18/s; conservative floor
    gaps = [b.t - a.t for a, b in itertools.pairwise(frames)]
    assert max(gaps) < 0.200  # requirement 100 ms; slack for a loaded machine
    assert dev.state is State.RUNNING and not dev.faults & Fault.WATCHDOG
    assert wait_until(lambda: link.health().heartbeats_sent >= 12)


@pytest.mark.parametrize("state", [State.IDLE, State.READY])
def test_no_heartbeat_outside_active_states(fakes: Fakes, links: Links, state: State) -> None:
    fake, link, rec = up(fakes, links, telemetry_hz=100)
    if state is State.READY:
        link.request(STEP, epoch=link.epoch)
    rec.wait_telemetry(len(rec.telemetry) + 30)  # ≥ 300 ms of device time pass
    assert fake.device.rx(MsgType.HEARTBEAT) == []
    assert link.device_state is state


def test_heartbeats_stop_after_the_step_ends(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links, telemetry_hz=100)
    link.request(STEP._replace(duration_ms=150), epoch=link.epoch)
    link.request(m.Start(), epoch=link.epoch)
    assert wait_until(lambda: link.device_state is State.IDLE)
    rec.wait_telemetry(len(rec.telemetry) + 5)
    beats = len(fake.device.rx(MsgType.HEARTBEAT))
    rec.wait_telemetry(len(rec.telemetry) + 25)
    assert len(fake.device.rx(MsgType.HEARTBEAT)) == beats


# --- ESTOP -----------------------------------------------------------------------------------


def test_estop_is_written_while_another_request_waits_for_its_reply(
    fakes: Fakes, links: Links
) -> None:
    fake, link, rec = up(fakes, links)
    dev = fake.device
    link.request(STEP, epoch=link.epoch)
    dev.hold_replies(MsgType.START)
    result: list[object] = []
    starter = threading.Thread(
        target=lambda: result.append(link.request(m.Start(), epoch=link.epoch))
    )
    starter.start()
    try:
        assert dev.wait_rx(MsgType.START)
        assert link.estop() is True
        assert dev.wait_rx(MsgType.ESTOP)
    finally:
        dev.release_held()
        starter.join(5)
    start_rx = dev.rx(MsgType.START)[0]
    estop_rx = dev.rx(MsgType.ESTOP)[0]
    start_acks = [t for t in dev.tx(MsgType.ACK) if t.seq == start_rx.seq]
    assert start_acks and estop_rx.t < start_acks[0].t  # ESTOP went out before START's reply
    assert estop_rx.seq != start_rx.seq
    assert result == [m.Ack(MsgType.START)]
    rec.wait_kind(LinkEventKind.ESTOP_CONFIRMED)
    assert wait_until(lambda: dev.state is State.FAULT)
    assert dev.faults & Fault.ESTOP


def test_unacknowledged_estop_is_resent_then_reported(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links)
    fake.device.silence()
    assert link.estop() is True
    event = rec.wait_kind(LinkEventKind.ESTOP_UNCONFIRMED)
    assert "device's own stop button" in event.message
    estops = fake.device.rx(MsgType.ESTOP)
    assert len(estops) == 4 and len({r.raw for r in estops}) == 1
    rec.wait_kind(LinkEventKind.LINK_LOST)


# --- outcome unknown -------------------------------------------------------------------------


def test_start_with_link_lost_is_outcome_unknown_and_never_resent(
    fakes: Fakes, links: Links
) -> None:
    fake, link, rec = up(fakes, links)
    dev = fake.device
    link.request(STEP, epoch=link.epoch)
    dev.silence()
    with pytest.raises(OutcomeUnknown) as caught:
        link.request(m.Start(), epoch=link.epoch)
    assert caught.value.request is MsgType.START
    assert "will not send it again" in str(caught.value)
    event = rec.wait_kind(LinkEventKind.OUTCOME_UNKNOWN)
    assert event.request is MsgType.START
    dev.silence(False)
    rec.wait_kind(LinkEventKind.RECONNECTED)
    # after reconnecting, a few more exchanges, and still only the 4 identical START frames
    link.request(m.GetStatus())
    link.request(m.Heartbeat())
    starts = dev.rx(MsgType.START)
    assert len(starts) == 4 and len({(r.seq, r.raw) for r in starts}) == 1
    assert dev.rx(MsgType.RESUME) == [] and dev.rx(MsgType.SET_AMPLITUDE) == []


@pytest.mark.parametrize("msg", [m.Resume(), m.SetAmplitude(300)])
def test_resume_and_set_amplitude_are_outcome_sensitive(
    fakes: Fakes, links: Links, msg: m.Message
) -> None:
    fake, link, _ = running(fakes, links)
    fake.device.silence()
    with pytest.raises(OutcomeUnknown):
        link.request(msg, epoch=link.epoch)


def test_pause_with_link_lost_is_plain_link_lost(fakes: Fakes, links: Links) -> None:
    fake, link, _ = running(fakes, links)
    fake.device.silence()
    with pytest.raises(LinkLost) as caught:
        link.request(m.Pause())
    assert not isinstance(caught.value, OutcomeUnknown)


def test_reconnect_after_loss_in_running_never_resumes(fakes: Fakes, links: Links) -> None:
    fake, _link, rec = running(fakes, links)
    dev = fake.device
    dev.silence()
    rec.wait_kind(LinkEventKind.LINK_LOST)  # a heartbeat went unanswered
    assert dev.wait_rx(MsgType.ESTOP)  # the loss ESTOP reached the (silent) device
    lost_at = dev.rx()[-1].t
    dev.silence(False)
    event = rec.wait_kind(LinkEventKind.RECONNECTED)
    assert event.status is not None and event.status.state == State.FAULT
    assert event.status.faults & Fault.WATCHDOG  # HELLO in an active state latched it
    assert "does not resume by itself" in event.message
    after = [r.mtype for r in dev.rx() if r.t > lost_at]
    assert MsgType.START not in after and MsgType.RESUME not in after


# --- dseq gaps and restarts ------------------------------------------------------------------


def test_dseq_gap_triggers_get_status(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links, telemetry_hz=100)
    rec.wait_telemetry(5)
    statuses = len(fake.device.rx(MsgType.GET_STATUS))
    fake.device.skip_dseq(5)
    gap = rec.wait_kind(LinkEventKind.DSEQ_GAP)
    assert gap.lost == 5
    assert fake.device.wait_rx(MsgType.GET_STATUS, count=statuses + 1)
    refreshed = rec.wait_kind(LinkEventKind.STATUS_REFRESHED)
    assert refreshed.status is not None
    health = link.health()
    assert health.telemetry_lost == 5 and health.dseq_gaps == 1


def test_boot_id_change_reports_restart_and_rehandshakes(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links, telemetry_hz=100)
    rec.wait_telemetry(3)
    hellos = len(fake.device.rx(MsgType.HELLO))
    fake.device.restart(boot_id=0x9999)
    restarted = rec.wait_kind(LinkEventKind.DEVICE_RESTARTED)
    assert (restarted.old_boot_id, restarted.new_boot_id) == (0x1234, 0x9999)
    assert "void" in restarted.message
    again = rec.wait_kind(LinkEventKind.RECONNECTED)
    assert again.hello is not None and again.hello.boot_id == 0x9999
    assert len(fake.device.rx(MsgType.HELLO)) == hellos + 1
    assert link.state is LinkState.UP
    assert link.health().device_restarts == 1
    assert link.health().dseq_gaps == 0  # the new stream starting at 0 is not a gap


def test_device_clock_going_backwards_is_a_restart(fakes: Fakes, links: Links) -> None:
    fake, _, rec = up(fakes, links, telemetry_hz=100, t_offset_ms=3_600_000)
    rec.wait_telemetry(3)
    fake.device.restart(boot_id=0x1234)  # same boot_id, clock from 0
    restarted = rec.wait_kind(LinkEventKind.DEVICE_RESTARTED)
    assert "backwards" in restarted.message
    rec.wait_kind(LinkEventKind.RECONNECTED)


def test_telemetry_rate_is_restored_after_a_rehandshake(fakes: Fakes, links: Links) -> None:
    fake, link, rec = up(fakes, links, telemetry_hz=50)
    link.request(m.SetTelemetry(120))
    fake.device.restart(boot_id=0x4444)
    rec.wait_kind(LinkEventKind.RECONNECTED)
    rates = [r.body for r in fake.device.rx(MsgType.SET_TELEMETRY)]
    assert rates == [(120).to_bytes(2, "little")] * 2


# --- close -----------------------------------------------------------------------------------


def test_close_ends_every_thread_promptly(fakes: Fakes, links: Links) -> None:
    _, link, _ = up(fakes, links, telemetry_hz=200)
    threads = link.threads
    assert all(t.is_alive() and t.daemon for t in threads)
    closer = threading.Thread(target=link.close)
    closer.start()
    closer.join(5)
    assert not closer.is_alive()
    assert not any(t.is_alive() for t in threads)
    assert not link.port_is_open


def test_close_while_running_sends_estop(fakes: Fakes, links: Links) -> None:
    fake, link, _ = running(fakes, links)
    link.close()
    assert fake.device.wait_rx(MsgType.ESTOP)


def test_close_wakes_a_waiting_request(fakes: Fakes, links: Links) -> None:
    fake, link, _ = up(fakes, links)
    fake.device.hold_replies(MsgType.GET_STATUS)
    errors: list[Exception] = []

    def ask() -> None:
        try:
            link.request(m.GetStatus())
        except Exception as exc:
            errors.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    assert fake.device.wait_rx(MsgType.GET_STATUS)
    link.close()
    asker.join(5)
    assert len(errors) == 1 and type(errors[0]).__name__ == "LinkClosed"


def test_listeners_run_on_the_dispatch_thread_and_may_make_requests(fakes: Fakes) -> None:
    """The reader never runs listener code: a listener that asks the link something gets its
    answer (the reply does not pass through the dispatcher) and the port keeps being read."""
    fake = fakes(telemetry_hz=100)
    answers: list[m.Message] = []
    holder: list[Link] = []

    class Asker(Recorder):
        def on_telemetry(self, telemetry: m.Telemetry) -> None:
            if len(answers) < 3:
                answers.append(holder[0].request(m.GetStatus()))
            super().on_telemetry(telemetry)

    asker = Asker()
    link = Link(fake.path, listener=asker, handshake_timeout=0.5)
    holder.append(link)
    try:
        link.open()
        asker.wait_telemetry(20)
    finally:
        link.close()
    assert len(answers) == 3 and all(isinstance(a, m.Status) for a in answers)
    assert asker.threads == {"epm-link-dispatch"}
