"""Alarm manager: priorities, latching in both orders, non-latching clear, re-raise, ordering."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from controller.session.alarms import (
    ALARM_SPECS,
    AlarmCode,
    AlarmManager,
    ChangeKind,
    Priority,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "alarms.md"

HIGH = AlarmCode.DEVICE_FAULT  # latching
MEDIUM_LATCHING = AlarmCode.TELEMETRY_STALE
LOW = AlarmCode.CONTACT_MARGINAL  # non-latching


def kinds(changes):
    return [c.kind for c in changes]


# --- priorities and codes ------------------------------------------------------------------


def test_codes_are_exactly_the_specified_ones_with_their_priorities():
    expected = {
        "device_fault": Priority.HIGH,
        "link_lost": Priority.HIGH,
        "device_restarted": Priority.HIGH,
        "outcome_unknown": Priority.HIGH,
        "output_mismatch": Priority.HIGH,
        "contact_lost": Priority.MEDIUM,
        "telemetry_stale": Priority.MEDIUM,
        "link_degraded": Priority.MEDIUM,
        "contact_marginal": Priority.LOW,
        "amplitude_limited": Priority.LOW,
        "unit_changed": Priority.HIGH,
    }
    assert {c.value for c in AlarmCode} == set(expected)
    assert {c.value: ALARM_SPECS[c].priority for c in AlarmCode} == expected


def test_high_alarms_latch_and_low_alarms_do_not():
    for code, spec in ALARM_SPECS.items():
        if spec.priority is Priority.HIGH:
            assert spec.latching, code
        if spec.priority is Priority.LOW:
            assert not spec.latching, code


def test_priority_styles_follow_iec_60601_1_8():
    assert Priority.HIGH.colour == "red"
    assert Priority.MEDIUM.colour == "yellow"
    assert Priority.LOW.colour in ("cyan", "yellow")
    low, high = Priority.HIGH.style.flash_range_hz
    assert (low, high) == (1.4, 2.8) and low <= Priority.HIGH.flash_hz <= high
    low, high = Priority.MEDIUM.style.flash_range_hz
    assert (low, high) == (0.4, 0.8) and low <= Priority.MEDIUM.flash_hz <= high
    assert Priority.LOW.flash_hz == 0
    assert Priority.HIGH.rank < Priority.MEDIUM.rank < Priority.LOW.rank


def test_every_default_message_says_what_to_do():
    for code, spec in ALARM_SPECS.items():
        assert len(spec.message) > 60, code
        assert spec.title, code


def test_docs_table_matches_the_specs():
    rows = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `([a-z_]+)` \| (high|medium|low) \| (yes|no) \|", line)
        if m:
            rows[m.group(1)] = (m.group(2), m.group(3) == "yes")
    assert rows == {c.value: (s.priority.value, s.latching) for c, s in ALARM_SPECS.items()}


# --- raising -------------------------------------------------------------------------------


def test_raise_creates_an_alarm_with_spec_defaults():
    m = AlarmManager()
    changes = m.set_condition(HIGH, True, 5.0)
    assert kinds(changes) == [ChangeKind.RAISED]
    alarm = changes[0].alarm
    assert alarm.code is HIGH
    assert alarm.priority is Priority.HIGH
    assert alarm.message == ALARM_SPECS[HIGH].message
    assert alarm.raised_at == 5.0
    assert alarm.condition_active and not alarm.acknowledged
    assert changes[0].at == 5.0 and changes[0].reason
    assert m.get(HIGH) == alarm


def test_raise_with_message_and_detail_and_alarm_is_frozen():
    m = AlarmManager()
    detail = {"faults": ["OVERTEMP"]}
    (change,) = m.set_condition(HIGH, True, 1.0, "hot handpiece", detail)
    detail["faults"] = ["changed later"]  # the alarm keeps its own copy
    assert change.alarm.message == "hot handpiece"
    assert change.alarm.detail == {"faults": ["OVERTEMP"]}
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.alarm.message = "x"  # type: ignore[misc]


def test_repeated_active_condition_changes_nothing():
    m = AlarmManager()
    m.set_condition(HIGH, True, 1.0, "a", {"x": 1})
    assert m.set_condition(HIGH, True, 2.0) == []
    assert m.set_condition(HIGH, True, 2.0, "a", {"x": 1}) == []
    assert m.get(HIGH).raised_at == 1.0


def test_inactive_condition_for_an_alarm_not_shown_changes_nothing():
    m = AlarmManager()
    assert m.set_condition(HIGH, False, 1.0) == []
    assert m.set_condition(LOW, False, 1.0) == []
    assert m.active() == []


def test_new_message_or_detail_updates_the_same_occurrence():
    m = AlarmManager()
    (raised,) = m.set_condition(HIGH, True, 1.0, "a", {"x": 1})
    (updated,) = m.set_condition(HIGH, True, 2.0, "b", {"x": 2})
    assert updated.kind is ChangeKind.UPDATED
    assert updated.alarm.occurrence == raised.alarm.occurrence
    assert updated.alarm.raised_at == 1.0
    assert (updated.alarm.message, dict(updated.alarm.detail)) == ("b", {"x": 2})


# --- latching ------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [HIGH, MEDIUM_LATCHING])
def test_latching_ack_then_clear(code):
    m = AlarmManager()
    m.set_condition(code, True, 1.0)
    (ack,) = m.acknowledge(code, 2.0)
    assert ack.kind is ChangeKind.ACKNOWLEDGED
    assert ack.alarm.acknowledged and ack.alarm.acknowledged_at == 2.0
    assert m.is_shown(code), "acknowledged while present: still shown"
    assert not m.is_latched(code)
    (cleared,) = m.set_condition(code, False, 3.0)
    assert cleared.kind is ChangeKind.CLEARED
    assert cleared.alarm.condition_gone_at == 3.0
    assert not m.is_shown(code)


@pytest.mark.parametrize("code", [HIGH, MEDIUM_LATCHING])
def test_latching_clear_then_ack(code):
    m = AlarmManager()
    m.set_condition(code, True, 1.0)
    (resolved,) = m.set_condition(code, False, 2.0)
    assert resolved.kind is ChangeKind.RESOLVED
    assert not resolved.alarm.condition_active
    assert resolved.alarm.condition_gone_at == 2.0
    assert m.is_shown(code) and m.is_latched(code)
    assert m.set_condition(code, False, 2.5) == []
    (cleared,) = m.acknowledge(code, 3.0)
    assert cleared.kind is ChangeKind.CLEARED
    assert cleared.alarm.acknowledged and cleared.alarm.acknowledged_at == 3.0
    assert not m.is_shown(code) and not m.is_latched(code)


def test_condition_returning_before_ack_continues_the_occurrence():
    m = AlarmManager()
    (raised,) = m.set_condition(HIGH, True, 1.0)
    m.set_condition(HIGH, False, 2.0)
    (back,) = m.set_condition(HIGH, True, 3.0)
    assert back.kind is ChangeKind.UPDATED
    assert back.alarm.occurrence == raised.alarm.occurrence
    assert back.alarm.condition_active and back.alarm.condition_gone_at is None
    assert not m.is_latched(HIGH)


def test_non_latching_clears_as_soon_as_condition_goes():
    m = AlarmManager()
    m.set_condition(LOW, True, 1.0)
    assert not m.get(LOW).latching
    (cleared,) = m.set_condition(LOW, False, 1.5)
    assert cleared.kind is ChangeKind.CLEARED
    assert not m.is_shown(LOW)


def test_non_latching_ack_silences_but_stays_while_present():
    m = AlarmManager()
    m.set_condition(LOW, True, 1.0)
    assert kinds(m.acknowledge(LOW, 2.0)) == [ChangeKind.ACKNOWLEDGED]
    assert m.get(LOW).acknowledged and m.is_shown(LOW)
    assert kinds(m.set_condition(LOW, False, 3.0)) == [ChangeKind.CLEARED]


def test_reraise_after_clear_is_a_new_occurrence():
    m = AlarmManager()
    (first,) = m.set_condition(HIGH, True, 1.0)
    m.acknowledge(HIGH, 2.0)
    m.set_condition(HIGH, False, 3.0)
    (second,) = m.set_condition(HIGH, True, 4.0)
    assert second.kind is ChangeKind.RAISED
    assert second.alarm.occurrence > first.alarm.occurrence
    assert second.alarm.raised_at == 4.0
    assert not second.alarm.acknowledged


def test_renew_withdraws_the_acknowledgement():
    m = AlarmManager()
    m.set_condition(HIGH, True, 1.0, "one fault")
    m.acknowledge(HIGH, 2.0)
    (renewed,) = m.set_condition(HIGH, True, 3.0, "two faults", renew=True)
    assert renewed.kind is ChangeKind.UPDATED
    assert not renewed.alarm.acknowledged and renewed.alarm.acknowledged_at is None
    assert renewed.alarm.message == "two faults"


def test_renew_without_news_on_unacknowledged_alarm_changes_nothing():
    m = AlarmManager()
    m.set_condition(HIGH, True, 1.0, "a")
    assert m.set_condition(HIGH, True, 2.0, "a", renew=True) == []


# --- acknowledge ---------------------------------------------------------------------------


def test_acknowledge_all():
    m = AlarmManager()
    m.set_condition(HIGH, True, 1.0)
    m.set_condition(AlarmCode.LINK_LOST, True, 1.1)
    m.set_condition(AlarmCode.LINK_LOST, False, 1.2)  # resolved, waits for the ack
    m.set_condition(LOW, True, 1.3)
    changes = m.acknowledge(None, 2.0)
    by_code = {c.code: c.kind for c in changes}
    assert by_code == {
        HIGH: ChangeKind.ACKNOWLEDGED,
        AlarmCode.LINK_LOST: ChangeKind.CLEARED,
        LOW: ChangeKind.ACKNOWLEDGED,
    }
    assert {a.code for a in m.active()} == {HIGH, LOW}
    assert m.acknowledge(None, 3.0) == [], "already acknowledged: nothing new"


def test_acknowledge_an_alarm_not_shown_changes_nothing():
    m = AlarmManager()
    assert m.acknowledge(HIGH, 1.0) == []


# --- ordering ------------------------------------------------------------------------------


def test_active_sorted_by_priority_then_time_and_highest():
    m = AlarmManager()
    assert m.highest() is None
    m.set_condition(AlarmCode.AMPLITUDE_LIMITED, True, 1.0)
    m.set_condition(AlarmCode.TELEMETRY_STALE, True, 2.0)
    m.set_condition(AlarmCode.LINK_LOST, True, 4.0)
    m.set_condition(AlarmCode.DEVICE_FAULT, True, 3.0)
    m.set_condition(AlarmCode.CONTACT_MARGINAL, True, 0.5)
    order = [a.code for a in m.active()]
    assert order == [
        AlarmCode.DEVICE_FAULT,
        AlarmCode.LINK_LOST,
        AlarmCode.TELEMETRY_STALE,
        AlarmCode.CONTACT_MARGINAL,
        AlarmCode.AMPLITUDE_LIMITED,
    ]
    assert m.highest().code is AlarmCode.DEVICE_FAULT


def test_codes_accept_their_string_values():
    m = AlarmManager()
    (change,) = m.set_condition("link_lost", True, 1.0)  # type: ignore[arg-type]
    assert change.code is AlarmCode.LINK_LOST
    assert m.is_shown("link_lost")  # type: ignore[arg-type]
