"""Checking a step against the device before it is sent, and explaining the device's NAKs.

``check_step`` applies the capabilities from HELLO_REPLY and the device's own range and
cross-field rules (interface §4, in the order the device applies them) and returns every
refusal at once, each naming the limit and the reason in the operator's units. A step that
passes is what the device accepts, so a NAK OUT_OF_RANGE in the field means the two disagree
(a device with other rules) and the refusal message says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from controller.device.info import DeviceInfo
from controller.wire.constants import Handpiece, MsgType, NakCode, Polarity, State, Waveform
from controller.wire.messages import ConfigureStep

#: One pulse's energy into 500 Ω may not exceed this (IEC 60601-2-10; interface §4).
MAX_PULSE_ENERGY_J = 0.300
MAX_DUTY_CYCLE = 0.5
_ENERGY_LIMIT = round(MAX_PULSE_ENERGY_J * 500 * 100 * 1_000_000)

#: CONFIGURE_STEP field numbers (NAK ``detail``) and names.
STEP_FIELDS: dict[int, str] = {
    1: "step_id",
    2: "waveform",
    3: "polarity",
    4: "amplitude_dv",
    5: "amplitude_max_dv",
    6: "pulse_width_us",
    7: "frequency_hz",
    8: "burst_on_ms",
    9: "burst_off_ms",
    10: "ramp_up_ms",
    11: "ramp_down_ms",
    12: "current_limit_ua",
    13: "duration_ms",
    14: "handpiece",
}
FIELD_NUMBER = {name: number for number, name in STEP_FIELDS.items()}

#: Field names of the other requests whose value the device range-checks (detail 1).
VALUE_FIELDS: dict[MsgType, dict[int, str]] = {
    MsgType.CONFIGURE_STEP: STEP_FIELDS,
    MsgType.SET_TELEMETRY: {1: "rate_hz"},
    MsgType.SET_AMPLITUDE: {1: "amplitude_dv"},
}

#: Cross-field rules the device reports under a field's number, to name in NAK messages.
CROSS_FIELD_HINTS: dict[int, str] = {
    3: "BI_SQUARE needs polarity 0; alternate-per-burst polarity needs bursts",
    4: "amplitude_dv may not exceed amplitude_max_dv",
    5: "one pulse may carry at most 300 mJ into 500 Ω",
    6: "the duty cycle may not exceed 50 %",
    8: "a burst must hold at least one pulse (burst_on_ms ≥ 1000 / frequency_hz)",
    9: "burst_off_ms must be 0 exactly when burst_on_ms is 0",
}


class StepValues(Protocol):
    """CONFIGURE_STEP's integer fields, as ``protocols.to_device_step`` returns them."""

    @property
    def step_id(self) -> int: ...
    @property
    def waveform(self) -> int: ...
    @property
    def polarity(self) -> int: ...
    @property
    def amplitude_dv(self) -> int: ...
    @property
    def amplitude_max_dv(self) -> int: ...
    @property
    def pulse_width_us(self) -> int: ...
    @property
    def frequency_hz(self) -> int: ...
    @property
    def burst_on_ms(self) -> int: ...
    @property
    def burst_off_ms(self) -> int: ...
    @property
    def ramp_up_ms(self) -> int: ...
    @property
    def ramp_down_ms(self) -> int: ...
    @property
    def current_limit_ua(self) -> int: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def handpiece(self) -> int: ...


def to_wire(values: StepValues) -> ConfigureStep:
    """The CONFIGURE_STEP message for ``values``."""
    return ConfigureStep(*(int(getattr(values, name)) for name in STEP_FIELDS.values()))


@dataclass(frozen=True)
class LimitRefusal:
    """One reason a step (or value) may not be sent: which field, which limit, and why."""

    field: str
    field_number: int
    limit: str
    value: int
    message: str

    def __str__(self) -> str:
        return self.message


def _v(dv: int) -> str:
    return f"{dv / 10:.1f} V"


def _ma(ua: int) -> str:
    return f"{ua / 1000:.1f} mA"


def _name(enum_cls: type[Waveform] | type[Polarity] | type[Handpiece], value: int) -> str:
    try:
        return enum_cls(value).name
    except ValueError:
        return str(value)


class _Checker:
    def __init__(self, values: StepValues) -> None:
        self.values = values
        self.out: list[LimitRefusal] = []

    def refuse(self, field: str, limit: str, message: str) -> None:
        value = int(getattr(self.values, field))
        self.out.append(LimitRefusal(field, FIELD_NUMBER[field], limit, value, message))

    def span(self, field: str, low: int, high: int, *, limit: str, what: str, unit: str) -> None:
        value = int(getattr(self.values, field))
        if not low <= value <= high:
            self.refuse(
                field,
                limit,
                f"{what} {value} {unit} is outside the device's range {low}-{high} {unit}".strip(),
            )


def check_step(values: StepValues, info: DeviceInfo) -> list[LimitRefusal]:
    """Every reason the device in ``info`` would refuse ``values`` (empty: it accepts them).

    ``info.handpiece`` must be the handpiece attached now.
    """
    cap = info.capabilities
    v = values
    c = _Checker(values)
    # Own ranges, in field order.
    c.span("step_id", 0, 0xFFFF, limit="u16", what="step_id", unit="")
    if v.waveform not in (1, 2):
        c.refuse("waveform", "waveform", f"waveform {v.waveform} is not 1 (MONO_SQUARE) or 2")
    elif Waveform(v.waveform) not in cap.waveforms:
        have = ", ".join(sorted(w.name for w in cap.waveforms)) or "none"
        c.refuse(
            "waveform",
            "waveforms",
            f"waveform {Waveform(v.waveform).name} is not supported by this device "
            f"(it offers {have})",
        )
    if not 0 <= v.polarity <= 3:
        c.refuse("polarity", "polarity", f"polarity {v.polarity} is not 0..3")
    for field, what in (("amplitude_dv", "amplitude"), ("amplitude_max_dv", "amplitude_max")):
        value = int(getattr(v, field))
        if value > cap.max_amplitude_dv:
            c.refuse(
                field,
                "max_amplitude_dv",
                f"{what} {_v(value)} exceeds this device's maximum of {_v(cap.max_amplitude_dv)}",
            )
        elif value < 1:
            c.refuse(field, "max_amplitude_dv", f"{what} {_v(value)} must be at least 0.1 V")
    c.span(
        "pulse_width_us",
        cap.pulse_width_min_us,
        cap.pulse_width_max_us,
        limit="pulse_width",
        what="pulse width",
        unit="µs",
    )
    c.span(
        "frequency_hz",
        cap.frequency_min_hz,
        cap.frequency_max_hz,
        limit="frequency",
        what="frequency",
        unit="Hz",
    )
    if v.burst_on_ms != 0 and not 10 <= v.burst_on_ms <= 2000:
        c.refuse("burst_on_ms", "burst_on", f"burst on {v.burst_on_ms} ms is not 0 or 10-2000 ms")
    if v.burst_off_ms != 0 and not 10 <= v.burst_off_ms <= 5000:
        c.refuse(
            "burst_off_ms", "burst_off", f"burst off {v.burst_off_ms} ms is not 0 or 10-5000 ms"
        )
    c.span("ramp_up_ms", 0, 60000, limit="ramp_up", what="ramp-up", unit="ms")
    c.span("ramp_down_ms", 0, 10000, limit="ramp_down", what="ramp-down", unit="ms")
    if v.current_limit_ua > cap.max_current_ua:
        c.refuse(
            "current_limit_ua",
            "max_current_ua",
            f"current limit {_ma(v.current_limit_ua)} exceeds this device's maximum of "
            f"{_ma(cap.max_current_ua)}",
        )
    elif v.current_limit_ua < 500:
        c.refuse(
            "current_limit_ua",
            "min_current_ua",
            f"current limit {_ma(v.current_limit_ua)} is below the device's minimum of 0.5 mA",
        )
    if v.duration_ms > cap.max_step_ms:
        c.refuse(
            "duration_ms",
            "max_step_ms",
            f"step duration {v.duration_ms / 1000:g} s exceeds this device's maximum of "
            f"{cap.max_step_ms / 1000:g} s",
        )
    elif v.duration_ms < 1:
        c.refuse("duration_ms", "max_step_ms", f"step duration {v.duration_ms} ms must be ≥ 1 ms")
    if not 1 <= v.handpiece <= 3:
        c.refuse("handpiece", "handpiece", f"handpiece {v.handpiece} is not 1..3")
    own_range_ok = not c.out
    # Cross-field rules, in the device's order.
    if v.amplitude_dv >= 1 and v.amplitude_dv > v.amplitude_max_dv >= 1:
        c.refuse(
            "amplitude_dv",
            "amplitude_dv ≤ amplitude_max_dv",
            f"starting amplitude {_v(v.amplitude_dv)} is above the step's ceiling "
            f"amplitude_max {_v(v.amplitude_max_dv)}",
        )
    if v.waveform == Waveform.BI_SQUARE and v.polarity != Polarity.POSITIVE:
        c.refuse(
            "polarity",
            "BI_SQUARE polarity",
            f"BI_SQUARE pulses are charge-balanced and need polarity 0 (POSITIVE), not "
            f"{_name(Polarity, v.polarity)}",
        )
    if v.polarity == Polarity.ALTERNATE_BURST and v.burst_on_ms == 0:
        c.refuse(
            "polarity",
            "ALTERNATE_BURST needs bursts",
            "polarity ALTERNATE_BURST needs bursts (burst_on_ms > 0)",
        )
    if (v.burst_on_ms == 0) != (v.burst_off_ms == 0):
        c.refuse(
            "burst_off_ms",
            "burst on/off pairing",
            f"burst_off_ms ({v.burst_off_ms}) must be 0 exactly when burst_on_ms "
            f"({v.burst_on_ms}) is 0",
        )
    if v.burst_on_ms > 0 and v.frequency_hz > 0 and v.burst_on_ms * v.frequency_hz < 1000:
        c.refuse(
            "burst_on_ms",
            "pulse per burst",
            f"a {v.burst_on_ms} ms burst holds no pulse at {v.frequency_hz} Hz (needs at "
            f"least {1000 / v.frequency_hz:g} ms)",
        )
    phases = 2 if v.waveform == Waveform.BI_SQUARE else 1
    # Integer arithmetic, as the device does, so no rule flips on rounding at its boundary.
    on_time_ppm = v.pulse_width_us * v.frequency_hz * phases  # µs of output per second
    if on_time_ppm > MAX_DUTY_CYCLE * 1_000_000:
        duty = on_time_ppm / 1e6
        c.refuse(
            "pulse_width_us",
            "duty cycle ≤ 50 %",
            f"duty cycle {duty * 100:.0f} % (pulse width {v.pulse_width_us} µs × "
            f"{v.frequency_hz} Hz{' × 2 phases' if phases == 2 else ''}) exceeds 50 %",
        )
    # (dv/10)² / 500 Ω × pw·1e-6 s × phases ≤ 0.3 J  ⇔  dv² × pw × phases ≤ 1.5e10
    energy_units = v.amplitude_max_dv * v.amplitude_max_dv * v.pulse_width_us * phases
    if energy_units > _ENERGY_LIMIT:
        energy = energy_units / 5e10
        c.refuse(
            "amplitude_max_dv",
            "pulse energy ≤ 300 mJ",
            f"one pulse at {_v(v.amplitude_max_dv)} for {v.pulse_width_us} µs carries "
            f"{energy * 1000:.0f} mJ into 500 Ω, above the 300 mJ limit",
        )
    # The attached handpiece (the device answers NAK WRONG_HANDPIECE).
    if info.handpiece is Handpiece.NONE:
        c.refuse("handpiece", "handpiece attached", "no handpiece is attached to the device")
    elif own_range_ok and v.handpiece != info.handpiece:
        c.refuse(
            "handpiece",
            "handpiece attached",
            f"the step is for the {_name(Handpiece, v.handpiece)} handpiece but the "
            f"{info.handpiece.name} is attached",
        )
    return c.out


def refusal_message(
    cmd: MsgType,
    code: int,
    detail: int,
    *,
    state: State | None = None,
    local: list[LimitRefusal] | None = None,
) -> str:
    """A plain sentence for a NAK: what was refused, which field, why, and what to do."""
    name = cmd.name
    try:
        nak = NakCode(code)
    except ValueError:
        return f"{name} refused with an unknown NAK code {code} (detail {detail})."
    if nak is NakCode.OUT_OF_RANGE:
        field = VALUE_FIELDS.get(cmd, {}).get(detail, f"field {detail}")
        text = f"{name} refused: {field} (field {detail}) is out of range for this device"
        reasons = [r.message for r in (local or []) if r.field_number == detail]
        if reasons:
            text += f": {'; '.join(reasons)}"
        elif cmd is MsgType.CONFIGURE_STEP and detail in CROSS_FIELD_HINTS:
            text += f" (or breaks the rule: {CROSS_FIELD_HINTS[detail]})"
        elif cmd is MsgType.SET_AMPLITUDE:
            text += " (it must be between 0.1 V and the step's amplitude_max)"
        return text + "."
    if nak is NakCode.BAD_STATE:
        where = f" while the device is {state.name}" if state is not None else " in this state"
        return f"{name} refused: not allowed{where}."
    return {
        NakCode.MALFORMED: f"{name} refused: the device found the request malformed. This is a "
        f"controller fault; please report it with the link log.",
        NakCode.UNKNOWN_TYPE: f"{name} refused: the device does not know this request "
        f"(older firmware?).",
        NakCode.FAULT_LATCHED: f"{name} refused: a fault is latched. Check the cause, then "
        f"clear faults.",
        NakCode.WRONG_HANDPIECE: f"{name} refused: the attached handpiece is not the one the "
        f"step is for (field 14). Attach the right handpiece or choose another step.",
        NakCode.FAULT_PERSISTS: f"{name} refused: the fault condition is still present (for "
        f"example the handpiece is still 40 °C or warmer, no handpiece is attached, or output "
        f"is still measured). Remove the cause, then clear faults again.",
        NakCode.UNSUPPORTED_VERSION: f"{name} refused: the device does not support protocol "
        f"version 1.",
    }.get(nak, f"{name} refused ({nak.name}).")
