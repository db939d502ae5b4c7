"""Every choice says what it was decided on (``SessionSnapshot.seen``): a skip, an end, a
continue or a confirm chosen on a step or phase that is gone by the time the engine gets to it
does nothing and says what happened; stop and pause act on what is delivering now and name it.
The outcome of a session says what happened (a skipped zone is never ``completed``), a timed
manual step is confirmed done only once its time has run, and quitting with a session open
closes its record as interrupted at once."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from controller.session.model import Action, Outcome, Phase, SessionSnapshot, StepStatus
from controller.wire import Fault, MsgType, State
from tests.integration.helpers import EngineEnv, Session, engine_env

__all__ = ["engine_env"]


def _confirm_the_manual_step(s: Session) -> None:
    s.watch.until(
        lambda x: x.phase is Phase.MANUAL and Action.CONFIRM in x.allowed,
        what="the manual step's time to run",
    )
    s.engine.request(Action.CONFIRM)


def _on(zone: str, phase: Phase) -> Callable[[SessionSnapshot], bool]:
    def check(x: SessionSnapshot) -> bool:
        step = x.current_step
        return x.phase is phase and step is not None and step.zone == zone

    return check


def _frontal_seen_then_crown_placed(s: Session) -> SessionSnapshot:
    """Frontal (step 2) delivering: the snapshot a window opened on; then frontal finishes and
    crown (step 3) waits for placement."""
    _confirm_the_manual_step(s)
    s.watch.phase(Phase.PLACE)
    s.engine.request(Action.CONFIRM)
    opened = s.watch.until(_on("frontal", Phase.DELIVERING), what="frontal delivering")
    assert opened.seen is not None and opened.seen.step == 1
    assert opened.seen.phase is Phase.DELIVERING
    s.watch.until(_on("crown", Phase.PLACE), timeout=15, what="crown placed")
    return opened


def _notice(s: Session, text: str) -> SessionSnapshot:
    return s.watch.until(lambda x: text in x.notices, what=f"notice {text!r}")


# --- 1. a choice is judged on what it was decided on ---------------------------------------


def test_a_skip_chosen_while_a_zone_finished_skips_nothing(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=100, auto=False, manual_speed=1000)
    opened = _frontal_seen_then_crown_placed(s)
    s.engine.request(Action.SKIP, "client asked", seen=opened.seen)
    text = "Zone 2 (Frontal) finished while this window was open; nothing was skipped."
    snap = _notice(s, text)
    assert snap.phase is Phase.PLACE and snap.current_step is not None
    assert snap.current_step.zone == "crown" and snap.current_step.status is StepStatus.ACTIVE
    assert not s.events("step_skipped")
    assert [e.data["message"] for e in s.events("notice")][-1] == text
    assert s.events("notice")[-1].data["stale"] is True
    # The same choice made on what is shown now is carried out.
    s.engine.request(Action.SKIP, "client asked", seen=s.engine.snapshot().seen)
    snap = s.watch.finished()
    assert snap.steps[2].status is StepStatus.SKIPPED


def test_an_end_chosen_while_a_zone_finished_ends_nothing(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=100, auto=False, manual_speed=1000)
    opened = _frontal_seen_then_crown_placed(s)
    s.engine.request(Action.END, "client had to leave", seen=opened.seen)
    snap = _notice(s, "Zone 2 (Frontal) finished while this window was open; nothing was ended.")
    assert snap.phase is Phase.PLACE and not snap.finished
    assert s.store.get_session(s.engine.session_id).outcome == "running"
    s.engine.request(Action.END, "client had to leave", seen=snap.seen)
    assert s.watch.finished().outcome is Outcome.STOPPED


def test_a_second_confirm_on_the_same_screen_never_starts_the_next_zone(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("two-zones.yaml", speed=100, auto=False, manual_speed=1000)
    shown = s.watch.until(
        lambda x: x.phase is Phase.MANUAL and Action.CONFIRM in x.allowed, what="confirm offered"
    )
    s.engine.request(Action.CONFIRM, seen=shown.seen)
    s.watch.phase(Phase.PLACE)
    s.engine.request(Action.CONFIRM, seen=shown.seen)  # Enter pressed twice on the manual step
    snap = _notice(
        s,
        "Step 1 (Apply the serum) was confirmed done before this choice was carried out; "
        "nothing was started.",
    )
    assert snap.phase is Phase.PLACE and "START" not in s.commands()
    assert s.sim.state is State.READY


def test_a_continue_chosen_on_a_zone_skipped_meanwhile_continues_nothing(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("two-zones.yaml", speed=20, auto=False, manual_speed=1000)
    _confirm_the_manual_step(s)
    s.watch.phase(Phase.PLACE)
    s.engine.request(Action.CONFIRM)
    s.watch.delivering(2_000)
    s.sim.power_cycle()  # the unit restarts: the zone stops, the session waits in RECOVERY
    opened = s.watch.until(
        lambda x: x.phase is Phase.RECOVERY and Action.CONTINUE in x.allowed,
        timeout=15,
        what="continue offered",
    )
    s.engine.request(Action.SKIP, "unit restarted")  # e.g. from another window
    s.watch.until(_on("crown", Phase.PLACE), what="crown placed")
    configured = s.commands().count("CONFIGURE_STEP")
    s.engine.request(Action.CONTINUE, seen=opened.seen)
    snap = _notice(
        s, "Zone 2 (Frontal) was skipped before this choice was carried out; nothing was continued."
    )
    assert snap.phase is Phase.PLACE and snap.current_step is not None
    assert snap.current_step.zone == "crown"
    assert s.commands().count("CONFIGURE_STEP") == configured


def test_a_skip_chosen_on_a_running_zone_holds_while_that_zone_runs(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("one-zone.yaml", speed=20)
    opened = s.watch.delivering(1_000)
    s.sim.inject("contact_lost")  # the zone goes on hold while the window is open
    s.watch.phase(Phase.HOLD)
    s.engine.request(Action.SKIP, "dry skin", seen=opened.seen)
    snap = s.watch.finished()
    assert snap.steps[0].status is StepStatus.SKIPPED


def test_stop_and_pause_act_on_what_is_delivering_now_and_name_it(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("two-zones.yaml", speed=100, manual_speed=1000)
    opened = s.watch.until(_on("frontal", Phase.DELIVERING), what="frontal")
    s.watch.until(
        lambda x: _on("crown", Phase.DELIVERING)(x) and x.zone_delivered_ms > 1_000,
        timeout=15,
        what="crown delivering",
    )
    s.engine.request(Action.PAUSE, seen=opened.seen)  # never refused as stale
    snap = s.watch.phase(Phase.PAUSED)
    snap = s.watch.until(lambda x: any(n.startswith("Paused") for n in x.notices))
    paused = [n for n in snap.notices if n.startswith("Paused")]
    assert paused[-1].startswith("Paused zone 3 (Crown): output is off")
    assert "Zone 2 (Frontal) finished while this was being chosen" in paused[-1]
    assert s.sim.state is State.PAUSED
    s.engine.request(Action.STOP, seen=opened.seen)
    snap = s.watch.finished()
    assert snap.outcome is Outcome.STOPPED
    stopped = [e.data["message"] for e in s.events("notice") if e.data.get("action") == "stop"]
    assert stopped and stopped[-1].startswith("Stopped zone 3 (Crown)")
    crown = [r for r in s.store.steps(s.engine.session_id) if r.zone == "crown"]
    assert crown[-1].outcome == "stopped"


def test_the_snapshot_says_what_a_choice_is_decided_on(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=20, auto=False)
    snap = s.watch.phase(Phase.PLACE)
    assert snap.seen is not None
    assert snap.seen.phase is Phase.PLACE and snap.seen.step == 0
    assert snap.seen.device_state == int(State.READY)
    assert snap.seen.connection == s.device.connection


# --- 2. the outcome says what happened -------------------------------------------------------


def test_a_session_with_a_skipped_zone_is_never_recorded_completed(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("two-zones.yaml", speed=100, manual_speed=1000)
    s.watch.until(
        lambda x: _on("frontal", Phase.DELIVERING)(x) and x.zone_delivered_ms > 5_000,
        what="frontal delivering",
    )
    s.engine.request(Action.SKIP, "client felt a sting")
    snap = s.watch.finished(timeout=30)
    assert snap.outcome is Outcome.STOPPED
    assert re.fullmatch(
        r"ended early: 1 of 2 zones got their planned time; Frontal skipped after \d+ of 120 s "
        r"\(client felt a sting\)",
        snap.outcome_reason,
    ), snap.outcome_reason
    assert "every planned zone" not in snap.message and "completed" not in snap.message
    session = s.store.get_session(s.engine.session_id)
    assert session.outcome == "stopped" and session.outcome_reason == snap.outcome_reason
    assert [z.status for z in snap.steps if z.kind == "delivery"] == [
        StepStatus.SKIPPED,
        StepStatus.DONE,
    ]


def test_a_skipped_manual_step_is_named_in_the_outcome(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, auto=False)
    s.watch.phase(Phase.MANUAL)
    s.engine.request(Action.SKIP, "no serum at hand")
    for zone in ("frontal", "crown"):
        s.watch.until(_on(zone, Phase.PLACE), what=f"{zone} placed")
        s.engine.request(Action.CONFIRM)
    snap = s.watch.finished(timeout=30)
    assert snap.outcome is Outcome.STOPPED
    assert snap.outcome_reason == (
        "ended early: 2 of 2 zones got their planned time; step 1 (Apply the serum) skipped "
        "(no serum at hand)"
    )


def test_a_session_that_did_every_step_is_completed_and_says_so(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=300)
    snap = s.watch.finished(timeout=30)
    assert snap.outcome is Outcome.COMPLETED
    assert snap.outcome_reason == "every planned zone got its time"
    assert s.store.get_session(s.engine.session_id).outcome_reason == snap.outcome_reason


# --- 3. a timed manual step takes its time -------------------------------------------------


def test_a_timed_manual_step_is_confirmed_done_only_once_its_time_has_run(
    engine_env: EngineEnv,
) -> None:
    # 60 s of step time at 20x: three seconds of the test's time.
    s = engine_env.session("two-zones.yaml", speed=300, auto=False, manual_speed=20)
    snap = s.watch.phase(Phase.MANUAL)
    assert Action.CONFIRM not in snap.allowed and Action.SKIP in snap.allowed
    s.engine.request(Action.CONFIRM)
    snap = s.watch.until(lambda x: any(n.startswith("Wait ") for n in x.notices))
    notice = next(n for n in snap.notices if n.startswith("Wait "))
    assert re.match(
        r"Wait (\d+ s|1 min 0 s) more: this step takes at least 1 min 0 s\. Possible now: ",
        notice,
    ), notice
    assert snap.phase is Phase.MANUAL
    assert not [e for e in s.events("step_end") if e.data["index"] == 1]
    refused = s.events("notice")[-1].data
    assert refused["refusal"] == "manual_time_left" and refused["action"] == "confirm"
    s.watch.until(lambda x: Action.CONFIRM in x.allowed, what="confirm offered")
    s.engine.request(Action.CONFIRM)
    s.watch.phase(Phase.PLACE)
    (done,) = [e for e in s.events("step_end") if e.data["index"] == 1]
    assert done.data["timer_ms"] >= 60_000


def test_an_automatic_run_waits_for_the_manual_steps_time(engine_env: EngineEnv) -> None:
    """A headless run confirms manual steps by itself, only once their time has run (on the
    accelerated simulator at its speed)."""
    s = engine_env.session("two-zones.yaml", speed=300, manual_speed=20)
    s.watch.until(lambda x: x.phase is Phase.PLACE or x.phase is Phase.DELIVERING)
    (done,) = [e for e in s.events("step_end") if e.data["index"] == 1]
    assert done.data["timer_ms"] >= 60_000


# --- 4. quitting with a session open ---------------------------------------------------------


def test_quitting_with_a_session_open_records_it_interrupted_at_once(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, auto=False, manual_speed=1000)
    _confirm_the_manual_step(s)
    s.watch.phase(Phase.PLACE)
    reason = "epm was closed with the session open"
    assert s.engine.abandon(reason) is True
    # No waiting: the record is closed when abandon() returns.
    session = s.store.get_session(s.engine.session_id)
    assert session.outcome == "interrupted" and session.outcome_reason == reason
    snap = s.engine.snapshot()
    assert snap.phase is Phase.FINISHED and snap.outcome is Outcome.INTERRUPTED
    assert s.events("end_check")[-1].data["result"] == "inactive"
    assert s.kinds()[-1] == "session_end"
    assert s.sim.state is not State.RUNNING
    assert s.engine.abandon(reason) is True  # again: nothing more to do


def test_quitting_while_a_zone_delivers_stops_output_first(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=20)
    s.watch.delivering(1_000)
    t0 = time.perf_counter()
    assert s.engine.abandon("epm was closed") is True
    assert s.sim.wait_until(lambda sim: bool(sim.faults & Fault.ESTOP), 2)
    assert s.receipts_after(t0, MsgType.ESTOP)
    assert s.store.get_session(s.engine.session_id).outcome == "interrupted"
    assert s.events("estop")[0].data["source"] == "quit"
    (row,) = s.store.steps(s.engine.session_id)
    assert row.outcome == "interrupted" and row.delivered_ms >= 1_000


def test_quitting_without_a_link_records_the_session_interrupted(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("one-zone.yaml", speed=20)
    s.watch.delivering(1_000)
    s.sim.inject("disconnect", duration_s=None)
    s.watch.phase(Phase.LINK_LOST)
    assert s.engine.abandon("epm was closed") is True
    session = s.store.get_session(s.engine.session_id)
    assert session.outcome == "interrupted" and session.outcome_reason == "epm was closed"


def test_quitting_after_the_session_ended_changes_nothing(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=300)
    s.watch.finished(timeout=30)
    assert s.engine.abandon("epm was closed") is True
    assert s.store.get_session(s.engine.session_id).outcome == "completed"
