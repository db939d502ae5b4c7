"""Cross-field, derived and whole-protocol rules of ``epm-protocol/1``.

The rules are plain functions of numbers (unit-tested directly, also outside the format's
ranges) and a checking pass over raw file data that tolerates missing and invalid fields: a
rule runs only when every value it needs is present and valid on its own, so one bad value
never hides another problem nor causes a second message about itself. The same pass checks
protocols built in code (see ``Protocol``'s model validator).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from protocols import units
from protocols.enums import HANDPIECE_AREA_CM2, Handpiece, Polarity, Status, Waveform
from protocols.problem import Severity
from protocols.units import Limit, fmt, fmt_against, fmt_minutes, to_units

Loc = tuple[str | int, ...]
E = TypeVar("E", bound=StrEnum)


@dataclass(frozen=True)
class Issue:
    """A rule broken at ``loc`` (a path of keys and list indexes into the file's data).

    ``loc`` names an existing key, or — for a missing key — the mapping that should hold it.
    """

    loc: Loc
    code: str
    message: str
    severity: Severity = Severity.ERROR
    #: The location whose path is shown, when it is not ``loc`` (an unknown key is shown at
    #: its own position under the path of the mapping that holds it).
    path_loc: Loc | None = None


# --- the formulas ---------------------------------------------------------------------------


def duty_cycle(pulse_width_us: float, frequency_hz: float, phases: int) -> float:
    """Fraction of time the output is on while pulsing."""
    return pulse_width_us * frequency_hz * phases / 1e6


def effective_duty(
    pulse_width_us: float,
    frequency_hz: float,
    phases: int,
    burst_on_ms: float | None,
    burst_off_ms: float | None,
) -> float:
    """Duty cycle weighted by the burst on-fraction ``on / (on + off)`` when bursting."""
    duty = duty_cycle(pulse_width_us, frequency_hz, phases)
    if burst_on_ms is not None and burst_off_ms is not None:
        duty *= burst_on_ms / (burst_on_ms + burst_off_ms)
    return duty


def pulse_energy_mj(
    amplitude_max_v: float, pulse_width_us: float, phases: int, load_ohm: float = units.LOAD_OHM
) -> float:
    """Energy of one pulse into ``load_ohm`` in mJ: ``V² / R × pulse width × phases``."""
    return amplitude_max_v**2 / load_ohm * pulse_width_us * 1e-6 * phases * 1000


def net_dc_density_ma_cm2(current_limit_ma: float, duty: float, area_cm2: float) -> float:
    """Average current density of a one-way (DC) pulse train: ``I_rms × √duty / area``."""
    return current_limit_ma * math.sqrt(duty) / area_cm2


def max_current_ma(area_cm2: float) -> float:
    """Highest current limit allowed on an electrode: 2 mA/cm² × area."""
    return units.MAX_CURRENT_MA_PER_CM2 * area_cm2


def min_burst_on_ms(frequency_hz: float) -> float:
    """Shortest burst that holds one whole pulse period."""
    return 1000 / frequency_hz


# --- reading raw data tolerantly ------------------------------------------------------------


class _Reader:
    """Reads values for the rules, returning ``None`` for anything missing or invalid."""

    def __init__(self, invalid: Collection[Loc]) -> None:
        self._invalid = {tuple(loc) for loc in invalid}

    def usable(self, loc: Loc) -> bool:
        return not any(loc[: len(bad)] == bad for bad in self._invalid if len(bad) <= len(loc))

    def number(self, data: object, loc: Loc, key: str, limit: Limit | None) -> float | None:
        if not isinstance(data, Mapping) or key not in data or not self.usable((*loc, key)):
            return None
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        if not math.isfinite(value):
            return None
        if limit is not None and not limit.low <= value <= limit.high:
            return None
        return value  # as written (an int stays an int, so messages show "2000", not "2000.0")

    def choice(self, data: object, loc: Loc, key: str, enum: type[E]) -> E | None:
        if not isinstance(data, Mapping) or key not in data or not self.usable((*loc, key)):
            return None
        value = data[key]
        if not isinstance(value, str):
            return None
        try:
            return enum(value)
        except ValueError:
            return None


def _present(data: Mapping[str, object], key: str) -> bool:
    return data.get(key) is not None


# --- one delivery step ----------------------------------------------------------------------


def check_delivery_step(
    step: Mapping[str, object],
    loc: Loc,
    handpiece: Handpiece | None,
    invalid: Collection[Loc] = (),
) -> list[Issue]:
    """Rules of one delivery step found at ``loc``."""
    read = _Reader(invalid)
    issues: list[Issue] = []
    waveform = read.choice(step, loc, "waveform", Waveform)
    polarity = read.choice(step, loc, "polarity", Polarity)
    phases = waveform.phases if waveform else None
    has_burst = _present(step, "burst")

    issues += _polarity_rules(step, loc, waveform, polarity, has_burst)

    amp = read.number(step, loc, "amplitude_v", units.AMPLITUDE_V)
    amp_max = read.number(step, loc, "amplitude_max_v", units.AMPLITUDE_V)
    pulse = read.number(step, loc, "pulse_width_us", units.PULSE_WIDTH_US)
    freq = read.number(step, loc, "frequency_hz", units.FREQUENCY_HZ)
    ramp_up = read.number(step, loc, "ramp_up_s", units.RAMP_UP_S)
    duration = read.number(step, loc, "duration_s", units.DELIVERY_DURATION_S)
    current = read.number(step, loc, "current_limit_ma", units.CURRENT_LIMIT_MA)
    burst = step.get("burst")
    burst_loc = (*loc, "burst")
    on_ms = read.number(burst, burst_loc, "on_ms", units.BURST_ON_MS) if has_burst else None
    off_ms = read.number(burst, burst_loc, "off_ms", units.BURST_OFF_MS) if has_burst else None
    burst_known = not has_burst or (on_ms is not None and off_ms is not None)

    if amp is not None and amp_max is not None and amp > amp_max:
        issues.append(
            Issue(
                (*loc, "amplitude_v"),
                "amplitude_above_max",
                f"{fmt_against(amp, amp_max)} V is above amplitude_max_v "
                f"({fmt_against(amp_max, amp)} V): the starting "
                "amplitude must not exceed the step's maximum; lower amplitude_v or raise "
                "amplitude_max_v",
            )
        )
    for key, value in (("amplitude_v", amp), ("amplitude_max_v", amp_max)):
        if value is not None and value > units.AMPLITUDE_WARN_ABOVE_V:
            issues.append(
                Issue(
                    (*loc, key),
                    "amplitude_high",
                    f"{fmt_against(value, units.AMPLITUDE_WARN_ABOVE_V)} V is above "
                    f"{fmt(units.AMPLITUDE_WARN_ABOVE_V)} V (soft "
                    "limit): above about 50 V the skin barrier itself is porated; check that "
                    "this amplitude is intended",
                    Severity.WARNING,
                )
            )

    if on_ms is not None and freq is not None and on_ms < min_burst_on_ms(freq):
        issues.append(
            Issue(
                (*burst_loc, "on_ms"),
                "burst_too_short",
                f"{fmt_against(on_ms, min_burst_on_ms(freq))} ms is too short to hold one "
                f"pulse at {fmt(freq)} Hz: a burst must last at least 1000 / frequency_hz = "
                f"{fmt_against(min_burst_on_ms(freq), on_ms)} ms",
            )
        )

    if pulse is not None and freq is not None and phases is not None:
        duty = duty_cycle(pulse, freq, phases)
        if duty > units.MAX_DUTY_CYCLE:
            most_pulse = math.floor(units.MAX_DUTY_CYCLE * 1e6 / (freq * phases))
            most_freq = math.floor(units.MAX_DUTY_CYCLE * 1e6 / (pulse * phases))
            issues.append(
                Issue(
                    (*loc, "pulse_width_us"),
                    "duty_cycle",
                    f"duty cycle {fmt_against(duty, units.MAX_DUTY_CYCLE)} is above the maximum of "
                    f"{fmt(units.MAX_DUTY_CYCLE)} (pulse_width_us × frequency_hz × phases "
                    f"/ 1e6 = {fmt(pulse)} µs × {fmt(freq)} Hz × {phases}): use pulses of at "
                    f"most {most_pulse} µs at this frequency, or at most {most_freq} Hz at "
                    "this pulse width",
                )
            )

    if amp_max is not None and pulse is not None and phases is not None:
        issues += check_pulse_energy(amp_max, pulse, phases, (*loc, "amplitude_max_v"))

    area = HANDPIECE_AREA_CM2[handpiece] if handpiece else None
    if current is not None and area is not None and handpiece is not None:
        limit = max_current_ma(area)
        if current > limit:
            issues.append(
                Issue(
                    (*loc, "current_limit_ma"),
                    "current_density",
                    f"{fmt_against(current, limit)} mA exceeds "
                    f"{units.MAX_CURRENT_MA_PER_CM2:g} mA/cm² on {handpiece} ({fmt(area)} cm²): "
                    f"at most {fmt(limit)} mA",
                )
            )

    fixed_dc = waveform is Waveform.MONOPHASIC_SQUARE and polarity is not None and polarity.is_fixed
    if (
        fixed_dc
        and current is not None
        and area is not None
        and pulse is not None
        and freq is not None
        and phases is not None
        and burst_known
    ):
        duty = effective_duty(pulse, freq, phases, on_ms, off_ms)
        density = net_dc_density_ma_cm2(current, duty, area)
        if density > units.MAX_NET_DC_MA_PER_CM2:
            most = units.MAX_NET_DC_MA_PER_CM2 * area / math.sqrt(duty)
            issues.append(
                Issue(
                    (*loc, "current_limit_ma"),
                    "net_dc",
                    f"a monophasic {polarity} waveform carries direct current: "
                    f"{fmt(current)} mA × √{fmt(duty)} (duty) / {fmt(area)} cm² = "
                    f"{fmt_against(density, units.MAX_NET_DC_MA_PER_CM2)} mA/cm², above the "
                    "maximum of "
                    f"{fmt(units.MAX_NET_DC_MA_PER_CM2)} mA/cm²; lower current_limit_ma to "
                    f"at most {math.floor(most * 100) / 100:g} mA, shorten the pulses, or use "
                    "alternate_pulse, alternate_burst or a biphasic waveform",
                )
            )

    if ramp_up is not None and duration is not None and ramp_up > duration / 2:
        issues.append(
            Issue(
                (*loc, "ramp_up_s"),
                "ramp_too_long",
                f"{fmt_against(ramp_up, duration / 2)} s is more than half of duration_s "
                f"({fmt(duration)} s): at most {fmt_against(duration / 2, ramp_up)} s, so that "
                "the step spends time at full amplitude",
            )
        )
    if ramp_up is not None and ramp_up < units.RAMP_UP_WARN_BELOW_S:
        issues.append(
            Issue(
                (*loc, "ramp_up_s"),
                "ramp_up_short",
                f"{fmt_against(ramp_up, units.RAMP_UP_WARN_BELOW_S)} s is below "
                f"{fmt(units.RAMP_UP_WARN_BELOW_S)} s (soft limit): "
                "output that starts this abruptly can startle the client; check it is intended",
                Severity.WARNING,
            )
        )

    if not any(issue.severity is Severity.ERROR for issue in issues):
        issues += _device_rounding(
            loc, pulse=pulse, freq=freq, phases=phases, on_ms=on_ms, off_ms=off_ms
        )
    return issues


def check_pulse_energy(
    amplitude_max_v: float, pulse_width_us: float, phases: int, loc: Loc
) -> list[Issue]:
    """The pulse-energy rule; with the format's ranges it cannot fail (kept for new ranges)."""
    energy = pulse_energy_mj(amplitude_max_v, pulse_width_us, phases)
    if energy <= units.MAX_PULSE_ENERGY_MJ:
        return []
    return [
        Issue(
            loc,
            "pulse_energy",
            f"one pulse delivers {fmt_against(energy, units.MAX_PULSE_ENERGY_MJ)} mJ into "
            f"{fmt(units.LOAD_OHM)} Ω "
            f"(amplitude_max_v² / 500 Ω × pulse width × phases = {fmt(amplitude_max_v)} V² / "
            f"500 Ω × {fmt(pulse_width_us)} µs × {phases}), above the maximum of "
            f"{fmt(units.MAX_PULSE_ENERGY_MJ)} mJ; lower amplitude_max_v or pulse_width_us",
        )
    ]


def _polarity_rules(
    step: Mapping[str, object],
    loc: Loc,
    waveform: Waveform | None,
    polarity: Polarity | None,
    has_burst: bool,
) -> list[Issue]:
    issues: list[Issue] = []
    if waveform is Waveform.BIPHASIC_SQUARE and "polarity" in step:
        issues.append(
            Issue(
                (*loc, "polarity"),
                "polarity_not_allowed",
                "a biphasic waveform has no polarity (each pulse is charge-balanced): remove "
                "polarity, or use waveform: monophasic_square",
            )
        )
        return issues
    if waveform is Waveform.MONOPHASIC_SQUARE and "polarity" not in step:
        issues.append(
            Issue(
                loc,
                "polarity_required",
                'a monophasic waveform needs a polarity: add "polarity:" with one of '
                "positive, negative, alternate_pulse, alternate_burst",
            )
        )
    if polarity is Polarity.ALTERNATE_BURST and not has_burst:
        issues.append(
            Issue(
                (*loc, "polarity"),
                "polarity_needs_burst",
                "alternate_burst switches polarity from one burst to the next, so the step "
                'needs "burst: {on_ms: ..., off_ms: ...}"; add a burst or use alternate_pulse',
            )
        )
    return issues


def _device_rounding(
    loc: Loc,
    *,
    pulse: float | None,
    freq: float | None,
    phases: int | None,
    on_ms: float | None,
    off_ms: float | None,
) -> list[Issue]:
    """The device checks its rules again on rounded values; a step it would refuse is an error."""
    if pulse is None or freq is None or phases is None:
        return []
    pulse_us, freq_hz = to_units(pulse, 1), to_units(freq, 1)
    problems: list[str] = []
    if duty_cycle(pulse_us, freq_hz, phases) > units.MAX_DUTY_CYCLE:
        problems.append(f"duty cycle {fmt(duty_cycle(pulse_us, freq_hz, phases))}")
    if on_ms is not None and off_ms is not None:
        burst_on = to_units(on_ms, 1)
        if burst_on < min_burst_on_ms(freq_hz):
            problems.append(f"a {burst_on} ms burst at {freq_hz} Hz holds no whole pulse")
    if not problems:
        return []
    return [
        Issue(
            loc,
            "device_rounding",
            f"rounded to device units ({fmt(pulse_us)} µs, {freq_hz} Hz) the step breaks a "
            f"device rule ({'; '.join(problems)}): write pulse_width_us, frequency_hz and "
            "the burst as whole numbers that keep within the limits",
        )
    ]


# --- the whole protocol ---------------------------------------------------------------------


def check_protocol(data: Mapping[str, object], invalid: Collection[Loc] = ()) -> list[Issue]:
    """Every cross-field, derived and whole-protocol rule of a protocol's raw data.

    ``invalid`` lists the locations whose values already failed field validation; rules that
    need them are skipped.
    """
    read = _Reader(invalid)
    issues = _approval_rules(data, read)
    handpiece = read.choice(data, (), "handpiece", Handpiece)

    course = data.get("course")
    sessions = read.number(course, ("course",), "sessions", units.COURSE_SESSIONS)
    low, high = units.COURSE_USUAL_SESSIONS
    if sessions is not None and not low <= sessions <= high:
        issues.append(
            Issue(
                ("course", "sessions"),
                "course_sessions",
                f"{fmt(int(sessions))} sessions is outside the usual course of {low}–{high} "
                "sessions (soft limit): check the course is intended",
                Severity.WARNING,
            )
        )

    steps = data.get("steps")
    if isinstance(steps, Sequence) and not isinstance(steps, str):
        issues += _steps_rules(steps, handpiece, read, invalid)
    return issues


def _approval_rules(data: Mapping[str, object], read: _Reader) -> list[Issue]:
    status = read.choice(data, (), "status", Status)
    issues: list[Issue] = []
    if status is Status.APPROVED:
        for key, what in (("approved_by", "who approved it"), ("approved_on", "the date")):
            if key not in data:
                issues.append(
                    Issue(
                        (),
                        "approval_missing",
                        f'status is approved, so "{key}" is required: add {what}, or set '
                        "status: draft",
                    )
                )
    elif status is not None:
        for key in ("approved_by", "approved_on"):
            if key in data:
                issues.append(
                    Issue(
                        (key,),
                        "approval_not_allowed",
                        f"only an approved protocol records its approval, and status is "
                        f"{status}: remove {key}, or set status: approved",
                    )
                )
    return issues


def _steps_rules(
    steps: Sequence[object],
    handpiece: Handpiece | None,
    read: _Reader,
    invalid: Collection[Loc],
) -> list[Issue]:
    issues: list[Issue] = []
    kinds: list[object] = []
    delivery_s: list[float | None] = []
    manual_s: list[float | None] = []
    for index, step in enumerate(steps):
        loc: Loc = ("steps", index)
        kind = step.get("kind") if isinstance(step, Mapping) else None
        kinds.append(kind)
        if not isinstance(step, Mapping):
            continue
        if kind == "delivery":
            issues += check_delivery_step(step, loc, handpiece, invalid)
            delivery_s.append(read.number(step, loc, "duration_s", units.DELIVERY_DURATION_S))
        elif kind == "manual" and "duration_s" in step:
            manual_s.append(read.number(step, loc, "duration_s", units.MANUAL_DURATION_S))

    if steps and all(kind == "manual" for kind in kinds):
        issues.append(
            Issue(
                ("steps",),
                "no_delivery_step",
                "the protocol has no delivery step: add at least one step with kind: delivery",
            )
        )

    known_delivery = sum(s for s in delivery_s if s is not None)
    if known_delivery > units.MAX_TOTAL_DELIVERY_S:
        issues.append(
            Issue(
                ("steps",),
                "total_delivery_time",
                f"the delivery steps add up to {fmt_minutes(known_delivery)} "
                f"({fmt_against(known_delivery, units.MAX_TOTAL_DELIVERY_S)} s), above the "
                "maximum of "
                f"{fmt_minutes(units.MAX_TOTAL_DELIVERY_S)}: shorten or remove delivery steps",
            )
        )
    all_known = all(s is not None for s in (*delivery_s, *manual_s))
    if delivery_s and all_known:
        manual = sum(s for s in manual_s if s is not None)
        total = known_delivery + manual
        low, high = units.SESSION_USUAL_S
        if not low <= total <= high:
            issues.append(
                Issue(
                    ("steps",),
                    "session_time",
                    f"the session lasts {fmt_minutes(total)} ({fmt_minutes(known_delivery)} of "
                    f"delivery + {fmt_minutes(manual)} of timed manual steps), outside the "
                    f"usual {low // 60}–{high // 60} min (soft limit)",
                    Severity.WARNING,
                )
            )
    return issues
