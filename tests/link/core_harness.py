"""A sans-IO harness for :class:`controller.link.core.LinkCore`: a fake clock, a write log and
a scripted device, with no threads, ports or sleeps.

``CoreHarness`` writes whatever the core decides (as the shell's write path would), records
each write with the epoch at that moment, and answers requests like an EPM-1 when asked to.
Races of the threaded link become plain sequences of calls here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.link.core import LinkCore
from controller.link.identity import Continuity
from controller.link.outbox import Write
from controller.wire.codec import FrameDecoder, decode_message, encode_frame
from controller.wire.constants import MsgType, State
from controller.wire.messages import (
    Ack,
    HelloReply,
    Message,
    Status,
    Telemetry,
    message_type,
)

SERIAL = "SIM-000001"
BOOT = 0x1234


def hello_reply(serial: str = SERIAL, boot_id: int = BOOT, model: str = "EPM-1") -> HelloReply:
    return HelloReply(
        1, model, serial, 1, 2, 3, boot_id, 1200, 10000, 50, 2000, 1, 5000, 1_200_000, 3, 1000, 1
    )


def status(state: State = State.IDLE, boot_id: int = BOOT, faults: int = 0) -> Status:
    return Status(boot_id, int(state), faults, 0, 0, 0, 1, 0, 0, 0)


def telemetry(dseq: int, state: State, boot_id: int = BOOT, t_ms: int | None = None) -> Telemetry:
    t = dseq * 10 if t_ms is None else t_ms
    return Telemetry(dseq, boot_id, t, int(state), 0, 0, 0, 0, 0, 1000, 330, 1)


@dataclass(frozen=True)
class Logged:
    """One write: when, the epoch right after it was decided, and what it was."""

    t: float
    epoch: int
    write: Write
    msg: Message

    @property
    def mtype(self) -> MsgType:
        return self.write.mtype

    @property
    def seq(self) -> int:
        return self.write.seq


@dataclass
class CoreHarness:
    core: LinkCore
    now: float = 0.0
    log: list[Logged] = field(default_factory=list)
    deliveries: list[object] = field(default_factory=list)
    completions: dict[int, object] = field(default_factory=dict)

    @classmethod
    def make(cls, continuity: Continuity | None = None, **options: object) -> CoreHarness:
        options.setdefault("backoff_initial", 0.1)
        options.setdefault("backoff_max", 0.4)
        return cls(LinkCore("test://", 115200, continuity=continuity, **options))  # type: ignore[arg-type]

    # --- the shell's part -----------------------------------------------------------------

    def flush(self) -> list[Logged]:
        """Write what the core decides, as the shell's write path does."""
        out: list[Logged] = []
        while (write := self.core.next_write(self.now)) is not None:
            assert write.data[:1] == b"\0", "every host frame is written after a 0x00"
            frames = FrameDecoder().feed(write.data)
            assert len(frames) == 1 and frames[0].seq == write.seq
            msg = decode_message(frames[0])
            self.core.written(write, self.now)
            out.append(Logged(self.now, self.core.epoch, write, msg))
        self.log += out
        self._collect()
        return out

    def _collect(self) -> None:
        self.deliveries += self.core.take_deliveries()
        for done in self.core.take_completions():
            self.completions[done.ticket] = done.error if done.error else done.reply

    def advance(self, seconds: float) -> list[Logged]:
        self.now += seconds
        self.core.handle_timer(self.now)
        return self.flush()

    def receive(self, seq: int, msg: Message) -> list[Logged]:
        self.core.receive_data(encode_frame(seq, msg), self.now)
        return self.flush()

    def submit(self, msg: Message, epoch: int | None = None) -> int:
        ticket = self.core.submit(msg, self.now, epoch=epoch)
        self.flush()
        return ticket

    def checkin(self) -> None:
        self.core.checkin(self.now)
        self.flush()

    # --- the device's part ----------------------------------------------------------------

    def last(self, mtype: MsgType | None = None) -> Logged:
        found = [w for w in self.log if mtype is None or w.mtype is mtype]
        assert found, f"no {mtype} written; log: {[w.mtype.name for w in self.log]}"
        return found[-1]

    def answer(self, logged: Logged | None = None, reply: Message | None = None) -> list[Logged]:
        """Answer a written request (the last one by default) as an EPM-1 would."""
        logged = logged or self.last()
        if reply is None:
            mtype = logged.mtype
            if mtype is MsgType.HELLO:
                reply = hello_reply()
            elif mtype is MsgType.GET_STATUS:
                reply = status()
            else:
                reply = Ack(int(mtype))
        return self.receive(logged.seq, reply)

    def connect(self, hello: HelloReply | None = None, state: State = State.IDLE) -> list[Logged]:
        """Open the port and complete the handshake."""
        self.core.port_opened(self.now)
        self.flush()
        self.answer(self.last(MsgType.HELLO), hello or hello_reply())
        boot = (hello or hello_reply()).boot_id
        return self.answer(self.last(MsgType.GET_STATUS), status(state, boot_id=boot))

    def kinds(self) -> list[str]:
        return [str(getattr(d, "kind", type(d).__name__)) for d in self.deliveries]

    def written_types(self, since: int = 0) -> list[MsgType]:
        return [w.mtype for w in self.log[since:]]


def mtype_of(msg: Message) -> MsgType:
    return message_type(msg)
