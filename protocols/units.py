"""Limits of ``epm-protocol/1`` with their units, and how values and units are written.

Every number of the format lives here once: the pydantic field types, the derived rules, the
JSON Schema and the messages all read it from this module.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from pydantic import Field


def fmt(value: float) -> str:
    """A number as a technician would write it: ``2500``, ``9.0``, ``0.237``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    rounded = round(value, 3)
    if rounded == 0 and value != 0:
        return f"{value:.2g}"
    return repr(rounded)


def fmt_against(value: float, other: float) -> str:
    """``value`` as :func:`fmt` writes it, with as many more digits as it takes not to read as
    ``other`` (the limit it is compared with, or the value a limit is compared with) when the
    two differ: 0.4999999 against 0.5 is "0.4999999", not "0.5"."""
    shown = fmt(value)
    if isinstance(value, bool) or value == other or not math.isfinite(value):
        return shown
    if not math.isfinite(other) or float(shown) != float(fmt(other)):
        return shown
    for digits in range(4, 18):
        shown = f"{value:.{digits}g}"
        if float(shown) != float(f"{other:.{digits}g}"):
            break
    if "e" in shown:  # digits, not an exponent, as the technician wrote the value
        shown = repr(float(value))
    return shown


def with_unit(value: float, unit: str, against: float | None = None) -> str:
    """``value`` and its unit; ``against``: the limit it is compared with (see fmt_against)."""
    shown = fmt(value) if against is None else fmt_against(value, against)
    return f"{shown} {unit}".rstrip()


def fmt_minutes(seconds: float) -> str:
    """``1530`` → ``25 min 30 s``."""
    whole = round(seconds)
    minutes, rest = divmod(whole, 60)
    if rest == 0:
        return f"{minutes} min"
    if minutes == 0:
        return f"{rest} s"
    return f"{minutes} min {rest} s"


@dataclass(frozen=True)
class Limit:
    """An inclusive hard range of one field, in the field's unit."""

    low: float
    high: float
    unit: str

    def describe(self) -> str:
        return f"{fmt(self.low)}–{fmt(self.high)} {self.unit}".rstrip()


# --- hard ranges of single fields ---------------------------------------------------------

VERSION_MIN = 1
TITLE_MAX_CHARS = 120
ID_PATTERN = r"^[a-z][a-z0-9-]{2,63}$"
STEPS_MIN, STEPS_MAX = 1, 40

COURSE_SESSIONS = Limit(1, 12, "sessions")
COURSE_INTERVAL_DAYS = Limit(7, 60, "days")
COURSE_MAINTENANCE_DAYS = Limit(30, 365, "days")

MANUAL_DURATION_S = Limit(1, 1800, "s")
DELIVERY_DURATION_S = Limit(10, 1200, "s")
AMPLITUDE_V = Limit(0.1, 120, "V")
PULSE_WIDTH_US = Limit(50, 2000, "µs")
FREQUENCY_HZ = Limit(1, 5000, "Hz")
BURST_ON_MS = Limit(10, 2000, "ms")
BURST_OFF_MS = Limit(10, 5000, "ms")
RAMP_UP_S = Limit(0, 60, "s")
RAMP_DOWN_S = Limit(0, 10, "s")
CURRENT_LIMIT_MA = Limit(0.5, 10, "mA")

# --- derived hard limits ------------------------------------------------------------------

MAX_DUTY_CYCLE = 0.5
LOAD_OHM = 500.0
MAX_PULSE_ENERGY_MJ = 300.0
MAX_NET_DC_MA_PER_CM2 = 0.2
MAX_CURRENT_MA_PER_CM2 = 2.0
MAX_TOTAL_DELIVERY_S = 80 * 60

# --- soft limits (warnings) ---------------------------------------------------------------

AMPLITUDE_WARN_ABOVE_V = 80
RAMP_UP_WARN_BELOW_S = 2
SESSION_USUAL_S = (15 * 60, 30 * 60)
COURSE_USUAL_SESSIONS = (4, 6)


def _number(limit: Limit, description: str) -> object:
    return Field(
        strict=True,
        ge=limit.low,
        le=limit.high,
        allow_inf_nan=False,
        description=f"{description} ({limit.describe()})",
    )


def _integer(limit: Limit, description: str) -> object:
    return Field(strict=True, ge=int(limit.low), le=int(limit.high), description=description)


ManualDurationS = Annotated[float, _number(MANUAL_DURATION_S, "Timer for this manual step")]
DeliveryDurationS = Annotated[
    float,
    _number(DELIVERY_DURATION_S, "Delivered time: ramp-up counts, pauses and ramp-down do not"),
]
AmplitudeV = Annotated[
    float, _number(AMPLITUDE_V, "Starting peak amplitude, at most amplitude_max_v")
]
AmplitudeMaxV = Annotated[float, _number(AMPLITUDE_V, "Highest peak amplitude allowed in the step")]
PulseWidthUs = Annotated[float, _number(PULSE_WIDTH_US, "Width of each pulse (each phase)")]
FrequencyHz = Annotated[float, _number(FREQUENCY_HZ, "Pulse rate within a burst")]
BurstOnMs = Annotated[float, _number(BURST_ON_MS, "Pulsing time of each burst")]
BurstOffMs = Annotated[float, _number(BURST_OFF_MS, "Pause between bursts")]
RampUpS = Annotated[float, _number(RAMP_UP_S, "Rise to full amplitude at start and resume")]
RampDownS = Annotated[float, _number(RAMP_DOWN_S, "Fall to zero at the end of the step")]
CurrentLimitMa = Annotated[float, _number(CURRENT_LIMIT_MA, "Current limit, r.m.s.")]
CourseSessions = Annotated[int, _integer(COURSE_SESSIONS, "Sessions in the course (1–12)")]
CourseIntervalDays = Annotated[
    int, _integer(COURSE_INTERVAL_DAYS, "Days between sessions of the course (7–60)")
]
CourseMaintenanceDays = Annotated[
    int, _integer(COURSE_MAINTENANCE_DAYS, "Days between maintenance sessions (30–365)")
]

#: Unit of a field, from the suffix of its name (fields are named with their unit).
_SUFFIX_UNITS: tuple[tuple[str, str], ...] = (
    ("_us", "µs"),
    ("_ms", "ms"),
    ("_ma", "mA"),
    ("_hz", "Hz"),
    ("_days", "days"),
    ("_s", "s"),
    ("_v", "V"),
)

_FIELD_UNITS: dict[str, str] = {"sessions": "sessions"}


def unit_of(field: str) -> str:
    """The unit a field is written in ("" when it has none)."""
    if field in _FIELD_UNITS:
        return _FIELD_UNITS[field]
    for suffix, unit in _SUFFIX_UNITS:
        if field.endswith(suffix):
            return unit
    return ""


def to_units(value: float, per_unit: int) -> int:
    """``value`` × ``per_unit`` rounded to the nearest integer, halves away from zero.

    Computed in decimal from the value as written, so ``40.05`` V is 401 dV, not 400 (binary
    floating point holds 40.05 as 40.04999…).
    """
    scaled = Decimal(repr(value)) * per_unit
    return int(scaled.quantize(Decimal(1), rounding=ROUND_HALF_UP))
