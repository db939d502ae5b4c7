"""What the link reports to its owner: link events, and the listener interface.

The link calls its listener on one thread of its own, ``epm-link-dispatch``, in the order
things happened: telemetry, device events and link events alike. The reader thread never runs
listener code, so a slow listener delays only later deliveries (telemetry beyond a bounded
backlog is dropped and counted), never the port. Listener methods should return quickly; they
may make link requests (the reply does not pass through the dispatcher). An exception in a
listener is counted and logged, never fatal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from controller.link.identity import DeviceIdentity
from controller.wire.constants import MsgType
from controller.wire.messages import Event, HelloReply, Status, Telemetry


class LinkEventKind(StrEnum):
    LINK_UP = "link_up"
    """First handshake done."""
    LINK_DOWN = "link_down"
    """The port failed (unplug); it was closed at once and the link is reopening it."""
    LINK_LOST = "link_lost"
    """The device stopped answering; ESTOP was sent; the link is re-handshaking."""
    RECONNECTED = "reconnected"
    """Handshake done again after a loss, an unplug or a device restart (``hello``/``status``)."""
    RECONNECT_FAILED = "reconnect_failed"
    """The link gave up reconnecting and is closed."""
    DEVICE_RESTARTED = "device_restarted"
    """``boot_id`` changed or the device clock went backwards; what was known is void."""
    DSEQ_GAP = "dseq_gap"
    """Device frames were lost (``lost``); a GET_STATUS follows."""
    STATUS_REFRESHED = "status_refreshed"
    """A STATUS read after a dseq gap (``status``)."""
    OUTCOME_UNKNOWN = "outcome_unknown"
    """``request`` (START/RESUME/SET_AMPLITUDE) may or may not have taken effect."""
    ESTOP_SENT = "estop_sent"
    """An ESTOP was written; it starts a new epoch (nothing decided before it is carried out
    after it)."""
    ESTOP_CONFIRMED = "estop_confirmed"
    """The device acknowledged an ESTOP."""
    ESTOP_UNCONFIRMED = "estop_unconfirmed"
    """ESTOP was sent 4 times without acknowledgement."""
    UNIT_CHANGED = "unit_changed"
    """After a reconnect another unit answered (``identity`` pinned, ``other`` found)."""
    UNIT_ADOPTED = "unit_adopted"
    """The operator adopted the other unit; it is the pinned one now."""
    SUPERVISION_LOST = "supervision_lost"
    """The device is active but the session supervision stopped checking in: the link writes
    nothing of its own accord, so the device's watchdog turns output off."""
    CLOSED = "closed"
    """The link was closed by its owner."""


@dataclass(frozen=True)
class LinkEvent:
    """One thing that happened to the link; ``message`` is a plain sentence for the operator.

    ``monotonic`` is when it happened (host monotonic clock), not when someone read it;
    ``epoch`` is the link's epoch right after it (every connection change and every ESTOP
    written starts a new one: commands decided before are never written after), and
    ``connection`` counts the connection changes alone.
    """

    kind: LinkEventKind
    message: str
    monotonic: float = field(default_factory=time.monotonic)
    epoch: int = 0
    identity: DeviceIdentity | None = None
    other: DeviceIdentity | None = None
    request: MsgType | None = None
    hello: HelloReply | None = None
    status: Status | None = None
    lost: int | None = None
    old_boot_id: int | None = None
    new_boot_id: int | None = None
    connection: int = 0


class LinkListener(Protocol):
    """Receives what the link learns; every method runs on the link's dispatch thread."""

    def on_telemetry(self, telemetry: Telemetry) -> None: ...

    def on_event(self, event: Event) -> None: ...

    def on_link_event(self, event: LinkEvent) -> None: ...


class NullListener:
    """A listener that ignores everything (the default)."""

    def on_telemetry(self, telemetry: Telemetry) -> None:
        return None

    def on_event(self, event: Event) -> None:
        return None

    def on_link_event(self, event: LinkEvent) -> None:
        return None
