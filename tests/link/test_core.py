"""The sans-IO link core, driven with a fake clock and scripted bytes: no threads, no sleeps.

Each finding of the review that made the link's promises hold "by timing" is reproduced here as
a plain sequence of calls (the late resend, an old CLEAR_FAULTS after ESTOP, a START decided
before a reconnect, a stalled supervisor, another unit answering, a restart while unplugged).
"""

from __future__ import annotations

import pytest

from controller.link.connection import SUPERVISION_WINDOW_S
from controller.link.errors import (
    LinkLost,
    OtherUnit,
    OutcomeUnknown,
    StaleCommand,
)
from controller.link.events import LinkEvent, LinkEventKind
from controller.link.identity import Continuity, DeviceIdentity
from controller.link.states import TRANSITIONS, LinkState, TransitionError, Trigger, next_state
from controller.wire import messages as m
from controller.wire.codec import encode_frame
from controller.wire.constants import RETRIES, MsgType, State
from controller.wire.sequence import dseq_is_newer, dseq_lost
from tests.link.core_harness import BOOT, SERIAL, CoreHarness, hello_reply, status, telemetry

STEP = m.ConfigureStep(7, 1, 0, 400, 500, 500, 100, 0, 0, 0, 0, 5000, 600_000, 1)


def up() -> CoreHarness:
    h = CoreHarness.make()
    h.connect()
    assert h.core.state is LinkState.UP
    return h


def events(h: CoreHarness, kind: LinkEventKind) -> list[LinkEvent]:
    return [d for d in h.deliveries if isinstance(d, LinkEvent) and d.kind is kind]


def running(h: CoreHarness) -> None:
    """Put the device in RUNNING as the core sees it, with the supervision checked in."""
    h.submit(STEP, epoch=h.core.epoch)
    h.answer()
    h.submit(m.Start(), epoch=h.core.epoch)
    h.answer()
    h.receive(0, telemetry(1, State.RUNNING))
    h.checkin()
    assert h.core.device_state is State.RUNNING


# --- the handshake and the wire -----------------------------------------------------------


def test_every_host_frame_starts_with_a_delimiter_and_the_first_is_hello() -> None:
    h = CoreHarness.make()
    h.core.port_opened(0.0)
    first = h.flush()
    assert [w.mtype for w in first] == [MsgType.HELLO]
    assert first[0].write.data == b"\0" + first[0].write.data[1:]
    assert first[0].seq == 1
    h.answer(first[0], hello_reply())
    assert h.last().mtype is MsgType.GET_STATUS
    h.answer()
    assert h.core.state is LinkState.UP and h.kinds() == ["link_up"]
    assert h.core.pinned == DeviceIdentity("EPM-1", SERIAL, BOOT)


def test_seq_numbering_carries_over_to_a_new_core_and_never_restarts() -> None:
    h = CoreHarness.make(Continuity(None, epoch=10, last_seq=254))
    h.connect()
    assert [w.seq for w in h.log] == [255, 1]  # wraps 255 -> 1, never 0
    assert h.core.epoch > 10 and h.core.continuity.last_seq == 1


# --- order on the wire ------------------------------------------------------------------


def test_a_resend_due_when_its_reply_arrived_is_not_written_late() -> None:
    """The review saw PAUSE(7) RESUME(9) PAUSE(10) RESUME(9): a resend decided before its
    reply arrived, written after a newer request. Here the decision is taken at the write."""
    h = up()
    running(h)
    h.submit(m.Pause())
    h.answer()
    h.submit(m.Resume(), epoch=h.core.epoch)
    resume = h.last(MsgType.RESUME)
    deadline = h.core.next_deadline()
    assert deadline is not None
    h.now = deadline + 0.001  # past T_reply: a resend is due ...
    h.core.handle_timer(h.now)
    h.receive(resume.seq, m.Ack(MsgType.RESUME))  # ... but its reply overtakes it
    while h.core.outstanding is not None:  # (a heartbeat went meanwhile)
        h.answer()
    h.submit(m.Pause())
    pause = h.last(MsgType.PAUSE)
    h.advance(1.0)
    after = h.log[h.log.index(pause) :]
    assert all(w.seq != resume.seq for w in after)
    assert [w.seq for w in h.log].count(resume.seq) == 1


def test_at_most_one_request_is_outstanding_and_the_next_waits_for_the_reply() -> None:
    h = up()
    first = h.submit(m.GetStatus())
    second = h.submit(m.Heartbeat())
    assert h.written_types(2) == [MsgType.GET_STATUS]
    h.answer()
    assert h.written_types(2) == [MsgType.GET_STATUS, MsgType.HEARTBEAT]
    h.answer()
    assert isinstance(h.completions[first], m.Status)
    assert h.completions[second] == m.Ack(MsgType.HEARTBEAT)


def test_a_lost_reply_is_resent_identically_three_times_then_the_link_is_lost() -> None:
    h = up()
    ticket = h.submit(m.Start(), epoch=h.core.epoch)  # outcome-uncertain
    start = h.last()
    for _ in range(RETRIES + 1):
        h.advance(0.2)
    starts = [w for w in h.log if w.mtype is MsgType.START]
    assert len(starts) == RETRIES + 1 and len({w.write.data for w in starts}) == 1
    assert starts[0].seq == start.seq
    assert isinstance(h.completions[ticket], OutcomeUnknown)
    assert h.core.state is LinkState.LOST
    # ESTOP (best effort) first, then the re-handshake
    tail = h.written_types(h.log.index(starts[-1]) + 1)
    assert tail[:2] == [MsgType.ESTOP, MsgType.HELLO]
    assert [e.request for e in events(h, LinkEventKind.OUTCOME_UNKNOWN)] == [MsgType.START]


# --- ESTOP ------------------------------------------------------------------------------


def test_estop_goes_first_and_abandons_the_outstanding_request_for_good() -> None:
    """An old CLEAR_FAULTS re-sent after an ESTOP cleared its latch: never again."""
    h = up()
    h.core.device_state = State.FAULT
    ticket = h.submit(m.ClearFaults(), epoch=h.core.epoch)
    clear = h.last(MsgType.CLEAR_FAULTS)
    gen = h.core.request_estop()
    assert gen is not None
    estop = h.flush()
    assert [w.mtype for w in estop] == [MsgType.ESTOP] and h.core.estop_written(gen)
    h.receive(estop[0].seq, m.Ack(MsgType.ESTOP))
    for _ in range(6):
        h.advance(0.1)
    assert [w.seq for w in h.log].count(clear.seq) == 1  # never re-sent
    assert isinstance(h.completions[ticket], LinkLost)
    assert "emergency stop" in str(h.completions[ticket])
    assert h.core.state is LinkState.UP  # an abandoned request does not lose the link
    assert h.core.health.snapshot(h.core.state).abandoned_requests == 1


def test_a_day_of_emergency_stops_leaves_no_growing_bookkeeping() -> None:
    """Found by the soak (make soak): the link kept one entry per ESTOP it ever wrote (whether
    its bytes went out), for the life of the link, which is all day in a clinic. What a caller
    asks ("did my ESTOP, or a later one, go out?") needs only the newest one that did."""
    h = up()
    gens = []
    for _ in range(300):
        gen = h.core.request_estop()
        assert gen is not None
        estop = h.flush()
        h.receive(estop[0].seq, m.Ack(MsgType.ESTOP))
        gens.append(gen)
    assert all(h.core.estop_written(g) for g in gens)
    assert not h.core.estop_written(gens[-1] + 1)  # not asked for yet: not written
    grown = {
        name: len(value)
        for name, value in vars(h.core._out).items()
        if isinstance(value, dict | list | set) and len(value) > 50
    }
    assert grown == {}, grown


def test_a_reply_to_the_abandoned_request_is_still_delivered() -> None:
    h = up()
    ticket = h.submit(m.GetStatus())
    get = h.last()
    h.core.request_estop()
    h.flush()
    h.receive(get.seq, status())
    assert isinstance(h.completions[ticket], m.Status)


def test_estop_starts_a_new_epoch_so_a_command_decided_before_it_never_goes() -> None:
    h = up()
    decided = h.core.epoch
    h.submit(m.GetStatus())  # outstanding: the START below waits in the queue
    queued = h.core.submit(m.Start(), h.now, epoch=decided)
    h.core.request_estop()
    h.flush()
    assert isinstance(h.completions[queued], StaleCommand)
    with pytest.raises(StaleCommand):
        h.core.submit(m.ClearFaults(), h.now, epoch=decided)
    assert MsgType.START not in h.written_types()
    assert events(h, LinkEventKind.ESTOP_SENT)[-1].epoch == h.core.epoch


def test_an_unacknowledged_estop_is_resent_then_reported_and_the_link_lost() -> None:
    h = up()
    h.core.request_estop()
    h.flush()
    for _ in range(RETRIES + 2):
        h.advance(0.1)
    estops = [w for w in h.log if w.mtype is MsgType.ESTOP]
    assert len(estops) >= RETRIES + 1 and len({w.seq for w in estops[: RETRIES + 1]}) == 1
    assert events(h, LinkEventKind.ESTOP_UNCONFIRMED)
    assert h.core.state is LinkState.LOST


# --- epochs -----------------------------------------------------------------------------


def test_a_start_decided_before_a_reconnect_is_never_written_after_it() -> None:
    h = up()
    h.submit(STEP, epoch=h.core.epoch)
    h.answer()
    decided = h.core.epoch  # the engine decides START on this view ...
    h.core.port_failed(h.now, "unplugged")  # ... the port drops and comes back ...
    h.advance(0.2)
    h.connect()
    assert h.core.state is LinkState.UP and h.core.epoch > decided
    with pytest.raises(StaleCommand) as stale:  # ... and only then the START is submitted
        h.core.submit(m.Start(), h.now, epoch=decided)
    assert stale.value.sent is False and stale.value.decided_epoch == decided
    assert MsgType.START not in h.written_types()


def test_commands_queued_when_the_connection_changes_die_with_it() -> None:
    h = up()
    h.submit(m.GetStatus())
    queued = h.core.submit(m.Start(), h.now, epoch=h.core.epoch)
    h.core.port_failed(h.now, "unplugged")
    h.flush()
    error = h.completions[queued]
    assert isinstance(error, LinkLost) and not error.sent
    h.advance(0.2)
    h.connect()
    h.advance(1.0)
    assert MsgType.START not in h.written_types()


def test_pause_and_stop_are_not_bound_to_an_epoch() -> None:
    h = up()
    old = h.core.epoch
    h.core.request_estop()
    h.flush()
    assert h.core.epoch != old
    h.submit(m.Stop(), epoch=old)
    assert h.last().mtype is MsgType.STOP


# --- supervision ------------------------------------------------------------------------


def test_a_stalled_supervisor_stops_the_links_own_frames_but_never_estop() -> None:
    h = up()
    running(h)
    checked_in = h.now
    beats_before = h.written_types().count(MsgType.HEARTBEAT)
    for _ in range(40):  # 2 s in 50 ms steps, no check-in; the device answers what it gets
        h.advance(0.05)
        if h.core.outstanding is not None:
            h.answer()
    beats = [w for w in h.log if w.mtype is MsgType.HEARTBEAT]
    assert len(beats) > beats_before  # heartbeats while the check-in was recent ...
    assert beats[-1].t - checked_in <= SUPERVISION_WINDOW_S + 1e-9  # ... and none after
    assert len(events(h, LinkEventKind.SUPERVISION_LOST)) == 1
    h.receive(0, telemetry(9, State.RUNNING))  # a dseq gap: no GET_STATUS of its own either
    assert MsgType.GET_STATUS not in h.written_types(h.log.index(beats[-1]))
    h.core.request_estop()
    estop = h.flush()
    assert [w.mtype for w in estop] == [MsgType.ESTOP]  # ESTOP is never held back
    h.receive(estop[0].seq, m.Ack(MsgType.ESTOP))
    h.receive(0, telemetry(10, State.RUNNING))  # (as if the device had not obeyed)
    h.checkin()
    h.advance(0.06)
    assert h.last().mtype is MsgType.HEARTBEAT  # checked in again: heartbeats resume


def test_a_stall_while_the_links_own_request_waits_for_its_reply_is_a_stall() -> None:
    """Found under load (tests/session/test_engine_connection.py stalled-engine test): a
    heartbeat's reply was lost just as the engine stalled. Its resend was rightly held back,
    but it stayed outstanding, so no heartbeat could be decided and the stall was never
    declared (no SUPERVISION_LOST, ``supervision_stalls`` 0). Holding back a resend of the
    link's own frame for want of supervision is a stall."""
    h = up()
    running(h)
    checked_in = h.now
    while h.now < checked_in + SUPERVISION_WINDOW_S - 0.08:  # the device answers until here
        h.advance(0.01)
        if h.core.outstanding is not None:
            h.answer()
    for _ in range(10):  # the next heartbeat, inside the window: its reply will be lost
        if h.core.outstanding is not None:
            break
        h.advance(0.01)
    beat = h.last()
    assert beat.mtype is MsgType.HEARTBEAT
    for _ in range(100):  # 1 s, no check-in, no reply
        h.advance(0.01)
    late = [w for w in h.log if w.t > checked_in + SUPERVISION_WINDOW_S]
    assert late == [], "nothing of the link's own once the supervision is gone"
    assert h.core.outstanding is not None and h.core.outstanding.seq == beat.seq
    assert len(events(h, LinkEventKind.SUPERVISION_LOST)) == 1
    assert h.core.health.count("supervision_stalls") == 1
    h.checkin()
    h.advance(0.01)
    assert any(w.seq == beat.seq and w.write.resend for w in h.log), "resent once checked in"


def test_without_any_check_in_an_active_device_gets_no_heartbeat() -> None:
    h = up()
    h.receive(0, telemetry(1, State.PAUSED))
    h.advance(0.2)
    assert MsgType.HEARTBEAT not in h.written_types()
    assert events(h, LinkEventKind.SUPERVISION_LOST)


def test_an_inactive_device_needs_no_supervision_for_a_status_after_a_gap() -> None:
    h = up()
    h.receive(0, telemetry(1, State.IDLE))
    h.receive(0, telemetry(5, State.IDLE))
    assert h.last().mtype is MsgType.GET_STATUS
    assert events(h, LinkEventKind.DSEQ_GAP)[0].lost == 3


# --- identity ---------------------------------------------------------------------------


def test_another_unit_after_a_reconnect_gets_nothing_but_status_and_estop_if_active() -> None:
    h = up()
    h.core.port_failed(h.now, "unplugged")
    h.advance(0.2)
    h.core.port_opened(h.now)
    h.flush()
    h.answer(h.last(MsgType.HELLO), hello_reply(serial="SIM-000099", boot_id=0x9999))
    assert h.core.state is LinkState.OTHER_UNIT
    changed = events(h, LinkEventKind.UNIT_CHANGED)[0]
    assert changed.identity is not None and changed.identity.serial == SERIAL
    assert changed.other is not None and changed.other.serial == "SIM-000099"
    assert SERIAL in changed.message and "SIM-000099" in changed.message
    h.answer(h.last(MsgType.GET_STATUS), status(State.RUNNING, boot_id=0x9999))
    assert h.last().mtype is MsgType.ESTOP  # it is active: stop it
    with pytest.raises(OtherUnit) as refused:
        h.core.submit(m.Start(), h.now, epoch=h.core.epoch)
    assert (refused.value.expected, refused.value.found) == (SERIAL, "SIM-000099")
    since_reopen = h.written_types(h.log.index(h.last(MsgType.HELLO)))
    assert set(since_reopen) <= {MsgType.HELLO, MsgType.GET_STATUS, MsgType.ESTOP}
    h.receive(0, telemetry(1, State.RUNNING, boot_id=0x9999))
    assert not any(isinstance(d, m.Telemetry) for d in h.deliveries[-3:])  # not ours
    assert h.core.pinned is not None and h.core.pinned.serial == SERIAL  # never adopted


def test_the_operator_may_adopt_the_other_unit() -> None:
    h = up()
    h.core.port_failed(h.now, "unplugged")
    h.advance(0.2)
    h.core.port_opened(h.now)
    h.flush()
    h.answer(h.last(MsgType.HELLO), hello_reply(serial="SIM-000099", boot_id=0x9999))
    h.answer(h.last(MsgType.GET_STATUS), status(State.IDLE, boot_id=0x9999))
    h.core.adopt_other_unit(h.now)
    assert h.core.state is LinkState.UP
    assert h.core.pinned == DeviceIdentity("EPM-1", "SIM-000099", 0x9999)
    assert h.submit(m.Heartbeat()) and h.last().mtype is MsgType.HEARTBEAT


def test_a_restart_while_the_port_was_closed_is_reported_on_the_handshake() -> None:
    h = up()
    h.core.port_failed(h.now, "unplugged")
    h.advance(0.2)
    h.connect(hello_reply(boot_id=0xBEEF))
    restarted = events(h, LinkEventKind.DEVICE_RESTARTED)
    assert len(restarted) == 1
    assert (restarted[0].old_boot_id, restarted[0].new_boot_id) == (BOOT, 0xBEEF)
    kinds = h.kinds()
    assert kinds.index("device_restarted") < kinds.index("reconnected")
    # Reconnecting again before the operator acknowledged it: not reported twice ...
    h.core.port_failed(h.now, "unplugged")
    h.advance(0.2)
    h.connect(hello_reply(boot_id=0xBEEF))
    assert len(events(h, LinkEventKind.DEVICE_RESTARTED)) == 1
    # ... and once acknowledged, the new boot_id is the one kept.
    h.core.acknowledge_restart()
    assert h.core.pinned is not None and h.core.pinned.boot_id == 0xBEEF


def test_a_pin_carried_to_a_new_core_finds_another_unit_on_the_first_open() -> None:
    pinned = DeviceIdentity("EPM-1", SERIAL, BOOT)
    h = CoreHarness.make(Continuity(pinned, epoch=5, last_seq=40))
    h.core.port_opened(h.now)
    h.flush()
    h.answer(h.last(MsgType.HELLO), hello_reply(serial="SIM-000777"))
    assert h.core.state is LinkState.OTHER_UNIT
    assert h.log[0].seq == 41


def test_a_restart_seen_in_telemetry_fails_the_request_in_flight_and_rehandshakes() -> None:
    h = up()
    h.receive(0, telemetry(1, State.IDLE))
    ticket = h.submit(m.SetAmplitude(300), epoch=h.core.epoch)
    h.receive(0, telemetry(0, State.IDLE, boot_id=0x4321))
    assert isinstance(h.completions[ticket], OutcomeUnknown)
    assert h.core.state is LinkState.CONNECTING and h.last().mtype is MsgType.HELLO
    assert events(h, LinkEventKind.DEVICE_RESTARTED)[0].new_boot_id == 0x4321


# --- device frames ----------------------------------------------------------------------


def test_a_repeated_or_older_dseq_is_not_counted_as_lost_frames() -> None:
    h = up()
    for dseq in (10, 11, 11, 11, 12):  # a noisy line duplicates frames
        h.receive(0, telemetry(dseq, State.IDLE, t_ms=1000 + dseq))
    health = h.core.health.snapshot(h.core.state)
    assert health.telemetry_lost == 0 and health.dseq_gaps == 0
    h.receive(0, telemetry(15, State.IDLE, t_ms=2000))
    assert h.core.health.snapshot(h.core.state).telemetry_lost == 2


def test_dseq_helper_wraps() -> None:
    assert dseq_lost(65535, 0) == 0 and dseq_is_newer(0, 65535)
    assert dseq_lost(65534, 1) == 2
    assert dseq_lost(5, 5) == 0 and dseq_lost(5, 4) == 0 and not dseq_is_newer(4, 5)
    assert dseq_lost(None, 7) == 0


def test_frames_before_the_unit_is_identified_are_not_delivered() -> None:
    h = CoreHarness.make()
    h.core.port_opened(h.now)
    h.flush()
    h.receive(0, telemetry(1, State.IDLE, boot_id=0x7777))
    assert not any(isinstance(d, m.Telemetry) for d in h.deliveries)
    assert h.core.health.snapshot(h.core.state).unidentified_frames == 1


# --- the transition table ---------------------------------------------------------------


def test_every_state_and_trigger_has_an_answer_from_the_table() -> None:
    for state in LinkState:
        for trigger in Trigger:
            if trigger in TRANSITIONS[state]:
                assert next_state(state, trigger) in LinkState
            else:
                with pytest.raises(TransitionError, match=trigger.value):
                    next_state(state, trigger)
    # Every state can be closed, and only the handshake or adoption makes a link UP.
    assert all(Trigger.CLOSE in TRANSITIONS[s] for s in LinkState)
    ups = {(s, t) for s, row in TRANSITIONS.items() for t, to in row.items() if to is LinkState.UP}
    assert {t for _, t in ups} == {Trigger.HANDSHAKE_DONE, Trigger.ADOPTED}


def test_every_transition_but_close_starts_a_new_epoch() -> None:
    h = CoreHarness.make()
    seen = [h.core.epoch]
    h.connect()
    seen.append(h.core.epoch)
    h.core.port_failed(h.now, "x")
    seen.append(h.core.epoch)
    assert seen == sorted(set(seen))
    before = h.core.epoch
    h.core.close(h.now)
    assert h.core.epoch == before and h.core.state is LinkState.CLOSED


def test_the_links_own_frames_are_not_resent_once_the_supervision_is_stale() -> None:
    """An unanswered HEARTBEAT's resends would feed the watchdog too: they stop with it."""
    h = up()
    running(h)
    h.advance(0.06)
    beat = h.last(MsgType.HEARTBEAT)
    for _ in range(20):  # the device does not answer; nobody checks in
        h.advance(0.05)
    resends = [w for w in h.log if w.seq == beat.seq and w.write.resend]
    assert all(w.t - beat.t <= SUPERVISION_WINDOW_S for w in resends)


# --- silence as the reader heard it (issue 11: "Measurements stopped" on a busy PC) --------


def test_telemetry_silence_is_measured_between_moments_the_reader_saw() -> None:
    h = CoreHarness.make()
    assert h.core.telemetry_silence_s() is None, "nothing to measure before the link is up"
    h.connect()
    h.receive(0, telemetry(1, State.IDLE))
    h.now += 0.2
    h.core.listened(h.now)  # the reader's read timed out: it listened and heard nothing
    assert h.core.telemetry_silence_s() == pytest.approx(0.2)
    h.now += 0.2
    h.core.listened(h.now)
    assert h.core.telemetry_silence_s() == pytest.approx(0.4), "a device that is really silent"
    h.receive(0, telemetry(2, State.IDLE))
    assert h.core.telemetry_silence_s() == 0.0


def test_a_host_too_busy_to_read_is_not_a_silent_device() -> None:
    h = up()
    h.receive(0, telemetry(1, State.IDLE))
    h.now += 1.5  # the host was starved for 1.5 s: the reader never came back from the port
    assert h.core.telemetry_silence_s() == 0.0, "no listening, so no silence was heard"
    # When it reads again, the frames the device sent meanwhile are in the port's buffer.
    backlog = b"".join(encode_frame(0, telemetry(n, State.IDLE)) for n in range(2, 60))
    h.core.receive_data(backlog, h.now)
    assert h.core.telemetry_silence_s() == 0.0


def test_silence_starts_when_the_link_comes_up_and_ends_with_it() -> None:
    h = CoreHarness.make()
    h.core.port_opened(h.now)
    h.flush()
    h.now += 5.0
    h.core.listened(h.now)
    assert h.core.telemetry_silence_s() is None, "handshaking: not up yet"
    h.answer(h.last(MsgType.HELLO), hello_reply())
    h.answer(h.last(MsgType.GET_STATUS), status())
    h.now += 0.1
    h.core.listened(h.now)
    assert h.core.telemetry_silence_s() == pytest.approx(0.1), "counted from the link coming up"
    h.core.port_failed(h.now, "unplugged")
    assert h.core.telemetry_silence_s() is None


def test_telemetry_from_another_unit_is_not_heard_as_the_pinned_units() -> None:
    h = up()
    h.receive(0, telemetry(1, State.IDLE))
    h.core.port_failed(h.now, "unplugged")
    h.flush()
    h.now += 0.5
    h.core.port_opened(h.now)
    h.flush()
    h.answer(h.last(MsgType.HELLO), hello_reply(serial="SIM-000999"))
    assert h.core.state is LinkState.OTHER_UNIT
    h.receive(0, telemetry(1, State.IDLE))
    assert h.core.telemetry_silence_s() is None
