"""What the link has to write and what it waits for: a part of the sans-IO core.

:class:`Outbox` keeps the requests waiting to be written, the one request outstanding, the last
ESTOP until it is acknowledged, seq numbering and the completions owed to callers. It decides
the next write from its own bookkeeping (ESTOP first; then a resend of the outstanding request,
only while it is the outstanding one and no ESTOP abandoned it; then the next queued request)
and asks the core, through a callback, whether a queued request may still go (the link's state
and epoch at that moment). It never reads a clock or touches a port.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from controller.link.errors import LinkError
from controller.link.requests import Outcome, RecentSeqs, SeqCounter, reply_fits
from controller.link.timing import t_reply
from controller.wire.codec import encode_frame
from controller.wire.constants import RETRIES, MsgType
from controller.wire.messages import Ack, Estop, Message, message_type

#: The one byte the host writes before every frame (interface §2, [1.1]).
LEADING_DELIMITER = b"\0"


class Purpose(StrEnum):
    """Why a request exists: a caller asked, or the link needs it for itself."""

    CALLER = "caller"
    HELLO = "hello"
    RESTORE_TELEMETRY = "restore_telemetry"
    HANDSHAKE_STATUS = "handshake_status"
    HEARTBEAT = "heartbeat"
    ESTOP = "estop"
    GAP_STATUS = "gap_status"
    OTHER_UNIT_STATUS = "other_unit_status"


HANDSHAKE_PURPOSES = frozenset({Purpose.HELLO, Purpose.RESTORE_TELEMETRY, Purpose.HANDSHAKE_STATUS})


@dataclass(eq=False)
class Request:
    """One request from submission to its end. ``epoch`` is the one it was decided on."""

    ticket: int
    msg: Message
    mtype: MsgType
    purpose: Purpose
    epoch: int | None = None
    seq: int = 0
    frame: bytes = b""
    t_reply: float = 0.0
    sends: int = 0
    first_sent: float = 0.0
    deadline: float = math.inf
    abandoned: bool = False
    best_effort: bool = False


@dataclass(frozen=True)
class Completion:
    """How a caller's request ended: its reply, or the error to raise."""

    ticket: int
    reply: Message | None = None
    error: LinkError | None = None


@dataclass(frozen=True)
class Write:
    """Bytes to write now: the leading 0x00 and one frame (``estop_gen`` for an ESTOP)."""

    data: bytes
    mtype: MsgType
    seq: int
    resend: bool = False
    estop_gen: int = 0
    abandoned: bool = False
    """An ESTOP: the request outstanding when it was written is abandoned, never re-sent."""


class Match(StrEnum):
    """What a reply frame turned out to be."""

    ANSWER = "answer"
    ESTOP_ACK = "estop_ack"
    DUPLICATE = "duplicate"
    LATE = "late"
    STRAY = "stray"


#: May this queued request be written now? None: yes; else the error that ends it.
Check = Callable[[Request], LinkError | None]


class Outbox:
    """The core's requests and writes; see the module docstring. Not thread-safe."""

    def __init__(self, baud: int, last_seq: int = 0) -> None:
        self.baud = baud
        self.seq = SeqCounter(last_seq)
        self._recent = RecentSeqs()
        self._tickets = itertools.count(1)
        self.queue: deque[Request] = deque()
        self.outstanding: Request | None = None
        self.estop: Request | None = None
        self._estop_wanted = 0
        self._estop_taken = 0
        self._estop_best_effort = False
        self._estop_went_out = 0
        """The newest ESTOP generation whose bytes went out (0: none). One number, not one
        entry per ESTOP: the link lives all day, and this is all ``estop_written`` needs."""
        self.completions: list[Completion] = []
        self.last_tx = -math.inf
        self.changed = False
        """Set whenever the next write or a deadline may have changed (the shell's kick)."""

    # --- requests in -----------------------------------------------------------------------

    def new(self, msg: Message, purpose: Purpose, epoch: int | None = None) -> Request:
        return Request(next(self._tickets), msg, message_type(msg), purpose, epoch)

    def add(self, req: Request, *, first: bool = False) -> None:
        """Queue ``req`` (the link's own requests go ``first``)."""
        if first:
            self.queue.appendleft(req)
        else:
            self.queue.append(req)
        self.changed = True

    def callers_waiting(self) -> int:
        return sum(r.purpose is Purpose.CALLER for r in self.queue)

    def waiting_for(self, purpose: Purpose) -> bool:
        out = self.outstanding
        return any(r.purpose is purpose for r in self.queue) or (
            out is not None and out.purpose is purpose
        )

    def cancel(self, ticket: int, error: Callable[[Request], LinkError]) -> None:
        for req in (*self.queue, self.outstanding):
            if req is not None and req.ticket == ticket:
                if req in self.queue:
                    self.queue.remove(req)
                self.complete(req, error=error(req))

    def request_estop(self, *, best_effort: bool = False) -> int:
        """Ask for an ESTOP ahead of everything; returns its generation."""
        self._estop_wanted += 1
        self._estop_best_effort = best_effort
        self.changed = True
        return self._estop_wanted

    def estop_pending(self) -> bool:
        """An ESTOP was asked for and not yet written."""
        return self._estop_wanted > self._estop_taken

    def estop_written(self, gen: int) -> bool:
        """Whether the ESTOP of generation ``gen`` (or a later one) went out."""
        return self._estop_went_out >= gen

    def discard_unwritten_estop(self) -> None:
        """An ESTOP asked for while the port went away was not written (its caller was told
        so); it is never written later, on another connection."""
        self._estop_taken = self._estop_wanted

    # --- writes out --------------------------------------------------------------------------

    def next_write(
        self,
        now: float,
        check: Check,
        heartbeat: Callable[[], Request | None],
        may_resend: Callable[[Request], bool],
    ) -> Write | None:
        """The write due now, decided now: ESTOP, a due resend (if ``may_resend``), the next
        queued request, or a heartbeat (``heartbeat`` says whether one is due)."""
        if self._estop_wanted > self._estop_taken:
            return self._write_estop(now)
        estop = self.estop
        if estop is not None and now >= estop.deadline and estop.sends <= RETRIES:
            return self._resend(estop, now)
        req = self.outstanding
        if req is not None:
            due = not req.abandoned and now >= req.deadline and req.sends <= RETRIES
            if due and may_resend(req):
                return self._resend(req, now)
            return None  # waiting for its reply: at most one request outstanding
        while self.queue:
            req = self.queue.popleft()
            error = check(req)
            if error is not None:
                self.complete(req, error=error)
                continue
            return self._first_send(req, now)
        beat = heartbeat()
        return self._first_send(beat, now) if beat is not None else None

    def written(self, write: Write, now: float) -> None:
        self.last_tx = now
        self.changed = True
        if write.estop_gen:
            self._estop_went_out = max(self._estop_went_out, write.estop_gen)

    def write_failed(self, write: Write) -> None:
        """A generation is written once: one whose write failed never went out, and only a
        later one that does can answer ``estop_written`` for it."""

    def take_queued(self, mtypes: frozenset[MsgType]) -> list[Request]:
        """Remove and return the queued requests of ``mtypes`` (never written)."""
        taken = [r for r in self.queue if r.mtype in mtypes]
        self.queue = deque(r for r in self.queue if r.mtype not in mtypes)
        return taken

    def _write_estop(self, now: float) -> Write:
        gen = self._estop_taken = self._estop_wanted
        if self.estop is not None:
            self._recent.remember(self.estop.seq, Outcome.ABANDONED)
        estop = self.new(Estop(), Purpose.ESTOP)
        estop.best_effort = self._estop_best_effort
        self._stamp(estop, now)
        if estop.best_effort:
            estop.sends = RETRIES + 1  # the device is not answering: no resends
        self.estop = estop
        req = self.outstanding
        abandon = req is not None and not req.abandoned
        if req is not None:
            req.abandoned = True  # never re-sent once an ESTOP is on the wire
        return Write(
            LEADING_DELIMITER + estop.frame,
            MsgType.ESTOP,
            estop.seq,
            estop_gen=gen,
            abandoned=abandon,
        )

    def _first_send(self, req: Request, now: float) -> Write:
        self._stamp(req, now)
        req.first_sent = now
        self.outstanding = req
        return Write(LEADING_DELIMITER + req.frame, req.mtype, req.seq)

    def _stamp(self, req: Request, now: float) -> None:
        req.seq = self.seq.next()  # never restarts: every repeat of a seq is a resend
        self._recent.forget(req.seq)
        req.frame = encode_frame(req.seq, req.msg)
        req.t_reply = t_reply(req.mtype, len(req.frame), self.baud)
        req.sends = 1
        req.deadline = now + req.t_reply
        self.changed = True

    def _resend(self, req: Request, now: float) -> Write:
        req.sends += 1
        req.deadline = now + req.t_reply
        self.changed = True
        return Write(LEADING_DELIMITER + req.frame, req.mtype, req.seq, resend=True)

    # --- replies and time ---------------------------------------------------------------------

    def match(self, seq: int, msg: Message) -> tuple[Match, Request | None]:
        """What a reply with ``seq`` is; an ANSWER ends the outstanding request."""
        req = self.outstanding
        if req is not None and seq == req.seq and reply_fits(req.mtype, msg):
            self.outstanding = None
            self.changed = True
            self._recent.remember(seq, Outcome.ANSWERED)
            return Match.ANSWER, req
        estop = self.estop
        if (
            estop is not None
            and seq == estop.seq
            and isinstance(msg, Ack)
            and msg.cmd_type == MsgType.ESTOP
        ):
            self.estop = None
            self._recent.remember(seq, Outcome.ANSWERED)
            return Match.ESTOP_ACK, estop
        outcome = self._recent.outcome(seq)
        if outcome is Outcome.ANSWERED:
            return Match.DUPLICATE, None
        return (Match.LATE if outcome is Outcome.ABANDONED else Match.STRAY), None

    def expired(self, now: float) -> Request | None:
        """The outstanding request, if its time ran out (after the last resend, or after an
        ESTOP abandoned it); it is no longer outstanding."""
        req = self.outstanding
        if req is None or now < req.deadline or not (req.abandoned or req.sends > RETRIES):
            return None
        self.outstanding = None
        self.changed = True
        self._recent.remember(req.seq, Outcome.ABANDONED)
        return req

    def estop_expired(self, now: float) -> Request | None:
        """The last ESTOP, if it went unacknowledged after all its sends."""
        estop = self.estop
        if estop is None or now < estop.deadline or estop.sends <= RETRIES:
            return None
        self.estop = None
        self._recent.remember(estop.seq, Outcome.ABANDONED)
        return estop

    def deadlines(self) -> list[float]:
        return [r.deadline for r in (self.outstanding, self.estop) if r is not None]

    # --- endings ----------------------------------------------------------------------------

    def complete(
        self, req: Request, *, reply: Message | None = None, error: LinkError | None = None
    ) -> None:
        if req.purpose is Purpose.CALLER:
            self.completions.append(Completion(req.ticket, reply, error))

    def fail_all(self, error: Callable[[Request, bool], LinkError]) -> Request | None:
        """End the outstanding request (``sent`` True) and every queued one (never sent), and
        forget the ESTOP being tracked; returns the request that was outstanding."""
        req, self.outstanding = self.outstanding, None
        if req is not None:
            self._recent.remember(req.seq, Outcome.ABANDONED)
            self.complete(req, error=error(req, True))
        for queued in self.queue:
            self.complete(queued, error=error(queued, False))
        self.queue.clear()
        self.estop = None
        self.changed = True
        return req

    def take_completions(self) -> list[Completion]:
        out, self.completions = self.completions, []
        return out
