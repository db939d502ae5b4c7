"""The technician's session view shows corrections beside the recorded value and marks
estimated times as estimated."""

from __future__ import annotations

import dataclasses

from controller.records import SessionRecord, StepRecord
from controller.ui.technician.session_view import session_fields, step_lines

SESSION = SessionRecord(
    1, "C-1", None, "aga", 1, "ab" * 32, "Title", "Serum", "LOT-1", "Dana", "EPM-1",
    "EPM1-1", "1.0", 1, "/dev/x", False, {}, ["crown"], "2026-03-02T10:00:00.000000+00:00",
    "2026-03-02T12:00:00.000000+00:00", "interrupted", "epm stopped", "",
)  # fmt: skip


def test_a_correction_is_shown_beside_the_recorded_lot() -> None:
    amended = dataclasses.replace(
        SESSION,
        amendments=(
            {
                "field": "serum_lot",
                "value": "LOT-2",
                "original": "LOT-1",
                "by": "Sam",
                "reason": "typo",
                "at": "2026-03-03T10:00:00.000000+00:00",
            },
        ),
    )
    serum = dict(session_fields(amended))["Serum"]
    assert "lot LOT-1" in serum and "corrected to LOT-2 by Sam" in serum and "typo" in serum
    assert "corrected" not in dict(session_fields(SESSION))["Serum"]


def test_estimated_times_say_so() -> None:
    session = dataclasses.replace(SESSION, last_known_at="2026-03-02T10:30:00.000000+00:00")
    fields = dict(session_fields(session))
    assert fields["Last known"].endswith("(estimated)")
    assert "Last known" not in dict(session_fields(SESSION))
    step = StepRecord(
        1, 1, 2, 1, "delivery", "crown", 600_000, 3_990, None, None, [], 0, 0, False, None,
        "interrupted", True,
    )  # fmt: skip
    (line,) = step_lines([step])
    assert line.delivered.endswith("(estimated)")
    (plain,) = step_lines([dataclasses.replace(step, delivered_estimated=False)])
    assert "estimated" not in plain.delivered
