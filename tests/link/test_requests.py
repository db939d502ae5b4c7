"""Sequence numbers and reply matching rules."""

from __future__ import annotations

import itertools

import pytest

from controller.link.requests import Outcome, RecentSeqs, SeqCounter, reply_fits
from controller.wire import messages as m
from controller.wire.constants import MsgType


def test_seq_runs_1_to_255_and_wraps_to_1_never_0() -> None:
    counter = SeqCounter()
    seqs = [counter.next() for _ in range(600)]
    assert 0 not in seqs
    assert seqs[:3] == [1, 2, 3]
    assert seqs[254:257] == [255, 1, 2]
    assert all(b == a % 255 + 1 for a, b in itertools.pairwise(seqs))


def test_seq_counter_rejects_out_of_range_start() -> None:
    with pytest.raises(ValueError, match="outside"):
        SeqCounter(256)


def test_reply_fits_by_type_and_cmd() -> None:
    assert reply_fits(MsgType.START, m.Ack(MsgType.START))
    assert not reply_fits(MsgType.START, m.Ack(MsgType.STOP))
    assert reply_fits(MsgType.CONFIGURE_STEP, m.Nak(MsgType.CONFIGURE_STEP, 4, 6))
    assert reply_fits(MsgType.GET_STATUS, m.Status(1, 1, 0, 0, 0, 0, 1, 0, 0, 0))
    assert not reply_fits(MsgType.HEARTBEAT, m.Status(1, 1, 0, 0, 0, 0, 1, 0, 0, 0))
    # HELLO and GET_STATUS are answered by their typed reply or a NAK, never an ACK
    assert not reply_fits(MsgType.GET_STATUS, m.Ack(MsgType.GET_STATUS))
    assert not reply_fits(MsgType.HELLO, m.Ack(MsgType.HELLO))
    assert reply_fits(MsgType.HELLO, m.Nak(MsgType.HELLO, 8, 0))
    assert not reply_fits(MsgType.START, m.Telemetry(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))


def test_recent_seqs_remember_forget_and_stay_bounded() -> None:
    recent = RecentSeqs(size=3)
    for seq in (1, 2, 3, 4):
        recent.remember(seq, Outcome.ANSWERED)
    assert recent.outcome(1) is None
    assert recent.outcome(4) is Outcome.ANSWERED
    recent.remember(2, Outcome.ABANDONED)
    assert recent.outcome(2) is Outcome.ABANDONED
    recent.forget(2)
    assert recent.outcome(2) is None
