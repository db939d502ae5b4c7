"""The session engine's normal path against the simulator: a full session, its record, the
practitioner's controls (confirm, contact wait, pause, intensity, stop, skip, end) and the
notices that explain every refusal or clamp."""

from __future__ import annotations

import threading
import time

from controller.session.model import Action, Outcome, Phase, SessionNotice, StepStatus
from controller.wire import Fault, MsgType, State
from tests.integration.helpers import EngineEnv, engine_env

__all__ = ["engine_env"]


def _delivered_by_simulator(sim, ramp_down_ms: int) -> list[int]:
    """Delivered ms per START, from the simulator's own output transitions: the output is on
    from START to the end of the final ramp-down, which does not count as delivered."""
    out, started = [], None
    for tr in sim.output_transitions():
        if tr.on and tr.cause == "START":
            started = tr.sim_ms
        elif not tr.on and started is not None and tr.cause == "ramp-down end":
            out.append(tr.sim_ms - started - ramp_down_ms)
            started = None
    return out


def test_full_session_completes_and_its_record_matches_what_the_simulator_delivered(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("two-zones.yaml", speed=300)
    snap = s.watch.finished()
    assert snap.phase is Phase.FINISHED and snap.outcome is Outcome.COMPLETED
    assert snap.simulated and snap.device is not None and snap.device.serial.startswith("SIM-")
    assert snap.aftercare == ("Do not wash the hair for 48 hours.",)
    assert snap.course is not None and snap.course.total == 6

    rows = s.store.steps(s.engine.session_id)
    delivery = [r for r in rows if r.kind == "delivery"]
    assert [(r.zone, r.outcome) for r in delivery] == [
        ("frontal", "completed"),
        ("crown", "completed"),
    ]
    by_sim = _delivered_by_simulator(s.sim, ramp_down_ms=2000)
    assert len(by_sim) == 2
    for row, simulated in zip(delivery, by_sim, strict=True):
        assert row.planned_ms == 120_000
        assert abs(row.delivered_ms - simulated) <= 0.01 * simulated
        assert abs(row.delivered_ms - row.planned_ms) <= 0.01 * row.planned_ms
    manual = [r for r in rows if r.kind == "manual"]
    assert [(r.index, r.outcome) for r in manual] == [(1, "completed")]

    session = s.store.get_session(s.engine.session_id)
    assert session.outcome == "completed" and session.simulated
    assert session.device_serial.startswith("SIM-")
    assert s.store.verify_chain().ok
    assert s.store.telemetry_summary(s.engine.session_id).rows > 0

    # Recorded before acting: each zone's step_start, then CONFIGURE_STEP, then START, and
    # each command_sent before its command_result.
    events = s.events()
    starts = [
        i for i, e in enumerate(events) if e.kind == "step_start" and e.data["kind"] == "delivery"
    ]
    assert len(starts) == 2
    for i in starts:
        sent = [e.data["command"] for e in events[i:] if e.kind == "command_sent"][:2]
        assert sent == ["CONFIGURE_STEP", "START"]
    for i, e in enumerate(events):
        if e.kind == "command_result":
            previous = [x for x in events[:i] if x.kind == "command_sent"]
            assert previous[-1].data["command"] == e.data["command"]
    assert [e.kind for e in s.events()][-1] == "session_end"

    # The protocol's soft-limit warning (a 5-minute session) was shown and recorded, and the
    # session went on.
    assert any("5 min" in w and w.startswith("Protocol:") for w in snap.warnings)
    assert [e.data["message"] for e in s.events("warning")] == list(snap.warnings)
    assert "warning" in s.watch.kinds()


def test_manual_step_and_placement_wait_for_the_practitioner(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, auto=False)
    snap = s.watch.phase(Phase.MANUAL)
    assert snap.allowed >= {Action.SKIP, Action.END, Action.ESTOP}
    assert Action.PAUSE not in snap.allowed
    assert snap.current_step is not None and snap.current_step.title == "Apply the serum"
    # The timer runs out (60 s at 300x) but the step waits for the practitioner; it can be
    # confirmed done from then on.
    s.watch.until(lambda x: x.manual_remaining_ms == 0, what="the manual timer to run out")
    snap = s.watch.until(lambda x: Action.CONFIRM in x.allowed, what="confirm offered")
    assert snap.phase is Phase.MANUAL
    s.engine.request(Action.CONFIRM)
    snap = s.watch.phase(Phase.PLACE)
    assert snap.allowed >= {Action.CONFIRM, Action.INTENSITY_UP, Action.INTENSITY_DOWN}
    assert snap.zone_planned_ms == 120_000 and snap.setpoint_dv == 400
    assert s.sim.state is State.READY
    s.engine.request(Action.CONFIRM)
    s.watch.phase(Phase.DELIVERING)
    assert s.sim.wait_until(lambda sim: sim.state is State.RUNNING, 5)


def test_the_zone_starts_only_once_the_handpiece_has_contact(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=100, auto=False)
    s.watch.phase(Phase.PLACE)
    s.sim.inject("contact_lost")
    s.watch.until(lambda x: x.live is not None and x.live.contact == "none", what="no contact")
    s.engine.request(Action.CONFIRM)
    snap = s.watch.until(lambda x: "Waiting for skin contact" in x.message, what="contact wait")
    assert snap.phase is Phase.PLACE and Action.CONFIRM not in snap.allowed
    assert "START" not in s.commands()
    s.sim.clear("contact_lost")
    s.watch.phase(Phase.DELIVERING)
    assert s.commands().count("START") == 1


def test_pause_freezes_the_zone_and_intensity_moves_in_volts_within_the_steps_range(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("one-zone.yaml", speed=20, auto=False)
    s.watch.phase(Phase.PLACE)
    s.engine.request(Action.CONFIRM)
    s.watch.phase(Phase.DELIVERING)
    for _ in range(21):  # 40 V -> 60 V is 20 presses; the 21st meets the step's maximum
        s.engine.request(Action.INTENSITY_UP)  # presses queued meanwhile merge into one target
    snap = s.watch.until(lambda x: x.setpoint_dv == 600, what="setpoint 60 V")
    snap = s.watch.until(
        lambda x: any("60.0 V is this step's maximum" in n for n in x.notices),
        what="the maximum's notice",
    )
    assert Action.INTENSITY_UP not in snap.allowed and Action.INTENSITY_DOWN in snap.allowed
    assert s.sim.snapshot()["setpoint_dv"] == 600
    changes = s.events("amplitude_change")
    steps = [c.data["to_dv"] for c in changes]
    assert steps[-1] == 600 and steps == sorted(set(steps)) and len(steps) <= 20
    assert all(v % 10 == 0 and 410 <= v <= 600 for v in steps)  # whole volts, within range
    assert s.commands().count("SET_AMPLITUDE") == len(steps)  # never a backlog of commands
    assert all(c.data["source"] == "practitioner" for c in changes)
    assert s.events("notice")[-1].data["limit"] == "amplitude_max_v"

    s.engine.request(Action.PAUSE)
    s.watch.phase(Phase.PAUSED)
    assert s.sim.wait_until(lambda sim: sim.state is State.PAUSED, 5)
    frozen = s.sim.snapshot()["step_elapsed_ms"]
    s.watch.until(lambda x: x.live is not None and x.live.device_state == "PAUSED")
    first = s.watch.until(lambda x: x.zone_delivered_ms == frozen, what="frozen zone time")
    assert first.allowed >= {Action.RESUME, Action.STOP} and Action.PAUSE not in first.allowed
    s.engine.request(Action.RESUME)
    s.watch.until(lambda x: x.zone_delivered_ms > frozen, what="zone time running again")
    assert s.engine.snapshot().phase is Phase.DELIVERING
    assert s.commands()[-2:] == ["PAUSE", "RESUME"]


def test_intensity_down_stops_at_one_volt_with_the_reason(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=20, auto=False)
    s.watch.phase(Phase.PLACE)
    for _ in range(40):  # 40 V -> 1 V is 39 presses; the last one meets the floor
        s.engine.request(Action.INTENSITY_DOWN)
    snap = s.watch.until(
        lambda x: any(
            "1.0 V is the lowest intensity; pause to stop output" in n for n in x.notices
        ),
        what="the floor's notice",
    )
    assert snap.setpoint_dv == 10 and Action.INTENSITY_DOWN not in snap.allowed
    assert s.sim.snapshot()["setpoint_dv"] == 10


def test_stop_ramps_down_and_the_session_ends_stopped(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=50)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 20_000)
    s.engine.request(Action.STOP)
    snap = s.watch.finished()
    assert snap.outcome is Outcome.STOPPED
    off = [t for t in s.sim.output_transitions() if not t.on]
    assert off and off[-1].cause != "ESTOP"
    assert s.receipts_after(0.0, MsgType.STOP) and not s.receipts_after(0.0, MsgType.ESTOP)
    (row,) = s.store.steps(s.engine.session_id)
    assert row.outcome == "stopped" and 20_000 <= row.delivered_ms < 600_000
    assert row.delivered_ms == s.sim.snapshot()["step_elapsed_ms"]
    assert s.store.get_session(s.engine.session_id).outcome == "stopped"


def test_the_record_keeps_the_whole_plan_so_a_zone_never_started_still_counts(
    engine_env: EngineEnv,
) -> None:
    """Issue 11: the records list and the end screen disagreed on planned time when a zone
    never started. The plan (every step with its planned time) is chained at the start."""
    s = engine_env.session("two-zones.yaml", speed=50, manual_speed=1000)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 2_000)
    s.engine.request(Action.STOP)
    snap = s.watch.finished()
    record = s.store.get_session(s.engine.session_id)
    started = {r.index for r in s.store.steps(s.engine.session_id) if r.kind == "delivery"}
    planned = {p.index: p for p in record.planned_steps}
    assert [p.index for p in record.planned_steps] == [v.index for v in snap.steps]
    assert any(i not in started for i, p in planned.items() if p.kind == "delivery")
    assert record.planned_delivery_ms == snap.session_planned_ms
    # Manual steps are named in the plan, so a report names one that never started.
    manual = [(p.index, p.title) for p in record.planned_steps if p.kind == "manual"]
    assert manual == [(v.index, v.title) for v in snap.steps if v.kind == "manual"]
    assert all(title for _, title in manual)


def test_skip_and_end_need_a_reason_and_both_are_recorded(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=50, manual_speed=1000)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 5_000)
    s.engine.request(Action.SKIP)
    s.watch.until(lambda x: any("needs a reason" in n for n in x.notices), what="reason notice")
    s.engine.request(Action.SKIP, "client felt a sting")
    snap = s.watch.until(
        lambda x: x.current_step is not None and x.current_step.zone == "crown",
        what="the next zone",
    )
    assert snap.steps[1].status is StepStatus.SKIPPED
    frontal = [r for r in s.store.steps(s.engine.session_id) if r.zone == "frontal"]
    assert frontal[-1].outcome == "skipped" and frontal[-1].delivered_ms > 5_000
    end = [e for e in s.events("step_end") if e.data["index"] == 2][-1]
    assert end.data["reason"] == "client felt a sting"
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.current_step.zone == "crown")
    s.engine.request(Action.END, "client had to leave")
    snap = s.watch.finished()
    assert snap.outcome is Outcome.STOPPED and snap.outcome_reason == "client had to leave"
    session = s.store.get_session(s.engine.session_id)
    assert session.outcome == "stopped" and session.outcome_reason == "client had to leave"


def test_a_hold_freezes_the_zone_time_and_is_recorded(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=20)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 3_000)
    s.sim.inject("contact_lost")
    snap = s.watch.phase(Phase.HOLD)
    assert "No skin contact" in snap.message and Action.PAUSE in snap.allowed
    assert s.sim.wait_until(lambda sim: sim.state is State.HOLD, 5)
    frozen = s.sim.snapshot()["step_elapsed_ms"]
    s.watch.until(lambda x: x.zone_delivered_ms == frozen, what="the frozen zone time")
    s.sim.clear("contact_lost")
    s.watch.phase(Phase.DELIVERING)
    s.engine.request(Action.END, "test over")
    s.watch.finished()
    (row,) = s.store.steps(s.engine.session_id)
    assert row.holds == 1 and row.hold_ms > 0
    assert [e.kind for e in s.events() if e.kind in ("hold_start", "hold_end")] == [
        "hold_start",
        "hold_end",
    ]


def test_an_action_that_does_not_apply_gets_a_notice_saying_why(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=20)
    s.watch.phase(Phase.DELIVERING)
    s.engine.request(Action.RESUME)
    s.engine.request(Action.CLEAR_FAULTS)
    snap = s.watch.until(lambda x: len(x.notices) >= 2, what="two notices")
    assert "Resume is not possible now" in snap.notices[0]
    assert "Clear faults is not possible now" in snap.notices[1]
    assert "pause" in snap.notices[0]  # says what is possible instead
    assert "RESUME" not in s.commands() and "CLEAR_FAULTS" not in s.commands()


def test_a_listener_that_hangs_does_not_stall_the_session(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, start=False)
    release = threading.Event()
    entered = threading.Event()

    def hung_ui(notice: SessionNotice) -> None:
        entered.set()
        release.wait(30)  # a UI that stopped responding

    s.engine.add_listener(hung_ui)
    s.engine.start()
    try:
        assert entered.wait(10)
        snap = s.watch.finished()  # the engine completes the session regardless
        assert snap.outcome is Outcome.COMPLETED
        assert s.store.get_session(s.engine.session_id).outcome == "completed"
        s.engine.emergency_stop()  # and the emergency stop never depends on listeners
        assert s.sim.wait_until(lambda sim: sim.state is State.FAULT, 2)
    finally:
        release.set()


def test_a_record_that_cannot_be_written_stops_output_instead_of_acting(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("one-zone.yaml", speed=20)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 0)
    t0 = time.perf_counter()
    s.store.close()  # the data folder is gone: nothing more can be committed
    s.engine.request(Action.PAUSE)
    snap = s.watch.finished()
    assert snap.outcome is Outcome.FAULTED and "record could not be written" in snap.message
    assert s.sim.wait_until(lambda sim: bool(sim.faults & Fault.ESTOP), 2)
    assert not s.receipts_after(t0, MsgType.PAUSE)  # not acted on without its record
