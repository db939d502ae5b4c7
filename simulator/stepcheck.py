"""The value checks of CONFIGURE_STEP, in the order of interface document §4 check 5.

Each field's own range first, in field order, then the cross-field rules in the document's
order. The result is the NAK ``detail`` (the field number) of the first rule that fails, or 0.
Integer arithmetic throughout so no rule flips on a rounding error at its boundary.
"""

from __future__ import annotations

from collections.abc import Callable

from controller.wire import ConfigureStep, Waveform
from simulator.capabilities import Capabilities

#: One pulse's energy into 500 Ω may not exceed 300 mJ (IEC 60601-2-10). With amplitude in
#: 0.1 V and pulse width in µs: (dv/10)² / 500 × pw·1e-6 × phases ≤ 0.3
#: ⇔ dv² × pw × phases ≤ 0.3 × 500 × 100 × 1e6.
_ENERGY_LIMIT = 15_000_000_000


def _in(lo: int, hi: int) -> Callable[[int], bool]:
    return lambda v: lo <= v <= hi


def _zero_or(lo: int, hi: int) -> Callable[[int], bool]:
    return lambda v: v == 0 or lo <= v <= hi


def _own_ranges(caps: Capabilities) -> list[tuple[int, str, Callable[[int], bool]]]:
    """(field number, field name, accepts) for fields 1..14 in order."""

    def waveform_ok(v: int) -> bool:
        return v in (Waveform.MONO_SQUARE, Waveform.BI_SQUARE) and bool(
            caps.waveforms & (1 << (v - 1))
        )

    return [
        (1, "step_id", lambda v: True),
        (2, "waveform", waveform_ok),
        (3, "polarity", _in(0, 3)),
        (4, "amplitude_dv", _in(1, caps.max_amplitude_dv)),
        (5, "amplitude_max_dv", _in(1, caps.max_amplitude_dv)),
        (6, "pulse_width_us", _in(caps.pulse_width_min_us, caps.pulse_width_max_us)),
        (7, "frequency_hz", _in(caps.frequency_min_hz, caps.frequency_max_hz)),
        (8, "burst_on_ms", _zero_or(10, 2000)),
        (9, "burst_off_ms", _zero_or(10, 5000)),
        (10, "ramp_up_ms", _in(0, 60_000)),
        (11, "ramp_down_ms", _in(0, 10_000)),
        (12, "current_limit_ua", _in(500, caps.max_current_ua)),
        (13, "duration_ms", _in(1, caps.max_step_ms)),
        (14, "handpiece", _in(1, 3)),
    ]


def check_configure_step(step: ConfigureStep, caps: Capabilities) -> int:
    """The NAK OUT_OF_RANGE detail for ``step``, or 0 when every value is acceptable."""
    for number, name, accepts in _own_ranges(caps):
        if not accepts(getattr(step, name)):
            return number
    phases = 2 if step.waveform == Waveform.BI_SQUARE else 1
    bursting = step.burst_on_ms > 0
    if step.amplitude_dv > step.amplitude_max_dv:
        return 4
    if step.waveform == Waveform.BI_SQUARE and step.polarity != 0:
        return 3
    if step.polarity == 3 and not bursting:
        return 3
    if (step.burst_off_ms == 0) != (step.burst_on_ms == 0):
        return 9
    if bursting and step.burst_on_ms * step.frequency_hz < 1000:
        return 8
    if step.pulse_width_us * step.frequency_hz * phases > 500_000:
        return 6
    if step.amplitude_max_dv**2 * step.pulse_width_us * phases > _ENERGY_LIMIT:
        return 5
    return 0
