"""Emergency stop from every phase: the device gets ESTOP at once from the caller's thread (no
engine queue, no confirmation), output goes off, the stop is recorded right after, and a
session the practitioner then ends is recorded as aborted."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from controller.session.model import Action, Outcome, Phase
from controller.wire import Fault, MsgType, State
from tests.integration.helpers import EngineEnv, Session, engine_env
from tests.wire_fakes.fixtures import wait_until

__all__ = ["engine_env"]


def _to_manual(s: Session) -> None:
    s.watch.phase(Phase.MANUAL)


def _to_place(s: Session) -> None:
    # A timed manual step is confirmed done only once its time has run.
    s.watch.until(
        lambda x: x.phase is Phase.MANUAL and Action.CONFIRM in x.allowed,
        what="the manual step's time to run",
    )
    s.engine.request(Action.CONFIRM)
    s.watch.phase(Phase.PLACE)


def _to_delivering(s: Session) -> None:
    _to_place(s)
    s.engine.request(Action.CONFIRM)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 0)
    assert s.sim.wait_until(lambda sim: sim.snapshot()["output_dv"] > 0, 5)


def _to_hold(s: Session) -> None:
    _to_delivering(s)
    s.sim.inject("contact_lost")
    s.watch.phase(Phase.HOLD)


def _to_paused(s: Session) -> None:
    _to_delivering(s)
    s.engine.request(Action.PAUSE)
    s.watch.phase(Phase.PAUSED)


def _to_stopping(s: Session) -> None:
    _to_delivering(s)
    s.engine.request(Action.STOP)
    s.watch.phase(Phase.STOPPING)
    assert s.sim.state is State.STOPPING


def _to_fault(s: Session) -> None:
    _to_delivering(s)
    s.sim.inject("overcurrent", factor=2.0)
    s.watch.phase(Phase.FAULT)


PHASES: dict[str, Callable[[Session], None]] = {
    "manual": _to_manual,
    "place": _to_place,
    "delivering": _to_delivering,
    "hold": _to_hold,
    "paused": _to_paused,
    "stopping": _to_stopping,
    "fault": _to_fault,
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_emergency_stop_from_every_phase(engine_env: EngineEnv, phase: str) -> None:
    # The zone has a 10 s ramp-down; at 20x the device stays in STOPPING for 0.5 s.
    s = engine_env.session("estop.yaml", speed=20, auto=False, manual_speed=1000)
    PHASES[phase](s)
    before = s.engine.snapshot()
    assert before.phase.value == phase
    assert Action.ESTOP in before.allowed  # always offered, never confirmed
    t0 = time.perf_counter()
    assert s.engine.emergency_stop() is True  # the bytes went out
    # Sent from this thread before emergency_stop() returned: the device has it already or
    # gets it within the simulator's polling period.
    assert s.sim.wait_until(lambda sim: bool(sim.faults & Fault.ESTOP), 2)
    assert s.receipts_after(t0, MsgType.ESTOP)
    assert s.sim.state is State.FAULT and s.sim.snapshot()["output_dv"] == 0
    # Recorded right after by the engine's thread (the caller's thread never waits for the disk).
    assert wait_until(lambda: bool(s.events("estop")))
    recorded = s.events("estop")
    assert recorded and recorded[-1].data["source"] == "operator"
    assert recorded[-1].data["phase"] == phase and recorded[-1].data["bytes_written"]
    if phase == "stopping":
        # The practitioner had already asked to stop the session: it ends at once.
        snap = s.watch.finished()
    else:
        snap = s.watch.phase(Phase.FAULT)
        assert Action.END in snap.allowed and Action.CONTINUE not in snap.allowed
        # ... and the device's acknowledgement of it, as a link event of the open session.
        assert wait_until(
            lambda: any(e.data.get("kind") == "estop_confirmed" for e in s.events("link_event"))
        )
        s.engine.request(Action.END, "emergency stop pressed")
        snap = s.watch.finished()
    assert snap.outcome is Outcome.ABORTED
    assert s.store.get_session(s.engine.session_id).outcome == "aborted"
    assert not s.receipts_after(t0, MsgType.START, MsgType.RESUME)


def test_emergency_stop_output_goes_off_within_the_devices_bound(engine_env: EngineEnv) -> None:
    s = engine_env.session("estop.yaml", speed=20, auto=False, manual_speed=1000)
    _to_delivering(s)
    t0 = time.perf_counter()
    s.engine.request(Action.ESTOP)  # the action path also bypasses the engine's queue
    assert s.sim.wait_until(lambda sim: sim.state is State.FAULT, 2)
    off = [t for t in s.sim.output_transitions() if not t.on and t.perf_s >= t0]
    assert off and off[0].cause == "ESTOP"
    # Generous bound for a loaded CI machine; benchmarks/session_bench.py measures the p99.
    assert off[0].perf_s - t0 < 0.5
