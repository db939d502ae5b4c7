"""A delivery step as the device's CONFIGURE_STEP values."""

from __future__ import annotations

import dataclasses

import pytest

from controller.wire.messages import ConfigureStep
from protocols import DeliveryStep, DeviceStepValues, Handpiece, to_device_step
from protocols.units import to_units


def _step(**changes: object) -> DeliveryStep:
    data: dict[str, object] = {
        "kind": "delivery",
        "zone": "crown",
        "duration_s": 300,
        "waveform": "biphasic_square",
        "amplitude_v": 40,
        "amplitude_max_v": 60,
        "pulse_width_us": 500,
        "frequency_hz": 50,
        "burst": {"on_ms": 500, "off_ms": 500},
        "ramp_up_s": 10,
        "ramp_down_s": 2,
        "current_limit_ma": 6.0,
    }
    data.update(changes)
    return DeliveryStep.model_validate({k: v for k, v in data.items() if v is not None})


def test_field_names_and_order_match_the_wire_message() -> None:
    names = [f.name for f in dataclasses.fields(DeviceStepValues)]
    assert names == list(ConfigureStep._fields)


def test_plain_step() -> None:
    values = to_device_step(_step(), Handpiece.SCALP_ROLLER, 7)
    assert values == DeviceStepValues(
        step_id=7,
        waveform=2,
        polarity=0,
        amplitude_dv=400,
        amplitude_max_dv=600,
        pulse_width_us=500,
        frequency_hz=50,
        burst_on_ms=500,
        burst_off_ms=500,
        ramp_up_ms=10000,
        ramp_down_ms=2000,
        current_limit_ua=6000,
        duration_ms=300000,
        handpiece=1,
    )
    assert all(isinstance(v, int) for v in dataclasses.astuple(values))


@pytest.mark.parametrize(
    ("value", "per_unit", "expected"),
    [
        (40.05, 10, 401),  # 40.05 is 40.04999… in binary: rounded from the written value
        (40.04, 10, 400),
        (0.15, 10, 2),
        (0.1, 10, 1),
        (500.5, 1, 501),
        (500.49, 1, 500),
        (2.3456, 1000, 2346),
        (0.0005, 1000, 1),
        (10, 1000, 10000),
        (1.4, 1, 1),
    ],
)
def test_rounding_to_nearest_unit_halves_up(value: float, per_unit: int, expected: int) -> None:
    assert to_units(value, per_unit) == expected


def test_rounding_applies_to_every_field() -> None:
    step = _step(
        amplitude_v=40.05,
        amplitude_max_v=60.04,
        pulse_width_us=499.5,
        frequency_hz=49.5,
        burst={"on_ms": 100.5, "off_ms": 99.4},
        ramp_up_s=2.0005,
        ramp_down_s=0.0004,
        current_limit_ma=6.0005,
        duration_s=299.9995,
    )
    values = to_device_step(step, "comb", 1)
    assert (values.amplitude_dv, values.amplitude_max_dv) == (401, 600)
    assert (values.pulse_width_us, values.frequency_hz) == (500, 50)
    assert (values.burst_on_ms, values.burst_off_ms) == (101, 99)
    assert (values.ramp_up_ms, values.ramp_down_ms) == (2001, 0)
    assert (values.current_limit_ua, values.duration_ms) == (6001, 300000)
    assert values.handpiece == 3


def test_continuous_pulsing_has_zero_burst() -> None:
    values = to_device_step(_step(burst=None), Handpiece.FLAT_PROBE, 0)
    assert (values.burst_on_ms, values.burst_off_ms, values.handpiece) == (0, 0, 2)


@pytest.mark.parametrize(
    ("polarity", "code"),
    [("positive", 0), ("negative", 1), ("alternate_pulse", 2), ("alternate_burst", 3)],
)
def test_monophasic_polarity_codes(polarity: str, code: int) -> None:
    step = _step(waveform="monophasic_square", polarity=polarity)
    values = to_device_step(step, Handpiece.SCALP_ROLLER, 1)
    assert (values.waveform, values.polarity) == (1, code)


def test_step_id_must_fit_sixteen_bits() -> None:
    assert to_device_step(_step(), Handpiece.COMB, 0xFFFF).step_id == 0xFFFF
    with pytest.raises(ValueError, match="16-bit"):
        to_device_step(_step(), Handpiece.COMB, 0x10000)
    with pytest.raises(ValueError, match="16-bit"):
        to_device_step(_step(), Handpiece.COMB, -1)
