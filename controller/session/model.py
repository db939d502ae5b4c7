"""Pure data the session engine publishes and the UI (or a headless run) reads.

This is the contract between :mod:`controller.session.engine` and its users. Nothing here
does I/O or holds a lock; every value is immutable, so a snapshot can be handed to another
thread as it is. The UI decides nothing about safety: it shows ``SessionSnapshot.allowed``
(keys that do not apply are shown disabled) and sends :class:`Action` requests back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from controller.session.alarms import Alarm
from controller.wire import Telemetry

if TYPE_CHECKING:
    from controller.records.courses import CourseProgress


class Phase(StrEnum):
    """Where the session is, from the practitioner's point of view."""

    PREFLIGHT = "preflight"
    """Checks running: handshake, capabilities, handpiece, approval, checklist, contact."""
    REFUSED = "refused"
    """Preflight refused the session; ``SessionSnapshot.refusals`` says why. Nothing ran."""
    MANUAL = "manual"
    """A manual step: output off; its timer (if any) runs; the practitioner confirms done."""
    PLACE = "place"
    """A delivery step is configured: place the handpiece on the zone, then confirm to start."""
    DELIVERING = "delivering"
    """Output on (ramping up or at amplitude); zone time counts."""
    HOLD = "hold"
    """Contact lost: the device turned output off and froze the zone's time."""
    PAUSED = "paused"
    """Paused by the practitioner: output off, zone time frozen."""
    STOPPING = "stopping"
    """Output ramping down (end of zone or stop)."""
    FAULT = "fault"
    """A device fault is latched: output is off. Acknowledge, then clear or end."""
    LINK_LOST = "link_lost"
    """The link to the device is lost; reconnecting. Nothing resumes by itself."""
    RECOVERY = "recovery"
    """Reconnected (or the device restarted): its state was read; the practitioner decides."""
    FINISHED = "finished"
    """The session has ended and its outcome is recorded."""


#: Phases in which the device may be delivering or about to (emergency stop matters most).
ACTIVE_PHASES = frozenset({Phase.DELIVERING, Phase.HOLD, Phase.PAUSED, Phase.STOPPING})


class Action(StrEnum):
    """What the practitioner (or a headless run) can ask for."""

    CONFIRM = "confirm"
    """Handpiece placed: start the zone; or, on a manual step, the step is done."""
    PAUSE = "pause"
    RESUME = "resume"
    STOP = "stop"
    """Stop the session with a ramp-down (the UI asks for confirmation first)."""
    ESTOP = "estop"
    """Emergency stop: immediate, never confirmed, never queued."""
    INTENSITY_UP = "intensity_up"
    INTENSITY_DOWN = "intensity_down"
    SKIP = "skip"
    """Skip the current zone or step (needs a reason)."""
    END = "end"
    """End the session early (needs a reason)."""
    ACKNOWLEDGE = "acknowledge"
    """Acknowledge the shown alarms."""
    CLEAR_FAULTS = "clear_faults"
    """Ask the device to clear its latched faults (after they were acknowledged)."""
    CONTINUE = "continue"
    """After a fault or a recovery: configure the rest of the zone again and wait for placement."""
    RECONNECT = "reconnect"
    """Try the link again after reconnection gave up."""


class Outcome(StrEnum):
    COMPLETED = "completed"
    STOPPED = "stopped"
    ABORTED = "aborted"
    FAULTED = "faulted"
    INTERRUPTED = "interrupted"
    REFUSED = "refused"


class StepStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"
    SKIPPED = "skipped"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class StepView:
    index: int
    """1-based protocol step number."""
    kind: str
    """``manual`` or ``delivery``."""
    title: str
    zone: str | None
    planned_ms: int
    delivered_ms: int
    status: StepStatus
    amplitude_max_dv: int | None = None
    instructions: str | None = None


@dataclass(frozen=True)
class LiveView:
    """The latest telemetry, in device units (0.1 V, µA, Ω, 0.1 °C)."""

    device_state: str
    amplitude_dv: int
    setpoint_dv: int
    current_ua: int
    current_limit_ua: int
    impedance_ohm: int
    temperature_dc: int
    contact: str
    faults: tuple[str, ...]
    age_s: float
    """Seconds since this telemetry arrived (stale above 0.3 s)."""


@dataclass(frozen=True)
class LinkView:
    state: str
    port: str
    crc_errors: int
    dropped_frames: int
    retransmissions: int
    rtt_p50_ms: float | None
    rtt_p99_ms: float | None
    telemetry_received: int
    telemetry_lost: int
    last_frame_age_s: float | None


@dataclass(frozen=True)
class DeviceView:
    model: str
    serial: str
    firmware: str
    handpiece: str
    simulated: bool


@dataclass(frozen=True)
class Seen:
    """What a practitioner's choice was made on: the snapshot shown when a window opened or a
    key was pressed. The engine refuses a choice whose world has changed since (another step,
    phase, connection or device state), except stop and pause, which act on what is
    delivering now."""

    connection: int | None
    device_state: int | None
    step: int | None
    """0-based position of the step in the plan (None before the first and after the last)."""
    phase: Phase


@dataclass(frozen=True)
class SessionSnapshot:
    phase: Phase
    simulated: bool
    client_code: str
    protocol_id: str
    protocol_version: int
    protocol_title: str
    session_id: int | None
    step_index: int | None
    """1-based index into ``steps`` of the current step, or None before/after."""
    steps: tuple[StepView, ...]
    zone_planned_ms: int
    zone_delivered_ms: int
    session_planned_ms: int
    session_delivered_ms: int
    manual_remaining_ms: int | None
    setpoint_dv: int | None
    live: LiveView | None
    device: DeviceView | None
    link: LinkView | None
    alarms: tuple[Alarm, ...]
    allowed: frozenset[Action]
    message: str
    """What to do next, in plain words."""
    outcome: Outcome | None = None
    outcome_reason: str = ""
    refusals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    aftercare: tuple[str, ...] = ()
    notices: tuple[str, ...] = field(default_factory=tuple)
    """Recent refusals/clamps of practitioner actions ("60.0 V is this step's maximum")."""
    course: CourseProgress | None = None
    """The client's progress in the protocol's course (session N of M, last and next due date),
    read at preflight and again when the session ends; None before the protocol is known."""
    reconnect_failed: bool = False
    """In LINK_LOST: reconnecting was given up (``Action.RECONNECT`` tries again)."""
    unit_change: tuple[str, str] | None = None
    """(expected serial, found serial) when another unit answered after a reconnect: the
    session ended as interrupted and cannot continue on it."""
    seen: Seen | None = None
    """This snapshot as the basis of a choice: pass it with :meth:`SessionControl.request`."""

    @property
    def current_step(self) -> StepView | None:
        if self.step_index is None:
            return None
        return self.steps[self.step_index - 1]

    @property
    def finished(self) -> bool:
        return self.phase in (Phase.FINISHED, Phase.REFUSED)


@dataclass(frozen=True)
class SessionPlan:
    """What the practitioner chose on the new-session screen (or a headless run's options)."""

    load_result: Any
    """The ``protocols.LoadResult`` of the protocol file (its ``protocol`` and ``sha256``)."""
    client_code: str
    practitioner: str
    serum_lot: str
    checklist_answers: Mapping[str, bool]
    """Checklist item id -> answer ("yes" is True)."""
    zones: tuple[str, ...] | None = None
    """Delivery zones to treat (None: all of the protocol's zones). Manual steps always run."""
    client_name: str | None = None


@dataclass(frozen=True)
class SessionNotice:
    """A discrete change, pushed to listeners (the UI posts it as a Textual message)."""

    kind: str
    """``phase``, ``alarm``, ``step``, ``notice``, ``finished``."""
    snapshot: SessionSnapshot
    detail: Mapping[str, Any] = field(default_factory=dict)


class SessionControl(Protocol):
    """What the UI and the headless runner use of the engine."""

    def snapshot(self) -> SessionSnapshot: ...

    def request(self, action: Action, reason: str | None = None, seen: Seen | None = None) -> None:
        """Queue a practitioner action; refusals come back as ``notices`` in the snapshot.
        ``seen`` is the snapshot's :attr:`SessionSnapshot.seen` the choice was made on (when
        a window was opened, a key pressed); None: decided on the engine's state now."""

    def emergency_stop(self, source: str = "operator") -> bool:
        """Send ESTOP now, from the caller's thread; the engine records it and tells listeners.
        Returns whether the bytes went out."""

    def drain_telemetry(self) -> list[Telemetry]:
        """Telemetry received since the last drain (bounded; the UI drains at 15-20 Hz)."""

    def add_listener(self, callback: Callable[[SessionNotice], None]) -> None:
        """``callback`` runs on the engine's notifier thread, in order, after each change is
        recorded; it must not block (post a message): a blocked one delays later notices."""

    def set_notes(self, notes: str) -> None: ...
