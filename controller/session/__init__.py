"""Session logic: the safety supervisor, its alarms and the controller's limits (pure logic).

The supervisor and alarm manager take every time as an argument and do no I/O, so the session
engine can drive them from any thread and tests can drive them with explicit clocks.
"""

from controller.session.alarms import (
    ALARM_SPECS,
    Alarm,
    AlarmChange,
    AlarmCode,
    AlarmManager,
    AlarmSpec,
    ChangeKind,
    Priority,
    PriorityStyle,
)

# The session engine (imports the device client and the records; the modules above do not).
from controller.session.engine import SessionEngine
from controller.session.headless import HeadlessOptions, run_headless
from controller.session.limits import (
    Direction,
    IntensityDecision,
    LimitRefusal,
    clamp_intensity,
    intensity_range,
    intensity_step,
)
from controller.session.model import (
    Action,
    Outcome,
    Phase,
    SessionControl,
    SessionNotice,
    SessionPlan,
    SessionSnapshot,
)
from controller.session.supervisor import (
    ClearAlarm,
    RaiseAlarm,
    SafetySupervisor,
    SendEstop,
    SupervisorAction,
    UpdateAlarm,
)

__all__ = [
    "ALARM_SPECS",
    "Action",
    "Alarm",
    "AlarmChange",
    "AlarmCode",
    "AlarmManager",
    "AlarmSpec",
    "ChangeKind",
    "ClearAlarm",
    "Direction",
    "HeadlessOptions",
    "IntensityDecision",
    "LimitRefusal",
    "Outcome",
    "Phase",
    "Priority",
    "PriorityStyle",
    "RaiseAlarm",
    "SafetySupervisor",
    "SendEstop",
    "SessionControl",
    "SessionEngine",
    "SessionNotice",
    "SessionPlan",
    "SessionSnapshot",
    "SupervisorAction",
    "UpdateAlarm",
    "clamp_intensity",
    "intensity_range",
    "intensity_step",
    "run_headless",
]
