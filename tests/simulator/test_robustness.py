"""A misbehaving host (garbage, wrong lengths, repeated seqs, ESTOP at any moment, silence,
faults at random) never breaks the unit: every request frame gets exactly one reply, faults
and FAULT go together, and output is off whenever the state says so."""

from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.wire import FrameDecoder, MsgType, State
from controller.wire.codec import encode_raw
from simulator import Simulator
from simulator.firmware import ON_STATES
from tests.simulator.helpers import STEP

REQUEST_TYPES = [t for t in MsgType if t.is_request]
GOOD_BODIES = {
    MsgType.HELLO: b"\x01epm",
    MsgType.SET_TELEMETRY: (100).to_bytes(2, "little"),
    MsgType.SET_AMPLITUDE: (350).to_bytes(2, "little"),
    MsgType.CONFIGURE_STEP: struct.pack("<HBBHHHHHHHHHIB", *STEP),
}

request = st.tuples(
    st.just("request"),
    st.integers(0, 255),  # seq, 0 and repeats included
    st.sampled_from([*REQUEST_TYPES, 0x3E, 0x80, 0xC0]),
    st.one_of(st.none(), st.binary(max_size=30)),  # None: the right body
)
garbage = st.tuples(st.just("garbage"), st.binary(min_size=1, max_size=300))
wait = st.tuples(st.just("wait"), st.integers(1, 700))
fault = st.tuples(
    st.just("fault"),
    st.sampled_from(["contact_lost", "short_circuit", "output_stuck", "handpiece_removed"]),
)
clear = st.tuples(st.just("clear"))
actions = st.lists(st.one_of(request, garbage, wait, fault, clear), min_size=1, max_size=40)


def _check_invariants(sim: Simulator) -> None:
    fw = sim.engine.firmware
    assert (fw.faults != 0) == (fw.state == State.FAULT)
    if fw.state not in ON_STATES:
        assert fw.out_dv == 0.0
        if sim.engine.plant.stuck_dv == 0:
            assert fw.measured_dv == 0.0


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(script=actions, seed=st.integers(0, 3))
def test_a_misbehaving_host_cannot_break_the_unit(script: list[tuple], seed: int) -> None:
    sim = Simulator(seed=seed, clock="virtual")
    decoder = FrameDecoder()
    try:
        for action in script:
            kind = action[0]
            if kind == "request":
                _, seq, mtype, body = action
                if body is None:
                    body = GOOD_BODIES.get(mtype, b"")
                decoder.feed(sim.host_read())
                # A delimiter first ends any partial garbage, as a resynchronising host would.
                sim.host_write(b"\x00" + encode_raw(seq, mtype, body))
                out = decoder.feed(sim.host_read())
                replies = [f for f in out if f.type in (0x80, 0x81, 0x82, 0x83)]
                assert [f.seq for f in replies] == [seq]
                assert all(f.seq == 0 for f in out if f.type >= 0xC0)
            elif kind == "garbage":
                sim.host_write(action[1])
            elif kind == "wait":
                sim.advance(action[1])
            elif kind == "fault":
                sim.inject(action[1], duration_s=0.2)
            else:
                sim.clear()
            _check_invariants(sim)
    finally:
        sim.close()
