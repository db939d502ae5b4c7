"""The I/O shell around :class:`~controller.link.core.LinkCore`: a port, three threads, a lock.

The shell decides nothing about the protocol. It feeds the core what happened and carries out
what the core decides:

* **reader** (``epm-link-reader``): the only code that reads the port. Bytes go to
  :meth:`LinkCore.receive_data`. When the port fails it is closed at once and reopened with
  the core's backoff. An unexpected exception is reported as a link failure, never swallowed.
* **the write path** (:meth:`Link._flush`): every frame is written by one function holding the
  write lock, which asks the core at that moment what to write (ESTOP first; a resend only if
  its request is still the outstanding one; a command only in the epoch it was decided on).
  Callers run it from their own thread (a request's first send, an ESTOP: no thread hop); the
  ticker runs it for resends, heartbeats and the handshake.
* **ticker** (``epm-link-ticker``): sleeps until the core's next deadline or a kick, then
  :meth:`LinkCore.handle_timer` and the write path.
* **dispatcher** (``epm-link-dispatch``): calls the listener, in order, for telemetry, device
  events and link events. No other thread runs listener code.

``self._lock`` guards the core and is never held during I/O; ``self._wlock`` serialises writes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import NamedTuple

import serial

from controller.link.core import (
    HEARTBEAT_IDLE_S,
    SUPERVISION_WINDOW_S,
    Completion,
    LinkCore,
)
from controller.link.dispatch import Dispatcher
from controller.link.errors import LinkClosed, LinkError, OtherUnit
from controller.link.events import LinkListener, NullListener
from controller.link.health import HealthWatch, LinkHealth, worth_logging
from controller.link.identity import Continuity, DeviceIdentity
from controller.link.port import READ_TIMEOUT_S, WRITE_TIMEOUT_S, open_port
from controller.link.states import LinkState
from controller.link.timing import DEFAULT_BAUD, frame_wire_bytes, t_reply
from controller.wire.constants import ACTIVE_STATES, MsgType, State
from controller.wire.messages import HELLO_MAX_HOST_ID, HelloReply, Message, Status

log = logging.getLogger(__name__)
#: The service log's entries (docs/service-log.md): reconnect attempts, bursts, frame errors.
service = logging.getLogger("epm.link")

#: Longest the ticker sleeps when nothing is due (a safety net; kicks wake it sooner).
TICK_S = 0.1
#: A caller gives up waiting for a request's end after this long (the core ends every request
#: far sooner; this only guards against a stuck link).
GUARD_S = 10.0
#: How long joining a thread in :meth:`Link.close` may take.
JOIN_S = 2.0


_SETTLED = frozenset({LinkState.UP, LinkState.OTHER_UNIT, LinkState.CLOSED})


class Handshake(NamedTuple):
    """Result of a handshake: the device's HELLO_REPLY and the STATUS read right after it."""

    hello: HelloReply
    status: Status


class _Waiter:
    __slots__ = ("completion", "done")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.completion: Completion | None = None


class Link:
    """A reliable request/reply link to one EPM-1 over a pyserial URL.

    ``open()`` opens the port and handshakes (HELLO, then GET_STATUS) or raises a clear
    :class:`~controller.link.errors.LinkError`. ``request()`` sends one request and returns its
    reply (ACK, NAK, HELLO_REPLY or STATUS); ``estop()`` never waits for a reply slot. What the
    link learns goes to ``listener`` on the dispatch thread. ``continuity`` carries the pinned
    unit, the epoch and the seq numbering over from an earlier link to the same device.
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
        supervision_window: float = SUPERVISION_WINDOW_S,
        read_timeout: float = READ_TIMEOUT_S,
        write_timeout: float = WRITE_TIMEOUT_S,
        continuity: Continuity | None = None,
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
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._core = LinkCore(
            url,
            baud,
            host_id=host_id,
            continuity=continuity,
            handshake_timeout=handshake_timeout,
            reconnect_timeout=reconnect_timeout,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            heartbeat_idle=heartbeat_idle,
            supervision_window=supervision_window,
        )
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._wlock = threading.Lock()
        self._kicked = threading.Event()
        #: When the ticker will wake by itself (it is kicked only for anything sooner).
        self._ticker_until = -math.inf
        self._stop = threading.Event()
        self._port: serial.SerialBase | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._dispatcher = Dispatcher(self._listener, self._core.health)
        self._watch = HealthWatch(self._core.health, url)
        self._watch_failed = False
        self._reopen_failures = 0
        self._opened = False
        self._closing = False
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------

    def open(self) -> Handshake:
        """Open the port and handshake; raise a clear :class:`LinkError` if that fails.

        When another unit than the pinned one answers, raises :class:`OtherUnit` and stays
        open (the operator may adopt it with :meth:`adopt_other_unit`).
        """
        with self._lock:
            if self._opened:
                raise RuntimeError("this Link was already opened; create a new one")
            self._opened = True
        port = open_port(
            self.url, self.baud, read_timeout=self._read_timeout, write_timeout=self._write_timeout
        )
        with self._lock:
            self._port = port
            self._core.port_opened(time.monotonic())
        self._start_threads()
        self._flush()
        with self._settled:
            self._settled.wait_for(
                lambda: self._core.state in _SETTLED or self._closing,
                self._core.handshake_timeout + GUARD_S,
            )
            core = self._core
            error, state, hello, status = core.open_error, core.state, core.hello, core.status
            other = core.other
            pinned = core.pinned
        if error is not None or state is LinkState.CLOSED:
            self.close()
            raise error or LinkClosed(f"The link to {self.url} is closed.", url=self.url)
        if state is LinkState.OTHER_UNIT and other is not None and pinned is not None:
            raise OtherUnit(
                f"Another unit answered on {self.url}: expected {pinned.describe()}, found "
                f"{other.describe()}. Confirm it on the device screen to use it.",
                url=self.url,
                expected=pinned.serial,
                found=other.serial,
            )
        assert hello is not None and status is not None
        self._dispatcher.wait_delivered(JOIN_S)  # the listener heard LINK_UP before open() returns
        return Handshake(hello, status)

    def close(self) -> None:
        """Stop the threads and close the port. If the device is delivering, ESTOP first."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            core = self._core
            active = core.state is LinkState.UP and core.device_state in ACTIVE_STATES
        if active:
            # Safety: turn the output off explicitly rather than leave it to the watchdog.
            self.estop()
        with self._lock:
            self._core.close(time.monotonic())
            self._after()
            port = self._port
        self._stop.set()
        self._kicked.set()
        self._dispatcher.stop()
        if port is not None:
            _cancel_read(port)
        me = threading.current_thread()
        for thread in self._threads:
            if thread is not me:
                thread.join(JOIN_S)
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            self._close_port(port)
        self._watch_safely(finish=True)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- views ---------------------------------------------------------------------------

    @property
    def state(self) -> LinkState:
        return self._core.state

    @property
    def epoch(self) -> int:
        """The connection epoch now (see :mod:`controller.link.states`)."""
        return self._core.epoch

    @property
    def connection(self) -> int:
        """How many times the connection changed (the epoch without its ESTOPs)."""
        return self._core.connection

    @property
    def was_opened(self) -> bool:
        """Whether :meth:`open` was called (a Link opens once; make a new one to retry)."""
        return self._opened

    @property
    def device_state(self) -> State | None:
        """The device state last learned from TELEMETRY, STATUS, events and ACKs (or None)."""
        return self._core.device_state

    @property
    def hello_reply(self) -> HelloReply | None:
        return self._core.hello

    @property
    def last_status(self) -> Status | None:
        return self._core.status

    @property
    def identity(self) -> DeviceIdentity | None:
        """The pinned unit (model, serial, boot_id)."""
        return self._core.pinned

    @property
    def other_unit(self) -> tuple[DeviceIdentity, HelloReply | None, Status | None] | None:
        """The other unit that answered after a reconnect, if one is waiting for adoption."""
        with self._lock:
            other = self._core.other
            if other is None:
                return None
            return other, self._core.other_hello, self._core.other_status

    def continuity(self) -> Continuity:
        """What the next link to this device carries over (pin, epoch, seq)."""
        with self._lock:
            return self._core.continuity

    @property
    def port_is_open(self) -> bool:
        port = self._port
        return port is not None and bool(port.is_open)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        return tuple(self._threads)

    def health(self) -> LinkHealth:
        """A snapshot of the counters; never waits for the port."""
        core = self._core
        return core.health.snapshot(core.state, epoch=core.epoch)

    def telemetry_silence_s(self) -> float | None:
        """How long the reader has listened without hearing TELEMETRY (None unless up).

        See :meth:`ConnectionCore.telemetry_silence_s`: a busy host is never a silent device.
        """
        with self._lock:
            return self._core.telemetry_silence_s()

    def t_reply(self, mtype: MsgType, body_len: int = 0) -> float:
        """``T_reply`` of a request at this link's baud rate."""
        return t_reply(mtype, frame_wire_bytes(body_len), self.baud)

    # --- requests and commands -----------------------------------------------------------

    def request(self, msg: Message, *, epoch: int | None = None) -> Message:
        """Send ``msg`` and return its reply (ACK, NAK, HELLO_REPLY or STATUS).

        ``epoch`` is the connection epoch the caller decided on; START, RESUME, SET_AMPLITUDE,
        CONFIGURE_STEP and CLEAR_FAULTS need it and are refused with
        :class:`~controller.link.errors.StaleCommand` in any other. Raises :class:`LinkLost`
        when the link is not up or is lost before the reply (:class:`OutcomeUnknown` for START,
        RESUME and SET_AMPLITUDE once sent), :class:`LinkClosed` after :meth:`close`.
        """
        waiter = _Waiter()
        with self._lock:
            ticket = self._core.submit(msg, time.monotonic(), epoch=epoch)
            self._waiters[ticket] = waiter
        self._flush()
        if not waiter.done.wait(GUARD_S):
            with self._lock:
                self._core.cancel(ticket)
                self._after()
        completion = waiter.completion
        assert completion is not None
        if completion.error is not None:
            self._dispatcher.wait_delivered(JOIN_S)  # the listener heard what ended it first
            raise completion.error
        assert completion.reply is not None
        return completion.reply

    def estop(self) -> bool:
        """Write ESTOP now, ahead of anything else; return whether its bytes went out.

        Never raises and never waits for a reply slot. The core re-sends it (same seq) until
        the device acknowledges, up to 3 times.
        """
        try:
            with self._lock:
                gen = self._core.request_estop()
            if gen is None:
                return False
            self._flush()
            with self._lock:
                return self._core.estop_written(gen)
        except Exception:  # pragma: no cover - defensive: ESTOP must never raise
            log.exception("ESTOP could not be sent")
            return False

    def checkin(self) -> None:
        """The session's supervision is alive (call at least every 100 ms while the device is
        active): without it the link writes nothing of its own in an active state."""
        with self._lock:
            resumed = self._core.checkin(time.monotonic())
        if resumed:
            self._kicked.set()

    def acknowledge_restart(self) -> None:
        """The operator acknowledged a device restart: keep the new ``boot_id``."""
        with self._lock:
            self._core.acknowledge_restart()

    def adopt_other_unit(self) -> HelloReply:
        """Pin the other unit that answered (only with no session open); returns its hello."""
        with self._lock:
            hello = self._core.other_hello
            self._core.adopt_other_unit(time.monotonic())
            self._after()
        assert hello is not None
        self._kicked.set()
        return hello

    # --- the write path ------------------------------------------------------------------

    def _flush(self) -> None:
        """Write what the core decides, one frame at a time, each decided as it is written."""
        with self._wlock:
            while True:
                with self._lock:
                    port = self._port
                    write = None if port is None else self._core.next_write(time.monotonic())
                if write is None or port is None:
                    break
                try:
                    port.write(write.data)
                except (serial.SerialException, OSError, TypeError, ValueError) as exc:
                    with self._lock:
                        self._core.write_failed(write, time.monotonic(), str(exc))
                        self._drop_port(port)
                    break
                with self._lock:
                    self._core.written(write, time.monotonic())
        with self._lock:
            self._after()

    def _after(self) -> None:
        """Hand out what the core produced (caller holds ``self._lock``)."""
        core = self._core
        for completion in core.take_completions():
            waiter = self._waiters.pop(completion.ticket, None)
            if waiter is not None:
                waiter.completion = completion
                waiter.done.set()
        deliveries = core.take_deliveries()
        if deliveries:
            self._dispatcher.put(deliveries)
        if core.state is LinkState.CLOSED and self._port is not None:
            self._drop_port(self._port)
        if core.take_kick():
            self._settled.notify_all()
            # Wake the ticker only when it has something to do sooner than it planned: a
            # needless wake-up costs the caller waiting for this reply a GIL hand-over.
            deadline = core.next_deadline()
            sooner = deadline is not None and deadline < self._ticker_until
            if sooner or core.write_wanted():
                self._kicked.set()

    def _drop_port(self, port: serial.SerialBase) -> None:
        """Forget the port (caller holds ``self._lock``); the reader closes it at once."""
        if self._port is port:
            self._port = None
            _cancel_read(port)

    # --- the reader thread ---------------------------------------------------------------

    def _start_threads(self) -> None:
        self._threads.append(self._dispatcher.thread)
        self._dispatcher.thread.start()
        for name, target in (
            ("epm-link-reader", self._reader_loop),
            ("epm-link-ticker", self._ticker_loop),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def _reader_loop(self) -> None:
        held: serial.SerialBase | None = None
        while not self._stop.is_set():
            current = self._port
            if held is not None and held is not current:
                self._close_port(held)  # failure noticed elsewhere: close at once
                held = None
            try:
                if current is None:
                    if not self._reopen():
                        return
                    continue
                held = current
                data = current.read(current.in_waiting or 1)
                if data:
                    with self._lock:
                        self._core.receive_data(data, time.monotonic())
                        self._after()
                else:
                    with self._lock:
                        self._core.listened(time.monotonic())
            except (serial.SerialException, OSError) as exc:  # unplug: the port failed
                self._failed(current, str(exc))
            except Exception as exc:  # a bug: reported as a link failure, never silent
                log.exception("link reader failed")
                self._failed(current, f"internal error in the link's reader: {exc!r}")
        if held is not None and held is not self._port:
            self._close_port(held)

    def _failed(self, port: serial.SerialBase | None, reason: str) -> None:
        with self._lock:
            if port is not None and self._port is port and not self._closing:
                self._core.port_failed(time.monotonic(), reason)
                self._drop_port(port)
                self._after()
        # DEBUG: the link_down event that follows is the service log's entry for it.
        log.debug("port %s failed: %s", self.url, reason)

    def _reopen(self) -> bool:
        """Wait for the core's next reopen time, then try once. False: stop reading."""
        with self._lock:
            state, at = self._core.state, self._core.reopen_at
        if state is LinkState.CLOSED or at is None:
            if state is LinkState.CLOSED:
                return False
            self._stop.wait(0.05)
            return True
        if self._stop.wait(max(0.0, at - time.monotonic())):
            return False
        try:
            port = open_port(
                self.url,
                self.baud,
                read_timeout=self._read_timeout,
                write_timeout=self._write_timeout,
            )
        except LinkError as exc:
            with self._lock:
                self._core.reopen_failed(time.monotonic())
            self._reopen_failures += 1
            if worth_logging(self._reopen_failures):
                service.warning(
                    "reopening %s failed (attempt %d): %s",
                    self.url,
                    self._reopen_failures,
                    exc,
                    extra={
                        "event": "reconnect_attempt",
                        "port": self.url,
                        "attempt": self._reopen_failures,
                        "reason": str(exc),
                    },
                )
            return True
        with self._lock:
            stale = self._closing or self._core.state is not LinkState.RECONNECTING
            if not stale:
                self._port = port
                self._core.port_opened(time.monotonic())
                self._after()
        if stale:
            self._close_port(port)
        else:
            attempts, self._reopen_failures = self._reopen_failures + 1, 0
            service.info(
                "port %s reopened (attempt %d); handshaking",
                self.url,
                attempts,
                extra={"event": "port_reopened", "port": self.url, "attempt": attempts},
            )
        return True

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

    # --- the ticker thread ---------------------------------------------------------------

    def _ticker_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with self._lock:
                    deadline = self._core.next_deadline()
                    now = time.monotonic()
                    wait = TICK_S if deadline is None else min(deadline - now, TICK_S)
                    self._ticker_until = now + max(0.0, wait)
                if wait > 0:
                    self._kicked.wait(wait)
                with self._lock:
                    self._ticker_until = -math.inf  # awake: any change is seen on this pass
                self._kicked.clear()
                if self._stop.is_set():
                    return
                with self._lock:
                    self._core.handle_timer(time.monotonic())
                self._flush()
            except Exception as exc:  # a bug: reported as a link failure, never silent
                log.exception("link ticker failed")
                self._failed(self._port, f"internal error in the link's ticker: {exc!r}")
                self._stop.wait(0.05)
            self._watch_safely()

    def _watch_safely(self, *, finish: bool = False) -> None:
        """Let the health watch write its entries (bursts, frame errors); a fault in it is
        logged once and stops the watch, never the link."""
        if self._watch_failed:
            return
        try:
            if finish:
                self._watch.finish(time.monotonic())
            else:
                self._watch.poll(time.monotonic())
        except Exception:
            self._watch_failed = True
            log.exception("the link's health watch failed; it stops, the link goes on")


def _cancel_read(port: serial.SerialBase) -> None:
    """Wake a reader blocked in ``read`` (POSIX ports support it; others time out soon)."""
    cancel = getattr(port, "cancel_read", None)
    if cancel is None:
        return
    try:
        cancel()
    except Exception as exc:  # the port may already be closed
        log.debug("cancel_read: %s", exc)
