"""Typed device events: the device's EVENT frames and what the link noticed, in one stream.

Listeners of the device client receive :class:`DeviceEvent` objects in the order things
happened. Device events are decoded into names and enums (old/new state, fault bits, contact,
handpiece); link events (lost, reconnected, device restarted, another unit, dseq gap, outcome
unknown, ...) carry a plain message, the connection ``epoch`` right after them and, where
relevant, fresh :class:`DeviceInfo` and :class:`Status`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

from controller.device.info import DeviceInfo, Status
from controller.link.events import LinkEvent
from controller.link.identity import DeviceIdentity
from controller.wire.constants import Contact, EventCode, Fault, Handpiece, MsgType, State
from controller.wire.messages import Event


class DeviceEventKind(StrEnum):
    # from the device (EVENT frames)
    STATE_CHANGED = "state_changed"
    STEP_COMPLETE = "step_complete"
    FAULT_RAISED = "fault_raised"
    FAULTS_CLEARED = "faults_cleared"
    CONTACT_CHANGED = "contact_changed"
    HANDPIECE_CHANGED = "handpiece_changed"
    AMPLITUDE_LIMITED = "amplitude_limited"
    UNKNOWN_EVENT = "unknown_event"
    # from the link
    LINK_UP = "link_up"
    LINK_DOWN = "link_down"
    LINK_LOST = "link_lost"
    RECONNECTED = "reconnected"
    RECONNECT_FAILED = "reconnect_failed"
    DEVICE_RESTARTED = "device_restarted"
    DSEQ_GAP = "dseq_gap"
    STATUS_REFRESHED = "status_refreshed"
    OUTCOME_UNKNOWN = "outcome_unknown"
    ESTOP_SENT = "estop_sent"
    ESTOP_CONFIRMED = "estop_confirmed"
    ESTOP_UNCONFIRMED = "estop_unconfirmed"
    UNIT_CHANGED = "unit_changed"
    UNIT_ADOPTED = "unit_adopted"
    SUPERVISION_LOST = "supervision_lost"
    CLOSED = "closed"

    @property
    def from_device(self) -> bool:
        return self in _DEVICE_KINDS


_DEVICE_KINDS = frozenset(
    {
        DeviceEventKind.STATE_CHANGED,
        DeviceEventKind.STEP_COMPLETE,
        DeviceEventKind.FAULT_RAISED,
        DeviceEventKind.FAULTS_CLEARED,
        DeviceEventKind.CONTACT_CHANGED,
        DeviceEventKind.HANDPIECE_CHANGED,
        DeviceEventKind.AMPLITUDE_LIMITED,
        DeviceEventKind.UNKNOWN_EVENT,
    }
)

_BY_CODE: dict[int, DeviceEventKind] = {
    EventCode.STATE_CHANGED: DeviceEventKind.STATE_CHANGED,
    EventCode.STEP_COMPLETE: DeviceEventKind.STEP_COMPLETE,
    EventCode.FAULT_RAISED: DeviceEventKind.FAULT_RAISED,
    EventCode.FAULTS_CLEARED: DeviceEventKind.FAULTS_CLEARED,
    EventCode.CONTACT_CHANGED: DeviceEventKind.CONTACT_CHANGED,
    EventCode.HANDPIECE_CHANGED: DeviceEventKind.HANDPIECE_CHANGED,
    EventCode.AMPLITUDE_LIMITED: DeviceEventKind.AMPLITUDE_LIMITED,
}


@dataclass(frozen=True)
class DeviceEvent:
    """One event; fields that do not apply to its kind are None.

    ``monotonic`` is when it happened (host clock). ``epoch`` is the link's connection epoch
    right after a link event (None for the device's own events): a decision taken after
    seeing this event is made on that epoch.
    """

    kind: DeviceEventKind
    message: str
    monotonic: float = field(default_factory=time.monotonic)
    epoch: int | None = None
    identity: DeviceIdentity | None = None
    other: DeviceIdentity | None = None
    dseq: int | None = None
    t_ms: int | None = None
    arg: int | None = None
    old_state: State | None = None
    new_state: State | None = None
    faults: Fault | None = None
    step_id: int | None = None
    contact: Contact | None = None
    handpiece: Handpiece | None = None
    amplitude_dv: int | None = None
    info: DeviceInfo | None = None
    status: Status | None = None
    request: MsgType | None = None
    lost: int | None = None
    old_boot_id: int | None = None
    new_boot_id: int | None = None
    connection: int | None = None


_E = TypeVar("_E", State, Contact, Handpiece)


def _enum_or_none(cls: type[_E], value: int) -> _E | None:
    try:
        return cls(value)
    except ValueError:
        return None


def _state_name(state: State | None, raw: int) -> str:
    return state.name if state is not None else f"unknown ({raw})"


def from_wire_event(event: Event) -> DeviceEvent:
    """Decode a device EVENT frame."""
    kind = _BY_CODE.get(event.event, DeviceEventKind.UNKNOWN_EVENT)
    arg = event.arg
    old = new = None
    faults = None
    contact = None
    handpiece = None
    step_id = amplitude = None
    if kind is DeviceEventKind.STATE_CHANGED:
        old_raw, new_raw = (arg >> 8) & 0xFF, arg & 0xFF
        old = _enum_or_none(State, old_raw)
        new = _enum_or_none(State, new_raw)
        message = f"Device state {_state_name(old, old_raw)} → {_state_name(new, new_raw)}."
    elif kind is DeviceEventKind.STEP_COMPLETE:
        step_id = arg
        message = f"Step {arg} complete."
    elif kind in (DeviceEventKind.FAULT_RAISED, DeviceEventKind.FAULTS_CLEARED):
        faults = Fault(arg & 0xFFFF)
        verb = "raised" if kind is DeviceEventKind.FAULT_RAISED else "cleared"
        message = f"Fault(s) {verb}: {', '.join(faults.names()) or 'none'}."
    elif kind is DeviceEventKind.CONTACT_CHANGED:
        contact = _enum_or_none(Contact, arg)
        message = f"Contact {contact.name if contact is not None else f'unknown ({arg})'}."
    elif kind is DeviceEventKind.HANDPIECE_CHANGED:
        handpiece = _enum_or_none(Handpiece, arg)
        name = handpiece.name if handpiece is not None else f"unknown ({arg})"
        message = f"Handpiece now {name}."
    elif kind is DeviceEventKind.AMPLITUDE_LIMITED:
        amplitude = arg
        message = f"Current regulation lowered the amplitude to {arg / 10:.1f} V."
    else:
        message = f"Unknown device event {event.event} (arg {arg})."
    return DeviceEvent(
        kind,
        message,
        dseq=event.dseq,
        t_ms=event.t_ms,
        arg=arg,
        old_state=old,
        new_state=new,
        faults=faults,
        step_id=step_id,
        contact=contact,
        handpiece=handpiece,
        amplitude_dv=amplitude,
    )


def from_link_event(
    event: LinkEvent, info: DeviceInfo | None, status: Status | None
) -> DeviceEvent:
    """Translate a link event; ``info``/``status`` are the typed forms of its payload."""
    return DeviceEvent(
        DeviceEventKind(event.kind.value),
        event.message,
        monotonic=event.monotonic,
        epoch=event.epoch,
        identity=event.identity,
        other=event.other,
        info=info,
        status=status,
        request=event.request,
        lost=event.lost,
        old_boot_id=event.old_boot_id,
        new_boot_id=event.new_boot_id,
        connection=event.connection,
    )


# --- the service log's entry for each event (docs/service-log.md) ------------------------------

#: The level each kind is written at; kinds not here are not written (a dseq gap and the status
#: read after it are counted by the link's health watch instead: a noisy line would be one
#: entry per lost frame).
LOG_LEVELS: dict[DeviceEventKind, int] = {
    DeviceEventKind.STATE_CHANGED: logging.INFO,
    DeviceEventKind.STEP_COMPLETE: logging.INFO,
    DeviceEventKind.FAULT_RAISED: logging.ERROR,
    DeviceEventKind.FAULTS_CLEARED: logging.INFO,
    DeviceEventKind.CONTACT_CHANGED: logging.INFO,
    DeviceEventKind.HANDPIECE_CHANGED: logging.INFO,
    DeviceEventKind.AMPLITUDE_LIMITED: logging.INFO,
    DeviceEventKind.UNKNOWN_EVENT: logging.WARNING,
    DeviceEventKind.LINK_UP: logging.INFO,
    DeviceEventKind.LINK_DOWN: logging.WARNING,
    DeviceEventKind.LINK_LOST: logging.WARNING,
    DeviceEventKind.RECONNECTED: logging.INFO,
    DeviceEventKind.RECONNECT_FAILED: logging.ERROR,
    DeviceEventKind.DEVICE_RESTARTED: logging.WARNING,
    DeviceEventKind.OUTCOME_UNKNOWN: logging.WARNING,
    DeviceEventKind.ESTOP_SENT: logging.WARNING,
    DeviceEventKind.ESTOP_CONFIRMED: logging.INFO,
    DeviceEventKind.ESTOP_UNCONFIRMED: logging.ERROR,
    DeviceEventKind.UNIT_CHANGED: logging.ERROR,
    DeviceEventKind.UNIT_ADOPTED: logging.WARNING,
    DeviceEventKind.SUPERVISION_LOST: logging.WARNING,
    DeviceEventKind.CLOSED: logging.INFO,
}


@dataclass(frozen=True)
class LogEntry:
    """What the service log gets for one event: its logger (``epm.device`` for the device's
    own events, ``epm.link`` for the link's), level, message and fields (``extra=``)."""

    logger: str
    level: int
    message: str
    fields: dict[str, object]


def _unit_fields(info: DeviceInfo | None, status: Status | None) -> dict[str, object]:
    fields: dict[str, object] = {}
    if info is not None:
        fields.update(
            model=info.model,
            serial=info.serial,
            firmware=info.firmware,
            boot_id=info.boot_id,
            baud=info.baud,
            proto_version=info.proto_version,
            simulator=info.is_simulator,
        )
    if status is not None:
        fields.update(device_state=status.state.name, faults=status.faults.names())
    return fields


def service_entry(event: DeviceEvent, url: str) -> LogEntry | None:
    """The service-log entry for ``event`` on the device at ``url`` (None: not written)."""
    kind = event.kind
    level = LOG_LEVELS.get(kind)
    if level is None:
        return None
    fields: dict[str, object] = {"event": kind.value}
    message = event.message.rstrip(".")
    if kind.from_device:
        fields.update(dseq=event.dseq, t_ms=event.t_ms)
        if kind is DeviceEventKind.FAULT_RAISED:
            names = event.faults.names() if event.faults is not None else []
            message = f"device fault: {', '.join(names) or 'unknown'}"
            fields.update(event="device_fault", faults=names)
        elif kind is DeviceEventKind.FAULTS_CLEARED:
            names = event.faults.names() if event.faults is not None else []
            message = f"device faults cleared: {', '.join(names) or 'none'}"
            fields.update(faults=names)
        elif kind is DeviceEventKind.STATE_CHANGED:
            old = event.old_state.name if event.old_state is not None else "?"
            new = event.new_state.name if event.new_state is not None else "?"
            message = f"device state {old} → {new}"
            fields.update(old_state=old, new_state=new)
        elif kind is DeviceEventKind.STEP_COMPLETE:
            fields.update(step_id=event.step_id)
        else:
            fields.update(arg=event.arg)
        return LogEntry("epm.device", level, message, fields)
    fields.update(port=url, epoch=event.epoch)
    if kind in (DeviceEventKind.LINK_UP, DeviceEventKind.RECONNECTED):
        info = event.info
        unit = (
            f"{info.model} {info.serial}, firmware {info.firmware}, boot_id {info.boot_id}"
            if info is not None
            else "unit not decoded"
        )
        verb = "connected" if kind is DeviceEventKind.LINK_UP else "reconnected"
        message = f"{verb} on {url}: {unit}"
        fields.update(event="handshake", handshake=verb, **_unit_fields(info, event.status))
    elif kind is DeviceEventKind.DEVICE_RESTARTED:
        fields.update(old_boot_id=event.old_boot_id, new_boot_id=event.new_boot_id)
    elif kind in (DeviceEventKind.UNIT_CHANGED, DeviceEventKind.UNIT_ADOPTED):
        if event.identity is not None:
            fields.update(expected_serial=event.identity.serial)
        if event.other is not None:
            fields.update(found_serial=event.other.serial)
    elif kind is DeviceEventKind.CLOSED:
        message = f"link to {url} closed"
    if event.request is not None:
        fields.update(request=event.request.name)
    if event.identity is not None and "serial" not in fields:
        fields.update(serial=event.identity.serial, boot_id=event.identity.boot_id)
    return LogEntry("epm.link", level, message, fields)


#: An event's service-log entry is made this long after the event, on the event log's own
#: thread: never on the link's dispatch thread, where the supervisor may have just sent an
#: ESTOP that the device (or an in-process simulator) is acting on. The entry keeps the
#: event's own time.
LOG_DELAY_S = 0.02
LOG_THREAD = "epm-device-log"
#: Its niceness: below every thread that keeps the device safe.
LOG_THREAD_NICE = 10
_LOGGERS = {name: logging.getLogger(name) for name in ("epm.device", "epm.link")}


def _logger_for(kind: DeviceEventKind) -> logging.Logger:
    return _LOGGERS["epm.device" if kind.from_device else "epm.link"]


class EventLog:
    """Writes the service-log entries of a device client's events (see :func:`service_entry`)
    :data:`LOG_DELAY_S` after each happened, in order, on a thread of its own started with the
    first one (``epm-device-log``). :meth:`put` costs the caller a dictionary look-up and a
    queue append; :meth:`close` writes what is waiting at once and ends the thread."""

    def __init__(self, url: str, delay_s: float = LOG_DELAY_S) -> None:
        self.url = url
        self._delay_s = delay_s
        self._queue: queue.SimpleQueue[DeviceEvent | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def put(self, event: DeviceEvent) -> None:
        level = LOG_LEVELS.get(event.kind)
        if level is None or not _logger_for(event.kind).isEnabledFor(level):
            return
        with self._lock:
            if self._closing.is_set():
                closed = True
            else:
                closed = False
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=LOG_THREAD, daemon=True)
                    self._thread.start()
                self._queue.put(event)
        if closed:  # after close (a late event): written here and now
            self._write(event)

    def close(self, timeout: float = 2.0) -> None:
        with self._lock:
            self._closing.set()
            thread = self._thread
            self._queue.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        # Less urgent than the link's, the engine's and the UI's threads (where the platform
        # lets a thread be niced; elsewhere it stays as it is).
        with contextlib.suppress(Exception):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOG_THREAD_NICE)
        while True:
            event = self._queue.get()
            if event is None:
                return
            wait = event.monotonic + self._delay_s - time.monotonic()
            if wait > 0:
                self._closing.wait(wait)
            try:
                self._write(event)
            except Exception:  # a bug here must never end the thread: say so and go on
                logging.getLogger(__name__).exception("no service-log entry for %s", event.kind)
            time.sleep(0)  # a thread waiting for the GIL (an ESTOP's caller) goes first

    def _write(self, event: DeviceEvent) -> None:
        entry = service_entry(event, self.url)
        if entry is None:
            return
        logger = logging.getLogger(entry.logger)
        if not logger.isEnabledFor(entry.level):
            return
        record = logger.makeRecord(
            logger.name, entry.level, __file__, 0, entry.message, (), None, extra=entry.fields
        )
        # When it happened, not when the entry was made.
        wall = time.time() - (time.monotonic() - event.monotonic)
        record.created = wall
        record.msecs = (wall - int(wall)) * 1000
        logger.handle(record)
