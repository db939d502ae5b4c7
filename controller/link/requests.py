"""Bookkeeping for requests: sequence numbers, the outstanding request, recent outcomes.

Kept apart from the threads in :mod:`controller.link.link` so the matching rules (reply by
``seq`` and type, never by order; duplicates and late replies recognised) are plain code.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import Enum

from controller.wire.constants import MsgType
from controller.wire.messages import Ack, HelloReply, Message, Nak, Status

#: Requests whose effect must never be repeated without the operator: if the link is lost
#: before their reply, their outcome is unknown and they are not re-sent with a new seq.
OUTCOME_SENSITIVE = frozenset({MsgType.START, MsgType.RESUME, MsgType.SET_AMPLITUDE})


class SeqCounter:
    """Host sequence numbers 1..255, wrapping 255 -> 1; 0 is never used. Not thread-safe."""

    def __init__(self, last: int = 0) -> None:
        if not 0 <= last <= 255:
            raise ValueError(f"seq {last} is outside 0..255")
        self._last = last

    def next(self) -> int:
        self._last = self._last % 255 + 1
        return self._last


class Outcome(Enum):
    ANSWERED = "answered"
    ABANDONED = "abandoned"


class RecentSeqs:
    """Outcome of the last few seqs, to tell a duplicate reply from a late or a stray one."""

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._seen: OrderedDict[int, Outcome] = OrderedDict()

    def remember(self, seq: int, outcome: Outcome) -> None:
        self._seen[seq] = outcome
        self._seen.move_to_end(seq)
        while len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def forget(self, seq: int) -> None:
        """A seq is being reused: its old outcome no longer applies."""
        self._seen.pop(seq, None)

    def outcome(self, seq: int) -> Outcome | None:
        return self._seen.get(seq)


class Failure(Enum):
    """Why a request ended without a reply."""

    NO_REPLY = "no_reply"  # 1 + 3 sends, no reply within T_reply each
    PORT = "port"  # the port failed (unplug) before the reply
    LOST = "lost"  # the link was declared lost meanwhile
    CLOSED = "closed"  # the link was closed


_TYPED_REPLY = frozenset({MsgType.HELLO, MsgType.GET_STATUS})


def reply_fits(request: MsgType, reply: Message) -> bool:
    """Whether ``reply`` is a possible answer to ``request`` (same seq is checked elsewhere)."""
    if isinstance(reply, Nak):
        return reply.cmd_type == request
    if isinstance(reply, Ack):
        return reply.cmd_type == request and request not in _TYPED_REPLY
    if isinstance(reply, HelloReply):
        return request is MsgType.HELLO
    if isinstance(reply, Status):
        return request is MsgType.GET_STATUS
    return False


@dataclass(eq=False)
class PendingRequest:
    """The one outstanding request (or the last ESTOP), as the link's threads share it.

    Fields are changed only under the link's lock; ``done`` wakes the thread waiting for it.
    """

    mtype: MsgType
    seq: int
    frame: bytes
    t_reply: float
    handshake: bool = False
    message: Message | None = None
    sends: int = 0
    last_sent: float = 0.0
    deadline: float = math.inf
    reply: Message | None = None
    failure: Failure | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def retransmitted(self) -> bool:
        return self.sends > 1
