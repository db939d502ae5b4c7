"""The controller's layer of limits: intensity clamps, and the refusal record they all share.

Why: an intensity change that the software silently altered is as dangerous as one it did not
send. Every refusal or clamp, whichever layer made it (protocol validation, these controller
checks, the device's own NAK), is a :class:`LimitRefusal` that says which limit applied and
why, so the engine can record it and the UI can show it in plain words.

Intensity is the step's peak amplitude. The practitioner moves it in whole volts (10 dV) between
1 V and the step's ``amplitude_max_v``; 0 V is not an intensity (pausing stops output). Pure
functions, integer device units (0.1 V) in and out.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Literal, Protocol

#: Lowest intensity the controller sends, 0.1 V units (1.0 V).
INTENSITY_MIN_DV = 10
#: Intensity moves in whole volts.
INTENSITY_STEP_DV = 10

Layer = Literal["protocol", "controller", "device"]


@dataclass(frozen=True)
class LimitRefusal:
    """A limit that refused or clamped a value: which layer, which limit, and why."""

    layer: Layer
    limit: str
    """Name of the limit, e.g. the protocol field it comes from (``amplitude_max_v``)."""
    value: float
    """The value that met the limit, in ``unit``."""
    allowed: str
    """What is allowed, in ``unit`` (``"1.0–60.0"``, ``"≤ 6.6"``, ``"0"``)."""
    unit: str
    message: str
    """A sentence for the practitioner: which limit and why."""

    def __str__(self) -> str:
        return self.message


class Direction(IntEnum):
    """Which way an intensity button moves."""

    UP = 1
    DOWN = -1


class HasAmplitudeMax(Protocol):
    """Anything with the step's ceiling: ``ConfigureStep``, ``DeviceStepValues``."""

    @property
    def amplitude_max_dv(self) -> int: ...


@dataclass(frozen=True)
class IntensityDecision:
    """The amplitude to send and, if a limit changed the request, that limit."""

    current_dv: int
    requested_dv: int
    value_dv: int
    """What to send with SET_AMPLITUDE (0.1 V)."""
    limit: LimitRefusal | None = None

    @property
    def clamped(self) -> bool:
        return self.limit is not None

    @property
    def changed(self) -> bool:
        """False when sending would not change the setpoint (nothing to send)."""
        return self.value_dv != self.current_dv

    @property
    def message(self) -> str:
        if self.limit is not None:
            return self.limit.message
        return f"Intensity {volts(self.value_dv)} V."


def volts(dv: int) -> str:
    """0.1 V units as a volt string with one decimal (``605`` → ``"60.5"``)."""
    sign = "-" if dv < 0 else ""
    return f"{sign}{abs(dv) // 10}.{abs(dv) % 10}"


def intensity_range(step_amplitude_max_dv: int) -> tuple[int, int]:
    """The lowest and highest intensity a step allows, in 0.1 V.

    The floor is 1 V, or the step's maximum if that is lower (a protocol may allow 0.1 V).
    """
    if step_amplitude_max_dv < 1:
        raise ValueError(
            f"amplitude_max_dv must be at least 1 (0.1 V), got {step_amplitude_max_dv}: "
            "configure the step from a validated protocol"
        )
    return min(INTENSITY_MIN_DV, step_amplitude_max_dv), step_amplitude_max_dv


def clamp_intensity(
    current_dv: int, requested_dv: int, step_amplitude_max_dv: int
) -> IntensityDecision:
    """The intensity to send for a request: on the whole-volt grid, within the step's range.

    A request inside the range is rounded to the nearest whole volt (halves up), except that
    the step's maximum itself is always allowed. A request outside is clamped to the nearest
    end, and the decision carries the limit that did it.
    """
    low, high = intensity_range(step_amplitude_max_dv)
    if requested_dv > high:
        return IntensityDecision(current_dv, requested_dv, high, _above_max(requested_dv, high))
    if requested_dv < low:
        return IntensityDecision(current_dv, requested_dv, low, _below_min(requested_dv, low))
    if requested_dv == high:
        return IntensityDecision(current_dv, requested_dv, high)
    snapped = (requested_dv + INTENSITY_STEP_DV // 2) // INTENSITY_STEP_DV * INTENSITY_STEP_DV
    return IntensityDecision(current_dv, requested_dv, min(max(snapped, low), high))


def intensity_step(
    current_dv: int, direction: Direction | int, step: HasAmplitudeMax
) -> IntensityDecision:
    """One press of the intensity up/down control: the next whole volt in that direction.

    From an off-grid value (a protocol's 40.5 V) up goes to 41 V and down to 40 V. At either
    end of the step's range the value stays, and the decision says which limit stopped it.
    """
    if direction not in (Direction.UP, Direction.DOWN):
        raise ValueError(f"direction must be +1 (up) or -1 (down), got {direction!r}")
    low, high = intensity_range(step.amplitude_max_dv)
    if direction == Direction.UP:
        target = (current_dv // INTENSITY_STEP_DV + 1) * INTENSITY_STEP_DV
        if target > high:
            return IntensityDecision(current_dv, target, high, _above_max(target, high))
    else:
        target = (current_dv - 1) // INTENSITY_STEP_DV * INTENSITY_STEP_DV
        if target < low:
            return IntensityDecision(current_dv, target, low, _below_min(target, low))
    return IntensityDecision(current_dv, target, min(max(target, low), high))


def _above_max(requested_dv: int, high: int) -> LimitRefusal:
    return LimitRefusal(
        layer="controller",
        limit="amplitude_max_v",
        value=requested_dv / 10,
        allowed=f"≤ {volts(high)}",
        unit="V",
        message=(
            f"{volts(high)} V is this step's maximum (set by its protocol); "
            f"{volts(requested_dv)} V is not allowed."
        ),
    )


def _below_min(requested_dv: int, low: int) -> LimitRefusal:
    return LimitRefusal(
        layer="controller",
        limit="intensity_min_v",
        value=requested_dv / 10,
        allowed=f"≥ {volts(low)}",
        unit="V",
        message=f"{volts(low)} V is the lowest intensity; pause to stop output.",
    )
