"""Properties of the sans-IO link core under any interleaving (hypothesis).

Replies that arrive, are lost, duplicated or delayed past their resends; ESTOPs; unplugs and
reopened ports; restarts and another unit answering; the supervision checking in or not; time
passing in steps of any size. Whatever happens, on the wire:

* every host frame starts with a 0x00;
* no request is written again once a later request, or an ESTOP, went out after it (only the
  ESTOP itself is re-sent);
* a request is first written only when no other is outstanding;
* no epoch-bound command is written in another epoch than the one it was decided on.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.link.errors import LinkError
from controller.link.outbox import Write
from controller.link.states import LinkState
from controller.wire import messages as m
from controller.wire.codec import FrameDecoder, decode_message, encode_frame
from controller.wire.constants import EPOCH_BOUND, MsgType, State
from tests.link.core_harness import BOOT, CoreHarness, hello_reply, status, telemetry

REQUESTS: list[m.Message] = [
    m.GetStatus(),
    m.Heartbeat(),
    m.Pause(),
    m.Stop(),
    m.Start(),
    m.Resume(),
    m.SetAmplitude(300),
    m.ClearFaults(),
    m.ConfigureStep(7, 1, 0, 400, 500, 500, 100, 0, 0, 0, 0, 5000, 600_000, 1),
    m.SetTelemetry(100),
]

submit = st.tuples(st.just("submit"), st.integers(0, len(REQUESTS) - 1), st.integers(0, 3))
answer = st.tuples(st.just("reply"), st.just("answer"), st.just(0))
op = st.one_of(
    submit,
    submit,
    answer,
    answer,
    st.tuples(st.just("advance"), st.floats(0.0, 0.4), st.just(0)),
    st.tuples(st.just("reply"), st.sampled_from(["answer", "drop", "dup", "hold"]), st.just(0)),
    st.tuples(st.just("release"), st.just(0), st.just(0)),
    st.tuples(st.just("estop"), st.just(0), st.just(0)),
    st.tuples(st.just("unplug"), st.just(0), st.just(0)),
    st.tuples(st.just("replug"), st.sampled_from(["same", "restarted", "other"]), st.just(0)),
    st.tuples(st.just("telemetry"), st.sampled_from(list(State)), st.booleans()),
    st.tuples(st.just("checkin"), st.just(0), st.just(0)),
)


@dataclass
class Wire:
    """Every write, checked as it is written, plus what the invariants need."""

    h: CoreHarness
    writes: list[tuple[Write, int]] = field(default_factory=list)
    held: list[tuple[int, m.Message]] = field(default_factory=list)
    dseq: int = 0
    boot: int = BOOT
    serial: str = "SIM-000001"

    def flush(self) -> None:
        core = self.h.core
        while True:
            outstanding_before = core.outstanding
            write = core.next_write(self.h.now)
            if write is None:
                break
            assert write.data[:1] == b"\0"
            if write.mtype is not MsgType.ESTOP and not write.resend:
                assert outstanding_before is None, "a second request went out while one waited"
                req = core.outstanding
                assert req is not None and req.seq == write.seq
                if req.mtype in EPOCH_BOUND:
                    assert req.epoch == core.epoch, "an epoch-bound command crossed an epoch"
            core.written(write, self.h.now)
            self.writes.append((write, core.epoch))
        self.h.deliveries += core.take_deliveries()
        core.take_completions()

    def reply_for(self, write: Write) -> m.Message:
        frame = FrameDecoder().feed(write.data)[0]
        msg = decode_message(frame)
        if isinstance(msg, m.Hello):
            return hello_reply(serial=self.serial, boot_id=self.boot)
        if isinstance(msg, m.GetStatus):
            return status(State.IDLE, boot_id=self.boot)
        return m.Ack(int(write.mtype))

    def receive(self, seq: int, msg: m.Message) -> None:
        self.h.core.receive_data(encode_frame(seq, msg), self.h.now)
        self.flush()

    def run(self, kind: str, a: object, b: object) -> None:
        h, core = self.h, self.h.core
        if kind == "submit":
            assert isinstance(a, int) and isinstance(b, int)
            with contextlib.suppress(LinkError):
                core.submit(REQUESTS[a], h.now, epoch=core.epoch - b)
        elif kind == "advance":
            assert isinstance(a, float)
            h.now += a
            core.handle_timer(h.now)
        elif kind == "reply" and self.writes:
            write = self.writes[-1][0]
            reply = self.reply_for(write)
            if a == "answer":
                self.receive(write.seq, reply)
            elif a == "dup":
                self.receive(write.seq, reply)
                self.receive(write.seq, reply)
            elif a == "hold":
                self.held.append((write.seq, reply))
        elif kind == "release":
            for seq, reply in self.held:
                self.receive(seq, reply)
            self.held.clear()
        elif kind == "estop":
            core.request_estop()
        elif kind == "unplug":
            core.port_failed(h.now, "unplugged")
            self.held.clear()
        elif kind == "replug" and core.state is LinkState.RECONNECTING:
            if a == "restarted":
                self.boot = (self.boot + 1) & 0xFFFF
            elif a == "other":
                self.serial, self.boot = "SIM-000777", 0x7777
            self.dseq = 0
            core.port_opened(h.now)
        elif kind == "telemetry":
            assert isinstance(a, State)
            self.dseq = (self.dseq + 1) & 0xFFFF
            if b:  # the unit power-cycles
                self.boot = (self.boot + 7) & 0xFFFF
                self.dseq = 0
            self.receive(0, telemetry(self.dseq, a, boot_id=self.boot))
        elif kind == "checkin":
            core.checkin(h.now)
        self.flush()


def check_order(writes: list[tuple[Write, int]]) -> None:
    """No request written again once a later request or an ESTOP went out after it."""
    first_send: dict[int, int] = {}
    for index, (write, _) in enumerate(writes):
        if write.mtype is MsgType.ESTOP:
            if not write.resend:
                first_send[write.seq] = index
            continue
        if not write.resend:
            first_send[write.seq] = index
            continue
        start = first_send[write.seq]
        between = writes[start + 1 : index]
        assert all(
            w.seq == write.seq or w.resend for w, _ in between if w.mtype is not MsgType.ESTOP
        ), f"{write.mtype.name} (seq {write.seq}) re-sent after a later request"
        assert not any(w.mtype is MsgType.ESTOP and not w.resend for w, _ in between), (
            f"{write.mtype.name} (seq {write.seq}) re-sent after an ESTOP"
        )


@settings(max_examples=400, deadline=None)
@given(st.lists(op, max_size=80))
def test_any_interleaving_keeps_order_one_outstanding_and_epochs(
    ops: list[tuple[str, object, object]],
) -> None:
    h = CoreHarness.make(handshake_timeout=5.0)
    wire = Wire(h)
    h.core.port_opened(h.now)
    wire.flush()
    wire.run("reply", "answer", 0)  # HELLO_REPLY
    wire.run("reply", "answer", 0)  # STATUS: up
    assert h.core.state is LinkState.UP
    for kind, a, b in ops:
        wire.run(kind, a, b)
    check_order(wire.writes)
    seqs = [w.seq for w, _ in wire.writes]
    assert 0 not in seqs
