"""The bounded action queue: PAUSE and STOP jump ahead and are never dropped, intensity presses
merge into one target, and anything else decided on a world that changed is dropped with a
notice instead of being carried out."""

from __future__ import annotations

from controller.session.actions import CAPACITY, ActionQueue, Context
from controller.session.model import Action, Phase, Seen
from controller.wire.constants import State

NOW = Context(connection=3, device_state=int(State.RUNNING), step=0)


def drain(queue: ActionQueue, now: Context = NOW) -> tuple[list[Action], list[str]]:
    out: list[Action] = []
    notices: list[str] = []
    while True:
        queued, dropped = queue.take(now)
        notices += dropped
        if queued is None:
            return out, notices
        out.append(queued.action)


def test_pause_and_stop_jump_ahead_of_other_actions() -> None:
    queue = ActionQueue()
    queue.put(Action.SKIP, "dry skin", NOW)
    queue.put(Action.ACKNOWLEDGE, None, NOW)
    queue.put(Action.STOP, None, NOW)
    queue.put(Action.PAUSE, None, NOW)
    assert drain(queue)[0] == [Action.STOP, Action.PAUSE, Action.SKIP, Action.ACKNOWLEDGE]


def test_pause_and_stop_are_never_dropped_when_the_world_changed() -> None:
    queue = ActionQueue()
    queue.put(Action.PAUSE, None, NOW)
    queue.put(Action.SKIP, "reason", NOW)
    moved = Context(connection=5, device_state=int(State.HOLD), step=1)
    actions, notices = drain(queue, moved)
    assert actions == [Action.PAUSE]
    assert len(notices) == 1 and "connection to the device changed" in notices[0]


def test_intensity_presses_merge_into_one_target() -> None:
    queue = ActionQueue()
    for _ in range(5):
        queue.put(Action.INTENSITY_UP, None, NOW)
    queue.put(Action.INTENSITY_DOWN, None, NOW)
    queued, _ = queue.take(NOW)
    assert queued is not None and queued.action is Action.INTENSITY_UP and queued.presses == 4
    assert queue.take(NOW) == (None, [])
    queue.put(Action.INTENSITY_UP, None, NOW)
    queue.put(Action.INTENSITY_DOWN, None, NOW)
    assert len(queue) == 0  # +1 -1: nothing to do


def test_actions_decided_on_another_step_or_device_state_are_dropped_with_a_notice() -> None:
    queue = ActionQueue()
    queue.put(Action.SKIP, "reason", NOW)
    queue.put(Action.INTENSITY_UP, None, NOW)
    next_step = Context(connection=3, device_state=int(State.RUNNING), step=1)
    actions, notices = drain(queue, next_step)
    assert actions == []
    assert "another step" in notices[0] and "Intensity change (+1)" in notices[1]
    queue.put(Action.CONFIRM, None, NOW)
    held = Context(connection=3, device_state=int(State.HOLD), step=0)
    assert "device's state changed" in drain(queue, held)[1][0]


def test_the_queue_is_bounded_and_says_so() -> None:
    queue = ActionQueue()
    refusals = [queue.put(Action.ACKNOWLEDGE, None, NOW) for _ in range(CAPACITY + 3)]
    assert refusals[:CAPACITY] == [None] * CAPACITY
    assert all(r is not None and "already waiting" in r for r in refusals[CAPACITY:])
    assert queue.put(Action.STOP, None, NOW) is None  # urgent ones always get in
    assert len(queue) == CAPACITY + 1 and queue.dropped == 3


def test_a_choice_holds_only_on_the_step_and_phase_it_was_decided_on() -> None:
    seen = Context.from_seen(Seen(3, int(State.RUNNING), 0, Phase.DELIVERING))
    now = Context(3, State.RUNNING, 0, Phase.DELIVERING)
    assert seen.holds(now, Action.CONFIRM)
    placed_next = Context(3, State.READY, 1, Phase.PLACE)
    assert not seen.holds(placed_next, Action.SKIP) and not seen.holds(placed_next, Action.END)
    # A running zone that went on hold or was paused is the same zone to skip or end ...
    held = Context(3, State.HOLD, 0, Phase.HOLD)
    assert seen.holds(held, Action.SKIP) and seen.holds(held, Action.END)
    # ... but not for anything else, nor once it ramps down.
    assert not seen.holds(held, Action.RESUME)
    assert not seen.holds(Context(3, State.STOPPING, 0, Phase.STOPPING), Action.SKIP)


def test_an_action_stale_when_queued_is_dropped_even_if_the_world_looks_the_same_again() -> None:
    queue = ActionQueue()
    queue.put(Action.SKIP, "reason", NOW, stale=True)
    actions, notices = drain(queue)
    assert actions == [] and len(notices) == 1 and queue.dropped == 1
    said: list[str] = []
    queue.put(Action.END, "reason", NOW, stale=True)
    queue.take(NOW, lambda queued, now: said.append(queued.action.value) or "worded")
    assert said == ["end"]
