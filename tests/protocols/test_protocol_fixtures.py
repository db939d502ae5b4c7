"""One bad fixture per rule of the format: exact code, severity, line, column and path."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from protocols import LoadResult
from protocols import load_protocol as _load_protocol

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"
STEP4 = "steps → step 4 (delivery, crown)"
E, W = "error", "warning"

#: fixture -> every problem expected, as (severity, code, line, column, path).
EXPECTED: dict[str, list[tuple[str, str, int, int, str]]] = {
    # top-level fields
    "bad/wrong-format.yaml": [(E, "wrong_format", 2, 1, "format")],
    "bad/invalid-id.yaml": [(E, "invalid_id", 3, 1, "id")],
    "bad/version-zero.yaml": [(E, "out_of_range", 4, 1, "version")],
    "bad/version-not-whole.yaml": [(E, "wrong_type", 4, 1, "version")],
    "bad/title-too-long.yaml": [(E, "too_long", 5, 1, "title")],
    "bad/invalid-indication.yaml": [(E, "invalid_choice", 6, 1, "indication")],
    "bad/invalid-status.yaml": [(E, "invalid_choice", 7, 1, "status")],
    "bad/approval-missing.yaml": [(E, "approval_missing", 2, 1, "")],
    "bad/approval-not-allowed.yaml": [
        (E, "approval_not_allowed", 8, 1, "approved_by"),
        (E, "approval_not_allowed", 9, 1, "approved_on"),
    ],
    "bad/approved-on-not-a-date.yaml": [(E, "invalid_date", 9, 1, "approved_on")],
    "bad/invalid-handpiece.yaml": [(E, "invalid_choice", 10, 1, "handpiece")],
    "bad/unknown-field.yaml": [
        (E, "missing_field", 2, 1, ""),
        (E, "unknown_field", 10, 1, ""),
    ],
    "bad/serum-name-missing.yaml": [(E, "missing_field", 11, 1, "serum")],
    "bad/ingredient-not-text.yaml": [(E, "wrong_type", 13, 25, "serum → ingredients → item 2")],
    "bad/course-sessions-out-of-range.yaml": [(E, "out_of_range", 15, 3, "course → sessions")],
    "bad/course-interval-out-of-range.yaml": [(E, "out_of_range", 16, 3, "course → interval_days")],
    "bad/course-maintenance-out-of-range.yaml": [
        (E, "out_of_range", 17, 3, "course → maintenance_interval_days")
    ],
    "bad/course-sessions-warning.yaml": [(W, "course_sessions", 15, 3, "course → sessions")],
    "bad/steps-empty.yaml": [(E, "too_few", 18, 1, "steps")],
    "bad/steps-too-many.yaml": [(E, "too_many", 18, 1, "steps")],
    "bad/no-delivery-step.yaml": [(E, "no_delivery_step", 18, 1, "steps")],
    "bad/aftercare-empty.yaml": [(E, "too_few", 58, 1, "aftercare")],
    "bad/contraindication-not-text.yaml": [(E, "wrong_type", 63, 33, "contraindications → item 2")],
    "bad/notes-empty.yaml": [(E, "missing_value", 63, 1, "notes")],
    # manual steps
    "bad/manual-title-missing.yaml": [(E, "missing_field", 19, 5, "steps → step 1 (manual)")],
    "bad/manual-duration-out-of-range.yaml": [
        (E, "out_of_range", 21, 5, "steps → step 1 (manual) → duration_s")
    ],
    "bad/manual-step-delivery-field.yaml": [(E, "unknown_field", 21, 5, "steps → step 1 (manual)")],
    "bad/invalid-step-kind.yaml": [(E, "invalid_choice", 19, 5, "steps → step 1 → kind")],
    # delivery steps: single fields
    "bad/missing-field.yaml": [(E, "missing_field", 46, 5, "steps → step 4 (delivery)")],
    "bad/unknown-step-field.yaml": [
        (E, "missing_field", 46, 5, STEP4),
        (E, "unknown_field", 52, 5, STEP4),
    ],
    "bad/invalid-zone.yaml": [
        (E, "invalid_choice", 47, 5, "steps → step 4 (delivery, crwn) → zone")
    ],
    "bad/delivery-duration-out-of-range.yaml": [
        (E, "out_of_range", 48, 5, f"{STEP4} → duration_s")
    ],
    "bad/invalid-waveform.yaml": [(E, "invalid_choice", 49, 5, f"{STEP4} → waveform")],
    "bad/amplitude-below-min.yaml": [(E, "out_of_range", 50, 5, f"{STEP4} → amplitude_v")],
    "bad/amplitude-max-out-of-range.yaml": [
        (E, "out_of_range", 51, 5, f"{STEP4} → amplitude_max_v")
    ],
    "bad/pulse-width-out-of-range.yaml": [(E, "out_of_range", 52, 5, f"{STEP4} → pulse_width_us")],
    "bad/frequency-out-of-range.yaml": [(E, "out_of_range", 53, 5, f"{STEP4} → frequency_hz")],
    "bad/burst-on-out-of-range.yaml": [(E, "out_of_range", 54, 13, f"{STEP4} → burst → on_ms")],
    "bad/burst-off-out-of-range.yaml": [(E, "out_of_range", 54, 25, f"{STEP4} → burst → off_ms")],
    "bad/current-limit-just-below.yaml": [
        (E, "out_of_range", 57, 5, f"{STEP4} → current_limit_ma")
    ],
    "bad/ramp-up-out-of-range.yaml": [(E, "out_of_range", 55, 5, f"{STEP4} → ramp_up_s")],
    "bad/ramp-down-out-of-range.yaml": [(E, "out_of_range", 56, 5, f"{STEP4} → ramp_down_s")],
    "bad/current-limit-out-of-range.yaml": [
        (E, "out_of_range", 57, 5, f"{STEP4} → current_limit_ma")
    ],
    # delivery steps: cross-field and derived rules
    "bad/polarity-required.yaml": [(E, "polarity_required", 46, 5, STEP4)],
    "bad/polarity-not-allowed.yaml": [(E, "polarity_not_allowed", 50, 5, f"{STEP4} → polarity")],
    "bad/polarity-needs-burst.yaml": [(E, "polarity_needs_burst", 54, 5, f"{STEP4} → polarity")],
    "bad/amplitude-above-max.yaml": [(E, "amplitude_above_max", 50, 5, f"{STEP4} → amplitude_v")],
    "bad/amplitude-high.yaml": [(W, "amplitude_high", 51, 5, f"{STEP4} → amplitude_max_v")],
    "bad/burst-too-short.yaml": [(E, "burst_too_short", 54, 13, f"{STEP4} → burst → on_ms")],
    "bad/duty-cycle.yaml": [(E, "duty_cycle", 52, 5, f"{STEP4} → pulse_width_us")],
    "bad/current-density.yaml": [(E, "current_density", 57, 5, f"{STEP4} → current_limit_ma")],
    "bad/net-dc.yaml": [(E, "net_dc", 57, 5, f"{STEP4} → current_limit_ma")],
    "bad/ramp-too-long.yaml": [(E, "ramp_too_long", 55, 5, f"{STEP4} → ramp_up_s")],
    "bad/ramp-up-short.yaml": [(W, "ramp_up_short", 55, 5, f"{STEP4} → ramp_up_s")],
    "bad/device-rounding.yaml": [(E, "device_rounding", 46, 5, STEP4)],
    # whole protocol
    "bad/total-delivery-time.yaml": [
        (E, "total_delivery_time", 18, 1, "steps"),
        (W, "session_time", 18, 1, "steps"),
    ],
    "bad/session-time-short.yaml": [(W, "session_time", 18, 1, "steps")],
    "bad/session-time-long.yaml": [(W, "session_time", 18, 1, "steps")],
    # the file itself
    "syntax/bad-indentation.yaml": [(E, "yaml_syntax", 16, 17, "")],
    "syntax/tab.yaml": [(E, "yaml_syntax", 24, 1, "")],
    "syntax/unclosed-quote.yaml": [(E, "yaml_syntax", 5, 8, "")],
    "syntax/unclosed-flow-mapping.yaml": [(E, "yaml_syntax", 30, 12, "")],
    "syntax/multiple-documents.yaml": [(E, "yaml_syntax", 63, 1, "")],
    "syntax/duplicate-key.yaml": [(E, "duplicate_key", 53, 5, "")],
    "syntax/tag.yaml": [(E, "yaml_tag", 4, 10, "")],
    "syntax/anchor.yaml": [(E, "yaml_anchor", 30, 12, ""), (E, "yaml_alias", 42, 12, "")],
    "syntax/yaml-1-1.yaml": [(E, "yaml_version", 1, 1, "")],
    "syntax/key-not-text.yaml": [(E, "key_not_text", 63, 1, "")],
    "syntax/not-a-mapping-list.yaml": [(E, "not_a_mapping", 1, 1, "")],
    "syntax/not-a-mapping-scalar.yaml": [(E, "not_a_mapping", 1, 1, "")],
    "syntax/empty.yaml": [(E, "empty_file", 1, 1, "")],
    "syntax/comments-only.yaml": [(E, "empty_file", 1, 1, "")],
    "syntax/not-utf8.yaml": [(E, "not_utf8", 5, 12, "")],
    "syntax/impossible-date.yaml": [(E, "not_a_date", 9, 14, "approved_on")],
    "syntax/not-decimal.yaml": [(E, "not_decimal", 52, 21, f"{STEP4} → pulse_width_us")],
    "syntax/tab-after-colon.yaml": [(E, "yaml_syntax", 24, 16, "")],
    "syntax/too-deep.yaml": [(E, "too_deep", 63, 57, "")],
}


@functools.cache
def load_protocol(path: Path) -> LoadResult:
    """Each fixture is loaded once for all the tests that look at it (results are frozen)."""
    return _load_protocol(path)


def _found(name: str) -> list[tuple[str, str, int, int, str]]:
    result = load_protocol(DATA / name)
    return [(str(p.severity), p.code, p.line, p.column, p.path) for p in result.problems]


def test_every_fixture_is_in_the_table() -> None:
    on_disk = {
        f"{folder}/{path.name}"
        for folder in ("bad", "syntax")
        for path in (DATA / folder).glob("*.yaml")
    }
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_reports_exactly_its_problems(name: str) -> None:
    assert _found(name) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_protocol_present_exactly_when_there_is_no_error(name: str) -> None:
    result = load_protocol(DATA / name)
    has_error = any(severity == E for severity, *_ in EXPECTED[name])
    assert (result.protocol is None) == has_error
    assert result.ok == (not has_error)


@pytest.mark.parametrize("name", ["valid/base.yaml", "valid/with-bom.yaml"])
def test_valid_files_have_no_problems(name: str) -> None:
    result = load_protocol(DATA / name)
    assert result.problems == ()
    assert result.protocol is not None


def _line(name: str) -> str:
    (problem,) = [p for p in load_protocol(DATA / name).problems if p.is_error]
    return problem.format().removeprefix(str(DATA / name))


# The three examples at the end of the format document, reproduced character for character.
def test_format_doc_example_pulse_width() -> None:
    assert _line("bad/pulse-width-out-of-range.yaml") == (
        ":52:5: steps → step 4 (delivery, crown) → pulse_width_us: "
        "2500 µs is above the maximum of 2000 µs"
    )


def test_format_doc_example_current_density() -> None:
    assert _line("bad/current-density.yaml") == (
        ":57:5: steps → step 4 (delivery, crown) → current_limit_ma: "
        "9.0 mA exceeds 2 mA/cm² on scalp_roller (4.0 cm²): at most 8.0 mA"
    )


def test_format_doc_example_unknown_field() -> None:
    result = load_protocol(DATA / "bad/unknown-field.yaml")
    lines = [p.format().removeprefix(str(DATA / "bad/unknown-field.yaml")) for p in result.errors]
    assert ':10:1: unknown field "handpeice" (did you mean "handpiece"?)' in lines


MESSAGE_PARTS = {
    "bad/duty-cycle.yaml": ["duty cycle 0.8", "maximum of 0.5", "at most 1250 µs", "125 Hz"],
    "bad/net-dc.yaml": ["0.237 mA/cm²", "maximum of 0.2 mA/cm²", "at most 5.05 mA"],
    "bad/burst-too-short.yaml": ["40 ms", "20 Hz", "at least 1000 / frequency_hz = 50.0 ms"],
    "bad/ramp-too-long.yaml": ["40 s", "(60 s)", "at most 30.0 s"],
    "bad/total-delivery-time.yaml": ["100 min", "maximum of 80 min"],
    "bad/session-time-short.yaml": ["11 min", "15–30 min"],
    "bad/invalid-zone.yaml": ['"crwn"', 'did you mean "crown"?', "patch"],
    "bad/missing-field.yaml": ['"zone" is missing', "crown"],
    "bad/amplitude-below-min.yaml": ["0 V is below the minimum of 0.1 V"],
    "bad/course-sessions-out-of-range.yaml": ["13 sessions is above the maximum of 12 sessions"],
    "bad/manual-step-delivery-field.yaml": ["a manual step has no zone"],
    "bad/approval-missing.yaml": ['"approved_on" is required'],
    "syntax/duplicate-key.yaml": ['"pulse_width_us"', "first on line 52"],
    "syntax/tab.yaml": ["tab", "spaces"],
    "syntax/unclosed-quote.yaml": ["quote", "never closed"],
    "syntax/tag.yaml": ['"!!int"'],
    "syntax/not-utf8.yaml": ["UTF-8", "byte 0xE9"],
    "syntax/impossible-date.yaml": ["2026-02-29 is not a date: February 2026 has 28 days"],
    "syntax/not-decimal.yaml": ["0x1F4 is not a plain decimal number: write 500"],
    "syntax/tab-after-colon.yaml": ['a tab character after the ":"', "use a space"],
    "syntax/too-deep.yaml": ["more than 50 levels"],
    "bad/current-limit-just-below.yaml": ["0.4999999 mA is below the minimum of 0.5 mA"],
}


@pytest.mark.parametrize("name", sorted(MESSAGE_PARTS))
def test_messages_give_value_limit_and_unit(name: str) -> None:
    text = " ".join(p.message for p in load_protocol(DATA / name).problems)
    for part in MESSAGE_PARTS[name]:
        assert part in text
