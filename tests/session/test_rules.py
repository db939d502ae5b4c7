"""The practitioner's rules: every phase × action is answered by one table, either with where
the action leads or with a named refusal; ``allowed`` is exactly what ``decide`` allows."""

from __future__ import annotations

import itertools

import pytest

from controller.session.model import Action, Phase
from controller.session.rules import (
    TABLE,
    Allow,
    Next,
    Refusal,
    Situation,
    allowed,
    decide,
    refusal_text,
)
from controller.wire.constants import State

#: Where each allowed action leads in a plain situation (no stop under way, contact placed,
#: no alarm, the device in the state the phase implies). None: refused, with that refusal.
EXPECTED: dict[Phase, dict[Action, Phase | Next | Refusal]] = {
    Phase.MANUAL: {
        Action.CONFIRM: Next.NEXT_STEP,
        Action.SKIP: Next.NEXT_STEP,
        Action.END: Phase.FINISHED,
        Action.STOP: Phase.FINISHED,
    },
    Phase.PLACE: {
        Action.CONFIRM: Phase.DELIVERING,
        Action.SKIP: Next.NEXT_STEP,
        Action.END: Phase.FINISHED,
        Action.STOP: Phase.FINISHED,
        Action.INTENSITY_UP: Next.SAME,
        Action.INTENSITY_DOWN: Next.SAME,
    },
    Phase.DELIVERING: {
        Action.PAUSE: Phase.PAUSED,
        Action.STOP: Phase.STOPPING,
        Action.SKIP: Phase.STOPPING,
        Action.END: Phase.STOPPING,
        Action.INTENSITY_UP: Next.SAME,
        Action.INTENSITY_DOWN: Next.SAME,
    },
    Phase.HOLD: {
        Action.PAUSE: Phase.PAUSED,
        Action.STOP: Phase.STOPPING,
        Action.SKIP: Phase.STOPPING,
        Action.END: Phase.STOPPING,
        Action.INTENSITY_UP: Next.SAME,
        Action.INTENSITY_DOWN: Next.SAME,
    },
    Phase.PAUSED: {
        Action.RESUME: Phase.DELIVERING,
        Action.STOP: Phase.STOPPING,
        Action.SKIP: Phase.STOPPING,
        Action.END: Phase.STOPPING,
        Action.INTENSITY_UP: Next.SAME,
        Action.INTENSITY_DOWN: Next.SAME,
    },
    Phase.FAULT: {
        Action.END: Phase.FINISHED,
        Action.CLEAR_FAULTS: Next.SAME,
        Action.CONTINUE: Refusal.CLEAR_FAULTS_FIRST,
        Action.SKIP: Refusal.CLEAR_FAULTS_FIRST,
    },
    Phase.RECOVERY: {
        Action.END: Phase.FINISHED,
        Action.CONTINUE: Next.THIS_STEP,
        Action.SKIP: Next.NEXT_STEP,
        Action.CLEAR_FAULTS: Refusal.DEVICE_NOT_FAULTED,
    },
    Phase.LINK_LOST: {Action.END: Phase.FINISHED, Action.RECONNECT: Refusal.RECONNECTING_BY_ITSELF},
    Phase.STOPPING: {},
    Phase.PREFLIGHT: {},
    Phase.REFUSED: {},
    Phase.FINISHED: {},
}

DEVICE_STATE = {
    Phase.MANUAL: State.IDLE,
    Phase.PLACE: State.READY,
    Phase.DELIVERING: State.RUNNING,
    Phase.HOLD: State.HOLD,
    Phase.PAUSED: State.PAUSED,
    Phase.STOPPING: State.STOPPING,
    Phase.FAULT: State.FAULT,
    Phase.RECOVERY: State.IDLE,
}


def plain(phase: Phase, **changes: object) -> Situation:
    changes.setdefault("device_state", DEVICE_STATE.get(phase))
    return Situation(phase=phase, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("phase", "action"), list(itertools.product(Phase, Action)), ids=lambda v: v.value
)
def test_every_phase_and_action_leads_somewhere_or_is_refused_by_name(
    phase: Phase, action: Action
) -> None:
    situation = plain(phase)
    decision = decide(action, situation)
    if action is Action.ESTOP:
        assert decision.allowed and decision.to is Next.SAME  # always, never confirmed
        return
    if action is Action.ACKNOWLEDGE:
        assert decision.refusal is Refusal.NO_ALARM
        assert decide(action, plain(phase, unacknowledged_alarm=True)).allowed
        return
    expected = EXPECTED[phase].get(action)
    if expected is None:
        over = phase in (Phase.PREFLIGHT, Phase.REFUSED, Phase.FINISHED)
        assert decision.refusal is (Refusal.SESSION_NOT_RUNNING if over else Refusal.NOT_IN_PHASE)
    elif isinstance(expected, Refusal):
        assert not decision.allowed and decision.refusal is expected
    else:
        assert decision.allowed and decision.to == expected
    assert (action in allowed(situation)) is decision.allowed
    if not decision.allowed:
        text = refusal_text(decision, situation)
        assert text.startswith(action.value.replace("_", " ").capitalize())
        assert "Possible now:" in text


def test_the_table_has_a_row_for_every_phase_and_no_estop_or_acknowledge_rows() -> None:
    assert set(TABLE) == set(Phase)
    for row in TABLE.values():
        assert Action.ESTOP not in row and Action.ACKNOWLEDGE not in row
        assert all(isinstance(rule[0], Allow) for rule in row.values())


def test_a_stop_under_way_leaves_only_estop_and_acknowledge() -> None:
    for phase in (Phase.MANUAL, Phase.PLACE, Phase.DELIVERING, Phase.HOLD, Phase.PAUSED):
        situation = plain(phase, stop_under_way=True, unacknowledged_alarm=True)
        assert allowed(situation) == {Action.ESTOP, Action.ACKNOWLEDGE}
        assert decide(Action.STOP, situation).refusal is Refusal.STOP_UNDER_WAY


def test_conditions_beyond_the_phase() -> None:
    placed = plain(Phase.PLACE, waiting_for_contact=True)
    assert decide(Action.CONFIRM, placed).refusal is Refusal.WAITING_FOR_CONTACT
    fault = plain(Phase.FAULT, fault_alarm_unacknowledged=True)
    assert decide(Action.CLEAR_FAULTS, fault).refusal is Refusal.ACKNOWLEDGE_FIRST
    cleared = plain(Phase.FAULT, device_state=State.IDLE)
    assert decide(Action.CONTINUE, cleared).to is Next.THIS_STEP
    assert decide(Action.RECONNECT, plain(Phase.LINK_LOST, reconnect_failed=True)).allowed
    top = plain(Phase.DELIVERING, can_raise=False)
    assert decide(Action.INTENSITY_UP, top).refusal is Refusal.AT_LIMIT
    assert decide(Action.INTENSITY_DOWN, top).allowed


def test_a_timed_manual_step_is_confirmed_only_once_its_time_has_run() -> None:
    running = plain(Phase.MANUAL, manual_min_ms=300_000, manual_left_ms=252_000)
    decision = decide(Action.CONFIRM, running)
    assert decision.refusal is Refusal.MANUAL_TIME_LEFT
    assert Action.CONFIRM not in allowed(running) and Action.SKIP in allowed(running)
    assert refusal_text(decision, running).startswith(
        "Wait 4 min 12 s more: this step takes at least 5 min 0 s. Possible now: "
    )
    almost = plain(Phase.MANUAL, manual_min_ms=30_000, manual_left_ms=1)
    assert refusal_text(decide(Action.CONFIRM, almost), almost).startswith(
        "Wait 1 s more: this step takes at least 30 s."
    )
    run = plain(Phase.MANUAL, manual_min_ms=300_000, manual_left_ms=0)
    assert decide(Action.CONFIRM, run).allowed
