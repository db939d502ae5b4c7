"""The practitioner's actions on their way to the engine: a bounded queue that cannot pile up.

Actions come from the UI's (or a headless runner's) thread and are carried out on the engine's
thread, usually within milliseconds. When the engine is busy (a burst of record writes), keys
pressed meanwhile must not be carried out later on a world that has changed:

* every action carries the :class:`Context` it was decided on (the connection, the device's
  state, the step); when it is taken and the context has changed, it is dropped with
  a notice instead of carried out;
* PAUSE and STOP jump ahead of everything else and are never dropped: they act on whatever is
  delivering now;
* intensity presses merge into one target (net presses up or down), never a backlog of
  SET_AMPLITUDE commands;
* the queue is bounded: a press beyond :data:`CAPACITY` is refused with a notice.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, replace

from controller.session.model import Action

#: Actions (other than PAUSE, STOP and the merged intensity) that may wait at once.
CAPACITY = 8
URGENT = frozenset({Action.PAUSE, Action.STOP})
INTENSITY = frozenset({Action.INTENSITY_UP, Action.INTENSITY_DOWN})


@dataclass(frozen=True)
class Context:
    """What an action was decided on."""

    connection: int | None
    """How many times the link's connection had changed (a loss, a reconnect, a restart)."""
    device_state: int | None
    step: int | None

    def describe_change(self, now: Context) -> str:
        if self.connection != now.connection:
            return "the connection to the device changed"
        if self.step != now.step:
            return "the session moved to another step"
        return "the device's state changed"


@dataclass(frozen=True)
class Queued:
    action: Action
    reason: str | None
    context: Context
    presses: int = 0
    """Intensity only: net presses, positive up, negative down."""


class ActionQueue:
    """Thread-safe; ``put`` from any thread, ``take`` from the engine's."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._lock = threading.Lock()
        self._urgent: deque[Queued] = deque()
        self._other: deque[Queued] = deque()
        self._capacity = capacity
        self.dropped = 0

    def put(self, action: Action, reason: str | None, context: Context) -> str | None:
        """Queue ``action``; returns a notice when it is refused (the queue is full)."""
        with self._lock:
            if action in URGENT:
                if not any(q.action is action for q in self._urgent):
                    self._urgent.append(Queued(action, reason, context))
                return None
            if action in INTENSITY:
                step = 1 if action is Action.INTENSITY_UP else -1
                return self._merge_intensity(step, context)
            if len(self._other) >= self._capacity:
                self.dropped += 1
                return (
                    f"{action.value.replace('_', ' ').capitalize()} ignored: {self._capacity} "
                    "actions are already waiting for the device; wait for them to be done."
                )
            self._other.append(Queued(action, reason, context))
            return None

    def _merge_intensity(self, step: int, context: Context) -> str | None:
        for index, queued in enumerate(self._other):
            if queued.action in INTENSITY and queued.context == context:
                presses = queued.presses + step
                if presses == 0:
                    del self._other[index]
                else:
                    action = Action.INTENSITY_UP if presses > 0 else Action.INTENSITY_DOWN
                    self._other[index] = replace(queued, action=action, presses=presses)
                return None
        if len(self._other) >= self._capacity:
            self.dropped += 1
            return "Intensity change ignored: too many actions are waiting for the device."
        action = Action.INTENSITY_UP if step > 0 else Action.INTENSITY_DOWN
        self._other.append(Queued(action, None, context, presses=step))
        return None

    def take(self, now: Context) -> tuple[Queued | None, list[str]]:
        """The next action to carry out on ``now``, and notices for those dropped on the way."""
        notices: list[str] = []
        with self._lock:
            if self._urgent:
                return self._urgent.popleft(), notices
            while self._other:
                queued = self._other.popleft()
                if queued.context == now:
                    return queued, notices
                self.dropped += 1
                name = queued.action.value.replace("_", " ")
                if queued.presses:
                    name = f"intensity change ({queued.presses:+d})"
                notices.append(
                    f"{name.capitalize()} was not carried out: "
                    f"{queued.context.describe_change(now)} before it could be; press again "
                    "if it still applies."
                )
            return None, notices

    def clear(self) -> list[Queued]:
        with self._lock:
            out = [*self._urgent, *self._other]
            self._urgent.clear()
            self._other.clear()
            return out

    def __len__(self) -> int:
        with self._lock:
            return len(self._urgent) + len(self._other)
