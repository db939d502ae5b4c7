"""Alarm codes, IEC 60601-1-8 priorities and the latching alarm manager.

Why: a practitioner must never miss that something went wrong, even if it went away again by
itself. Following the People's Ventilator Project, a *latching* alarm stays shown until its
condition is gone AND someone acknowledged it, in either order; acknowledging while the
condition is still present only marks it acknowledged (silenced). Non-latching alarms clear as
soon as their condition goes.

The manager is pure: no threads, no clock of its own. Every call takes ``now`` (monotonic
seconds) and returns the :class:`AlarmChange` list it caused, so the session engine can write
each change to the record before the UI is told. Which code has which priority and whether it
latches is a risk decision, kept in one table (:data:`ALARM_SPECS`) and documented in
``docs/alarms.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum


@dataclass(frozen=True)
class PriorityStyle:
    """How the UI shows one priority (IEC 60601-1-8 visual alarm signals)."""

    rank: int
    """0 is the most urgent; sorting by rank puts high-priority alarms first."""
    colour: str
    flash_hz: float
    """Flash frequency the UI uses; 0 means steady."""
    flash_range_hz: tuple[float, float]
    """The range IEC 60601-1-8 allows; ``flash_hz`` lies inside it."""
    response: str
    """The operator response the priority asks for."""


class Priority(Enum):
    """IEC 60601-1-8 alarm priority, with its colour and flash frequency as data."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"

    @property
    def style(self) -> PriorityStyle:
        return _PRIORITY_STYLES[self]

    @property
    def rank(self) -> int:
        return self.style.rank

    @property
    def colour(self) -> str:
        return self.style.colour

    @property
    def flash_hz(self) -> float:
        return self.style.flash_hz


_PRIORITY_STYLES: dict[Priority, PriorityStyle] = {
    Priority.HIGH: PriorityStyle(0, "red", 2.0, (1.4, 2.8), "immediate"),
    Priority.MEDIUM: PriorityStyle(1, "yellow", 0.6, (0.4, 0.8), "prompt"),
    # IEC allows cyan or yellow for low priority; cyan keeps it apart from medium.
    Priority.LOW: PriorityStyle(2, "cyan", 0.0, (0.0, 0.0), "awareness"),
}


class AlarmCode(StrEnum):
    """Stable alarm codes; they are written to session records, so never rename one."""

    DEVICE_FAULT = "device_fault"
    LINK_LOST = "link_lost"
    DEVICE_RESTARTED = "device_restarted"
    OUTCOME_UNKNOWN = "outcome_unknown"
    OUTPUT_MISMATCH = "output_mismatch"
    CONTACT_LOST = "contact_lost"
    TELEMETRY_STALE = "telemetry_stale"
    LINK_DEGRADED = "link_degraded"
    CONTACT_MARGINAL = "contact_marginal"
    AMPLITUDE_LIMITED = "amplitude_limited"
    UNIT_CHANGED = "unit_changed"


@dataclass(frozen=True)
class AlarmSpec:
    """The fixed properties of one alarm code."""

    priority: Priority
    latching: bool
    title: str
    message: str
    """Default message: what happened and what to do (callers may give a more specific one)."""


ALARM_SPECS: Mapping[AlarmCode, AlarmSpec] = {
    AlarmCode.DEVICE_FAULT: AlarmSpec(
        Priority.HIGH,
        True,
        "Device fault",
        "The device reported a fault and turned output off. Check the client, remove the "
        "cause of the fault, then clear faults on the device to continue.",
    ),
    AlarmCode.LINK_LOST: AlarmSpec(
        Priority.HIGH,
        True,
        "Connection lost during delivery",
        "The connection to the device was lost during delivery; the device turns output off "
        "by itself within 0.5 s. Check the client, then the cable. The controller reconnects "
        "and reads the device's state before anything continues.",
    ),
    AlarmCode.DEVICE_RESTARTED: AlarmSpec(
        Priority.HIGH,
        True,
        "Device restarted",
        "The device restarted (power loss or reset): delivery stopped and its settings are "
        "gone. Check the client, review the step shown and start it again only if it is "
        "appropriate.",
    ),
    AlarmCode.OUTCOME_UNKNOWN: AlarmSpec(
        Priority.HIGH,
        True,
        "Command outcome unknown",
        "A command was sent but the connection failed before the device confirmed it, so it "
        "is not known whether it took effect. Nothing is re-sent automatically: check the "
        "device state shown after reconnection and decide how to continue.",
    ),
    AlarmCode.UNIT_CHANGED: AlarmSpec(
        Priority.HIGH,
        True,
        "Another unit answered",
        "After the connection came back, another treatment unit answered than the one this "
        "session started on. The session cannot continue on it and was ended; nothing but a "
        "status read was sent to it. Check which unit is connected to this computer.",
    ),
    AlarmCode.OUTPUT_MISMATCH: AlarmSpec(
        Priority.HIGH,
        True,
        "Output does not match the settings",
        "The device's output does not match what was set, so the controller sent an "
        "emergency stop. Lift the handpiece off the client. If output does not stop, switch "
        "the device off at its power switch. Do not continue; have the device serviced.",
    ),
    AlarmCode.CONTACT_LOST: AlarmSpec(
        Priority.MEDIUM,
        False,
        "No skin contact",
        "The handpiece has had no skin contact for more than 10 s; delivery is on hold and "
        "step time is frozen. Put the handpiece back on the skin (add serum if it is dry) "
        "or pause the step.",
    ),
    AlarmCode.TELEMETRY_STALE: AlarmSpec(
        Priority.MEDIUM,
        True,
        "Measurements stopped",
        "No measurements arrived from the device for more than 0.3 s, so its output could "
        "not be watched. Watch the client and check the cable; if it happens again, stop "
        "the session.",
    ),
    AlarmCode.LINK_DEGRADED: AlarmSpec(
        Priority.MEDIUM,
        False,
        "Connection unreliable",
        "The connection to the device is unreliable (repeated retransmissions or lost "
        "measurements). Delivery continues. Check the cable and its connectors and keep it "
        "away from other equipment.",
    ),
    AlarmCode.CONTACT_MARGINAL: AlarmSpec(
        Priority.LOW,
        False,
        "Poor skin contact",
        "Skin contact is poor (impedance 10–20 kΩ). Delivery continues. Press the handpiece "
        "evenly onto the skin or add serum.",
    ),
    AlarmCode.AMPLITUDE_LIMITED: AlarmSpec(
        Priority.LOW,
        False,
        "Intensity lowered by the device",
        "The device lowered the intensity to keep the current within the step's limit. "
        "Delivery continues at the lower intensity; raise it only if the client is "
        "comfortable.",
    ),
}


@dataclass(frozen=True)
class Alarm:
    """One occurrence of an alarm, as shown now. Replaced (never mutated) on every change."""

    code: AlarmCode
    priority: Priority
    message: str
    raised_at: float
    detail: Mapping[str, object] = field(default_factory=dict)
    """JSON-friendly facts behind the alarm (fault names, measured values, thresholds)."""
    latching: bool = True
    occurrence: int = 0
    """Number of this occurrence within the manager (1, 2, ...): ties raise/ack/clear records."""
    condition_active: bool = True
    acknowledged: bool = False
    acknowledged_at: float | None = None
    condition_gone_at: float | None = None

    @property
    def title(self) -> str:
        return ALARM_SPECS[self.code].title


class ChangeKind(StrEnum):
    """What happened to an alarm."""

    RAISED = "raised"
    """A new occurrence is shown."""
    UPDATED = "updated"
    """Same occurrence: its message or detail changed, or its condition came back."""
    RESOLVED = "resolved"
    """The condition is gone, but the latching alarm stays shown until acknowledged."""
    ACKNOWLEDGED = "acknowledged"
    """Someone acknowledged it; it stays shown while the condition is present."""
    CLEARED = "cleared"
    """No longer shown."""


@dataclass(frozen=True)
class AlarmChange:
    """One change, with the alarm as it is after the change and the reason in plain words."""

    kind: ChangeKind
    alarm: Alarm
    reason: str
    at: float

    @property
    def code(self) -> AlarmCode:
        return self.alarm.code


class AlarmManager:
    """The alarms shown now, with latching and acknowledgement."""

    def __init__(self) -> None:
        self._shown: dict[AlarmCode, Alarm] = {}
        self._occurrences = 0

    def set_condition(
        self,
        code: AlarmCode,
        active: bool,
        now: float,
        message: str | None = None,
        detail: Mapping[str, object] | None = None,
        *,
        renew: bool = False,
    ) -> list[AlarmChange]:
        """Report whether ``code``'s condition is present now.

        ``message``/``detail`` replace the shown ones when given (an ``updated`` change when
        they differ). ``renew=True`` says the condition carries new information (a new fault
        bit): an acknowledgement is withdrawn so the alarm is announced again.
        """
        code = AlarmCode(code)
        shown = self._shown.get(code)
        if active:
            if shown is None:
                return [self._raise(code, now, message, detail)]
            return self._refresh(shown, now, message, detail, renew)
        if shown is None or not shown.condition_active:
            return []
        if not shown.latching:
            return [self._clear(shown, now, "condition gone")]
        if shown.acknowledged:
            return [self._clear(shown, now, "condition gone; it was already acknowledged")]
        resolved = dataclasses.replace(shown, condition_active=False, condition_gone_at=now)
        self._shown[code] = resolved
        return [
            AlarmChange(
                ChangeKind.RESOLVED, resolved, "condition gone; shown until acknowledged", now
            )
        ]

    def acknowledge(self, code: AlarmCode | None, now: float) -> list[AlarmChange]:
        """Acknowledge one alarm, or every shown alarm when ``code`` is None."""
        if code is None:
            targets = self.active()
        else:
            shown = self._shown.get(AlarmCode(code))
            targets = [] if shown is None else [shown]
        changes: list[AlarmChange] = []
        for alarm in targets:
            if alarm.acknowledged:
                continue
            if not alarm.condition_active:
                acked = dataclasses.replace(alarm, acknowledged=True, acknowledged_at=now)
                changes.append(self._clear(acked, now, "acknowledged; condition already gone"))
                continue
            acked = dataclasses.replace(alarm, acknowledged=True, acknowledged_at=now)
            self._shown[alarm.code] = acked
            changes.append(
                AlarmChange(
                    ChangeKind.ACKNOWLEDGED,
                    acked,
                    "acknowledged; shown while the condition is present",
                    now,
                )
            )
        return changes

    def active(self) -> list[Alarm]:
        """Every shown alarm, most urgent priority first, then oldest first."""
        return sorted(
            self._shown.values(), key=lambda a: (a.priority.rank, a.raised_at, a.occurrence)
        )

    def highest(self) -> Alarm | None:
        """The alarm the UI should show most prominently, or None."""
        shown = self.active()
        return shown[0] if shown else None

    def get(self, code: AlarmCode) -> Alarm | None:
        """The shown occurrence of ``code``, or None."""
        return self._shown.get(AlarmCode(code))

    def is_shown(self, code: AlarmCode) -> bool:
        return AlarmCode(code) in self._shown

    def is_latched(self, code: AlarmCode) -> bool:
        """True when ``code`` is shown only by its latch: condition gone, not acknowledged."""
        shown = self._shown.get(AlarmCode(code))
        return shown is not None and not shown.condition_active

    # --- internals ------------------------------------------------------------------------

    def _raise(
        self,
        code: AlarmCode,
        now: float,
        message: str | None,
        detail: Mapping[str, object] | None,
    ) -> AlarmChange:
        spec = ALARM_SPECS[code]
        self._occurrences += 1
        alarm = Alarm(
            code=code,
            priority=spec.priority,
            message=message or spec.message,
            raised_at=now,
            detail=dict(detail or {}),
            latching=spec.latching,
            occurrence=self._occurrences,
        )
        self._shown[code] = alarm
        return AlarmChange(ChangeKind.RAISED, alarm, "condition present", now)

    def _refresh(
        self,
        shown: Alarm,
        now: float,
        message: str | None,
        detail: Mapping[str, object] | None,
        renew: bool,
    ) -> list[AlarmChange]:
        updates: dict[str, object] = {}
        reasons: list[str] = []
        if not shown.condition_active:
            updates.update(condition_active=True, condition_gone_at=None)
            reasons.append("condition present again")
        if message is not None and message != shown.message:
            updates["message"] = message
            reasons.append("new message")
        if detail is not None and dict(detail) != dict(shown.detail):
            updates["detail"] = dict(detail)
            reasons.append("new detail")
        if renew and shown.acknowledged:
            updates.update(acknowledged=False, acknowledged_at=None)
            reasons.append("new information withdraws the acknowledgement")
        if not updates:
            return []
        updated = dataclasses.replace(shown, **updates)  # type: ignore[arg-type]
        self._shown[shown.code] = updated
        return [AlarmChange(ChangeKind.UPDATED, updated, "; ".join(reasons), now)]

    def _clear(self, alarm: Alarm, now: float, reason: str) -> AlarmChange:
        del self._shown[alarm.code]
        cleared = dataclasses.replace(
            alarm,
            condition_active=False,
            condition_gone_at=now if alarm.condition_gone_at is None else alarm.condition_gone_at,
        )
        return AlarmChange(ChangeKind.CLEARED, cleared, reason, now)
