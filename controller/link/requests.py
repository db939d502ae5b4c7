"""Bookkeeping for requests: sequence numbers, recent outcomes, which reply fits which request.

Kept apart from the protocol core (:mod:`controller.link.core`) so the matching rules (reply by
``seq`` and type, never by order; duplicates and late replies recognised) are plain code.
"""

from __future__ import annotations

from collections import OrderedDict
from enum import Enum

from controller.wire.constants import MsgType
from controller.wire.messages import Ack, HelloReply, Message, Nak, Status


class SeqCounter:
    """Host sequence numbers 1..255, wrapping 255 -> 1; 0 is never used. Not thread-safe.

    ``last`` continues a numbering (seq never restarts at 1 across reconnects, interface §3).
    """

    def __init__(self, last: int = 0) -> None:
        if not 0 <= last <= 255:
            raise ValueError(f"seq {last} is outside 0..255")
        self._last = last

    @property
    def last(self) -> int:
        return self._last

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
