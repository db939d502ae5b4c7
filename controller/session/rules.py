"""What a practitioner may do in each phase, and where it leads: one table.

Every pair of :class:`~controller.session.model.Phase` and
:class:`~controller.session.model.Action` is answered here, either with where the action leads
(:class:`Allow`) or with a named :class:`Refusal` and a sentence saying why and what to do
instead. The engine's ``allowed`` set (what the UI offers) and its handling of an action both
come from :func:`decide`, so the two can never disagree; ``tests/session/test_rules.py`` walks
every phase × action.

Some answers depend on more than the phase (the device's state, a stop under way, alarms):
that is the :class:`Situation`, built by the engine under its lock from the state it owns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from controller.records.words import duration_words
from controller.session.model import Action, Phase
from controller.wire.constants import State


class Refusal(StrEnum):
    """Why an action is not possible now; stable names (they are recorded in notices)."""

    SESSION_NOT_RUNNING = "session_not_running"
    NOT_IN_PHASE = "not_in_phase"
    STOP_UNDER_WAY = "stop_under_way"
    WAITING_FOR_CONTACT = "waiting_for_contact"
    NO_ALARM = "no_alarm"
    ACKNOWLEDGE_FIRST = "acknowledge_first"
    DEVICE_NOT_FAULTED = "device_not_faulted"
    CLEAR_FAULTS_FIRST = "clear_faults_first"
    RECONNECTING_BY_ITSELF = "reconnecting_by_itself"
    AT_LIMIT = "at_limit"
    MANUAL_TIME_LEFT = "manual_time_left"
    """A timed manual step is confirmed done only once its time has run."""


class Next(StrEnum):
    """Where an allowed action leads when that depends on the plan, not only the phase."""

    SAME = "same"
    """The phase stays (an acknowledgement, an intensity change, clearing faults)."""
    NEXT_STEP = "next_step"
    """The next step's phase: MANUAL, PLACE, or FINISHED after the last step."""
    THIS_STEP = "this_step"
    """The current step again: PLACE for a zone, MANUAL for a manual step."""


@dataclass(frozen=True)
class Allow:
    to: Phase | Next


@dataclass(frozen=True)
class Situation:
    """What the rules look at besides the phase."""

    phase: Phase
    device_state: State | None = None
    stop_under_way: bool = False
    waiting_for_contact: bool = False
    unacknowledged_alarm: bool = False
    fault_alarm_unacknowledged: bool = False
    has_step: bool = True
    reconnect_failed: bool = False
    can_raise: bool = True
    can_lower: bool = True
    manual_min_ms: int = 0
    """A timed manual step: the least time it takes (0: untimed, or not a manual step)."""
    manual_left_ms: int = 0
    """A timed manual step: how much of ``manual_min_ms`` is still to run."""


Guard = Callable[[Situation], Refusal | None]


def _not_stopping(s: Situation) -> Refusal | None:
    return Refusal.STOP_UNDER_WAY if s.stop_under_way else None


def _contact_placed(s: Situation) -> Refusal | None:
    if s.stop_under_way:
        return Refusal.STOP_UNDER_WAY
    return Refusal.WAITING_FOR_CONTACT if s.waiting_for_contact else None


def _manual_time_run(s: Situation) -> Refusal | None:
    if s.stop_under_way:
        return Refusal.STOP_UNDER_WAY
    return Refusal.MANUAL_TIME_LEFT if s.manual_left_ms > 0 else None


def _can_raise(s: Situation) -> Refusal | None:
    if s.stop_under_way:
        return Refusal.STOP_UNDER_WAY
    return None if s.can_raise else Refusal.AT_LIMIT


def _can_lower(s: Situation) -> Refusal | None:
    if s.stop_under_way:
        return Refusal.STOP_UNDER_WAY
    return None if s.can_lower else Refusal.AT_LIMIT


def _faulted_and_acknowledged(s: Situation) -> Refusal | None:
    if s.device_state is not State.FAULT:
        return Refusal.DEVICE_NOT_FAULTED
    return Refusal.ACKNOWLEDGE_FIRST if s.fault_alarm_unacknowledged else None


def _device_clear(s: Situation) -> Refusal | None:
    if s.device_state in (State.IDLE, State.READY) and s.has_step:
        return None
    return Refusal.CLEAR_FAULTS_FIRST


def _reconnect_given_up(s: Situation) -> Refusal | None:
    return None if s.reconnect_failed else Refusal.RECONNECTING_BY_ITSELF


def _always(s: Situation) -> Refusal | None:
    return None


_RULE = tuple[Allow, Guard]
_STOPPING_ZONE: dict[Action, _RULE] = {
    Action.STOP: (Allow(Phase.STOPPING), _not_stopping),
    Action.SKIP: (Allow(Phase.STOPPING), _not_stopping),
    Action.END: (Allow(Phase.STOPPING), _not_stopping),
    Action.INTENSITY_UP: (Allow(Next.SAME), _can_raise),
    Action.INTENSITY_DOWN: (Allow(Next.SAME), _can_lower),
}
_AFTER_TROUBLE: dict[Action, _RULE] = {
    Action.END: (Allow(Phase.FINISHED), _always),
    Action.CLEAR_FAULTS: (Allow(Next.SAME), _faulted_and_acknowledged),
    Action.CONTINUE: (Allow(Next.THIS_STEP), _device_clear),
    Action.SKIP: (Allow(Next.NEXT_STEP), _device_clear),
}

#: phase -> action -> (where it leads, the condition it needs). ESTOP and ACKNOWLEDGE apply
#: in every phase and are answered by :func:`decide` itself; every pair missing here is
#: refused as NOT_IN_PHASE (or SESSION_NOT_RUNNING before and after the session).
TABLE: Mapping[Phase, Mapping[Action, _RULE]] = {
    Phase.PREFLIGHT: {},
    Phase.REFUSED: {},
    Phase.FINISHED: {},
    Phase.MANUAL: {
        Action.CONFIRM: (Allow(Next.NEXT_STEP), _manual_time_run),
        Action.SKIP: (Allow(Next.NEXT_STEP), _not_stopping),
        Action.END: (Allow(Phase.FINISHED), _not_stopping),
        Action.STOP: (Allow(Phase.FINISHED), _not_stopping),
    },
    Phase.PLACE: {
        Action.CONFIRM: (Allow(Phase.DELIVERING), _contact_placed),
        Action.SKIP: (Allow(Next.NEXT_STEP), _not_stopping),
        Action.END: (Allow(Phase.FINISHED), _not_stopping),
        Action.STOP: (Allow(Phase.FINISHED), _not_stopping),
        Action.INTENSITY_UP: (Allow(Next.SAME), _can_raise),
        Action.INTENSITY_DOWN: (Allow(Next.SAME), _can_lower),
    },
    Phase.DELIVERING: {**_STOPPING_ZONE, Action.PAUSE: (Allow(Phase.PAUSED), _not_stopping)},
    Phase.HOLD: {**_STOPPING_ZONE, Action.PAUSE: (Allow(Phase.PAUSED), _not_stopping)},
    Phase.PAUSED: {**_STOPPING_ZONE, Action.RESUME: (Allow(Phase.DELIVERING), _not_stopping)},
    Phase.STOPPING: {},
    Phase.FAULT: _AFTER_TROUBLE,
    Phase.RECOVERY: _AFTER_TROUBLE,
    Phase.LINK_LOST: {
        Action.END: (Allow(Phase.FINISHED), _always),
        Action.RECONNECT: (Allow(Phase.RECOVERY), _reconnect_given_up),
    },
}

_OVER = frozenset({Phase.PREFLIGHT, Phase.REFUSED, Phase.FINISHED})

_REASONS: Mapping[Refusal, str] = {
    Refusal.SESSION_NOT_RUNNING: "the session is not running",
    Refusal.NOT_IN_PHASE: "it does not apply while the session is {phase}",
    Refusal.STOP_UNDER_WAY: "a stop is already under way",
    Refusal.WAITING_FOR_CONTACT: "the zone starts by itself as soon as skin contact is good",
    Refusal.NO_ALARM: "there is no alarm to acknowledge",
    Refusal.ACKNOWLEDGE_FIRST: "acknowledge the alarm first",
    Refusal.DEVICE_NOT_FAULTED: "the device reports no fault to clear",
    Refusal.CLEAR_FAULTS_FIRST: "clear the device's faults first",
    Refusal.RECONNECTING_BY_ITSELF: "the link is reconnecting by itself",
    Refusal.AT_LIMIT: "the intensity is at its limit",
    Refusal.MANUAL_TIME_LEFT: "this step's time has not run yet",
}


@dataclass(frozen=True)
class Decision:
    action: Action
    allowed: bool
    to: Phase | Next | None = None
    refusal: Refusal | None = None


def decide(action: Action, situation: Situation) -> Decision:
    """Whether ``action`` may be carried out in ``situation``, and where it leads."""
    phase = situation.phase
    if action is Action.ESTOP:
        return Decision(action, True, Next.SAME)
    if action is Action.ACKNOWLEDGE:
        if situation.unacknowledged_alarm:
            return Decision(action, True, Next.SAME)
        return Decision(action, False, refusal=Refusal.NO_ALARM)
    rule = TABLE[phase].get(action)
    if rule is None:
        why = Refusal.SESSION_NOT_RUNNING if phase in _OVER else Refusal.NOT_IN_PHASE
        return Decision(action, False, refusal=why)
    target, guard = rule
    refusal = guard(situation)
    if refusal is not None:
        return Decision(action, False, refusal=refusal)
    return Decision(action, True, target.to)


def allowed(situation: Situation) -> frozenset[Action]:
    """Every action :func:`decide` allows in ``situation`` (what the UI offers)."""
    return frozenset(a for a in Action if decide(a, situation).allowed)


def refusal_text(decision: Decision, situation: Situation) -> str:
    """A sentence for a refused decision: what, why, and what is possible instead."""
    assert decision.refusal is not None
    can = ", ".join(sorted(a.value.replace("_", " ") for a in allowed(situation))) or "nothing"
    if decision.refusal is Refusal.MANUAL_TIME_LEFT:
        return (
            f"Wait {duration_text(situation.manual_left_ms)} more: this step takes at least "
            f"{duration_text(situation.manual_min_ms)}. Possible now: {can}."
        )
    why = _REASONS[decision.refusal].format(phase=situation.phase.value.replace("_", " "))
    name = decision.action.value.replace("_", " ").capitalize()
    return f"{name} is not possible now: {why}. Possible now: {can}."


def duration_text(ms: int) -> str:
    """A step time in words, in whole seconds rounded up: ``5 min 0 s``, ``42 s``."""
    return duration_words(ms, round_up=True)
