"""The telemetry plot's arithmetic and the session view's wording (pure functions)."""

from __future__ import annotations

from controller.records import EventRow
from controller.ui.technician.records_model import (
    delivered_and_planned,
    fmt_ms,
    parse_filter,
)
from controller.ui.technician.session_view import event_style, event_summary
from controller.ui.technician.telemetry_plot import (
    EIGHTHS,
    PLOT_HEIGHT,
    SERIES,
    band_rows,
    bucket_minmax,
    plot_series,
)


def test_buckets_keep_the_extremes_of_every_run() -> None:
    lows = [5.0] * 100
    highs = [5.0] * 100
    highs[37] = 90.0  # a one-row spike
    lows[80] = -3.0
    buckets = bucket_minmax(lows, highs, 10)
    assert len(buckets) == 10
    assert buckets[3] == (5.0, 90.0)
    assert buckets[8] == (-3.0, 5.0)
    assert all(b == (5.0, 5.0) for i, b in enumerate(buckets) if i not in (3, 8))


def test_fewer_samples_than_columns_leave_the_rest_empty() -> None:
    assert bucket_minmax([1.0, 2.0], [1.5, 2.5], 4) == [(1.0, 1.5), (2.0, 2.5), None, None]
    assert bucket_minmax([], [], 3) == [None, None, None]


def test_band_rows_fill_from_low_to_high() -> None:
    rows = band_rows([(0.0, 10.0), (0.0, 5.0), None, (0.0, 0.0)], 2, 0.0, 10.0)
    assert len(rows) == 2
    top, bottom = rows
    assert top[0] == "█" and bottom[0] == "█"  # full scale
    assert top[1] == " " and bottom[1] == "█"  # half scale: the bottom row only
    assert top[2] == " " and bottom[2] == " "  # no data
    assert top[3] == " " and bottom[3] == EIGHTHS[1]  # zero still shows as data


def test_a_band_high_above_the_scale_bottom_leaves_the_bottom_row_empty() -> None:
    top, bottom = band_rows([(8.0, 10.0)], 2, 0.0, 10.0)
    assert top == "▀" and bottom == " "  # the upper half of the top cell


def test_plot_series_labels_and_log_scale_for_impedance() -> None:
    rows = [
        {
            "amplitude_min_dv": 0,
            "amplitude_max_dv": 400,
            "current_min_ua": 0,
            "current_max_ua": 6000,
            "impedance_min_ohm": 1000,
            "impedance_max_ohm": 1_000_000,
        }
    ] * 5
    amplitude, _current, impedance = (plot_series(rows, s, 40).plain for s in SERIES)
    assert amplitude.splitlines()[0] == "Amplitude (V)  min 0.0  max 40.0"
    assert len(amplitude.splitlines()) == 1 + PLOT_HEIGHT
    assert impedance.splitlines()[0] == "Impedance (kΩ)  min 1.0  max 1,000  log scale"
    assert impedance.splitlines()[1].strip().startswith("1,000")


def test_record_formatting_helpers() -> None:
    assert fmt_ms(None) == "—"
    assert fmt_ms(61_500) == "1:01"
    assert fmt_ms(3_723_000) == "1:02:03"
    flt, problems = parse_filter(" C-1 ", "2026-03-05", "2026-03-01")
    assert flt.client == "C-1"
    assert problems == ["To 2026-03-01 is before From 2026-03-05: no session can match; swap them"]


def test_delivered_counts_every_attempt_and_plans_each_step_once() -> None:
    from controller.records import StepRecord

    def step(
        index: int, attempt: int, kind: str, planned: int, delivered: int | None
    ) -> StepRecord:
        return StepRecord(
            1,
            1,
            index,
            attempt,
            kind,
            "crown",
            planned,
            delivered,
            None,
            None,
            [],
            0,
            0,
            False,
            None,
            "completed",
        )

    steps = [
        step(1, 1, "manual", 60_000, 60_000),
        step(2, 1, "delivery", 300_000, 100_000),
        step(2, 2, "delivery", 200_000, 200_000),
        step(3, 1, "delivery", 300_000, None),
    ]
    assert delivered_and_planned(steps) == (300_000, 600_000)


def event(kind: str, data: dict[str, object]) -> EventRow:
    return EventRow(1, 1, 1, "2026-03-02T12:00:00.000000+00:00", 0, kind, data, "0" * 64, "1" * 64)


def test_event_summaries_and_alarm_colours() -> None:
    raised = event(
        "alarm_raised", {"alarm": "device_fault", "priority": "high", "message": "Fault"}
    )
    assert event_summary(raised) == "high device_fault: Fault"
    assert event_style(raised) == "bold red"
    assert event_style(event("alarm_raised", {"priority": "low"})) == "bold cyan"
    assert (
        event_summary(event("state", {"old": "place", "new": "delivering"})) == "place → delivering"
    )
    assert event_summary(event("step_start", {"index": 1, "kind": "manual"})) == "step 1 (manual)"
    assert (
        event_summary(event("session_end", {"outcome": "stopped", "reason": "r"})) == "stopped — r"
    )
    long = event("command_sent", {"values": "x" * 400})
    assert len(event_summary(long)) == 160 and event_summary(long).endswith("…")
