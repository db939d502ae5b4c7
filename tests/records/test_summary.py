"""The session's figures computed from its record alone (controller/records/summary.py): the
same numbers for the report, the FHIR export and the course report."""

from __future__ import annotations

from typing import Any

from controller.records.models import EventRow
from controller.records.summary import _dose_ma_min, alarm_lines, summarize_store
from controller.session.model import Action, Outcome, Phase
from tests.integration.helpers import EngineEnv, engine_env

__all__ = ["engine_env"]


def row(elapsed: int, current_ua: int) -> Any:
    return {
        "boot_id": 1,
        "t_first_ms": 0,
        "t_last_ms": 0,
        "n": 1,
        "state": 3,
        "step_elapsed_ms": elapsed,
        "current_ua": current_ua,
    }


def test_dose_is_current_times_the_devices_delivery_time() -> None:
    # One second of delivery at 1 mA in ten rows: 1 mA·s = 1/60 mA·min.
    rows = [row(t, 1000) for t in range(100, 1100, 100)]
    assert abs(_dose_ma_min(rows) - 1 / 60) < 1e-9
    # A HOLD (step time frozen) adds nothing, however long the rows go on.
    assert abs(_dose_ma_min([*rows, row(1000, 0), row(1000, 0)]) - 1 / 60) < 1e-9
    # Lost rows: the time between two rows still counts once (at the later row's current),
    # so the times add up to the delivered time whatever the telemetry rate.
    assert abs(_dose_ma_min([row(100, 1000), row(5000, 1000)]) - 5 / 60) < 1e-9


def test_one_line_per_alarm_occurrence_with_its_times() -> None:
    def ev(kind: str, at: str, **data: Any) -> EventRow:
        base = {"alarm": "device_fault", "priority": "high", "title": "Device fault"}
        return EventRow(0, 1, 0, at, 0, kind, {**base, "occurrence": 1, **data}, "", "")

    lines = alarm_lines(
        [
            ev("alarm_raised", "t1", message="over-current"),
            ev("alarm_updated", "t2", message="again"),
            ev("alarm_acknowledged", "t3", by="Dana"),
            ev("alarm_resolved", "t4"),
            ev("alarm_cleared", "t5"),
            ev("alarm_raised", "t6", occurrence=2),
        ]
    )
    assert [(a.raised_at, a.acknowledged_by, a.resolved_at, a.cleared_at) for a in lines] == [
        ("t1", "Dana", "t4", "t5"),
        ("t6", None, None, None),
    ]
    assert lines[0].message == "over-current" and lines[0].acknowledged_at == "t3"


def test_a_completed_session_sums_up_as_its_record_says(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, manual_speed=1000)
    snap = s.watch.finished()
    assert snap.outcome is Outcome.COMPLETED
    summary = summarize_store(s.store, s.engine.session_id)
    deliveries = summary.deliveries
    assert [z.zone for z in deliveries] == [v.zone for v in snap.steps if v.kind == "delivery"]
    assert all(z.status == "completed" for z in deliveries)
    assert summary.planned_ms == snap.session_planned_ms
    assert summary.delivered_ms == snap.session_delivered_ms
    assert summary.handpiece == "scalp_roller" and summary.electrode_area_cm2 == 4.0
    rows = s.store.telemetry_rows(s.engine.session_id)
    on = [r for r in rows if r["state"] == 3]
    low = min(r["current_ua"] for r in on) / 1000
    high = max(r["current_ua"] for r in on) / 1000
    minutes = summary.delivered_ms / 60_000
    # Never more than the highest current for the whole delivered time ...
    assert 0 <= summary.dose_ma_min <= high * minutes * 1.05
    assert low >= 0
    # ... and exactly the documented sum: each row's current over the device's delivery time
    # since the previous row of its step (on the accelerated clock a row may fall in a burst's
    # rest, so the figure itself may be small; the sum is what is checked).
    by_step: dict[int, list[Any]] = {}
    for r in rows:
        by_step.setdefault(r["step_id"], []).append(r)
    ids = {a.step_id for z in deliveries for a in z.attempts}
    expected = 0.0
    for step_id in ids:
        previous = 0
        for r in by_step.get(step_id, []):
            expected += r["current_ua"] * max(0, r["step_elapsed_ms"] - previous)
            previous = r["step_elapsed_ms"]
    assert abs(summary.dose_ma_min - expected / 1000 / 60_000) < 1e-9
    assert summary.dose_ma_min_per_cm2 == summary.dose_ma_min / 4.0
    for zone in deliveries:
        assert zone.peak_output_v is not None and zone.peak_current_ma is not None
        assert zone.peak_current_ma <= high + 1e-9


def test_a_zone_that_never_started_is_planned_and_not_started(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=50, manual_speed=1000)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 2_000)
    s.engine.request(Action.STOP)
    snap = s.watch.finished()
    summary = summarize_store(s.store, s.engine.session_id)
    statuses = {z.zone: z.status for z in summary.deliveries}
    assert "not started" in statuses.values() and "stopped" in statuses.values(), statuses
    assert summary.planned_ms == snap.session_planned_ms
    never = next(z for z in summary.deliveries if z.status == "not started")
    assert never.delivered_ms == 0 and never.dose_ma_min == 0 and never.attempts == ()


def test_a_zone_skipped_while_delivering_keeps_the_practitioners_reason(
    engine_env: EngineEnv,
) -> None:
    # Skipped mid-delivery, the reason is in the step's step_end event, not in its row.
    s = engine_env.session("two-zones.yaml", speed=50, manual_speed=1000)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 3_000)
    s.engine.request(Action.SKIP, "client felt a sting")
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.current_step.zone == "crown")
    s.engine.request(Action.END, "client had to leave")
    s.watch.finished()
    summary = summarize_store(s.store, s.engine.session_id)
    frontal = next(z for z in summary.deliveries if z.zone == "frontal")
    assert frontal.status == "skipped" and frontal.skip_reason == "client felt a sting"
    assert frontal.delivered_ms > 3_000
    crown = next(z for z in summary.deliveries if z.zone == "crown")
    assert crown.status == "stopped" and crown.skip_reason is None
