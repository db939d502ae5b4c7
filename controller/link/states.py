"""The link's states and every transition between them, in one table.

The sans-IO core (:mod:`controller.link.core`) changes state only through :func:`next_state`,
so what can happen to a link is read here and nowhere else; a pair that is not in the table is
a bug and raises :class:`TransitionError` (as h11 does for its connection states).

Every transition except ``CLOSE`` starts a new *connection epoch* (see ``LinkCore.epoch``): a
loss, a port failure, a reconnect, a re-handshake, a device restart, another unit answering,
the operator adopting it. A command decided in one epoch is never written in another.
"""

from __future__ import annotations

from enum import StrEnum


class LinkState(StrEnum):
    """Where the link stands.

    ``connecting``: port open, handshake (HELLO, GET_STATUS) in progress. ``up``: handshake
    done, requests flow. ``lost``: the device stopped answering (port still open); ESTOP was
    sent and the link is re-handshaking. ``reconnecting``: the port failed (unplug) and was
    closed; the link is trying to reopen it. ``other_unit``: after a reconnect a different unit
    (another serial) answered; it gets nothing but GET_STATUS (and ESTOP if it is active) until
    the operator adopts it. ``closed``: closed by the program or given up.
    """

    CONNECTING = "connecting"
    UP = "up"
    LOST = "lost"
    RECONNECTING = "reconnecting"
    OTHER_UNIT = "other_unit"
    CLOSED = "closed"


class Trigger(StrEnum):
    """What moves the link from one state to another."""

    PORT_OPENED = "port_opened"
    """The port was (re)opened; a handshake begins."""
    HANDSHAKE_DONE = "handshake_done"
    """HELLO, (SET_TELEMETRY,) GET_STATUS answered by the pinned unit."""
    OTHER_UNIT = "other_unit"
    """HELLO_REPLY named another model or serial than the pinned unit."""
    NO_REPLY = "no_reply"
    """A request got no reply after all resends (or an ESTOP went unacknowledged)."""
    RESTARTED = "restarted"
    """The device restarted (boot_id changed, or its clock went backwards)."""
    PORT_FAILED = "port_failed"
    """Reading or writing the port failed (unplug); the port is closed at once."""
    ADOPTED = "adopted"
    """The operator confirmed the other unit as the one to use."""
    GIVE_UP = "give_up"
    """The handshake was refused, or reconnecting took longer than allowed."""
    CLOSE = "close"
    """The owner closed the link."""


S = LinkState
T = Trigger

#: Both handshaking states (first connect or after a restart; after a loss) move alike.
_HANDSHAKING_ROW: dict[Trigger, LinkState] = {
    T.HANDSHAKE_DONE: S.UP,
    T.OTHER_UNIT: S.OTHER_UNIT,
    T.RESTARTED: S.CONNECTING,
    T.PORT_FAILED: S.RECONNECTING,
    T.GIVE_UP: S.CLOSED,
    T.CLOSE: S.CLOSED,
}

#: state -> trigger -> next state. Nothing else moves a link.
TRANSITIONS: dict[LinkState, dict[Trigger, LinkState]] = {
    S.CLOSED: {T.PORT_OPENED: S.CONNECTING, T.CLOSE: S.CLOSED},
    S.CONNECTING: _HANDSHAKING_ROW,
    S.UP: {
        T.NO_REPLY: S.LOST,
        T.RESTARTED: S.CONNECTING,
        T.PORT_FAILED: S.RECONNECTING,
        T.CLOSE: S.CLOSED,
    },
    S.LOST: _HANDSHAKING_ROW,
    S.RECONNECTING: {T.PORT_OPENED: S.CONNECTING, T.GIVE_UP: S.CLOSED, T.CLOSE: S.CLOSED},
    S.OTHER_UNIT: {
        T.ADOPTED: S.UP,
        T.NO_REPLY: S.LOST,
        T.PORT_FAILED: S.RECONNECTING,
        T.CLOSE: S.CLOSED,
    },
}

#: States in which a handshake is under way (the link's own HELLO, SET_TELEMETRY, GET_STATUS).
HANDSHAKING = frozenset({S.CONNECTING, S.LOST})
#: States in which the port is closed.
PORTLESS = frozenset({S.RECONNECTING, S.CLOSED})


class TransitionError(RuntimeError):
    """A trigger that the table does not allow in the present state: a bug in the core."""


def next_state(state: LinkState, trigger: Trigger) -> LinkState:
    """The state ``trigger`` leads to from ``state``; raises :class:`TransitionError`."""
    try:
        return TRANSITIONS[state][trigger]
    except KeyError:
        raise TransitionError(f"link: {trigger.value} is not possible in {state.value}") from None
