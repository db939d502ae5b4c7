"""The session engine's state, as a few owned components with one rule each for who writes.

Why: the engine is read by the UI's thread (snapshots) and fed by the link's dispatch thread
(telemetry, events) while its own thread decides. Grouping its state by who writes it makes the
locking rule a property of the component, not a comment beside each of sixty fields:

* :class:`Inputs` — filled by other threads (the UI's actions, the link's events and
  telemetry, the supervisor's output), drained by the engine's thread. Each field is a
  thread-safe container or a single reference replaced whole.
* :class:`LinkFacts` — what the engine knows of the link and the unit; written by the engine's
  thread under the engine's lock.
* :class:`StepRun` — the plan's steps and the attempt in progress; written by the engine's
  thread under the engine's lock, read by snapshots under it.
* :class:`Shown` — what the snapshot shows (phase, message, notices, alarms, outcome); written
  by the engine's thread under the engine's lock.

What may happen in each phase, and where it leads, is :mod:`controller.session.rules`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from controller.device import DeviceEvent, DeviceInfo
from controller.session.actions import ActionQueue
from controller.session.alarms import Alarm, AlarmChange, AlarmCode
from controller.session.model import Outcome, Phase
from controller.session.preflight import PlannedStep
from controller.wire import Telemetry
from protocols import DeviceStepValues

if TYPE_CHECKING:
    from controller.records.courses import CourseProgress

#: How many notices the snapshot keeps.
NOTICES_KEPT = 5
#: Telemetry frames buffered for the record between two engine passes (about 20 s at 1 kHz).
TELEMETRY_BACKLOG = 20_000


@dataclass(frozen=True)
class EstopNote:
    """An ESTOP that was sent, for the engine thread to record (when the caller did not)."""

    data: dict[str, Any]
    recorded: bool
    logged: bool = False
    """Already in the service log (written by the thread that sent it, not a caller's)."""


@dataclass(frozen=True)
class AfterIdle:
    """What to do once the device is idle after a STOP the engine sent."""

    kind: str  # "end" or "skip"
    outcome: Outcome
    reason: str


@dataclass
class Inputs:
    """Filled by other threads, drained by the engine's."""

    actions: ActionQueue = field(default_factory=ActionQueue)
    device_events: deque[DeviceEvent] = field(default_factory=deque)
    supervisor_out: deque[AlarmChange | EstopNote] = field(default_factory=deque)
    telemetry: deque[Telemetry] = field(default_factory=lambda: deque(maxlen=TELEMETRY_BACKLOG))
    telemetry_dropped: int = 0
    """Frames dropped from the record's backlog (the session's summary says how many)."""
    latest: tuple[Telemetry, float] | None = None
    """The newest telemetry and when it arrived (the engine's clock)."""
    first_telemetry: threading.Event = field(default_factory=threading.Event)
    last_state_contact: tuple[int, int] | None = None
    hold_in_t_ms: int | None = None
    """Device clock of the last STATE_CHANGED into HOLD (dispatch thread)."""
    hold_out_t_ms: int | None = None
    """Device clock of the last STATE_CHANGED out of HOLD (dispatch thread)."""
    step_elapsed_seen: int = 0
    """The device's elapsed time of the configured step, from its newest telemetry."""


@dataclass
class LinkFacts:
    """What the engine knows of the link and the unit."""

    info: DeviceInfo | None = None
    boot_id: int | None = None
    epoch: int | None = None
    """The link epoch of the events the engine has seen (None before it connected): every
    epoch-bound command carries it; the link refuses a stale one."""
    connection: int | None = None
    """The connection changes alone (not ESTOPs): what queued actions were decided on."""
    unit_change: tuple[str, str] | None = None
    """(expected serial, found serial) when another unit answered after a reconnect."""
    interrupted: bool = False
    lost_at: float | None = None
    reconnect_failed: bool = False


@dataclass
class StepRun:
    """The plan's steps and the attempt in progress."""

    steps: list[PlannedStep] = field(default_factory=list)
    pos: int | None = None
    values: DeviceStepValues | None = None
    setpoint_dv: int | None = None
    step_id: int = 0
    attempt_open: bool = False
    started: bool = False
    sensitive_pending: bool = False
    fault_cleared_shown: bool = False
    timer_done_shown: bool = False
    awaiting_contact: bool = False
    after_idle: AfterIdle | None = None
    manual_started_at: float | None = None
    hold_t_ms: int | None = None


@dataclass
class Shown:
    """What the snapshot shows."""

    phase: Phase = Phase.PREFLIGHT
    message: str = "Checking the device, the protocol and the checklist."
    refusals: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    notices: deque[str] = field(default_factory=lambda: deque(maxlen=NOTICES_KEPT))
    outcome: Outcome | None = None
    outcome_reason: str = ""
    aftercare: tuple[str, ...] = ()
    course: CourseProgress | None = None
    alarms: dict[AlarmCode, Alarm] = field(default_factory=dict)
    estop_sources: list[str] = field(default_factory=list)
    operator_estop: bool = False
    estop_in_preflight: bool = False
