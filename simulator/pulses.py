"""Pulse-train arithmetic: current through the skin model, burst timing, the r.m.s. window.

Closed forms rather than sampling single pulses: a 5 kHz train sampled per pulse would cost the
runner far more than its 1 ms tick, and the closed forms are exact for the circuit we model.
"""

from __future__ import annotations

import math

#: Current regulation and the OVERCURRENT monitor look at the r.m.s. over this window (§5, §6).
RMS_WINDOW_MS = 100


def pulse_square_charge(
    r_series: float, r_parallel: float, c_farad: float, width_s: float
) -> float:
    """∫ i² dt over one square phase of 1 V into ``R_s + (R_p ‖ C)`` (A²·s per V²).

    The capacitor starts discharged (pulse periods are long against ``τ``): the current steps to
    ``1/R_s`` and settles to ``1/(R_s + R_p)`` with ``τ = C · (R_s ‖ R_p)``.
    """
    r_total = r_series + r_parallel
    i_end = 1.0 / r_total
    if c_farad <= 0.0 or r_series <= 0.0:
        return i_end * i_end * width_s
    di = 1.0 / r_series - i_end
    tau = c_farad * r_series * r_parallel / r_total
    x = width_s / tau
    return (
        i_end * i_end * width_s
        + 2.0 * i_end * di * tau * (1.0 - math.exp(-x))
        + di * di * tau / 2.0 * (1.0 - math.exp(-2.0 * x))
    )


def burst_on_time(start_ms: float, end_ms: float, on_ms: int, off_ms: int) -> float:
    """Milliseconds of ``[start, end)`` spent in a burst (pattern starts ``on`` at 0).

    ``on_ms == 0`` means continuous pulsing.
    """
    if on_ms <= 0:
        return end_ms - start_ms
    period = on_ms + off_ms

    def cumulative(t: float) -> float:
        cycles, phase = divmod(t, period)
        return cycles * on_ms + min(phase, on_ms)

    return cumulative(end_ms) - cumulative(start_ms)


def worst_window_on_fraction(on_ms: int, off_ms: int, window_ms: int = RMS_WINDOW_MS) -> float:
    """The largest share of any ``window_ms`` window that a burst pattern can spend pulsing."""
    if on_ms <= 0 or on_ms >= window_ms:
        return 1.0
    period = on_ms + off_ms
    whole, rest = divmod(window_ms, period)
    return (whole * on_ms + min(on_ms, rest)) / window_ms


def pulse_duty(width_us: int, frequency_hz: int, phases: int) -> float:
    """Share of the time a pulse phase is on while pulsing (≤ 0.5 by the duty-cycle rule)."""
    return width_us * 1e-6 * frequency_hz * phases
