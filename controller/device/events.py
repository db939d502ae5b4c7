"""Typed device events: the device's EVENT frames and what the link noticed, in one stream.

Listeners of the device client receive :class:`DeviceEvent` objects in the order things
happened. Device events are decoded into names and enums (old/new state, fault bits, contact,
handpiece); link events (lost, reconnected, device restarted, another unit, dseq gap, outcome
unknown, ...) carry a plain message, the connection ``epoch`` right after them and, where
relevant, fresh :class:`DeviceInfo` and :class:`Status`.
"""

from __future__ import annotations

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
