"""The sans-IO core of the host side of the EPM-1 link (interface document §2 and §3).

A pure object, in the style of h11 and aioquic: it never reads a clock, touches a port or starts
a thread. The I/O shell (:class:`controller.link.link.Link`) tells it what happened — the port
opened or failed (:meth:`LinkCore.port_opened`, :meth:`LinkCore.port_failed`), bytes arrived
(:meth:`LinkCore.receive_data`), time passed (:meth:`LinkCore.handle_timer`), the session's
supervision checked in (:meth:`LinkCore.checkin`) — and asks it, at the moment of each write,
what to write next (:meth:`LinkCore.next_write`). What the core learned comes out as
completions of requests (:meth:`LinkCore.take_completions`) and, in order, telemetry, device
events and link events for the listener (:meth:`LinkCore.take_deliveries`).

Rules that hold by construction, because every write is decided here, when it is written:

* ESTOP first; once it is written the request outstanding at that moment is abandoned and never
  re-sent (a reply that still comes is delivered; without one its outcome is unknown).
* At most one request outstanding; a resend is written only while its request is still the
  outstanding one, so an earlier request is never written after a later one (seq wraps, so seqs
  are never compared).
* A command of :data:`EPOCH_BOUND` is written only in the connection epoch it was decided on;
  every transition of :mod:`controller.link.states` starts a new epoch.
* In an active device state the link writes nothing of its own accord (HEARTBEAT, GET_STATUS
  after a ``dseq`` gap) unless the supervision checked in within ``supervision_window``.
* The unit's identity is pinned: another serial after a reconnect gets nothing but GET_STATUS
  (and ESTOP if active); a new ``boot_id`` is a restart, also across a closed port.

Times are host monotonic seconds, passed in by the caller.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from dataclasses import dataclass
from enum import StrEnum

from controller.link import texts
from controller.link.errors import (
    HandshakeError,
    HandshakeRefused,
    LinkClosed,
    LinkError,
    LinkLost,
    NoHandshakeReply,
    OtherUnit,
    OutcomeUnknown,
    StaleCommand,
    UnsupportedProtocolVersion,
    WrongDeviceModel,
)
from controller.link.events import LinkEvent, LinkEventKind
from controller.link.health import HealthRecorder
from controller.link.identity import Continuity, DeviceIdentity
from controller.link.requests import Outcome, RecentSeqs, SeqCounter, reply_fits
from controller.link.states import HANDSHAKING, PORTLESS, LinkState, Trigger, next_state
from controller.link.timing import t_reply
from controller.link.tracker import StreamTracker, Verdict
from controller.wire.codec import DecodeError, FrameDecoder, decode_message, encode_frame
from controller.wire.constants import (
    ACTIVE_STATES,
    DEFAULT_TELEMETRY_HZ,
    EPOCH_BOUND,
    OUTCOME_UNCERTAIN,
    PROTO_VERSION,
    RETRIES,
    EventCode,
    MsgType,
    NakCode,
    State,
)
from controller.wire.messages import (
    Ack,
    Estop,
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

log = logging.getLogger(__name__)

EXPECTED_MODEL = "EPM-1"
#: Send HEARTBEAT after this much silence in an active state (the device needs a frame every
#: 100 ms; its watchdog trips at 500 ms).
HEARTBEAT_IDLE_S = 0.050
#: The link's own frames in an active state need a supervision check-in this recent.
SUPERVISION_WINDOW_S = 0.300
#: Callers' requests waiting for their turn; more is a bug upstream, refused.
MAX_QUEUED = 8

Delivery = Telemetry | Event | LinkEvent


class Purpose(StrEnum):
    """Why a request exists: a caller asked, or the link needs it for itself."""

    CALLER = "caller"
    HELLO = "hello"
    RESTORE_TELEMETRY = "restore_telemetry"
    HANDSHAKE_STATUS = "handshake_status"
    HEARTBEAT = "heartbeat"
    ESTOP = "estop"
    GAP_STATUS = "gap_status"
    OTHER_UNIT_STATUS = "other_unit_status"


_HANDSHAKE = frozenset({Purpose.HELLO, Purpose.RESTORE_TELEMETRY, Purpose.HANDSHAKE_STATUS})


@dataclass(eq=False)
class Request:
    """One request from submission to its end. ``epoch`` is the one it was decided on."""

    ticket: int
    msg: Message
    mtype: MsgType
    purpose: Purpose
    epoch: int | None = None
    seq: int = 0
    frame: bytes = b""
    t_reply: float = 0.0
    sends: int = 0
    first_sent: float = 0.0
    deadline: float = math.inf
    abandoned: bool = False
    best_effort: bool = False


@dataclass(frozen=True)
class Completion:
    """How a caller's request ended: its reply, or the error to raise."""

    ticket: int
    reply: Message | None = None
    error: LinkError | None = None


@dataclass(frozen=True)
class Write:
    """Bytes to write now: a leading 0x00 (interface §2, [1.1]) and one frame."""

    data: bytes
    mtype: MsgType
    seq: int
    resend: bool = False
    estop_gen: int = 0


@dataclass
class _Handshake:
    first: bool
    started: float
    hello_frames: int = 0
    retry_at: float | None = None
    delay: float = 0.0


def _state_of(value: int) -> State | None:
    try:
        return State(value)
    except ValueError:
        return None


class LinkCore:
    """The protocol state of one host link; see the module docstring. Not thread-safe."""

    def __init__(
        self,
        url: str,
        baud: int,
        *,
        host_id: str = "epm",
        continuity: Continuity | None = None,
        handshake_timeout: float = 2.0,
        reconnect_timeout: float | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 2.0,
        heartbeat_idle: float = HEARTBEAT_IDLE_S,
        supervision_window: float = SUPERVISION_WINDOW_S,
    ) -> None:
        carried = continuity or Continuity()
        self.url, self.baud, self.host_id = url, baud, host_id
        self.handshake_timeout = handshake_timeout
        self._reconnect_timeout = reconnect_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._heartbeat_idle = heartbeat_idle
        self._supervision_window = supervision_window
        self.state = LinkState.CLOSED
        self.epoch = carried.epoch
        self.pinned: DeviceIdentity | None = carried.pinned
        self.other: DeviceIdentity | None = None
        self.other_status: Status | None = None
        self.hello: HelloReply | None = None
        self.status: Status | None = None
        self._device_state: State | None = None
        self._kick = False
        self.open_error: LinkError | None = None
        self._other_hello: HelloReply | None = None
        self._been_up = False
        self._seq = SeqCounter(carried.last_seq)
        self._decoder = FrameDecoder()
        self.health = HealthRecorder(self._decoder.counters)
        self._tracker = StreamTracker()
        self._recent = RecentSeqs()
        self._tickets = itertools.count(1)
        self._queue: deque[Request] = deque()
        self._outstanding: Request | None = None
        self._estop: Request | None = None
        self._estop_wanted = 0
        self._estop_best_effort = False
        self._estop_taken = 0
        self._estop_written: dict[int, bool] = {}
        self._completions: list[Completion] = []
        self._deliveries: list[Delivery] = []
        self._last_tx = -math.inf
        self._last_checkin: float | None = None
        self._stalled = False
        self._identified = False
        self._hs: _Handshake | None = None
        self._first_open = True
        self._trouble_since: float | None = None
        self.reopen_at: float | None = None
        self._reopen_delay = backoff_initial
        self._telemetry_rate: int | None = None
        self._restart_reported: int | None = None

    # --- views ---------------------------------------------------------------------------

    @property
    def device_state(self) -> State | None:
        return self._device_state

    @device_state.setter
    def device_state(self, state: State | None) -> None:
        if state is not self._device_state:
            self._device_state = state
            self._kick = True

    def take_kick(self) -> bool:
        """Whether the timers or the next write may have changed since the last call."""
        kick, self._kick = self._kick, False
        return kick

    @property
    def continuity(self) -> Continuity:
        return Continuity(self.pinned, self.epoch, self._seq.last)

    def supervised(self, now: float) -> bool:
        last = self._last_checkin
        return last is not None and now - last <= self._supervision_window

    def take_completions(self) -> list[Completion]:
        out, self._completions = self._completions, []
        return out

    def take_deliveries(self) -> list[Delivery]:
        out, self._deliveries = self._deliveries, []
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` or :meth:`next_write` next has something to do."""
        times = [math.inf]
        for req in (self._outstanding, self._estop):
            if req is not None:
                times.append(req.deadline)
        if self._hs is not None and self._hs.retry_at is not None:
            times.append(self._hs.retry_at)
        if self._trouble_since is not None and self._reconnect_timeout is not None:
            times.append(self._trouble_since + self._reconnect_timeout)
        if self._heartbeat_possible():
            times.append(self._last_tx + self._heartbeat_idle)
        soonest = min(times)
        return None if math.isinf(soonest) else soonest

    # --- inputs: port, supervision, time -------------------------------------------------

    def port_opened(self, now: float) -> None:
        """The port is open (first open, or reopened after a failure): handshake."""
        self._move(Trigger.PORT_OPENED)
        self._decoder.reset()
        self._tracker.forget()
        self._identified = False
        self.reopen_at = None
        self._begin_handshake(now, first=self._first_open)

    def port_failed(self, now: float, reason: str) -> None:
        """Reading or writing failed (unplug): the shell has closed the port."""
        if self.state in PORTLESS:
            return
        failed = self._outstanding
        self._move(Trigger.PORT_FAILED)
        self.health.add("port_failures")
        self._trouble_since = self._trouble_since if self._trouble_since is not None else now
        self._reopen_delay = self._backoff[0]
        self.reopen_at = now + self._reopen_delay
        self._fail_all(texts.PORT_FAILED)
        self._discard_unwritten_estop()
        self._emit(LinkEventKind.LINK_DOWN, texts.link_down(self.url, reason), now, failed)
        if self._hs is not None and self._hs.first:
            self.open_error = LinkLost(texts.port_failed_in_handshake(self.url), url=self.url)
            self._give_up(now, None)
        self._hs = None

    def reopen_failed(self, now: float) -> None:
        self.health.add("reconnect_attempts")
        self._reopen_delay = min(self._reopen_delay * 2, self._backoff[1])
        self.reopen_at = now + self._reopen_delay

    def checkin(self, now: float) -> bool:
        """The session's supervision is alive; True if the link had stopped its own frames."""
        self._last_checkin = now
        was, self._stalled = self._stalled, False
        return was

    def handle_timer(self, now: float) -> None:
        """Give-ups that time decides: requests past their last resend, handshake retries,
        reconnecting past its bound."""
        req = self._outstanding
        if req is not None and now >= req.deadline and (req.abandoned or req.sends > RETRIES):
            self.health.add("reply_timeouts")
            self._expired(req, now)
        estop = self._estop
        if estop is not None and now >= estop.deadline and estop.sends > RETRIES:
            self._estop = None
            self._recent.remember(estop.seq, Outcome.ABANDONED)
            if not estop.best_effort:
                self._emit(LinkEventKind.ESTOP_UNCONFIRMED, texts.estop_unconfirmed(), now)
                if self.state is LinkState.UP:
                    self._declare_lost("the device did not acknowledge ESTOP", now, estop=False)
        hs = self._hs
        if hs is not None and hs.retry_at is not None and now >= hs.retry_at:
            hs.retry_at = None
            self._queue_link(Purpose.HELLO, Hello(PROTO_VERSION, self.host_id))
        since = self._trouble_since
        if (
            since is not None
            and self._reconnect_timeout is not None
            and now - since >= self._reconnect_timeout
            and self.state in (*HANDSHAKING, LinkState.RECONNECTING)
            and not self._first_open
        ):
            self._give_up(now, texts.gave_up(self.url, self._reconnect_timeout))

    def close(self, now: float) -> None:
        was_open = self.state is not LinkState.CLOSED
        self._fail_all(texts.CLOSED, closed=True)
        self._discard_unwritten_estop()
        self._move(Trigger.CLOSE)
        self._hs = None
        self._trouble_since = None
        if was_open:
            self._emit(LinkEventKind.CLOSED, f"Link to {self.url} closed.", now)

    # --- inputs: callers -----------------------------------------------------------------

    def submit(self, msg: Message, now: float, *, epoch: int | None = None) -> int:
        """Queue a caller's request; returns its ticket. Raises at once when it cannot go."""
        mtype = message_type(msg)
        if mtype is MsgType.ESTOP:
            raise ValueError("send ESTOP with estop(): it never waits for a reply slot")
        if not mtype.is_request:
            raise ValueError(f"{mtype.name} is not a host request")
        if mtype in EPOCH_BOUND and epoch is None:
            raise ValueError(f"{mtype.name} needs the connection epoch it was decided on")
        req = Request(next(self._tickets), msg, mtype, Purpose.CALLER, epoch)
        error = self._unwritable(req, now)
        if error is not None:
            raise error
        if sum(r.purpose is Purpose.CALLER for r in self._queue) >= MAX_QUEUED:
            raise LinkLost(texts.busy(mtype, MAX_QUEUED), url=self.url, request=mtype)
        self._queue.append(req)
        return req.ticket

    def cancel(self, ticket: int) -> None:
        """A caller stopped waiting (a guard that should never fire): end its request."""
        for req in (*self._queue, self._outstanding):
            if req is not None and req.ticket == ticket:
                if req in self._queue:
                    self._queue.remove(req)
                self._complete(req, error=LinkLost(texts.cancelled(req.mtype), url=self.url))

    def request_estop(self) -> int | None:
        """ESTOP, ahead of everything; returns its generation, or None without a port."""
        if self.state in PORTLESS:
            return None
        self._estop_wanted += 1
        self._estop_best_effort = False
        return self._estop_wanted

    def estop_written(self, gen: int) -> bool:
        """Whether the ESTOP of generation ``gen`` (or a later one) went out."""
        return any(ok for g, ok in self._estop_written.items() if g >= gen)

    def acknowledge_restart(self) -> None:
        """The operator acknowledged the restart: the new ``boot_id`` is the one kept."""
        pinned, hello = self.pinned, self.hello
        if pinned and hello and pinned.same_unit(DeviceIdentity.from_hello(hello)):
            self.pinned = pinned.with_boot(hello.boot_id)
        self._restart_reported = None

    def adopt_other_unit(self, now: float) -> None:
        """The operator confirmed the other unit (no session open): it is pinned from now."""
        hello = self._other_hello
        if self.state is not LinkState.OTHER_UNIT or self.other is None or hello is None:
            raise ValueError("no other unit is waiting to be adopted")
        self.pinned = self.other
        self.hello = hello
        self.status = self.other_status
        self.device_state = None if self.status is None else _state_of(self.status.state)
        self.other = self.other_status = self._other_hello = None
        self._restart_reported = None
        self._tracker.handshake(hello.boot_id)
        self._identified = True
        self._move(Trigger.ADOPTED)
        self._emit(LinkEventKind.UNIT_ADOPTED, texts.adopted(self.pinned), now)

    # --- output: the write decided at the moment of writing -------------------------------

    def next_write(self, now: float) -> Write | None:
        """What to write now, if anything (the shell writes it at once, in this order)."""
        if self.state in PORTLESS:
            return None
        if self._estop_wanted > self._estop_taken:
            return self._write_estop(now)
        estop = self._estop
        if estop is not None and now >= estop.deadline and estop.sends <= RETRIES:
            return self._resend(estop, now)
        req = self._outstanding
        if req is not None:
            if not req.abandoned and now >= req.deadline and req.sends <= RETRIES:
                return self._resend(req, now)
            return None  # waiting for its reply: at most one request outstanding
        while self._queue:
            req = self._queue.popleft()
            error = self._unwritable(req, now)
            if error is not None:
                self._complete(req, error=error)
                continue
            return self._first_send(req, now)
        if self._heartbeat_possible() and now - self._last_tx >= self._heartbeat_idle:
            if self.supervised(now):
                return self._first_send(self._link_request(Purpose.HEARTBEAT, Heartbeat()), now)
            self._stall(now)
        return None

    def written(self, write: Write, now: float) -> None:
        self._last_tx = now
        self._kick = True
        if write.estop_gen:
            self._estop_written[write.estop_gen] = True
            self.health.add("estops_sent")
        elif not write.resend:
            self.health.add("requests_sent")
            if write.mtype is MsgType.HEARTBEAT:
                self.health.add("heartbeats_sent")

    def write_failed(self, write: Write, now: float, reason: str) -> None:
        if write.estop_gen:
            self._estop_written[write.estop_gen] = False
        self.port_failed(now, reason)

    def _write_estop(self, now: float) -> Write:
        gen = self._estop_taken = self._estop_wanted
        if self._estop is not None:
            self._recent.remember(self._estop.seq, Outcome.ABANDONED)
        estop = self._link_request(Purpose.ESTOP, Estop())
        estop.best_effort = self._estop_best_effort
        self._stamp(estop, now)
        if estop.best_effort:
            estop.sends = RETRIES + 1  # the device is not answering: no resends
        self._estop = estop
        # Nothing decided before an emergency stop is carried out after it: a new epoch, so a
        # CLEAR_FAULTS decided earlier can never clear this ESTOP's latch.
        self.epoch += 1
        self._emit(LinkEventKind.ESTOP_SENT, texts.estop_sent(estop.seq), now)
        req = self._outstanding
        if req is not None and not req.abandoned:
            req.abandoned = True  # never re-sent once ESTOP is on the wire
            self.health.add("abandoned_requests")
        self._queue = deque(r for r in self._queue if self._keep_after_estop(r, now))
        return Write(b"\0" + estop.frame, MsgType.ESTOP, estop.seq, estop_gen=gen)

    def _keep_after_estop(self, req: Request, now: float) -> bool:
        if req.mtype in EPOCH_BOUND:
            self._complete(req, error=self._unwritable(req, now))
            return False
        return True

    def _first_send(self, req: Request, now: float) -> Write:
        self._stamp(req, now)
        req.first_sent = now
        self._outstanding = req
        return Write(b"\0" + req.frame, req.mtype, req.seq)

    def _stamp(self, req: Request, now: float) -> None:
        req.seq = self._seq.next()
        self._recent.forget(req.seq)
        req.frame = encode_frame(req.seq, req.msg)
        req.t_reply = t_reply(req.mtype, len(req.frame), self.baud)
        req.sends = 1
        req.deadline = now + req.t_reply
        self._kick = True
        if req.mtype is MsgType.HELLO and self._hs is not None:
            self._hs.hello_frames += 1

    def _resend(self, req: Request, now: float) -> Write:
        req.sends += 1
        req.deadline = now + req.t_reply
        self._kick = True
        self.health.add("reply_timeouts")
        self.health.add("retransmissions")
        if req.mtype is MsgType.HELLO and self._hs is not None:
            self._hs.hello_frames += 1
        return Write(b"\0" + req.frame, req.mtype, req.seq, resend=True)

    def _unwritable(self, req: Request, now: float) -> LinkError | None:
        """Why ``req`` may not be written now (re-checked at the moment of writing)."""
        state, mtype = self.state, req.mtype
        if req.purpose in _HANDSHAKE:
            return None if state in HANDSHAKING else LinkLost("handshake abandoned", url=self.url)
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
            return LinkLost("not supervised", url=self.url)
        return None

    def _heartbeat_possible(self) -> bool:
        return (
            self.state is LinkState.UP
            and self.device_state in ACTIVE_STATES
            and self._outstanding is None
            and not self._queue
            and not self._stalled
        )

    def _may_speak_unasked(self, now: float) -> bool:
        return self.device_state not in ACTIVE_STATES or self.supervised(now)

    def _stall(self, now: float) -> None:
        if self._stalled:
            return
        self._stalled = True
        self.health.add("supervision_stalls")
        age = None if self._last_checkin is None else now - self._last_checkin
        self._emit(LinkEventKind.SUPERVISION_LOST, texts.supervision_lost(age), now)

    # --- input: bytes from the device -----------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
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
            verdict = self._tracker.on_telemetry(msg)
            state = _state_of(msg.state)
        else:
            verdict = self._tracker.on_event(msg)
            changed = msg.event == EventCode.STATE_CHANGED
            state = _state_of(msg.arg & 0xFF) if changed else self.device_state
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
        queued = any(r.purpose is Purpose.GAP_STATUS for r in self._queue)
        current = self._outstanding is not None and self._outstanding.mtype is MsgType.GET_STATUS
        if self.state is LinkState.UP and not queued and not current:
            self._queue_link(Purpose.GAP_STATUS, GetStatus())

    def _on_reply(self, seq: int, msg: Message, now: float) -> None:
        req = self._outstanding
        if req is not None and seq == req.seq and reply_fits(req.mtype, msg):
            self._outstanding = None
            self._kick = True
            self._recent.remember(seq, Outcome.ANSWERED)
            if req.sends == 1:
                self.health.rtt(now - req.first_sent)
            self.health.add("replies_received")
            self._answered(req, msg, now)
            return
        estop = self._estop
        acked = isinstance(msg, Ack) and msg.cmd_type == MsgType.ESTOP
        if estop is not None and seq == estop.seq and acked:
            self._estop = None
            self._recent.remember(seq, Outcome.ANSWERED)
            self.device_state = State.FAULT
            self.health.add("replies_received")
            self._emit(LinkEventKind.ESTOP_CONFIRMED, "The device acknowledged ESTOP.", now)
            return
        outcome = self._recent.outcome(seq)
        if outcome is Outcome.ANSWERED:
            self.health.add("duplicate_replies")
        elif outcome is Outcome.ABANDONED:
            self.health.add("late_replies")
        else:
            self.health.add("stray_replies")

    def _answered(self, req: Request, msg: Message, now: float) -> None:
        purpose = req.purpose
        if purpose is Purpose.OTHER_UNIT_STATUS:
            if isinstance(msg, Status):
                self.other_status = msg
                if _state_of(msg.state) in ACTIVE_STATES:
                    self.request_estop()
            return
        if purpose is Purpose.HELLO:
            self._on_hello(msg, now)
            return
        if isinstance(msg, Status):
            self.status = msg
            self.device_state = _state_of(msg.state)
            self.health.device_counters(msg.rx_crc_errors, msg.rx_frame_errors)
            verdict = self._tracker.on_status(msg)
            if verdict.restart is not None:
                self._restarted(verdict, now)
                if purpose is Purpose.CALLER:
                    self._complete(req, reply=msg)
                return
        elif isinstance(msg, Ack) and not req.abandoned:
            if req.mtype in (MsgType.START, MsgType.RESUME):
                self.device_state = State.RUNNING
            elif req.mtype is MsgType.PAUSE:
                self.device_state = State.PAUSED
            elif isinstance(req.msg, SetTelemetry):
                self._telemetry_rate = req.msg.rate_hz
        if purpose is Purpose.CALLER:
            self._complete(req, reply=msg)
        elif purpose is Purpose.RESTORE_TELEMETRY:
            if isinstance(msg, Nak):
                log.warning("device refused to restore telemetry rate: %s", msg)
            self._queue_link(Purpose.HANDSHAKE_STATUS, GetStatus())
        elif purpose is Purpose.HANDSHAKE_STATUS:
            self._handshake_done(msg, now)
        elif purpose is Purpose.GAP_STATUS and isinstance(msg, Status):
            self._emit(LinkEventKind.STATUS_REFRESHED, texts.refreshed(msg), now, status=msg)

    # --- handshakes -----------------------------------------------------------------------

    def _begin_handshake(self, now: float, *, first: bool) -> None:
        self._hs = _Handshake(first=first, started=now, delay=self._backoff[0])
        self._queue_link(Purpose.HELLO, Hello(PROTO_VERSION, self.host_id))

    def _on_hello(self, msg: Message, now: float) -> None:
        error = self._hello_error(msg)
        if error is not None:
            self._refused(error, now)
            return
        assert isinstance(msg, HelloReply)
        found = DeviceIdentity.from_hello(msg)
        pinned = self.pinned
        if pinned is not None and not pinned.same_unit(found):
            self._other_unit(found, msg, now)
            return
        if pinned is None:
            self.pinned = found
        elif found.boot_id not in (pinned.boot_id, self._restart_reported):
            verdict = Verdict(
                restart=f"boot_id changed from 0x{pinned.boot_id:04X} to 0x{found.boot_id:04X} "
                "while the link was down",
                old_boot_id=pinned.boot_id,
                new_boot_id=found.boot_id,
            )
            self._restarted(verdict, now, rehandshake=False)
        self.hello = msg
        self._tracker.handshake(msg.boot_id)
        self._identified = True
        rate = self._telemetry_rate
        if rate is not None and rate != DEFAULT_TELEMETRY_HZ:  # HELLO reset it to 50 Hz
            self._queue_link(Purpose.RESTORE_TELEMETRY, SetTelemetry(rate))
        else:
            self._queue_link(Purpose.HANDSHAKE_STATUS, GetStatus())

    def _hello_error(self, msg: Message) -> HandshakeError | None:
        url = self.url
        if isinstance(msg, Nak):
            if msg.code == NakCode.UNSUPPORTED_VERSION:
                return UnsupportedProtocolVersion(
                    texts.nak_version(url), url=url, detail="NAK UNSUPPORTED_VERSION", version=0
                )
            return HandshakeRefused(texts.hello_refused(url, msg), url=url)
        if not isinstance(msg, HelloReply):  # pragma: no cover - reply_fits guarantees it
            return HandshakeRefused(f"Unexpected answer to HELLO: {msg!r}", url=url)
        if msg.proto_version != PROTO_VERSION:
            return UnsupportedProtocolVersion(
                texts.other_version(url, msg.proto_version),
                url=url,
                detail=f"HELLO_REPLY proto_version={msg.proto_version}",
                version=msg.proto_version,
            )
        if msg.model != EXPECTED_MODEL and self.pinned is None:
            return WrongDeviceModel(texts.wrong_model(url, msg), url=url, model=msg.model)
        return None

    def _handshake_done(self, msg: Message, now: float) -> None:
        if not isinstance(msg, Status):
            self._refused(HandshakeRefused(texts.status_refused(self.url, msg), url=self.url), now)
            return
        first = not self._been_up
        self._move(Trigger.HANDSHAKE_DONE)
        self._hs = None
        self._first_open = False
        self._been_up = True
        self._trouble_since = None
        if first:
            kind, message = LinkEventKind.LINK_UP, texts.link_up(self.url, self.baud, msg)
        else:
            self.health.add("reconnects")
            kind, message = LinkEventKind.RECONNECTED, texts.reconnected(self.url, msg)
        self._emit(kind, message, now, hello=self.hello, status=msg)

    def _expired(self, req: Request, now: float) -> None:
        """``req`` got no reply in time (after all resends, or after an ESTOP abandoned it)."""
        self._outstanding = None
        self._kick = True
        self._recent.remember(req.seq, Outcome.ABANDONED)
        if req.abandoned:
            self._complete(req, error=self._no_reply_error(req, texts.abandoned(req.mtype)))
            return
        self.health.add("requests_given_up")
        if req.purpose in _HANDSHAKE:
            self._handshake_attempt_failed(req, now)
        elif self.state in (LinkState.UP, LinkState.OTHER_UNIT):
            self._declare_lost(texts.no_reply_reason(req.mtype), now, exhausted=req)
        else:
            self._complete(req, error=self._no_reply_error(req, texts.no_reply_reason(req.mtype)))

    def _handshake_attempt_failed(self, req: Request, now: float) -> None:
        hs = self._hs
        if hs is None:
            return
        if hs.first:
            elapsed = now - hs.started
            if req.mtype is not MsgType.HELLO:
                self._refused(NoHandshakeReply(texts.no_status(self.url), url=self.url), now)
            elif elapsed >= self.handshake_timeout:
                message = texts.no_hello(self.url, self.baud, hs.hello_frames, elapsed)
                error = NoHandshakeReply(
                    message, url=self.url, attempts=hs.hello_frames, seconds=elapsed
                )
                self._refused(error, now)
            else:
                hs.retry_at = now
                self._kick = True
            return
        hs.retry_at = now + hs.delay
        hs.delay = min(hs.delay * 2, self._backoff[1])
        self._kick = True

    def _refused(self, error: HandshakeError, now: float) -> None:
        """The handshake cannot succeed: fail the first open, or give up reconnecting."""
        if self._hs is not None and self._hs.first:
            self.open_error = error
            self._give_up(now, None)
        else:
            self._give_up(now, texts.gave_up_refused(self.url, error))

    def _give_up(self, now: float, message: str | None) -> None:
        self._fail_all(texts.GAVE_UP, closed=True)
        self._discard_unwritten_estop()
        self._move(Trigger.GIVE_UP)
        self._hs = None
        self._trouble_since = None
        self.reopen_at = None
        if message is not None:
            self._emit(LinkEventKind.RECONNECT_FAILED, message, now)

    def _other_unit(self, found: DeviceIdentity, hello: HelloReply, now: float) -> None:
        assert self.pinned is not None
        self._move(Trigger.OTHER_UNIT)
        self._hs = None
        self.other, self.other_status, self._other_hello = found, None, hello
        self.device_state = None
        self._queue_link(Purpose.OTHER_UNIT_STATUS, GetStatus())
        message = texts.unit_changed(self.url, self.pinned, found)
        self._emit(LinkEventKind.UNIT_CHANGED, message, now, hello=hello, other=found)

    @property
    def other_hello(self) -> HelloReply | None:
        return self._other_hello

    # --- losses ---------------------------------------------------------------------------

    def _declare_lost(
        self, reason: str, now: float, *, exhausted: Request | None = None, estop: bool = True
    ) -> None:
        """No reply after all resends: ESTOP (best effort), state unknown, re-handshake."""
        self._move(Trigger.NO_REPLY)
        self.health.add("link_losses")
        self._trouble_since = self._trouble_since if self._trouble_since is not None else now
        if exhausted is not None:
            self._complete(exhausted, error=self._no_reply_error(exhausted, reason))
        self._fail_all(texts.LOST)
        if estop:
            self._estop_wanted += 1
            self._estop_best_effort = True
            self._kick = True
        self._emit(
            LinkEventKind.LINK_LOST, texts.link_lost(self.url, reason, estop), now, exhausted
        )
        self._begin_handshake(now, first=False)

    def _restarted(self, verdict: Verdict, now: float, *, rehandshake: bool = True) -> None:
        self.health.add("device_restarts")
        self._restart_reported = verdict.new_boot_id
        failed = self._outstanding
        self._fail_all(texts.RESTARTED)
        self._move(Trigger.RESTARTED)
        self.device_state = None
        log.warning("device on %s restarted: %s", self.url, verdict.restart)
        self._emit(
            LinkEventKind.DEVICE_RESTARTED,
            texts.restarted(verdict.restart or ""),
            now,
            failed,
            old_boot_id=verdict.old_boot_id,
            new_boot_id=verdict.new_boot_id,
        )
        if rehandshake:
            self._trouble_since = self._trouble_since if self._trouble_since is not None else now
            self._begin_handshake(now, first=False)

    def _fail_all(self, reason: str, *, closed: bool = False) -> None:
        """End the outstanding request and every queued one (queued ones were never sent):
        commands die with the connection they were decided on, never replayed later."""
        req, self._outstanding = self._outstanding, None
        if req is not None:
            self._recent.remember(req.seq, Outcome.ABANDONED)
        ended = [(req, True)] if req is not None else []
        ended += [(queued, False) for queued in self._queue]
        self._queue.clear()
        for one, sent in ended:
            error: LinkError
            if closed:
                error = LinkClosed(f"{one.mtype.name} abandoned: {reason}.", url=self.url)
            elif sent:
                error = self._no_reply_error(one, reason)
            else:
                error = LinkLost(texts.not_sent(one.mtype, reason), url=self.url, request=one.mtype)
            self._complete(one, error=error)
        self._estop = None
        self.device_state = None

    def _discard_unwritten_estop(self) -> None:
        """An ESTOP asked for while the port went away was not written (its caller was told);
        it is not written later on another connection."""
        self._estop_taken = self._estop_wanted

    def _no_reply_error(self, req: Request, reason: str) -> LinkLost:
        if req.mtype in OUTCOME_UNCERTAIN:
            return OutcomeUnknown(
                texts.outcome_unknown(req.mtype, reason),
                url=self.url,
                request=req.mtype,
                sent=True,
            )
        text = f"{req.mtype.name} failed: {reason}."
        return LinkLost(text, url=self.url, request=req.mtype, sent=True)

    # --- plumbing -------------------------------------------------------------------------

    def _move(self, trigger: Trigger) -> None:
        self._kick = True
        self.state = next_state(self.state, trigger)
        if trigger is not Trigger.CLOSE:
            self.epoch += 1

    def _link_request(self, purpose: Purpose, msg: Message) -> Request:
        return Request(next(self._tickets), msg, message_type(msg), purpose)

    def _queue_link(self, purpose: Purpose, msg: Message) -> None:
        self._kick = True
        self._queue.appendleft(self._link_request(purpose, msg))

    def _complete(
        self, req: Request, *, reply: Message | None = None, error: LinkError | None = None
    ) -> None:
        if req.purpose is Purpose.CALLER:
            self._completions.append(Completion(req.ticket, reply, error))

    def _emit(
        self,
        kind: LinkEventKind,
        message: str,
        now: float,
        failed: Request | None = None,
        **fields: object,
    ) -> None:
        event = LinkEvent(
            kind,
            message,
            monotonic=now,
            epoch=self.epoch,
            identity=self.pinned,
            request=failed.mtype if failed is not None else None,
            **fields,  # type: ignore[arg-type]
        )
        self._deliveries.append(event)
        if failed is not None and failed.mtype in OUTCOME_UNCERTAIN and not failed.abandoned:
            text = texts.outcome_unknown_event(failed.mtype)
            self._deliveries.append(
                LinkEvent(
                    LinkEventKind.OUTCOME_UNKNOWN,
                    text,
                    monotonic=now,
                    epoch=self.epoch,
                    identity=self.pinned,
                    request=failed.mtype,
                )
            )
