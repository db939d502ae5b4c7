"""The serial link to an EPM-1: one reader thread, serialised writes, request/reply by seq.

Threads (all daemons, all joined by :meth:`Link.close`):

* **reader** - the only code that touches the port for reading. Reads ``in_waiting or 1``
  bytes with a short timeout, frames them with :class:`~controller.wire.FrameDecoder`,
  matches replies to the outstanding request by ``seq`` and type, checks ``dseq``/``boot_id``
  and passes telemetry and events to the listener. When the port fails it closes it at once
  and reopens it with backoff.
* **ticker** - never waits for a reply: retransmits the outstanding request (identical bytes,
  same seq) when ``T_reply`` expires, gives up after 3 resends (link lost: ESTOP at once),
  retransmits an unacknowledged ESTOP, and sends HEARTBEAT when the device is in an active
  state and nothing went out for :data:`HEARTBEAT_IDLE_S`.
* **worker** - runs what the link must ask the device on its own: the handshake after a
  reconnect, a loss or a device restart, and GET_STATUS after a ``dseq`` gap.

Writes go through one lock held for a single frame's write. At most one request is
outstanding; ESTOP is the exception: it takes only the write lock, gets its own seq and is on
the wire right after the frame being written, if any.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import NamedTuple

import serial

from controller.link.errors import (
    HandshakeError,
    HandshakeRefused,
    LinkClosed,
    LinkError,
    LinkLost,
    NoHandshakeReply,
    OutcomeUnknown,
    UnsupportedProtocolVersion,
    WrongDeviceModel,
)
from controller.link.events import LinkEvent, LinkEventKind, LinkListener, NullListener
from controller.link.health import HealthRecorder, LinkHealth, LinkState
from controller.link.port import READ_TIMEOUT_S, WRITE_TIMEOUT_S, open_port
from controller.link.requests import (
    OUTCOME_SENSITIVE,
    Failure,
    Outcome,
    PendingRequest,
    RecentSeqs,
    SeqCounter,
    reply_fits,
)
from controller.link.timing import DEFAULT_BAUD, frame_wire_bytes, give_up_after, t_reply
from controller.link.tracker import StreamTracker, Verdict
from controller.wire.codec import DecodeError, FrameDecoder, decode_message, encode_frame
from controller.wire.constants import (
    ACTIVE_STATES,
    DEFAULT_TELEMETRY_HZ,
    PROTO_VERSION,
    RETRIES,
    EventCode,
    MsgType,
    NakCode,
    State,
)
from controller.wire.messages import (
    HELLO_MAX_HOST_ID,
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
#: Send HEARTBEAT after this much silence in an active state. The device requires a frame at
#: least every 100 ms (its watchdog trips at 500 ms); half of that leaves room for scheduling.
HEARTBEAT_IDLE_S = 0.050
#: Longest the ticker sleeps when nothing is due.
TICK_S = 0.020
#: Extra time a requester waits beyond the ticker's own give-up time (a stuck-ticker guard).
GUARD_S = 2.0
#: How long joining a thread in :meth:`Link.close` may take.
JOIN_S = 2.0


class Handshake(NamedTuple):
    """Result of a handshake: the device's HELLO_REPLY and the STATUS read right after it."""

    hello: HelloReply
    status: Status


class _NoReply(Exception):  # noqa: N818 - internal signal, never seen by users
    """Internal: a handshake request got no reply after all resends."""


def _state_of(value: int) -> State | None:
    try:
        return State(value)
    except ValueError:
        return None


class Link:
    """A reliable request/reply link to one EPM-1 over a pyserial URL.

    ``open()`` opens the port and handshakes (HELLO, then GET_STATUS) or raises a clear
    :class:`~controller.link.errors.LinkError`. ``request()`` sends one request and returns
    its reply (ACK, NAK, HELLO_REPLY or STATUS); ``estop()`` never waits. What the link learns
    on its own goes to ``listener``.
    """

    def __init__(
        self,
        url: str,
        baud: int = DEFAULT_BAUD,
        *,
        host_id: str = "epm",
        listener: LinkListener | None = None,
        handshake_timeout: float = 2.0,
        reconnect_timeout: float | None = None,
        backoff_initial: float = 0.1,
        backoff_max: float = 2.0,
        heartbeat_idle: float = HEARTBEAT_IDLE_S,
        read_timeout: float = READ_TIMEOUT_S,
        write_timeout: float = WRITE_TIMEOUT_S,
    ) -> None:
        if baud <= 0:
            raise ValueError(f"baud rate {baud} must be positive")
        try:
            encoded_host = host_id.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError(f"host_id {host_id!r} must be ASCII") from None
        if len(encoded_host) > HELLO_MAX_HOST_ID:
            raise ValueError(f"host_id {host_id!r} is longer than {HELLO_MAX_HOST_ID} bytes")
        if not 0 < heartbeat_idle <= 0.1:
            raise ValueError("heartbeat_idle must be within (0, 0.1] s: the device needs a frame")
        self.url = url
        self.baud = baud
        self.host_id = host_id
        self._listener: LinkListener = listener or NullListener()
        self._handshake_timeout = handshake_timeout
        self._reconnect_timeout = reconnect_timeout
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._heartbeat_idle = heartbeat_idle
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._slot_wait = give_up_after(MsgType.HELLO, 64, baud) + GUARD_S

        self._cond = threading.Condition()
        self._wlock = threading.Lock()
        self._stop = threading.Event()
        self._dirty = False  # something changed that the ticker must look at
        self._opened = False
        self._closing = False

        self._port: serial.SerialBase | None = None
        self._state = LinkState.CLOSED
        self._decoder = FrameDecoder()
        self._health = HealthRecorder(self._decoder.counters)
        self._seq = SeqCounter()
        self._recent = RecentSeqs()
        self._pending: PendingRequest | None = None
        self._estop: PendingRequest | None = None
        self._tracker = StreamTracker()
        self._device_state: State | None = None
        self._hello: HelloReply | None = None
        self._status: Status | None = None
        self._telemetry_rate: int | None = None
        self._jobs: list[str] = []
        self._last_tx = -math.inf
        self._trouble_since: float | None = None
        self._hello_frames = 0
        self._threads: list[threading.Thread] = []
        self._reader_thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def open(self) -> Handshake:
        """Open the port and handshake; raise a clear :class:`LinkError` if that fails."""
        with self._cond:
            if self._opened:
                raise RuntimeError("this Link was already opened; create a new one")
            self._opened = True
        port = open_port(
            self.url,
            self.baud,
            read_timeout=self._read_timeout,
            write_timeout=self._write_timeout,
        )
        with self._cond:
            self._port = port
            self._state = LinkState.CONNECTING
        self._start_threads()
        try:
            handshake = self._first_handshake()
        except BaseException:
            self.close()
            raise
        self._emit(
            LinkEvent(
                LinkEventKind.LINK_UP,
                f"Connected to {handshake.hello.model} {handshake.hello.serial} on {self.url} "
                f"at {self.baud} baud; device state {_name(handshake.status.state)}.",
                hello=handshake.hello,
                status=handshake.status,
            )
        )
        return handshake

    def close(self) -> None:
        """Stop the threads and close the port. If the device is delivering, ESTOP first."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            active = self._state is LinkState.UP and self._device_state in ACTIVE_STATES
            was_open = self._state is not LinkState.CLOSED
        if active:
            # Safety: turn the output off explicitly rather than leave it to the watchdog.
            self.estop()
        with self._cond:
            self._state = LinkState.CLOSED
            self._stop.set()
            if self._pending is not None:
                self._finish(self._pending, Failure.CLOSED)
            self._kick()
            port = self._port
        if port is not None:
            _cancel_read(port)
        me = threading.current_thread()
        for thread in self._threads:
            if thread is not me:
                thread.join(JOIN_S)
        with self._cond:
            port, self._port = self._port, None
        if port is not None:
            self._close_port(port)
        if was_open:
            self._emit(LinkEvent(LinkEventKind.CLOSED, f"Link to {self.url} closed."))

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- views ---------------------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        return self._state

    @property
    def was_opened(self) -> bool:
        """Whether :meth:`open` was called (a Link opens once; make a new one to retry)."""
        return self._opened

    @property
    def device_state(self) -> State | None:
        """The device state last learned from TELEMETRY, STATUS, events and ACKs (or None)."""
        return self._device_state

    @property
    def hello_reply(self) -> HelloReply | None:
        return self._hello

    @property
    def last_status(self) -> Status | None:
        return self._status

    @property
    def port_is_open(self) -> bool:
        port = self._port
        return port is not None and bool(port.is_open)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(self._threads)

    def health(self) -> LinkHealth:
        """A snapshot of the counters; never waits for the port."""
        return self._health.snapshot(self._state)

    def t_reply(self, mtype: MsgType, body_len: int = 0) -> float:
        """``T_reply`` of a request at this link's baud rate."""
        return t_reply(mtype, frame_wire_bytes(body_len), self.baud)

    # --- requests ------------------------------------------------------------------------

    def request(self, msg: Message) -> Message:
        """Send ``msg`` and return its reply (ACK, NAK, HELLO_REPLY or STATUS).

        Raises :class:`LinkLost` when the link is not up or is lost before the reply
        (:class:`OutcomeUnknown` for START, RESUME and SET_AMPLITUDE once sent) and
        :class:`LinkClosed` after :meth:`close`. Use :meth:`estop` for ESTOP.
        """
        return self._request(msg, handshake=False)

    def hello(self) -> Handshake:
        """Handshake again on an up link (HELLO, then GET_STATUS); checks version and model.

        Note: in RUNNING, PAUSED, HOLD or STOPPING the device answers HELLO by turning the
        output off and latching WATCHDOG - by design, a host that re-handshakes lost track.
        """
        reply = self.request(Hello(PROTO_VERSION, self.host_id))
        hello = self._check_hello(reply)
        status = self.request(GetStatus())
        if not isinstance(status, Status):
            raise HandshakeRefused(
                f"The device refused GET_STATUS after HELLO ({_nak_text(status)}).", url=self.url
            )
        return Handshake(hello, status)

    def estop(self) -> bool:
        """Write ESTOP now, ahead of any queued request; return whether its bytes went out.

        Never raises and never waits for a reply slot: it takes only the write lock. The
        ticker re-sends it (same seq) until the device acknowledges, up to 3 times.
        """
        try:
            with self._cond:
                if self._port is None:
                    return False
                seq = self._next_seq()
                frame = encode_frame(seq, Estop())
                track = PendingRequest(
                    MsgType.ESTOP, seq, frame, self._t_reply(MsgType.ESTOP, frame)
                )
                track.sends = 1
                track.last_sent = time.monotonic()
                if self._estop is not None:
                    self._recent.remember(self._estop.seq, Outcome.ABANDONED)
                self._estop = track
            written = self._write(frame)
            with self._cond:
                if self._estop is track:
                    if written:
                        track.deadline = time.monotonic() + track.t_reply
                    else:
                        self._estop = None
                self._kick()
            if written:
                self._health.add("estops_sent")
            return written
        except Exception:  # pragma: no cover - defensive: ESTOP must never raise
            log.exception("ESTOP could not be sent")
            return False

    # --- request machinery ---------------------------------------------------------------

    def _request(self, msg: Message, *, handshake: bool) -> Message:
        mtype = message_type(msg)
        if mtype is MsgType.ESTOP:
            raise ValueError("send ESTOP with estop(): it never waits for a reply slot")
        if not mtype.is_request:
            raise ValueError(f"{mtype.name} is not a host request")
        if threading.current_thread() is self._reader_thread:
            raise RuntimeError(
                "a link request was made from a listener on the reader thread; listeners must "
                "not block - hand the work to another thread"
            )
        wait_until = time.monotonic() + self._slot_wait
        with self._cond:
            while True:
                self._check_usable(mtype, handshake)
                if self._pending is None:
                    break
                left = wait_until - time.monotonic()
                if left <= 0:
                    raise LinkLost(
                        f"{mtype.name} not sent: the previous request did not finish in time.",
                        url=self.url,
                        request=mtype,
                    )
                self._cond.wait(left)
            seq = self._next_seq()
            frame = encode_frame(seq, msg)
            pending = PendingRequest(
                mtype, seq, frame, self._t_reply(mtype, frame), handshake=handshake, message=msg
            )
            self._pending = pending
        self._send_first(pending)
        if not pending.done.wait(pending.t_reply * (RETRIES + 1) + GUARD_S):
            with self._cond:
                self._finish(pending, Failure.NO_REPLY)
        return self._outcome(pending)

    def _check_usable(self, mtype: MsgType, handshake: bool) -> None:
        """Raise unless a request may be sent now (caller holds the lock)."""
        if self._closing or self._state is LinkState.CLOSED:
            raise LinkClosed(f"The link to {self.url} is closed.", url=self.url)
        if handshake:
            if self._port is None:
                raise LinkLost(
                    f"{mtype.name} not sent: the port is gone.", url=self.url, request=mtype
                )
            return
        if self._state is not LinkState.UP:
            raise LinkLost(
                f"{mtype.name} not sent: {self._why_not_up()}", url=self.url, request=mtype
            )

    def _why_not_up(self) -> str:
        return {
            LinkState.CONNECTING: "the link is (re)connecting to the device.",
            LinkState.LOST: "the device stopped answering; the link is trying to reconnect.",
            LinkState.RECONNECTING: "the port was lost (unplugged?); the link is reopening it.",
        }.get(self._state, "the link is not up.")

    def _t_reply(self, mtype: MsgType, frame: bytes) -> float:
        return t_reply(mtype, len(frame), self.baud)

    def _next_seq(self) -> int:
        seq = self._seq.next()
        self._recent.forget(seq)
        return seq

    def _send_first(self, pending: PendingRequest) -> None:
        with self._cond:
            if pending.done.is_set():
                return
            pending.sends = 1
            pending.last_sent = time.monotonic()
            if pending.mtype is MsgType.HELLO:
                self._hello_frames += 1
        written = self._write(pending.frame)
        if written:
            self._health.add("requests_sent")
            if pending.mtype is MsgType.HEARTBEAT:
                self._health.add("heartbeats_sent")
        with self._cond:
            if not pending.done.is_set():
                if written:
                    pending.deadline = time.monotonic() + pending.t_reply
                else:
                    self._finish(pending, Failure.PORT)
            self._kick()

    def _finish(self, pending: PendingRequest, failure: Failure) -> None:
        """End ``pending`` without a reply (caller holds the lock)."""
        if pending.done.is_set():
            return
        if self._pending is pending:
            self._pending = None
        self._recent.remember(pending.seq, Outcome.ABANDONED)
        pending.failure = failure
        pending.done.set()
        self._kick()

    def _outcome(self, pending: PendingRequest) -> Message:
        if pending.reply is not None:
            return pending.reply
        failure = pending.failure
        name = pending.mtype.name
        if failure is Failure.CLOSED:
            raise LinkClosed(f"{name} abandoned: the link was closed.", url=self.url)
        if pending.handshake:
            if failure is Failure.NO_REPLY:
                raise _NoReply()
            raise LinkLost(
                f"{name} abandoned: the port failed during the handshake.",
                url=self.url,
                request=pending.mtype,
                sent=True,
            )
        why = {
            Failure.NO_REPLY: f"the device did not answer {name} after {RETRIES + 1} sends",
            Failure.PORT: f"the port failed (unplugged?) before the device answered {name}",
            Failure.LOST: f"the link was lost before the device answered {name}",
        }.get(failure or Failure.LOST, "the link was lost")
        if pending.mtype in OUTCOME_SENSITIVE:
            raise OutcomeUnknown(
                f"Outcome of {name} unknown: {why}. It may or may not have taken effect; the "
                f"controller will not send it again. Check the device status after reconnecting "
                f"and decide.",
                url=self.url,
                request=pending.mtype,
                sent=True,
            )
        raise LinkLost(f"{name} failed: {why}.", url=self.url, request=pending.mtype, sent=True)

    def _write(self, frame: bytes) -> bool:
        """Write one frame under the write lock; on a port error hand the port to the reader."""
        with self._wlock:
            port = self._port
            if port is None:
                return False
            try:
                port.write(frame)
            except (serial.SerialException, OSError, TypeError, ValueError) as exc:
                error: BaseException = exc
            else:
                self._last_tx = time.monotonic()
                return True
        self._port_failed(port, error)
        return False

    def _kick(self) -> None:
        """Tell the ticker and waiters that something changed (caller holds the lock)."""
        self._dirty = True
        self._cond.notify_all()

    # --- handshakes ----------------------------------------------------------------------

    def _first_handshake(self) -> Handshake:
        started = time.monotonic()
        with self._cond:
            frames_before = self._hello_frames
        while True:
            try:
                hello = self._check_hello(
                    self._request(Hello(PROTO_VERSION, self.host_id), handshake=True)
                )
                break
            except _NoReply:
                elapsed = time.monotonic() - started
                if elapsed >= self._handshake_timeout:
                    with self._cond:
                        sent = self._hello_frames - frames_before
                    raise NoHandshakeReply(
                        f"No EPM-1 answered on {self.url} at {self.baud} baud: HELLO was sent "
                        f"{sent} times over {elapsed:.1f} s without a reply. Is this the right "
                        f"port, is the device switched on, and is it set to {self.baud} baud "
                        f"(EPM-1 runs at 115200, 230400, 460800 or 921600)?",
                        url=self.url,
                        attempts=sent,
                        seconds=elapsed,
                    ) from None
        try:
            return self._complete_handshake(hello)
        except _NoReply:
            raise NoHandshakeReply(
                f"The device on {self.url} answered HELLO but not GET_STATUS after "
                f"{RETRIES + 1} sends; the link is unreliable. Check the cable and the baud rate.",
                url=self.url,
            ) from None

    def _check_hello(self, reply: Message) -> HelloReply:
        if isinstance(reply, Nak):
            if reply.code == NakCode.UNSUPPORTED_VERSION:
                raise UnsupportedProtocolVersion(
                    f"The device on {self.url} does not support protocol version "
                    f"{PROTO_VERSION}, the only one this controller speaks. Update the "
                    f"controller or the device firmware so both use version {PROTO_VERSION}.",
                    url=self.url,
                    detail="NAK UNSUPPORTED_VERSION",
                    version=0,
                )
            raise HandshakeRefused(
                f"The device on {self.url} refused HELLO ({_nak_text(reply)}).", url=self.url
            )
        if not isinstance(reply, HelloReply):  # pragma: no cover - reply_fits guarantees it
            raise HandshakeRefused(f"Unexpected answer to HELLO: {reply!r}", url=self.url)
        if reply.proto_version != PROTO_VERSION:
            raise UnsupportedProtocolVersion(
                f"The device on {self.url} speaks protocol version {reply.proto_version}; this "
                f"controller speaks version {PROTO_VERSION} only. Update the controller or the "
                f"device firmware.",
                url=self.url,
                detail=f"HELLO_REPLY proto_version={reply.proto_version}",
                version=reply.proto_version,
            )
        if reply.model != EXPECTED_MODEL:
            raise WrongDeviceModel(
                f"The device on {self.url} is a {reply.model!r} (serial {reply.serial!r}), not "
                f"an {EXPECTED_MODEL}. Check that this is the treatment unit's port.",
                url=self.url,
                model=reply.model,
            )
        return reply

    def _complete_handshake(self, hello: HelloReply) -> Handshake:
        rate = self._telemetry_rate
        if rate is not None and rate != DEFAULT_TELEMETRY_HZ:
            # HELLO reset the device to 50 Hz; restore what the owner chose.
            reply = self._request(SetTelemetry(rate), handshake=True)
            if isinstance(reply, Nak):
                log.warning("device refused to restore telemetry rate %d Hz: %s", rate, reply)
        status = self._request(GetStatus(), handshake=True)
        if not isinstance(status, Status):
            raise HandshakeRefused(
                f"The device on {self.url} refused GET_STATUS ({_nak_text(status)}).",
                url=self.url,
            )
        with self._cond:
            if self._closing:
                raise LinkClosed(f"The link to {self.url} is closed.", url=self.url)
            self._state = LinkState.UP
            self._trouble_since = None
            self._estop = None
            self._kick()
        return Handshake(hello, status)

    def _rehandshake(self) -> None:
        """Handshake again until it works, the port fails, or reconnecting is given up."""
        delay = self._backoff_initial
        while not self._stop.is_set():
            with self._cond:
                if self._port is None or self._state not in (LinkState.CONNECTING, LinkState.LOST):
                    return
            try:
                hello = self._check_hello(
                    self._request(Hello(PROTO_VERSION, self.host_id), handshake=True)
                )
                handshake = self._complete_handshake(hello)
            except _NoReply:
                pass
            except HandshakeError as exc:
                self._give_up(str(exc))
                return
            except LinkError:
                return  # port failed (the reader reopens it) or closed
            else:
                self._health.add("reconnects")
                faults = handshake.status.faults
                self._emit(
                    LinkEvent(
                        LinkEventKind.RECONNECTED,
                        f"Reconnected to {hello.model} {hello.serial} on {self.url}; device "
                        f"state {_name(handshake.status.state)}, faults 0x{faults:04X}. "
                        f"Delivery does not resume by itself: check the device and decide.",
                        hello=hello,
                        status=handshake.status,
                    )
                )
                return
            if self._past_reconnect_deadline():
                self._give_up("the device did not answer the handshake")
                return
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self._backoff_max)

    def _past_reconnect_deadline(self) -> bool:
        if self._reconnect_timeout is None:
            return False
        since = self._trouble_since
        return since is not None and time.monotonic() - since >= self._reconnect_timeout

    def _give_up(self, reason: str) -> None:
        with self._cond:
            if self._state is LinkState.CLOSED:
                return
            self._state = LinkState.CLOSED
            port, self._port = self._port, None
            if self._pending is not None:
                self._finish(self._pending, Failure.CLOSED)
            self._estop = None
            self._kick()
        if port is not None:
            _cancel_read(port)  # the reader closes it
        limit = f" within {self._reconnect_timeout:g} s" if self._reconnect_timeout else ""
        self._emit(
            LinkEvent(
                LinkEventKind.RECONNECT_FAILED,
                f"Gave up reconnecting to {self.url}{limit}: {reason}. The link is closed; the "
                f"device's watchdog has turned any output off. Check the device and the cable, "
                f"then connect again.",
            )
        )

    # --- the reader thread ---------------------------------------------------------------

    def _start_threads(self) -> None:
        reader = threading.Thread(target=self._reader_loop, name="epm-link-reader", daemon=True)
        ticker = threading.Thread(target=self._ticker_loop, name="epm-link-ticker", daemon=True)
        worker = threading.Thread(target=self._worker_loop, name="epm-link-worker", daemon=True)
        self._reader_thread = reader
        self._threads = [reader, ticker, worker]
        for thread in self._threads:
            thread.start()

    def _reader_loop(self) -> None:
        held: serial.SerialBase | None = None
        try:
            while not self._stop.is_set():
                current = self._port
                if held is not None and held is not current:
                    self._close_port(held)  # failure noticed by a writer: close at once
                    held = None
                if current is None:
                    if self._state is LinkState.CLOSED:
                        return
                    self._reopen()
                    continue
                held = current
                try:
                    data = current.read(current.in_waiting or 1)
                except Exception as exc:  # unplug: SerialException or OSError (EIO)
                    if self._port is current and not self._stop.is_set():
                        self._port_failed(current, exc)
                    self._close_port(current)
                    held = None
                    continue
                if data:
                    self._on_bytes(data)
        finally:
            if held is not None and held is not self._port:
                self._close_port(held)

    def _port_failed(self, port: serial.SerialBase, exc: BaseException) -> None:
        """The port failed (unplug): forget it, fail the pending request, report link down."""
        with self._cond:
            if self._port is not port or self._closing:
                return
            self._port = None
            self._state = LinkState.RECONNECTING
            if self._trouble_since is None:
                self._trouble_since = time.monotonic()
            self._device_state = None
            pending = self._pending
            if pending is not None:
                self._finish(pending, Failure.PORT)
            self._estop = None
            self._jobs.clear()
        _cancel_read(port)
        self._health.add("port_failures")
        log.warning("port %s failed: %s", self.url, exc)
        self._emit(
            LinkEvent(
                LinkEventKind.LINK_DOWN,
                f"Lost the port {self.url} ({exc}). It was closed; reconnecting. Device state "
                f"unknown; the device's watchdog turns any output off within 0.5 s.",
                request=pending.mtype if pending is not None else None,
            )
        )
        self._report_outcome(pending)

    def _close_port(self, port: serial.SerialBase) -> None:
        # Take the write lock so no write is half-way through the descriptor being closed.
        locked = self._wlock.acquire(timeout=self._write_timeout + 0.5)
        try:
            port.close()
        except Exception as exc:  # closing a dead port may fail; it is closed either way
            log.debug("closing %s: %s", self.url, exc)
        finally:
            if locked:
                self._wlock.release()

    def _reopen(self) -> None:
        """Reopen the port with backoff until it is back, closing, or past the deadline."""
        delay = self._backoff_initial
        last_error = "the port is not there"
        while not self._stop.is_set():
            wait = delay
            if self._reconnect_timeout is not None:
                since = self._trouble_since or time.monotonic()
                left = since + self._reconnect_timeout - time.monotonic()
                if left <= 0:
                    self._give_up(f"the port did not come back ({last_error})")
                    return
                wait = min(delay, left)
            if self._stop.wait(wait):
                return
            delay = min(delay * 2, self._backoff_max)
            self._health.add("reconnect_attempts")
            try:
                port = open_port(
                    self.url,
                    self.baud,
                    read_timeout=self._read_timeout,
                    write_timeout=self._write_timeout,
                )
            except LinkError as exc:
                last_error = exc.message
                continue
            with self._cond:
                if self._closing or self._state is LinkState.CLOSED:
                    stale: serial.SerialBase | None = port
                else:
                    stale = None
                    self._decoder.reset()
                    self._tracker.forget()
                    self._port = port
                    self._state = LinkState.CONNECTING
                    self._queue_job("handshake")
            if stale is not None:
                self._close_port(stale)
            return

    def _on_bytes(self, data: bytes) -> None:
        frames = self._decoder.feed(data)
        if not frames:
            return
        now = time.monotonic()
        self._health.frame_seen(now)
        for frame in frames:
            try:
                msg = decode_message(frame)
            except DecodeError as exc:
                self._health.add(
                    "malformed_frames" if exc.kind == "malformed" else "unknown_type_frames"
                )
                continue
            if isinstance(msg, Telemetry):
                self._on_telemetry(msg)
            elif isinstance(msg, Event):
                self._on_device_event(msg)
            elif isinstance(msg, (Ack, Nak, HelloReply, Status)):
                self._on_reply(frame.seq, msg, now)
            else:
                # A host-request type coming from the device (an echo or loopback).
                self._health.add("unknown_type_frames")

    def _on_reply(self, seq: int, msg: Message, now: float) -> None:
        events: list[LinkEvent] = []
        verdict: Verdict | None = None
        with self._cond:
            pending = self._pending
            if (
                pending is not None
                and seq == pending.seq
                and not pending.done.is_set()
                and reply_fits(pending.mtype, msg)
            ):
                self._pending = None
                self._recent.remember(seq, Outcome.ANSWERED)
                if pending.sends == 1:
                    self._health.rtt(now - pending.last_sent)
                self._health.add("replies_received")
                verdict = self._absorb_reply(pending, msg)
                pending.reply = msg
                pending.done.set()
                self._kick()
            elif (
                self._estop is not None
                and seq == self._estop.seq
                and isinstance(msg, Ack)
                and msg.cmd_type == MsgType.ESTOP
            ):
                self._recent.remember(seq, Outcome.ANSWERED)
                self._estop = None
                self._device_state = State.FAULT
                self._health.add("replies_received")
                events.append(
                    LinkEvent(LinkEventKind.ESTOP_CONFIRMED, "The device acknowledged ESTOP.")
                )
                self._kick()
            else:
                outcome = self._recent.outcome(seq)
                if outcome is Outcome.ANSWERED:
                    self._health.add("duplicate_replies")
                elif outcome is Outcome.ABANDONED:
                    self._health.add("late_replies")
                else:
                    self._health.add("stray_replies")
        for event in events:
            self._emit(event)
        if verdict is not None and verdict.restart:
            self._on_restart(verdict)

    def _absorb_reply(self, pending: PendingRequest, msg: Message) -> Verdict | None:
        """Learn what a matched reply tells about the device (caller holds the lock)."""
        if isinstance(msg, HelloReply):
            self._hello = msg
            self._tracker.handshake(msg.boot_id)
            return None
        if isinstance(msg, Status):
            self._status = msg
            self._device_state = _state_of(msg.state)
            self._health.device_counters(msg.rx_crc_errors, msg.rx_frame_errors)
            return self._tracker.on_status(msg)
        if isinstance(msg, Ack):
            if pending.mtype in (MsgType.START, MsgType.RESUME):
                self._device_state = State.RUNNING
            elif pending.mtype is MsgType.PAUSE:
                self._device_state = State.PAUSED
            elif pending.mtype is MsgType.SET_TELEMETRY and isinstance(
                pending.message, SetTelemetry
            ):
                self._telemetry_rate = pending.message.rate_hz
        return None

    def _on_telemetry(self, tel: Telemetry) -> None:
        verdict = self._tracker.on_telemetry(tel)
        self._health.add("telemetry_received")
        state = _state_of(tel.state)
        if state is not self._device_state:
            with self._cond:
                self._device_state = state
                self._kick()
        self._check_stream(verdict)
        try:
            self._listener.on_telemetry(tel)
        except Exception:
            self._listener_failed()

    def _on_device_event(self, event: Event) -> None:
        verdict = self._tracker.on_event(event)
        self._health.add("events_received")
        if event.event == EventCode.STATE_CHANGED:
            state = _state_of(event.arg & 0xFF)
            with self._cond:
                self._device_state = state
                self._kick()
        self._check_stream(verdict)
        try:
            self._listener.on_event(event)
        except Exception:
            self._listener_failed()

    def _check_stream(self, verdict: Verdict) -> None:
        if verdict.restart:
            self._on_restart(verdict)
        elif verdict.lost:
            self._health.add("telemetry_lost", verdict.lost)
            self._health.add("dseq_gaps")
            with self._cond:
                if self._state is LinkState.UP:
                    self._queue_job("status")
            self._emit(
                LinkEvent(
                    LinkEventKind.DSEQ_GAP,
                    f"{verdict.lost} frame(s) from the device were lost; reading its status.",
                    lost=verdict.lost,
                )
            )

    def _on_restart(self, verdict: Verdict) -> None:
        self._health.add("device_restarts")
        with self._cond:
            self._device_state = None
            if self._state in (LinkState.UP, LinkState.LOST):
                self._state = LinkState.CONNECTING
                if self._trouble_since is None:
                    self._trouble_since = time.monotonic()
                self._queue_job("handshake")
            self._kick()
        log.warning("device on %s restarted: %s", self.url, verdict.restart)
        self._emit(
            LinkEvent(
                LinkEventKind.DEVICE_RESTARTED,
                f"The device restarted ({verdict.restart}). Everything known about its state is "
                f"void and any delivery has stopped; re-handshaking.",
                old_boot_id=verdict.old_boot_id,
                new_boot_id=verdict.new_boot_id,
            )
        )

    # --- the ticker thread ---------------------------------------------------------------

    def _ticker_loop(self) -> None:
        timeout = 0.0
        while not self._stop.is_set():
            resend: list[bytes] = []
            heartbeat: PendingRequest | None = None
            exhausted: PendingRequest | None = None
            estop_unconfirmed = False
            with self._cond:
                if not self._dirty and timeout > 0:
                    self._cond.wait(timeout)
                self._dirty = False
                if self._stop.is_set():
                    return
                now = time.monotonic()
                pending = self._pending
                if pending is not None and not pending.done.is_set() and now >= pending.deadline:
                    self._health.add("reply_timeouts")
                    if pending.sends <= RETRIES:
                        pending.sends += 1
                        pending.last_sent = now
                        pending.deadline = now + pending.t_reply
                        if pending.mtype is MsgType.HELLO:
                            self._hello_frames += 1
                        resend.append(pending.frame)
                        self._health.add("retransmissions")
                    else:
                        self._health.add("requests_given_up")
                        if pending.handshake:
                            self._finish(pending, Failure.NO_REPLY)
                        else:
                            pending.deadline = math.inf  # finished by _declare_lost
                            exhausted = pending
                estop = self._estop
                if estop is not None and now >= estop.deadline:
                    if estop.sends <= RETRIES:
                        estop.sends += 1
                        estop.last_sent = now
                        estop.deadline = now + estop.t_reply
                        resend.append(estop.frame)
                        self._health.add("retransmissions")
                    else:
                        self._estop = None
                        self._recent.remember(estop.seq, Outcome.ABANDONED)
                        estop_unconfirmed = True
                if self._heartbeat_due(now):
                    seq = self._next_seq()
                    frame = encode_frame(seq, Heartbeat())
                    heartbeat = PendingRequest(
                        MsgType.HEARTBEAT, seq, frame, self._t_reply(MsgType.HEARTBEAT, frame)
                    )
                    self._pending = heartbeat
                timeout = self._next_wakeup(now)
            for frame in resend:
                self._write(frame)
            if heartbeat is not None:
                self._send_first(heartbeat)
            if exhausted is not None:
                self._declare_lost(
                    f"the device did not answer {exhausted.mtype.name} after {RETRIES + 1} sends",
                    exhausted,
                )
            if estop_unconfirmed:
                self._emit(
                    LinkEvent(
                        LinkEventKind.ESTOP_UNCONFIRMED,
                        f"ESTOP was sent {RETRIES + 1} times without acknowledgement. Use the "
                        f"device's own stop button and check it.",
                        request=MsgType.ESTOP,
                    )
                )
                self._declare_lost("the device did not acknowledge ESTOP", None, send_estop=False)

    def _heartbeat_due(self, now: float) -> bool:
        return (
            self._state is LinkState.UP
            and self._device_state in ACTIVE_STATES
            and self._pending is None
            and now - self._last_tx >= self._heartbeat_idle
        )

    def _next_wakeup(self, now: float) -> float:
        candidates = [TICK_S]
        pending = self._pending
        if pending is not None and math.isfinite(pending.deadline):
            candidates.append(pending.deadline - now)
        if self._estop is not None and math.isfinite(self._estop.deadline):
            candidates.append(self._estop.deadline - now)
        if self._state is LinkState.UP and self._device_state in ACTIVE_STATES and pending is None:
            candidates.append(self._last_tx + self._heartbeat_idle - now)
        return max(0.0005, min(candidates))

    def _declare_lost(
        self, reason: str, exhausted: PendingRequest | None, *, send_estop: bool = True
    ) -> None:
        """No reply after all resends: ESTOP at once, state unknown, re-handshake.

        The waiting requester is woken only after ESTOP is written and the loss reported, so
        by the time it sees its exception the events are already queued.
        """
        other: PendingRequest | None = None
        estop_frame: bytes | None = None
        with self._cond:
            declared = self._state is LinkState.UP
            if declared:
                self._state = LinkState.LOST
                self._trouble_since = time.monotonic()
                self._device_state = None
                if self._pending is not exhausted:
                    other = self._pending
                self._queue_job("handshake")
                if send_estop:
                    seq = self._next_seq()
                    estop_frame = encode_frame(seq, Estop())
                    track = PendingRequest(
                        MsgType.ESTOP, seq, estop_frame, self._t_reply(MsgType.ESTOP, estop_frame)
                    )
                    track.sends = RETRIES + 1  # best effort: the device is not answering
                    self._estop = track
        if declared:
            written = self._write(estop_frame) if estop_frame is not None else False
            if written:
                self._health.add("estops_sent")
            self._health.add("link_losses")
            log.warning("link to %s lost: %s", self.url, reason)
            estop_text = (
                " ESTOP sent."
                if written
                else (" ESTOP could not be written." if send_estop else "")
            )
            self._emit(
                LinkEvent(
                    LinkEventKind.LINK_LOST,
                    f"Lost the link to the device on {self.url}: {reason}.{estop_text} Device "
                    f"state unknown until reconnected; reconnecting.",
                    request=exhausted.mtype if exhausted is not None else None,
                )
            )
            self._report_outcome(exhausted)
            self._report_outcome(other)
        with self._cond:
            if exhausted is not None:
                self._finish(exhausted, Failure.NO_REPLY)
            if other is not None:
                self._finish(other, Failure.LOST)

    def _report_outcome(self, pending: PendingRequest | None) -> None:
        if pending is None or pending.mtype not in OUTCOME_SENSITIVE:
            return
        self._emit(
            LinkEvent(
                LinkEventKind.OUTCOME_UNKNOWN,
                f"Outcome of {pending.mtype.name} unknown: the link was lost before the device "
                f"answered. It will not be sent again; check the device status after "
                f"reconnecting and decide.",
                request=pending.mtype,
            )
        )

    # --- the worker thread ---------------------------------------------------------------

    def _queue_job(self, job: str) -> None:
        """Queue work for the worker unless already queued (caller holds the lock)."""
        if job not in self._jobs:
            self._jobs.append(job)
        self._cond.notify_all()

    def _worker_loop(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._jobs and not self._stop.is_set():
                    self._cond.wait(0.5)
                if self._stop.is_set():
                    return
                job = self._jobs.pop(0)
            try:
                if job == "handshake":
                    self._rehandshake()
                elif job == "status":
                    self._refresh_status()
            except Exception:  # pragma: no cover - a bug must not kill the worker
                log.exception("link worker job %s failed", job)

    def _refresh_status(self) -> None:
        if self._state is not LinkState.UP:
            return
        try:
            status = self.request(GetStatus())
        except LinkError:
            return  # reported by the loss handling
        if isinstance(status, Status):
            self._emit(
                LinkEvent(
                    LinkEventKind.STATUS_REFRESHED,
                    f"Device status read after lost frames: state {_name(status.state)}, "
                    f"faults 0x{status.faults:04X}.",
                    status=status,
                )
            )

    # --- listener ------------------------------------------------------------------------

    def _emit(self, event: LinkEvent) -> None:
        try:
            self._listener.on_link_event(event)
        except Exception:
            self._listener_failed()

    def _listener_failed(self) -> None:
        self._health.add("listener_errors")
        log.exception("link listener raised")


def _cancel_read(port: serial.SerialBase) -> None:
    """Wake a reader blocked in ``read`` (POSIX ports support it; others time out soon)."""
    cancel = getattr(port, "cancel_read", None)
    if cancel is None:
        return
    try:
        cancel()
    except Exception as exc:  # the port may already be closed
        log.debug("cancel_read: %s", exc)


def _name(state: int) -> str:
    found = _state_of(state)
    return found.name if found is not None else f"unknown ({state})"


def _nak_text(reply: Message) -> str:
    if isinstance(reply, Nak):
        try:
            code = NakCode(reply.code).name
        except ValueError:
            code = str(reply.code)
        return f"NAK {code}, detail {reply.detail}"
    return type(reply).__name__
