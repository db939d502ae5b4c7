"""Intensity clamps: whole-volt grid, step maximum, 1 V floor, and the reasons they give."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.session.limits import (
    INTENSITY_MIN_DV,
    Direction,
    LimitRefusal,
    clamp_intensity,
    intensity_range,
    intensity_step,
)
from controller.wire import ConfigureStep


def step(amplitude_max_dv: int) -> ConfigureStep:
    return ConfigureStep(
        step_id=1,
        waveform=2,
        polarity=0,
        amplitude_dv=min(400, amplitude_max_dv),
        amplitude_max_dv=amplitude_max_dv,
        pulse_width_us=500,
        frequency_hz=50,
        burst_on_ms=500,
        burst_off_ms=500,
        ramp_up_ms=10_000,
        ramp_down_ms=2_000,
        current_limit_ua=6_000,
        duration_ms=300_000,
        handpiece=1,
    )


# --- clamp_intensity -----------------------------------------------------------------------


def test_request_inside_range_is_sent_unclamped():
    d = clamp_intensity(400, 450, 600)
    assert (d.value_dv, d.clamped, d.limit) == (450, False, None)
    assert d.changed
    assert d.message == "Intensity 45.0 V."


def test_request_inside_range_is_rounded_to_whole_volts():
    assert clamp_intensity(400, 454, 600).value_dv == 450
    assert clamp_intensity(400, 455, 600).value_dv == 460
    assert not clamp_intensity(400, 455, 600).clamped


def test_request_above_step_maximum_is_clamped_with_reason():
    d = clamp_intensity(400, 650, 600)
    assert d.value_dv == 600
    assert d.clamped
    assert d.limit.layer == "controller"
    assert d.limit.limit == "amplitude_max_v"
    assert d.limit.value == 65.0 and d.limit.unit == "V"
    assert "60.0 V is this step's maximum (set by its protocol)" in d.message
    assert "65.0 V" in d.message


def test_request_below_one_volt_is_raised_to_one_volt_with_reason():
    for requested in (0, 5, -20):
        d = clamp_intensity(400, requested, 600)
        assert d.value_dv == INTENSITY_MIN_DV
        assert d.limit.limit == "intensity_min_v"
        assert d.message == "1.0 V is the lowest intensity; pause to stop output."


def test_off_grid_step_maximum_is_reachable_exactly():
    assert clamp_intensity(600, 605, 605).value_dv == 605
    assert not clamp_intensity(600, 605, 605).clamped
    assert clamp_intensity(600, 604, 605).value_dv == 600


def test_request_equal_to_current_is_unchanged():
    d = clamp_intensity(600, 700, 600)
    assert d.value_dv == 600 and not d.changed and d.clamped


def test_step_maximum_below_one_volt_is_its_own_floor():
    assert intensity_range(5) == (5, 5)
    d = clamp_intensity(5, 10, 5)
    assert d.value_dv == 5 and d.limit.limit == "amplitude_max_v"
    assert "0.5 V is this step's maximum" in d.message


def test_invalid_step_maximum_is_refused_with_a_clear_message():
    with pytest.raises(ValueError, match="amplitude_max_dv must be at least 1"):
        clamp_intensity(0, 10, 0)


@given(
    current=st.integers(0, 1200),
    requested=st.integers(-100, 2000),
    maximum=st.integers(1, 1200),
)
def test_clamp_always_gives_an_allowed_value(current, requested, maximum):
    low, high = intensity_range(maximum)
    d = clamp_intensity(current, requested, maximum)
    assert low <= d.value_dv <= high
    assert d.value_dv % 10 == 0 or d.value_dv in (low, high)
    assert d.clamped == (requested > high or requested < low)
    if not d.clamped:
        assert abs(d.value_dv - requested) <= 5


# --- intensity_step ------------------------------------------------------------------------


def test_step_up_and_down_by_one_volt():
    assert intensity_step(400, Direction.UP, step(600)).value_dv == 410
    assert intensity_step(400, Direction.DOWN, step(600)).value_dv == 390
    assert intensity_step(400, 1, step(600)).value_dv == 410
    assert intensity_step(400, -1, step(600)).value_dv == 390


def test_step_from_off_grid_value_goes_to_the_next_whole_volt():
    assert intensity_step(405, Direction.UP, step(600)).value_dv == 410
    assert intensity_step(405, Direction.DOWN, step(600)).value_dv == 400


def test_step_up_at_maximum_stays_with_reason():
    d = intensity_step(600, Direction.UP, step(600))
    assert d.value_dv == 600 and not d.changed
    assert d.limit.limit == "amplitude_max_v"
    assert d.message.startswith("60.0 V is this step's maximum (set by its protocol)")


def test_step_up_towards_off_grid_maximum_stops_at_it():
    d = intensity_step(600, Direction.UP, step(605))
    assert d.value_dv == 605 and d.changed and d.clamped
    assert "60.5 V is this step's maximum" in d.message


def test_step_down_at_one_volt_stays_with_reason():
    d = intensity_step(10, Direction.DOWN, step(600))
    assert d.value_dv == 10 and not d.changed
    assert d.message == "1.0 V is the lowest intensity; pause to stop output."


def test_step_with_bad_direction_is_refused():
    with pytest.raises(ValueError, match=r"direction must be \+1 \(up\) or -1 \(down\)"):
        intensity_step(400, 0, step(600))


def test_step_accepts_any_object_with_amplitude_max_dv():
    @dataclasses.dataclass(frozen=True)
    class Values:
        amplitude_max_dv: int

    assert intensity_step(590, Direction.UP, Values(600)).value_dv == 600


# --- LimitRefusal --------------------------------------------------------------------------


def test_limit_refusal_is_frozen_and_prints_its_message():
    r = LimitRefusal("device", "current_limit_ma", 12.0, "0.5–10", "mA", "too much current")
    assert str(r) == "too much current"
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.value = 1.0  # type: ignore[misc]
