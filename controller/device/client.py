"""DeviceClient: the typed API the session engine and the UI use to drive an EPM-1.

It owns a :class:`~controller.link.Link`, turns replies into typed results or exceptions
(:class:`DeviceRefused` for a NAK, with the field and the reason), checks every step against
the device's capabilities before sending it, and keeps what the UI reads at its own pace: the
latest telemetry and a bounded telemetry buffer. Listeners run on the link's dispatch thread
(``epm-link-dispatch``), in the order things happened, for callers that must react within
milliseconds.

Above the link it keeps what must outlive one :class:`~controller.link.Link` (a manual
reconnect builds a new one): the pinned unit, the connection epoch and the seq numbering
(:class:`~controller.link.Continuity`). The commands bound to a connection (START, RESUME,
SET_AMPLITUDE, CONFIGURE_STEP, CLEAR_FAULTS) take the ``epoch`` they were decided on.

A manual reconnect that fails never ends reconnecting: the link it replaced may have been
trying in the background, so the client goes on trying (``epm-link-retry``, with the link's
backoff and ``reconnect_timeout``) until the unit answers, the operator connects again or the
client is closed; the unit answering is reported as ``reconnected``, as the link's own
reconnect is.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable

from controller.device.errors import (
    DeviceRefused,
    LimitsExceeded,
    NotConnected,
    TelemetryRateTooHigh,
)
from controller.device.events import (
    DeviceEvent,
    DeviceEventKind,
    EventLog,
    from_link_event,
    from_wire_event,
)
from controller.device.info import DeviceInfo, Status
from controller.device.limits import (
    LimitRefusal,
    StepValues,
    check_step,
    refusal_message,
    to_wire,
)
from controller.device.telemetry import DEFAULT_CAPACITY, TelemetryBuffer
from controller.link import texts
from controller.link.errors import (
    HandshakeError,
    LinkError,
    NoHandshakeReply,
    OtherUnit,
    PortPermissionDenied,
    UnknownUrlScheme,
)
from controller.link.events import LinkEvent, LinkEventKind
from controller.link.health import LinkHealth, worth_logging
from controller.link.identity import Continuity, DeviceIdentity
from controller.link.link import Link
from controller.link.states import LinkState
from controller.link.timing import DEFAULT_BAUD, max_telemetry_rate
from controller.wire import messages as wire
from controller.wire.constants import EventCode, Handpiece, MsgType, State

log = logging.getLogger(__name__)
#: The service log's entries (docs/service-log.md): connects, reconnect attempts.
service = logging.getLogger("epm.link")

EventListener = Callable[[DeviceEvent], None]
TelemetryListener = Callable[[wire.Telemetry], None]

#: The thread that goes on reconnecting after a manual reconnect failed.
RETRY_THREAD = "epm-link-retry"


def _worth_retrying(exc: LinkError) -> bool:
    """Whether trying the port again later may succeed (the unit unplugged, off or busy), as
    opposed to another unit answering or one that refuses this host for good."""
    if isinstance(exc, OtherUnit | PortPermissionDenied | UnknownUrlScheme):
        return False
    return not isinstance(exc, HandshakeError) or isinstance(exc, NoHandshakeReply)


class _RetryListener:
    """The listener of a background reconnect attempt's link: until that link is up, the
    failures of the attempt are not news (the session already knows the link is down); its
    first handshake is a reconnect of the same unit, and is reported as one."""

    def __init__(self, client: DeviceClient) -> None:
        self._client = client
        self._up = False

    def on_telemetry(self, telemetry: wire.Telemetry) -> None:
        self._client.on_telemetry(telemetry)

    def on_event(self, event: wire.Event) -> None:
        self._client.on_event(event)

    def on_link_event(self, event: LinkEvent) -> None:
        if not self._up:
            if event.kind in (LinkEventKind.LINK_DOWN, LinkEventKind.CLOSED):
                return
            if event.kind is LinkEventKind.LINK_UP:
                self._up = True
                message = event.message
                if event.status is not None:
                    message = texts.reconnected(self._client.url, event.status)
                event = dataclasses.replace(event, kind=LinkEventKind.RECONNECTED, message=message)
        self._client.on_link_event(event)


class DeviceClient:
    """A connection to one EPM-1 at ``url`` (any pyserial URL, e.g. ``/dev/ttyUSB0``, ``sim://``).

    ``reconnect_timeout`` bounds how long the link keeps trying after an unplug or a loss
    (None: forever, for the UI; e.g. 10 s for headless runs).
    """

    def __init__(
        self,
        url: str,
        baud: int = DEFAULT_BAUD,
        host_id: str = "epm",
        *,
        handshake_timeout: float = 2.0,
        reconnect_timeout: float | None = None,
        backoff: tuple[float, float] = (0.1, 2.0),
        telemetry_capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self.url = url
        self.baud = baud
        self.host_id = host_id
        self._handshake_timeout = handshake_timeout
        self._reconnect_timeout = reconnect_timeout
        self._backoff = backoff
        self._link = self._new_link(None)
        self._info: DeviceInfo | None = None
        self._handpiece: Handpiece | None = None
        self._step: StepValues | None = None
        self._buffer = TelemetryBuffer(telemetry_capacity)
        self._listeners: tuple[EventListener, ...] = ()
        self._telemetry_listeners: tuple[TelemetryListener, ...] = ()
        self._listener_lock = threading.Lock()
        self.listener_errors = 0
        #: The service log's entries for the events (made off the dispatch thread).
        self._event_log = EventLog(url)
        # A manual reconnect that failed goes on in the background (see the module doc).
        self._connect_lock = threading.Lock()
        self._retry: threading.Thread | None = None
        self._retry_stop = threading.Event()

    def _new_link(self, continuity: Continuity | None, *, retry: bool = False) -> Link:
        return Link(
            self.url,
            self.baud,
            host_id=self.host_id,
            listener=_RetryListener(self) if retry else self,
            handshake_timeout=self._handshake_timeout,
            reconnect_timeout=self._reconnect_timeout,
            backoff_initial=self._backoff[0],
            backoff_max=self._backoff[1],
            continuity=continuity,
        )

    # --- connection ----------------------------------------------------------------------

    def connect(self) -> DeviceInfo:
        """Open the port and handshake. Raises the link's clear errors (PortBusy, ...).

        Connecting again (a manual reconnect) builds a new link that carries the pinned unit,
        the epoch and the seq numbering over: another unit answering raises
        :class:`~controller.link.OtherUnit` naming both serials and is not adopted. When a
        reconnect fails for a reason that may pass (unplugged, off, not answering), the client
        goes on trying in the background (``reconnecting`` is True meanwhile) and the unit
        answering is reported as ``reconnected``; the error is raised all the same.
        """
        self._stop_retrying()
        with self._connect_lock:
            self._retry_stop = threading.Event()  # a fresh one: close() sets it for good
            link = self._link
            if link.was_opened:
                link.close()
                link = self._link = self._new_link(link.continuity())
        service.info(
            "connecting to %s at %d baud",
            self.url,
            self.baud,
            extra={"event": "connect", "port": self.url, "baud": self.baud},
        )
        try:
            handshake = link.open()
        except LinkError as exc:
            retrying = link.identity is not None and _worth_retrying(exc)
            service.warning(
                "connecting to %s failed: %s",
                self.url,
                exc,
                extra={
                    "event": "connect_failed",
                    "port": self.url,
                    "error": type(exc).__name__,
                    "retrying": retrying,
                },
            )
            if retrying:
                self._start_retrying(link)
            raise
        return self._adopt(handshake.hello, handshake.status)

    @property
    def reconnecting(self) -> bool:
        """Whether the client goes on reconnecting after a manual reconnect failed."""
        thread = self._retry
        return thread is not None and thread.is_alive()

    def _start_retrying(self, failed: Link) -> None:
        with self._connect_lock:
            stop = self._retry_stop
            if stop.is_set() or self._link is not failed:
                return  # closed, or connected again, meanwhile
            thread = threading.Thread(
                target=self._retry_loop,
                args=(stop, time.monotonic()),
                name=RETRY_THREAD,
                daemon=True,
            )
            self._retry = thread
        thread.start()

    def _stop_retrying(self) -> None:
        with self._connect_lock:
            self._retry_stop.set()
            thread, self._retry = self._retry, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._handshake_timeout + 2.0)

    def _retry_loop(self, stop: threading.Event, started: float) -> None:
        """Try the port again with the link's backoff until the unit answers, another unit
        does, the client is closed or connected again, or ``reconnect_timeout`` passes."""
        delay, longest = self._backoff
        attempts = 0
        while not stop.wait(delay):
            limit = self._reconnect_timeout
            if limit is not None and time.monotonic() - started >= limit:
                self._gave_up(texts.gave_up(self.url, limit))
                return
            with self._connect_lock:
                if stop.is_set():
                    return
                continuity = self._link.continuity()
                self._link.close()
                link = self._link = self._new_link(continuity, retry=True)
            attempts += 1
            try:
                handshake = link.open()
            except LinkError as exc:
                if stop.is_set():
                    return
                if not _worth_retrying(exc):  # another unit: reported by the link itself
                    if not isinstance(exc, OtherUnit):
                        self._gave_up(texts.gave_up_refused(self.url, exc))
                    return
                if worth_logging(attempts):
                    service.warning(
                        "reconnect attempt %d to %s failed: %s",
                        attempts,
                        self.url,
                        exc,
                        extra={
                            "event": "reconnect_attempt",
                            "port": self.url,
                            "attempt": attempts,
                            "error": type(exc).__name__,
                        },
                    )
                delay = min(delay * 2, longest)
                continue
            self._adopt(handshake.hello, handshake.status)
            return

    def _gave_up(self, message: str) -> None:
        link = self._link
        self._publish(
            DeviceEvent(
                DeviceEventKind.RECONNECT_FAILED,
                message,
                epoch=link.epoch,
                identity=link.identity,
                connection=link.connection,
            )
        )

    def close(self) -> None:
        """Close the link (ESTOP first if the device is delivering) and stop its threads."""
        with self._connect_lock:
            self._retry_stop.set()
            thread, self._retry = self._retry, None
            link = self._link
        link.close()  # an attempt under way ends at once
        if thread is not None and thread is not threading.current_thread():
            thread.join(self._handshake_timeout + 2.0)
        self._link.close()
        self._event_log.close()  # what is waiting is written now

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _adopt(self, hello: wire.HelloReply, status: wire.Status | None) -> DeviceInfo:
        info = DeviceInfo.from_hello(hello, self.url, self.baud)
        self._info = info
        self._handpiece = info.handpiece
        if status is not None:
            self._handpiece = Status.from_wire(status).handpiece
        return info

    # --- views ---------------------------------------------------------------------------

    @property
    def info(self) -> DeviceInfo | None:
        """What the latest handshake said (handpiece as attached then)."""
        return self._info

    @property
    def link(self) -> Link:
        return self._link

    @property
    def epoch(self) -> int:
        """The link's connection epoch now. A decision's epoch comes from the events it was
        made on (``DeviceEvent.epoch``), not from here: this is the link's present."""
        return self._link.epoch

    @property
    def connection(self) -> int:
        """How many times the connection changed (the epoch without its ESTOPs)."""
        return self._link.connection

    @property
    def identity(self) -> DeviceIdentity | None:
        """The pinned unit (model, serial, boot_id) the link accepts after a reconnect."""
        return self._link.identity

    def other_unit(self) -> DeviceInfo | None:
        """The other unit that answered after a reconnect and waits for the operator."""
        found = self._link.other_unit
        if found is None or found[1] is None:
            return None
        return DeviceInfo.from_hello(found[1], self.url, self.baud)

    def adopt_other_unit(self) -> DeviceInfo:
        """Use the other unit from now on (the operator confirmed; never with a session)."""
        hello = self._link.adopt_other_unit()
        return self._adopt(hello, self._link.last_status)

    def acknowledge_restart(self) -> None:
        """The operator acknowledged a device restart: its new ``boot_id`` is kept."""
        self._link.acknowledge_restart()

    def checkin(self) -> None:
        """The session's supervision is alive (at least every 100 ms while the device is
        active); without it the link lets the device's watchdog turn output off."""
        self._link.checkin()

    @property
    def link_state(self) -> LinkState:
        return self._link.state

    @property
    def device_state(self) -> State | None:
        return self._link.device_state

    @property
    def handpiece(self) -> Handpiece | None:
        """The handpiece attached now, as last reported (HELLO, STATUS, HANDPIECE_CHANGED)."""
        return self._handpiece

    def current_info(self) -> DeviceInfo:
        """``info`` with the handpiece attached now; raises :class:`NotConnected` before."""
        info = self._info
        if info is None:
            raise NotConnected(f"Not connected to {self.url}: call connect() first.")
        if self._handpiece is not None and self._handpiece is not info.handpiece:
            info = dataclasses.replace(info, handpiece=self._handpiece)
        return info

    def health(self) -> LinkHealth:
        return self._link.health()

    def telemetry_silence_s(self) -> float | None:
        """How long the link's reader has listened without hearing TELEMETRY; None unless
        the link is up. A host too busy to read is not counted as a silent device."""
        return self._link.telemetry_silence_s()

    @property
    def latest_telemetry(self) -> wire.Telemetry | None:
        return self._buffer.latest

    def drain_telemetry(self, max: int | None = None) -> list[wire.Telemetry]:
        """Telemetry received since the last drain, oldest first (at most ``max``)."""
        return self._buffer.drain(max)

    @property
    def telemetry_dropped(self) -> int:
        """Frames dropped from the buffer because it was full (the UI fell behind)."""
        return self._buffer.dropped

    def add_listener(self, callback: EventListener) -> Callable[[], None]:
        """Call ``callback(event)`` on the link's dispatch thread for every event; returns an
        unsubscriber. It should return quickly: a slow one delays later deliveries."""
        with self._listener_lock:
            self._listeners = (*self._listeners, callback)

        def remove() -> None:
            with self._listener_lock:
                self._listeners = tuple(c for c in self._listeners if c is not callback)

        return remove

    def add_telemetry_listener(self, callback: TelemetryListener) -> Callable[[], None]:
        """Call ``callback(telemetry)`` on the link's dispatch thread for every frame."""
        with self._listener_lock:
            self._telemetry_listeners = (*self._telemetry_listeners, callback)

        def remove() -> None:
            with self._listener_lock:
                self._telemetry_listeners = tuple(
                    c for c in self._telemetry_listeners if c is not callback
                )

        return remove

    # --- requests ------------------------------------------------------------------------

    def status(self) -> Status:
        reply = self._link.request(wire.GetStatus())
        if isinstance(reply, wire.Status):
            status = Status.from_wire(reply)
            self._handpiece = status.handpiece
            return status
        raise self._refused(MsgType.GET_STATUS, reply)

    def set_telemetry(self, rate_hz: int) -> None:
        """Ask for ``rate_hz`` telemetry; refused locally above what link and device carry."""
        info = self.current_info()
        cap = max_telemetry_rate(self.baud, info.capabilities.max_telemetry_hz)
        if not 1 <= rate_hz <= cap:
            raise TelemetryRateTooHigh(
                f"Telemetry at {rate_hz} Hz is not possible here: at {self.baud} baud the link "
                f"carries at most {cap} Hz (rate × 34 bytes × 10 bits ≤ half the baud rate, and "
                f"at most the device's {info.capabilities.max_telemetry_hz} Hz). Choose 1-{cap} "
                f"Hz or a faster baud rate."
            )
        self._ack(MsgType.SET_TELEMETRY, wire.SetTelemetry(rate_hz))

    def check_step(self, values: StepValues) -> list[LimitRefusal]:
        """Reasons the connected device would refuse ``values`` (empty: it accepts them)."""
        return check_step(values, self.current_info())

    def configure_step(self, values: StepValues, *, epoch: int) -> None:
        """Check ``values`` against the device, then send CONFIGURE_STEP (epoch-bound).

        Raises :class:`LimitsExceeded` (nothing sent) listing every broken limit, or
        :class:`DeviceRefused` if the device still says no.
        """
        refusals = self.check_step(values)
        if refusals:
            raise LimitsExceeded(MsgType.CONFIGURE_STEP, refusals)
        self._ack(MsgType.CONFIGURE_STEP, to_wire(values), step=values, epoch=epoch)
        self._step = values

    def start(self, *, epoch: int) -> None:
        """START (epoch-bound); :class:`OutcomeUnknown` if the link is lost before the reply."""
        self._ack(MsgType.START, wire.Start(), epoch=epoch)

    def pause(self) -> None:
        """PAUSE: never refused as stale, it acts on whatever is delivering now."""
        self._ack(MsgType.PAUSE, wire.Pause())

    def resume(self, *, epoch: int) -> None:
        """RESUME (epoch-bound); :class:`OutcomeUnknown` if the link is lost before the reply."""
        self._ack(MsgType.RESUME, wire.Resume(), epoch=epoch)

    def stop(self) -> None:
        """STOP: never refused as stale, it acts on whatever is delivering now."""
        self._ack(MsgType.STOP, wire.Stop())

    def clear_faults(self, *, epoch: int) -> None:
        """CLEAR_FAULTS (epoch-bound: one decided before an ESTOP never clears its latch)."""
        self._ack(MsgType.CLEAR_FAULTS, wire.ClearFaults(), epoch=epoch)

    def set_amplitude(self, amplitude_dv: int, *, epoch: int) -> None:
        """SET_AMPLITUDE in 0.1 V (epoch-bound); refused locally below 0.1 V or above the
        configured step's ceiling, naming that limit."""
        step = self._step
        ceiling = step.amplitude_max_dv if step is not None else None
        refusal = None
        if amplitude_dv < 1:
            refusal = LimitRefusal(
                "amplitude_dv",
                1,
                "amplitude_min",
                amplitude_dv,
                f"amplitude {amplitude_dv / 10:.1f} V is below the device's minimum of 0.1 V",
            )
        elif ceiling is not None and amplitude_dv > ceiling:
            refusal = LimitRefusal(
                "amplitude_dv",
                1,
                "amplitude_max_dv",
                amplitude_dv,
                f"amplitude {amplitude_dv / 10:.1f} V is above the step's amplitude_max of "
                f"{ceiling / 10:.1f} V",
            )
        if refusal is not None:
            raise LimitsExceeded(MsgType.SET_AMPLITUDE, [refusal])
        self._ack(MsgType.SET_AMPLITUDE, wire.SetAmplitude(amplitude_dv), epoch=epoch)

    def estop(self) -> bool:
        """Emergency stop, ahead of everything; never raises. True if its bytes went out."""
        return self._link.estop()

    def _ack(
        self,
        cmd: MsgType,
        msg: wire.Message,
        *,
        step: StepValues | None = None,
        epoch: int | None = None,
    ) -> None:
        reply = self._link.request(msg, epoch=epoch)
        if isinstance(reply, wire.Ack):
            return
        raise self._refused(cmd, reply, step=step)

    def _refused(
        self, cmd: MsgType, reply: wire.Message, *, step: StepValues | None = None
    ) -> DeviceRefused:
        if not isinstance(reply, wire.Nak):  # pragma: no cover - the link matches reply types
            return DeviceRefused(cmd, 0, 0, f"{cmd.name}: unexpected reply {reply!r}.")
        local = check_step(step, self.current_info()) if step is not None else None
        message = refusal_message(
            cmd, reply.code, reply.detail, state=self._link.device_state, local=local
        )
        return DeviceRefused(cmd, reply.code, reply.detail, message)

    # --- LinkListener (runs on the link's dispatch thread) ------------------------------

    def on_telemetry(self, telemetry: wire.Telemetry) -> None:
        self._buffer.append(telemetry)
        for callback in self._telemetry_listeners:
            try:
                callback(telemetry)
            except Exception:
                self._listener_failed()

    def on_event(self, event: wire.Event) -> None:
        if event.event == EventCode.HANDPIECE_CHANGED:
            try:
                self._handpiece = Handpiece(event.arg)
            except ValueError:
                self._handpiece = None
        self._publish(from_wire_event(event))

    def on_link_event(self, event: LinkEvent) -> None:
        info: DeviceInfo | None = None
        status: Status | None = None
        try:
            if event.hello is not None:
                if event.kind is LinkEventKind.UNIT_CHANGED:  # another unit: never adopted here
                    info = DeviceInfo.from_hello(event.hello, self.url, self.baud)
                else:
                    info = self._adopt(event.hello, event.status)
            if event.status is not None:
                status = Status.from_wire(event.status)
        except ValueError:
            log.exception("undecodable device data in %s", event.kind)
        if event.kind in (LinkEventKind.DEVICE_RESTARTED, LinkEventKind.UNIT_CHANGED):
            self._step = None
        self._publish(from_link_event(event, info, status))

    def _publish(self, event: DeviceEvent) -> None:
        for callback in self._listeners:
            try:
                callback(event)
            except Exception:
                self._listener_failed()
        # The service log's entry, after the listeners (the supervisor acts first). Every
        # device and link event passes here; the entry is made later, on another thread.
        self._event_log.put(event)

    def _listener_failed(self) -> None:
        self.listener_errors += 1
        log.exception("device listener raised")
