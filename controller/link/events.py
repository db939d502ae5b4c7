"""What the link reports to its owner: link events, and the listener interface.

The link calls its listener from its own threads: telemetry and device events from the reader
thread (so a session engine can react within milliseconds), link events from whichever link
thread noticed them. Listener methods must return quickly and must not call back into
blocking link requests; an exception in a listener is counted and logged, never fatal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

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
    ESTOP_CONFIRMED = "estop_confirmed"
    """The device acknowledged an ESTOP."""
    ESTOP_UNCONFIRMED = "estop_unconfirmed"
    """ESTOP was sent 4 times without acknowledgement."""
    CLOSED = "closed"
    """The link was closed by its owner."""


@dataclass(frozen=True)
class LinkEvent:
    """One thing that happened to the link; ``message`` is a plain sentence for the operator."""

    kind: LinkEventKind
    message: str
    monotonic: float = field(default_factory=time.monotonic)
    request: MsgType | None = None
    hello: HelloReply | None = None
    status: Status | None = None
    lost: int | None = None
    old_boot_id: int | None = None
    new_boot_id: int | None = None


class LinkListener(Protocol):
    """Receives what the link learns; every method runs on a link thread and must not block."""

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
