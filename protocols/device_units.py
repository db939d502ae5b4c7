"""Conversion of a delivery step to the device's CONFIGURE_STEP values (integers).

The device takes 0.1 V, 1 µs, 1 Hz, 1 ms and 1 µA units. Values are rounded to the nearest
unit, halves away from zero, computed in decimal from the value as written so that ``40.05 V``
becomes 401, not 400 (binary floating point holds 40.05 as 40.04999…).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.enums import Handpiece, Polarity, Waveform
from protocols.models import DeliveryStep
from protocols.units import to_units

WAVEFORM_CODE: dict[Waveform, int] = {
    Waveform.MONOPHASIC_SQUARE: 1,
    Waveform.BIPHASIC_SQUARE: 2,
}
POLARITY_CODE: dict[Polarity, int] = {
    Polarity.POSITIVE: 0,
    Polarity.NEGATIVE: 1,
    Polarity.ALTERNATE_PULSE: 2,
    Polarity.ALTERNATE_BURST: 3,
}
HANDPIECE_CODE: dict[Handpiece, int] = {
    Handpiece.SCALP_ROLLER: 1,
    Handpiece.FLAT_PROBE: 2,
    Handpiece.COMB: 3,
}


@dataclass(frozen=True)
class DeviceStepValues:
    """CONFIGURE_STEP fields, named and ordered as in the device interface."""

    step_id: int
    waveform: int
    polarity: int
    amplitude_dv: int
    amplitude_max_dv: int
    pulse_width_us: int
    frequency_hz: int
    burst_on_ms: int
    burst_off_ms: int
    ramp_up_ms: int
    ramp_down_ms: int
    current_limit_ua: int
    duration_ms: int
    handpiece: int


def to_device_step(
    step: DeliveryStep, handpiece: Handpiece | str, step_id: int
) -> DeviceStepValues:
    """The device values of ``step`` run with ``handpiece``; ``step_id`` is echoed back."""
    if not 0 <= step_id <= 0xFFFF:
        raise ValueError(f"step_id {step_id} does not fit the device's 16-bit field")
    polarity = 0 if step.polarity is None else POLARITY_CODE[step.polarity]
    if step.waveform is Waveform.BIPHASIC_SQUARE:
        polarity = 0
    return DeviceStepValues(
        step_id=step_id,
        waveform=WAVEFORM_CODE[step.waveform],
        polarity=polarity,
        amplitude_dv=to_units(step.amplitude_v, 10),
        amplitude_max_dv=to_units(step.amplitude_max_v, 10),
        pulse_width_us=to_units(step.pulse_width_us, 1),
        frequency_hz=to_units(step.frequency_hz, 1),
        burst_on_ms=to_units(step.burst.on_ms, 1) if step.burst else 0,
        burst_off_ms=to_units(step.burst.off_ms, 1) if step.burst else 0,
        ramp_up_ms=to_units(step.ramp_up_s, 1000),
        ramp_down_ms=to_units(step.ramp_down_s, 1000),
        current_limit_ua=to_units(step.current_limit_ma, 1000),
        duration_ms=to_units(step.duration_s, 1000),
        handpiece=HANDPIECE_CODE[Handpiece(handpiece)],
    )
