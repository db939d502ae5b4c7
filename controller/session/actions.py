"""The practitioner's actions on their way to the engine: a bounded queue that cannot pile up.

Actions come from the UI's (or a headless runner's) thread and are carried out on the engine's
thread, usually within milliseconds. When the engine is busy (a burst of record writes), keys
pressed meanwhile must not be carried out later on a world that has changed:

* every action carries the :class:`Context` it was decided on (the connection, the device's
  state, the step and the phase): the snapshot the practitioner saw when a window opened or a
  key was pressed (:class:`~controller.session.model.Seen`), or else the engine's state when
  it was queued. An action whose context no longer holds when it is queued or when it is
  taken is dropped with a notice instead of carried out (the engine words the notice: what
  happened to the step it was decided on);
* PAUSE and STOP jump ahead of everything else and are never dropped: they act on whatever is
  delivering now;
* intensity presses merge into one target (net presses up or down), never a backlog of
  SET_AMPLITUDE commands;
* the queue is bounded: a press beyond :data:`CAPACITY` is refused with a notice.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from controller.session.model import Action, Phase, Seen

#: Actions (other than PAUSE, STOP and the merged intensity) that may wait at once.
CAPACITY = 8
URGENT = frozenset({Action.PAUSE, Action.STOP})
INTENSITY = frozenset({Action.INTENSITY_UP, Action.INTENSITY_DOWN})
#: Phases of one zone that is running (output on, on hold, or paused): SKIP and END mean the
#: same in each (ramp the zone down, then skip it or end), so moving between them does not
#: make a SKIP or an END decided in one of them stale. A refused END would leave the zone
#: delivering while the practitioner believes it ends.
ZONE_RUNNING = frozenset({Phase.DELIVERING, Phase.HOLD, Phase.PAUSED})
SAME_IN_A_RUNNING_ZONE = frozenset({Action.SKIP, Action.END})


@dataclass(frozen=True)
class Context:
    """What an action was decided on."""

    connection: int | None
    """How many times the link's connection had changed (a loss, a reconnect, a restart)."""
    device_state: int | None
    step: int | None
    """0-based position of the step in the session's plan."""
    phase: Phase | None = None
    """The session's phase (None: not part of the decision, e.g. intensity presses)."""

    @classmethod
    def from_seen(cls, seen: Seen) -> Context:
        return cls(seen.connection, seen.device_state, seen.step, seen.phase)

    def holds(self, now: Context, action: Action | None = None) -> bool:
        """Whether a decision taken on this context still applies in ``now``: the same
        connection and step and, when the phase is part of it, the same phase and device
        state (a SKIP or END decided on a running zone holds while that zone runs, held or
        paused)."""
        if self.connection != now.connection or self.step != now.step:
            return False
        if self.phase is None:
            return self.device_state == now.device_state
        if (
            action in SAME_IN_A_RUNNING_ZONE
            and self.phase in ZONE_RUNNING
            and now.phase in ZONE_RUNNING
        ):
            return True
        return self.phase is now.phase and self.device_state == now.device_state

    def describe_change(self, now: Context) -> str:
        if self.connection != now.connection:
            return "the connection to the device changed"
        if self.step != now.step:
            return "the session moved to another step"
        if self.phase is not None and self.phase is not now.phase:
            return "the session's phase changed"
        return "the device's state changed"


#: Words a stale action's notice: ``describe(queued, now)``.
Describe = Callable[["Queued", Context], str]


@dataclass(frozen=True)
class Queued:
    action: Action
    reason: str | None
    context: Context
    presses: int = 0
    """Intensity only: net presses, positive up, negative down."""
    stale: bool = False
    """Its context no longer held when it was queued: it is dropped with a notice when taken
    (never carried out, even if the world looks the same again by then)."""


class ActionQueue:
    """Thread-safe; ``put`` from any thread, ``take`` from the engine's."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._lock = threading.Lock()
        self._urgent: deque[Queued] = deque()
        self._other: deque[Queued] = deque()
        self._capacity = capacity
        self.dropped = 0

    def put(
        self, action: Action, reason: str | None, context: Context, *, stale: bool = False
    ) -> str | None:
        """Queue ``action``; returns a notice when it is refused (the queue is full).

        ``stale``: its context no longer held when it was asked for; it is queued only to be
        dropped, with its notice, by the engine's thread (which records notices)."""
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
            self._other.append(Queued(action, reason, context, stale=stale))
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

    def take(
        self, now: Context, describe: Describe | None = None
    ) -> tuple[Queued | None, list[str]]:
        """The next action to carry out on ``now``, and notices for those dropped on the way
        (worded by ``describe`` when given, else by :func:`stale_notice`)."""
        notices: list[str] = []
        with self._lock:
            if self._urgent:
                return self._urgent.popleft(), notices
            while self._other:
                queued = self._other.popleft()
                if not queued.stale and queued.context.holds(now, queued.action):
                    return queued, notices
                self.dropped += 1
                notices.append((describe or stale_notice)(queued, now))
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


def stale_notice(queued: Queued, now: Context) -> str:
    """The plain notice for an action dropped because its context changed."""
    name = queued.action.value.replace("_", " ")
    if queued.presses:
        name = f"intensity change ({queued.presses:+d})"
    return (
        f"{name.capitalize()} was not carried out: {queued.context.describe_change(now)} "
        "before it could be; press again if it still applies."
    )
