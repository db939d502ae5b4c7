"""The sans-IO core of the host side of the EPM-1 link (interface document §2 and §3).

A pure object, in the style of h11 and aioquic: it never reads a clock, touches a port or starts
a thread. The I/O shell (:class:`controller.link.link.Link`) tells it what happened — the port
opened or failed (:meth:`LinkCore.port_opened`, :meth:`LinkCore.port_failed`), bytes arrived
(:meth:`LinkCore.receive_data`), time passed (:meth:`LinkCore.handle_timer`), the session's
supervision checked in (:meth:`LinkCore.checkin`) — and asks it, at the moment of each write,
what to write next (:meth:`LinkCore.next_write`). What the core learned comes out as
completions of requests (:meth:`LinkCore.take_completions`) and, in order, telemetry, device
events and link events for the listener (:meth:`LinkCore.take_deliveries`).

Rules that hold by construction, because every write is decided here, when it is written
(:mod:`controller.link.outbox` keeps the requests):

* ESTOP first; once it is written the request outstanding at that moment is abandoned and never
  re-sent (a reply that still comes is delivered; without one its outcome is unknown).
* At most one request outstanding; a resend is written only while its request is still the
  outstanding one, so an earlier request is never written after a later one.
* A command of ``EPOCH_BOUND`` is written only in the connection epoch it was decided on; every
  transition of :mod:`controller.link.states` and every ESTOP written starts a new epoch.
* In an active device state the link writes nothing of its own accord (HEARTBEAT, GET_STATUS
  after a ``dseq`` gap) unless the supervision checked in within ``supervision_window``.
* The unit's identity is pinned (:mod:`controller.link.handshake`): another serial after a
  reconnect gets nothing but GET_STATUS (and ESTOP if active); a new ``boot_id`` is a restart,
  also across a closed port.

Times are host monotonic seconds, passed in by the caller.
"""

from __future__ import annotations

import logging
import math

from controller.link import texts
from controller.link.connection import (
    HEARTBEAT_IDLE_S,
    MAX_QUEUED,
    SUPERVISION_WINDOW_S,
    ConnectionCore,
    Delivery,
    state_of,
)
from controller.link.errors import (
    LinkClosed,
    LinkError,
    LinkLost,
    OtherUnit,
    StaleCommand,
)
from controller.link.events import LinkEventKind
from controller.link.handshake import (
    EXPECTED_MODEL,
)
from controller.link.outbox import (
    HANDSHAKE_PURPOSES,
    Completion,
    Match,
    Purpose,
    Request,
    Write,
)
from controller.link.states import HANDSHAKING, PORTLESS, LinkState
from controller.wire.codec import DecodeError, decode_message
from controller.wire.constants import (
    ACTIVE_STATES,
    EPOCH_BOUND,
    PROTO_VERSION,
    EventCode,
    MsgType,
    State,
)
from controller.wire.messages import (
    Ack,
    Event,
    GetStatus,
    Heartbeat,
    Hello,
    HelloReply,
    Message,
    Nak,
    SetTelemetry,
    Status,
    Telemetry,
    message_type,
)

__all__ = [
    "EXPECTED_MODEL",
    "HEARTBEAT_IDLE_S",
    "SUPERVISION_WINDOW_S",
    "Completion",
    "Delivery",
    "LinkCore",
]

log = logging.getLogger(__name__)


#: The link's frames of its own accord: in an active state only while supervised.
UNASKED = frozenset({Purpose.HEARTBEAT, Purpose.GAP_STATUS})


class LinkCore(ConnectionCore):
    """The protocol state of one host link; see the module docstring. Not thread-safe."""

    def supervised(self, now: float) -> bool:
        last = self._last_checkin
        return last is not None and now - last <= self._supervision_window

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` or :meth:`next_write` next has something to do."""
        times = [math.inf, *self._out.deadlines()]
        if self._hs is not None and self._hs.retry_at is not None:
            times.append(self._hs.retry_at)
        if self._trouble_since is not None and self._reconnect_timeout is not None:
            times.append(self._trouble_since + self._reconnect_timeout)
        if self._heartbeat_possible():
            times.append(self._out.last_tx + self._heartbeat_idle)
        soonest = min(times)
        return None if math.isinf(soonest) else soonest

    def checkin(self, now: float) -> bool:
        """The session's supervision is alive; True if the link had stopped its own frames."""
        self._last_checkin = now
        was, self._stalled = self._stalled, False
        if was:
            self._out.changed = True
        return was

    def handle_timer(self, now: float) -> None:
        """Give-ups that time decides: a request past its last resend (or abandoned by an
        ESTOP), an unacknowledged ESTOP, handshake retries, reconnecting past its bound."""
        req = self._out.expired(now)
        if req is not None:
            self.health.add("reply_timeouts")
            self._expired(req, now)
        estop = self._out.estop_expired(now)
        if estop is not None and not estop.best_effort:
            self._emit(LinkEventKind.ESTOP_UNCONFIRMED, texts.estop_unconfirmed(), now)
            if self.state is LinkState.UP:
                self._declare_lost("the device did not acknowledge ESTOP", now, estop=False)
        hs = self._hs
        if hs is not None and hs.retry_at is not None and now >= hs.retry_at:
            hs.retry_at = None
            self._queue_own(Purpose.HELLO, Hello(PROTO_VERSION, self.host_id))
        since, bound = self._trouble_since, self._reconnect_timeout
        if (
            since is not None
            and bound is not None
            and now - since >= bound
            and self.state in (*HANDSHAKING, LinkState.RECONNECTING)
            and not self._first_open
        ):
            self._give_up(now, texts.gave_up(self.url, bound))

    def submit(self, msg: Message, now: float, *, epoch: int | None = None) -> int:
        """Queue a caller's request; returns its ticket. Raises at once when it cannot go."""
        mtype = message_type(msg)
        if mtype is MsgType.ESTOP:
            raise ValueError("send ESTOP with estop(): it never waits for a reply slot")
        if not mtype.is_request:
            raise ValueError(f"{mtype.name} is not a host request")
        if mtype in EPOCH_BOUND and epoch is None:
            raise ValueError(f"{mtype.name} needs the connection epoch it was decided on")
        req = self._out.new(msg, Purpose.CALLER, epoch)
        error = self._unwritable(req, now)
        if error is not None:
            raise error
        if self._out.callers_waiting() >= MAX_QUEUED:
            raise LinkLost(texts.busy(mtype, MAX_QUEUED), url=self.url, request=mtype)
        self._out.add(req)
        return req.ticket

    def cancel(self, ticket: int) -> None:
        """A caller stopped waiting (a guard that should never fire): end its request."""
        self._out.cancel(ticket, lambda r: LinkLost(texts.cancelled(r.mtype), url=self.url))

    def request_estop(self) -> int | None:
        """ESTOP, ahead of everything; returns its generation, or None without a port."""
        return None if self.state in PORTLESS else self._out.request_estop()

    def estop_written(self, gen: int) -> bool:
        return self._out.estop_written(gen)

    def next_write(self, now: float) -> Write | None:
        """What to write now, if anything (the shell writes it at once, in this order)."""
        if self.state in PORTLESS:
            return None
        write = self._out.next_write(
            now,
            lambda r: self._unwritable(r, now),
            lambda: self._heartbeat(now),
            lambda r: self._may_resend(r, now),
        )
        if write is None:
            return None
        if write.mtype is MsgType.HELLO and self._hs is not None:
            self._hs.hello_frames += 1
        if write.resend:
            self.health.add("reply_timeouts")
            self.health.add("retransmissions")
        elif write.estop_gen:
            # Nothing decided before an emergency stop is carried out after it: a new epoch,
            # so a CLEAR_FAULTS decided earlier can never clear this ESTOP's latch.
            self.epoch += 1
            for stale in self._out.take_queued(EPOCH_BOUND):
                self._out.complete(stale, error=self._unwritable(stale, now))
            if write.abandoned:
                self.health.add("abandoned_requests")
            self._emit(LinkEventKind.ESTOP_SENT, texts.estop_sent(write.seq), now)
        return write

    def written(self, write: Write, now: float) -> None:
        self._out.written(write, now)
        if write.estop_gen and not write.resend:
            self.health.add("estops_sent")
        elif not write.resend:
            self.health.add("requests_sent")
            if write.mtype is MsgType.HEARTBEAT:
                self.health.add("heartbeats_sent")

    def write_failed(self, write: Write, now: float, reason: str) -> None:
        self._out.write_failed(write)
        self.port_failed(now, reason)

    def write_wanted(self) -> bool:
        """Whether :meth:`next_write` has something to write right now regardless of time
        (an ESTOP, or a queued request with none outstanding)."""
        out = self._out
        return out.estop_pending() or (out.outstanding is None and bool(out.queue))

    def _unwritable(self, req: Request, now: float) -> LinkError | None:
        """Why ``req`` may not be written now (checked at submission and again at writing)."""
        state, mtype = self.state, req.mtype
        if req.purpose in HANDSHAKE_PURPOSES:
            return None if state in HANDSHAKING else LinkLost("handshake over", url=self.url)
        if req.purpose is Purpose.OTHER_UNIT_STATUS:
            return None if state is LinkState.OTHER_UNIT else LinkLost("gone", url=self.url)
        if state is LinkState.CLOSED:
            return LinkClosed(f"The link to {self.url} is closed.", url=self.url)
        if state is LinkState.OTHER_UNIT and self.other is not None and self.pinned is not None:
            return OtherUnit(
                texts.other_unit_refusal(mtype, self.pinned, self.other),
                url=self.url,
                request=mtype,
                expected=self.pinned.serial,
                found=self.other.serial,
            )
        if state is not LinkState.UP:
            return LinkLost(texts.not_up(mtype, state), url=self.url, request=mtype)
        if mtype in EPOCH_BOUND and req.epoch != self.epoch:
            self.health.add("stale_commands")
            return StaleCommand(
                texts.stale(mtype, req.epoch, self.epoch),
                url=self.url,
                request=mtype,
                decided_epoch=req.epoch or 0,
                epoch=self.epoch,
            )
        if req.purpose is Purpose.GAP_STATUS and not self._may_speak_unasked(now):
            self._stall(now)
            return LinkLost("the supervision stopped checking in", url=self.url)
        return None

    def _heartbeat_possible(self) -> bool:
        out = self._out
        return (
            self.state is LinkState.UP
            and self.device_state in ACTIVE_STATES
            and out.outstanding is None
            and not out.queue
            and not self._stalled
        )

    def _heartbeat(self, now: float) -> Request | None:
        """A HEARTBEAT if one is due and the supervision is alive (else the link stalls)."""
        if not self._heartbeat_possible() or now - self._out.last_tx < self._heartbeat_idle:
            return None
        if self.supervised(now):
            return self._out.new(Heartbeat(), Purpose.HEARTBEAT)
        self._stall(now)
        return None

    def _may_resend(self, req: Request, now: float) -> bool:
        """A caller's request is always resent; one of the link's own only while supervised.
        Holding one back for want of supervision is a stall, declared as such: the request
        stays outstanding, so no heartbeat could be decided to declare it."""
        if req.purpose not in UNASKED or self._may_speak_unasked(now):
            return True
        self._stall(now)
        return False

    def _may_speak_unasked(self, now: float) -> bool:
        return self.device_state not in ACTIVE_STATES or self.supervised(now)

    def _stall(self, now: float) -> None:
        if self._stalled:
            return
        self._stalled = True
        self.health.add("supervision_stalls")
        age = None if self._last_checkin is None else now - self._last_checkin
        self._emit(LinkEventKind.SUPERVISION_LOST, texts.supervision_lost(age), now)

    def receive_data(self, data: bytes, now: float) -> None:
        if self.state in PORTLESS:
            return  # bytes read from a port already given up (the shell closes it)
        self._listened_at = now
        frames = self._decoder.feed(data)
        if frames:
            self.health.frame_seen(now)
        for frame in frames:
            try:
                msg = decode_message(frame)
            except DecodeError as exc:
                kind = "malformed_frames" if exc.kind == "malformed" else "unknown_type_frames"
                self.health.add(kind)
                continue
            if isinstance(msg, Telemetry | Event):
                self._on_device_frame(msg, now)
            elif isinstance(msg, Ack | Nak | HelloReply | Status):
                self._on_reply(frame.seq, msg, now)
            else:  # a host-request type coming from the device (an echo or loopback)
                self.health.add("unknown_type_frames")

    def _on_device_frame(self, msg: Telemetry | Event, now: float) -> None:
        telemetry = isinstance(msg, Telemetry)
        self.health.add("telemetry_received" if telemetry else "events_received")
        if not self._identified or self.state is LinkState.OTHER_UNIT:
            self.health.add("unidentified_frames")  # not known to be the pinned unit
            return
        if isinstance(msg, Telemetry):
            self._telemetry_heard_at = now  # the unit is talking, whatever the frame's order
            verdict = self._tracker.on_telemetry(msg)
            state = state_of(msg.state)
        else:
            verdict = self._tracker.on_event(msg)
            changed = msg.event == EventCode.STATE_CHANGED
            state = state_of(msg.arg & 0xFF) if changed else self.device_state
        if verdict.restart is not None:
            self._restarted(verdict, now)
        self.device_state = state
        if verdict.lost:
            self._on_gap(verdict.lost, now)
        self._deliveries.append(msg)

    def _on_gap(self, lost: int, now: float) -> None:
        self.health.add("telemetry_lost", lost)
        self.health.add("dseq_gaps")
        self._emit(LinkEventKind.DSEQ_GAP, texts.gap(lost), now, lost=lost)
        if self.state is LinkState.UP and not self._out.waiting_for(Purpose.GAP_STATUS):
            self._out.add(self._out.new(GetStatus(), Purpose.GAP_STATUS))

    def _on_reply(self, seq: int, msg: Message, now: float) -> None:
        match, req = self._out.match(seq, msg)
        if match is Match.ANSWER and req is not None:
            if req.sends == 1:
                self.health.rtt(now - req.first_sent)  # Karn: no sample from a resent one
            self.health.add("replies_received")
            self._answered(req, msg, now)
        elif match is Match.ESTOP_ACK:
            self.device_state = State.FAULT
            self.health.add("replies_received")
            self._emit(LinkEventKind.ESTOP_CONFIRMED, "The device acknowledged ESTOP.", now)
        else:
            counter = {
                Match.DUPLICATE: "duplicate_replies",
                Match.LATE: "late_replies",
                Match.STRAY: "stray_replies",
            }
            self.health.add(counter[match])

    def _answered(self, req: Request, msg: Message, now: float) -> None:
        purpose = req.purpose
        if purpose is Purpose.OTHER_UNIT_STATUS:
            if isinstance(msg, Status):
                self.other_status = msg
                if state_of(msg.state) in ACTIVE_STATES:
                    self._out.request_estop()  # the other unit is active: stop it
            return
        if purpose is Purpose.HELLO:
            self._on_hello(msg, now)
            return
        if isinstance(msg, Status):
            self.status = msg
            self.device_state = state_of(msg.state)
            self.health.device_counters(msg.rx_crc_errors, msg.rx_frame_errors)
            verdict = self._tracker.on_status(msg)
            if verdict.restart is not None:
                self._restarted(verdict, now)
                self._out.complete(req, reply=msg)
                return
        elif isinstance(msg, Ack) and not req.abandoned:
            if req.mtype in (MsgType.START, MsgType.RESUME):
                self.device_state = State.RUNNING
            elif req.mtype is MsgType.PAUSE:
                self.device_state = State.PAUSED
            elif isinstance(req.msg, SetTelemetry):
                self._telemetry_rate = req.msg.rate_hz
        self._out.complete(req, reply=msg)
        if purpose is Purpose.RESTORE_TELEMETRY:
            if isinstance(msg, Nak):
                log.warning("device refused to restore telemetry rate: %s", msg)
            self._queue_own(Purpose.HANDSHAKE_STATUS, GetStatus())
        elif purpose is Purpose.HANDSHAKE_STATUS:
            self._handshake_done(msg, now)
        elif purpose is Purpose.GAP_STATUS and isinstance(msg, Status):
            self._emit(LinkEventKind.STATUS_REFRESHED, texts.refreshed(msg), now, status=msg)
