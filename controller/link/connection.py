"""The connection half of the link's sans-IO core: states, handshake, identity, losses.

:class:`ConnectionCore` owns what the link knows about its connection to the unit: the state
(moved only through :mod:`controller.link.states`' table, each move a new epoch), the pinned
identity and the handshake that checks it (:mod:`controller.link.handshake`), and what a loss,
an unplug, a restart or another unit does to the requests in flight (they end with it, never
replayed later). :class:`~controller.link.core.LinkCore` adds requests, writes and reading on
top. Pure: no clock, port or thread; times are passed in.
"""

from __future__ import annotations

import logging
from typing import Any

from controller.link import texts
from controller.link.errors import (
    HandshakeError,
    HandshakeRefused,
    LinkClosed,
    LinkError,
    LinkLost,
    OutcomeUnknown,
)
from controller.link.events import LinkEvent, LinkEventKind
from controller.link.handshake import (
    HandshakeRun,
    Verdict,
    attempt_failed,
    hello_error,
    identify,
)
from controller.link.health import HealthRecorder
from controller.link.identity import Continuity, DeviceIdentity
from controller.link.outbox import (
    HANDSHAKE_PURPOSES,
    Completion,
    Outbox,
    Purpose,
    Request,
)
from controller.link.states import PORTLESS, LinkState, Trigger, next_state
from controller.link.tracker import StreamTracker
from controller.link.tracker import Verdict as StreamVerdict
from controller.wire.codec import FrameDecoder
from controller.wire.constants import (
    DEFAULT_TELEMETRY_HZ,
    OUTCOME_UNCERTAIN,
    PROTO_VERSION,
    State,
)
from controller.wire.messages import (
    Event,
    GetStatus,
    Hello,
    HelloReply,
    Message,
    SetTelemetry,
    Status,
    Telemetry,
)

log = logging.getLogger(__name__)

#: Send HEARTBEAT after this much silence in an active state (the device needs a frame every
#: 100 ms; its watchdog trips at 500 ms).
HEARTBEAT_IDLE_S = 0.050
#: The link's own frames in an active state need a supervision check-in this recent.
SUPERVISION_WINDOW_S = 0.300
#: Callers' requests waiting for their turn; more is a bug upstream, refused.
MAX_QUEUED = 8

Delivery = Telemetry | Event | LinkEvent


def state_of(value: int) -> State | None:
    try:
        return State(value)
    except ValueError:
        return None


class ConnectionCore:
    """Connection state of one host link (see the module docstring). Not thread-safe."""

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
        #: Connection changes only (the state transitions), not counting ESTOPs: what a
        #: practitioner's queued action was decided on (an ESTOP changes the device's state).
        self.connection = carried.connection
        self.pinned: DeviceIdentity | None = carried.pinned
        self.other: DeviceIdentity | None = None
        self.other_hello: HelloReply | None = None
        self.other_status: Status | None = None
        self.hello: HelloReply | None = None
        self.status: Status | None = None
        self.open_error: LinkError | None = None
        self.reopen_at: float | None = None
        self._device_state: State | None = None
        self._out = Outbox(baud, carried.last_seq)
        self._decoder = FrameDecoder()
        self.health = HealthRecorder(self._decoder.counters)
        self._tracker = StreamTracker()
        self._deliveries: list[Delivery] = []
        self._last_checkin: float | None = None
        self._stalled = False
        self._identified = False
        self._hs: HandshakeRun | None = None
        self._first_open = True
        self._been_up = False
        self._trouble_since: float | None = None
        self._reopen_delay = backoff_initial
        self._telemetry_rate: int | None = None
        self._restart_reported: int | None = None
        #: When the reader last came back from the port (bytes or its read timeout) and when
        #: it last heard TELEMETRY from the pinned unit (or the link came up): host monotonic.
        self._listened_at: float | None = None
        self._telemetry_heard_at: float | None = None

    @property
    def device_state(self) -> State | None:
        return self._device_state

    @device_state.setter
    def device_state(self, state: State | None) -> None:
        if state is not self._device_state:
            self._device_state = state
            self._out.changed = True

    @property
    def outstanding(self) -> Request | None:
        """The one request waiting for its reply (ESTOP aside), if any."""
        return self._out.outstanding

    @property
    def continuity(self) -> Continuity:
        return Continuity(self.pinned, self.epoch, self._out.seq.last, self.connection)

    def listened(self, now: float) -> None:
        """The reader came back from the port at ``now`` (with bytes or after its timeout)."""
        self._listened_at = now

    def telemetry_silence_s(self) -> float | None:
        """How long the reader listened, up, without hearing TELEMETRY from the pinned unit.

        Measured between two moments the reader itself saw (the last telemetry, or the link
        coming up, and its latest return from the port), so a host too busy to read, or a
        dispatch thread behind the reader, never counts as a silent device: the frames wait
        in the port's buffer and are heard on the next read. None while the link is not up.
        """
        heard, listened = self._telemetry_heard_at, self._listened_at
        if self.state is not LinkState.UP or heard is None or listened is None:
            return None
        return max(0.0, listened - heard)

    def take_kick(self) -> bool:
        """Whether the timers or the next write may have changed since the last call."""
        changed, self._out.changed = self._out.changed, False
        return changed

    def take_completions(self) -> list[Completion]:
        return self._out.take_completions()

    def take_deliveries(self) -> list[Delivery]:
        out, self._deliveries = self._deliveries, []
        return out

    def port_opened(self, now: float) -> None:
        """The port is open (first open, or reopened after a failure): handshake."""
        self._move(Trigger.PORT_OPENED)
        self._decoder.reset()
        self._tracker.forget()
        self._identified = False  # until HELLO_REPLY says which unit this is
        self.reopen_at = None
        self._begin_handshake(now, first=self._first_open)

    def port_failed(self, now: float, reason: str) -> None:
        """Reading or writing failed (unplug): the shell has closed the port."""
        if self.state in PORTLESS:
            return
        first = self._hs is not None and self._hs.first
        self._move(Trigger.PORT_FAILED)
        self._identified = False
        self.health.add("port_failures")
        self._trouble(now)
        self._reopen_delay = self._backoff[0]
        self.reopen_at = now + self._reopen_delay
        failed = self._fail_all(texts.PORT_FAILED)
        self._out.discard_unwritten_estop()
        self._hs = None
        self._emit(LinkEventKind.LINK_DOWN, texts.link_down(self.url, reason), now, failed)
        if first:
            self.open_error = LinkLost(texts.port_failed_in_handshake(self.url), url=self.url)
            self._give_up(now, None)

    def reopen_failed(self, now: float) -> None:
        self.health.add("reconnect_attempts")
        self._reopen_delay = min(self._reopen_delay * 2, self._backoff[1])
        self.reopen_at = now + self._reopen_delay

    def close(self, now: float) -> None:
        was_open = self.state is not LinkState.CLOSED
        self._fail_all(texts.CLOSED, closed=True)
        self._out.discard_unwritten_estop()
        self._move(Trigger.CLOSE)
        self._hs = None
        self._trouble_since = None
        if was_open:
            self._emit(LinkEventKind.CLOSED, f"Link to {self.url} closed.", now)

    def acknowledge_restart(self) -> None:
        """The operator acknowledged the restart: the new ``boot_id`` is the one kept."""
        pinned, hello = self.pinned, self.hello
        if pinned and hello and pinned.same_unit(DeviceIdentity.from_hello(hello)):
            self.pinned = pinned.with_boot(hello.boot_id)
        self._restart_reported = None

    def adopt_other_unit(self, now: float) -> None:
        """The operator confirmed the other unit (no session open): it is pinned from now."""
        hello = self.other_hello
        if self.state is not LinkState.OTHER_UNIT or self.other is None or hello is None:
            raise ValueError("no other unit is waiting to be adopted")
        self.pinned, self.hello, self.status = self.other, hello, self.other_status
        self.device_state = None if self.status is None else state_of(self.status.state)
        self.other = self.other_status = self.other_hello = None
        self._restart_reported = None
        self._tracker.handshake(hello.boot_id)
        self._identified = True
        self._move(Trigger.ADOPTED)
        self._emit(LinkEventKind.UNIT_ADOPTED, texts.adopted(self.pinned), now)

    def _begin_handshake(self, now: float, *, first: bool) -> None:
        self._hs = HandshakeRun(first=first, started=now, delay=self._backoff[0])
        self._queue_own(Purpose.HELLO, Hello(PROTO_VERSION, self.host_id))

    def _on_hello(self, msg: Message, now: float) -> None:
        error = hello_error(msg, self.url, self.pinned)
        if error is not None:
            self._refused(error, now)
            return
        assert isinstance(msg, HelloReply)
        found = DeviceIdentity.from_hello(msg)
        verdict = identify(self.pinned, found, self._restart_reported)
        if verdict is Verdict.OTHER:
            self._other_unit(found, msg, now)
            return
        if verdict is Verdict.NEW:
            self.pinned = found
        elif verdict is Verdict.RESTARTED and self.pinned is not None:
            old = self.pinned.boot_id
            reason = f"boot_id changed from 0x{old:04X} to 0x{found.boot_id:04X} while the link "
            reason += "was down"
            self._restarted(StreamVerdict(0, reason, old, found.boot_id), now, again=False)
        self.hello = msg
        self._tracker.handshake(msg.boot_id)
        self._identified = True
        rate = self._telemetry_rate
        if rate is not None and rate != DEFAULT_TELEMETRY_HZ:  # HELLO reset it to 50 Hz
            self._queue_own(Purpose.RESTORE_TELEMETRY, SetTelemetry(rate))
        else:
            self._queue_own(Purpose.HANDSHAKE_STATUS, GetStatus())

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
        self._telemetry_heard_at = now  # telemetry is expected from now on
        if first:
            kind, message = LinkEventKind.LINK_UP, texts.link_up(self.url, self.baud, msg)
        else:
            self.health.add("reconnects")
            kind, message = LinkEventKind.RECONNECTED, texts.reconnected(self.url, msg)
        self._emit(kind, message, now, hello=self.hello, status=msg)

    def _refused(self, error: HandshakeError, now: float) -> None:
        """The handshake cannot succeed: fail the first open, or give up reconnecting."""
        if self._hs is not None and self._hs.first:
            self.open_error = error
            self._give_up(now, None)
        else:
            self._give_up(now, texts.gave_up_refused(self.url, error))

    def _other_unit(self, found: DeviceIdentity, hello: HelloReply, now: float) -> None:
        assert self.pinned is not None
        self._move(Trigger.OTHER_UNIT)
        self._hs = None
        self.other, self.other_hello, self.other_status = found, hello, None
        self.device_state = None
        self._queue_own(Purpose.OTHER_UNIT_STATUS, GetStatus())
        message = texts.unit_changed(self.url, self.pinned, found)
        self._emit(LinkEventKind.UNIT_CHANGED, message, now, hello=hello, other=found)

    def _expired(self, req: Request, now: float) -> None:
        """``req`` got no reply in time (after all resends, or after an ESTOP abandoned it)."""
        if req.abandoned:
            self._out.complete(req, error=self._no_reply_error(req, texts.abandoned(req.mtype)))
            return
        self.health.add("requests_given_up")
        if req.purpose in HANDSHAKE_PURPOSES:
            hs = self._hs
            if hs is None:
                return
            error = attempt_failed(
                hs,
                req.mtype,
                now,
                url=self.url,
                baud=self.baud,
                timeout=self.handshake_timeout,
                backoff_max=self._backoff[1],
            )
            self._out.changed = True
            if error is not None:
                self._refused(error, now)
        elif self.state in (LinkState.UP, LinkState.OTHER_UNIT):
            self._declare_lost(texts.no_reply_reason(req.mtype), now, exhausted=req)
        else:
            self._out.complete(req, error=self._no_reply_error(req, texts.LOST))

    def _declare_lost(
        self, reason: str, now: float, *, exhausted: Request | None = None, estop: bool = True
    ) -> None:
        """No reply after all resends: ESTOP (best effort), state unknown, re-handshake."""
        self._move(Trigger.NO_REPLY)
        self.health.add("link_losses")
        self._trouble(now)
        if exhausted is not None:
            self._out.complete(exhausted, error=self._no_reply_error(exhausted, reason))
        self._fail_all(texts.LOST)
        if estop:
            self._out.request_estop(best_effort=True)
        message = texts.link_lost(self.url, reason, estop)
        self._emit(LinkEventKind.LINK_LOST, message, now, exhausted)
        self._begin_handshake(now, first=False)

    def _restarted(self, verdict: StreamVerdict, now: float, *, again: bool = True) -> None:
        """The device restarted: everything known is void; ``again``: handshake anew."""
        self.health.add("device_restarts")
        self._restart_reported = verdict.new_boot_id
        failed = self._fail_all(texts.RESTARTED)
        self._move(Trigger.RESTARTED)
        # DEBUG: the device_restarted event is the service log's entry for it.
        log.debug("device on %s restarted: %s", self.url, verdict.restart)
        self._emit(
            LinkEventKind.DEVICE_RESTARTED,
            texts.restarted(verdict.restart or ""),
            now,
            failed,
            old_boot_id=verdict.old_boot_id,
            new_boot_id=verdict.new_boot_id,
        )
        if again:
            self._trouble(now)
            self._begin_handshake(now, first=False)

    def _give_up(self, now: float, message: str | None) -> None:
        self._fail_all(texts.GAVE_UP, closed=True)
        self._out.discard_unwritten_estop()
        self._move(Trigger.GIVE_UP)
        self._hs = None
        self._trouble_since = None
        self.reopen_at = None
        if message is not None:
            self._emit(LinkEventKind.RECONNECT_FAILED, message, now)

    def _fail_all(self, reason: str, *, closed: bool = False) -> Request | None:
        """End the outstanding request and every queued one (commands die with the connection
        they were decided on, never replayed later); returns the one that was outstanding."""

        def error(req: Request, sent: bool) -> LinkError:
            if closed:
                return LinkClosed(f"{req.mtype.name} abandoned: {reason}.", url=self.url)
            if sent:
                return self._no_reply_error(req, reason)
            return LinkLost(texts.not_sent(req.mtype, reason), url=self.url, request=req.mtype)

        self.device_state = None
        return self._out.fail_all(error)

    def _no_reply_error(self, req: Request, reason: str) -> LinkLost:
        if req.mtype in OUTCOME_UNCERTAIN:
            text = texts.outcome_unknown(req.mtype, reason)
            return OutcomeUnknown(text, url=self.url, request=req.mtype, sent=True)
        text = f"{req.mtype.name} failed: {reason}."
        return LinkLost(text, url=self.url, request=req.mtype, sent=True)

    def _move(self, trigger: Trigger) -> None:
        self._out.changed = True
        self.state = next_state(self.state, trigger)
        if trigger is not Trigger.CLOSE:
            self.epoch += 1
            self.connection += 1

    def _trouble(self, now: float) -> None:
        if self._trouble_since is None:
            self._trouble_since = now

    def _queue_own(self, purpose: Purpose, msg: Message) -> None:
        self._out.add(self._out.new(msg, purpose), first=True)

    def _emit(
        self,
        kind: LinkEventKind,
        message: str,
        now: float,
        failed: Request | None = None,
        **fields: Any,
    ) -> None:
        """Deliver a link event; a START, RESUME or SET_AMPLITUDE that ``failed`` with it is
        followed by its ``outcome_unknown``."""
        request = failed.mtype if failed is not None else None
        self._deliveries.append(self._event(kind, message, now, request=request, **fields))
        if failed is not None and failed.mtype in OUTCOME_UNCERTAIN and not failed.abandoned:
            text = texts.outcome_unknown_event(failed.mtype)
            kind = LinkEventKind.OUTCOME_UNKNOWN
            self._deliveries.append(self._event(kind, text, now, request=failed.mtype))

    def _event(self, kind: LinkEventKind, message: str, now: float, **fields: Any) -> LinkEvent:
        return LinkEvent(
            kind,
            message,
            now,
            self.epoch,
            self.pinned,
            connection=self.connection,
            **fields,
        )
