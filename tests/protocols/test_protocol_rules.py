"""The derived rules as functions, including inputs outside the format's ranges."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pydantic import ValidationError

from protocols import (
    HANDPIECE_AREA_CM2,
    DeliveryStep,
    Handpiece,
    Protocol,
    load_protocol,
    rules,
    units,
)
from protocols.problem import Severity

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"


def test_duty_cycle_counts_both_phases_of_a_biphasic_pulse() -> None:
    assert rules.duty_cycle(500, 50, 1) == pytest.approx(0.025)
    assert rules.duty_cycle(500, 50, 2) == pytest.approx(0.05)
    assert rules.duty_cycle(2000, 125, 2) == pytest.approx(0.5)


def test_effective_duty_is_weighted_by_the_burst_on_fraction() -> None:
    assert rules.effective_duty(500, 50, 1, None, None) == pytest.approx(0.025)
    assert rules.effective_duty(500, 50, 1, 250, 750) == pytest.approx(0.025 / 4)


def test_pulse_energy_into_500_ohm() -> None:
    # 120 V, 2000 µs, biphasic: the most the format's ranges allow.
    assert rules.pulse_energy_mj(120, 2000, 2) == pytest.approx(115.2)
    assert rules.pulse_energy_mj(60, 500, 2) == pytest.approx(7.2)


def test_pulse_energy_rule_cannot_fail_within_the_ranges() -> None:
    most = rules.pulse_energy_mj(units.AMPLITUDE_V.high, units.PULSE_WIDTH_US.high, 2)
    assert most <= units.MAX_PULSE_ENERGY_MJ
    assert rules.check_pulse_energy(units.AMPLITUDE_V.high, units.PULSE_WIDTH_US.high, 2, ()) == []


def test_pulse_energy_rule_fails_with_out_of_range_inputs() -> None:
    # 200 V and 5000 µs are outside today's ranges: the rule exists for when ranges change.
    (issue,) = rules.check_pulse_energy(200, 5000, 2, ("steps", 0, "amplitude_max_v"))
    assert issue.code == "pulse_energy"
    assert issue.severity is Severity.ERROR
    assert "800.0 mJ" in issue.message
    assert "300.0 mJ" in issue.message
    assert rules.check_pulse_energy(173, 2000, 2, ()) == []  # 239.5 mJ
    assert rules.check_pulse_energy(194, 2000, 2, ())[0].code == "pulse_energy"  # 301.1 mJ


def test_net_dc_density() -> None:
    assert rules.net_dc_density_ma_cm2(6.0, 0.025, 4.0) == pytest.approx(6 * math.sqrt(0.025) / 4)
    assert rules.net_dc_density_ma_cm2(1.0, 1.0, 5.0) == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("handpiece", "area", "most"),
    [
        (Handpiece.SCALP_ROLLER, 4.0, 8.0),
        (Handpiece.FLAT_PROBE, 2.0, 4.0),
        (Handpiece.COMB, 6.0, 12.0),
    ],
)
def test_current_limit_per_handpiece(handpiece: Handpiece, area: float, most: float) -> None:
    assert HANDPIECE_AREA_CM2[handpiece] == area
    assert rules.max_current_ma(area) == most


def test_min_burst_holds_one_pulse_period() -> None:
    assert rules.min_burst_on_ms(50) == 20
    assert rules.min_burst_on_ms(1) == 1000


def _step(**changes: object) -> dict[str, object]:
    step: dict[str, object] = {
        "kind": "delivery",
        "zone": "crown",
        "duration_s": 300,
        "waveform": "monophasic_square",
        "polarity": "positive",
        "amplitude_v": 40,
        "amplitude_max_v": 60,
        "pulse_width_us": 100,
        "frequency_hz": 50,
        "ramp_up_s": 10,
        "ramp_down_s": 2,
        "current_limit_ma": 2.0,
    }
    step.update(changes)
    return {k: v for k, v in step.items() if v is not None}


def _codes(
    step: dict[str, object], handpiece: Handpiece | None = Handpiece.FLAT_PROBE
) -> list[str]:
    return [i.code for i in rules.check_delivery_step(step, ("steps", 0), handpiece)]


def test_a_good_monophasic_step_passes() -> None:
    # 2 mA × √0.005 / 2 cm² = 0.0707 mA/cm²
    assert _codes(_step()) == []


def test_net_dc_only_for_fixed_polarity_monophasic() -> None:
    heavy = {"current_limit_ma": 4.0, "pulse_width_us": 1000, "frequency_hz": 100}
    assert _codes(_step(**heavy)) == ["net_dc"]
    assert _codes(_step(**heavy, polarity="negative")) == ["net_dc"]
    assert _codes(_step(**heavy, polarity="alternate_pulse")) == []
    assert _codes(_step(**heavy, waveform="biphasic_square", polarity=None)) == []


def test_net_dc_uses_the_burst_weighted_duty() -> None:
    heavy = {"current_limit_ma": 4.0, "pulse_width_us": 1000, "frequency_hz": 100}
    # duty 0.1 → 0.632 mA/cm²; with 1 in 20 on: duty 0.005 → 0.141 mA/cm²
    assert _codes(_step(**heavy, burst={"on_ms": 100, "off_ms": 1900})) == []


def test_rules_tolerate_missing_and_wrong_typed_values() -> None:
    for key in _step():
        if key != "kind":
            # Only a missing polarity is itself a rule; every other rule just skips.
            expected = ["polarity_required"] if key == "polarity" else []
            assert _codes(_step(**{key: None})) == expected, key
    broken = {"pulse_width_us": "wide", "frequency_hz": None, "burst": [1, 2], "ramp_up_s": True}
    assert _codes(_step(**broken)) == []
    assert _codes({"kind": "delivery"}) == []
    assert rules.check_protocol({"steps": "many"}) == []
    assert rules.check_protocol({"steps": [1, None, "x", {"kind": 3}]}) == []


def test_rules_skip_values_that_failed_field_validation() -> None:
    step = _step(amplitude_v=70)
    assert _codes(step) == ["amplitude_above_max"]
    issues = rules.check_delivery_step(step, ("steps", 0), None, [("steps", 0, "amplitude_v")])
    assert issues == []


def test_ramp_rule_boundary() -> None:
    assert _codes(_step(duration_s=20, ramp_up_s=10)) == []
    assert _codes(_step(duration_s=20, ramp_up_s=10.5)) == ["ramp_too_long"]


def test_duty_cycle_boundary() -> None:
    assert "duty_cycle" not in _codes(
        _step(pulse_width_us=2000, frequency_hz=250, current_limit_ma=0.5)
    )
    assert "duty_cycle" in _codes(
        _step(pulse_width_us=2000, frequency_hz=251, current_limit_ma=0.5)
    )


def test_protocol_built_in_code_obeys_the_cross_field_rules() -> None:
    result = load_protocol(DATA / "valid" / "base.yaml")
    assert result.protocol is not None
    data = result.protocol.model_dump(exclude_none=True)
    data["steps"] = list(data["steps"])
    data["steps"][1] = {**data["steps"][1], "current_limit_ma": 9.0}
    with pytest.raises(ValidationError) as caught:
        Protocol.model_validate(data)
    assert "9.0 mA exceeds 2 mA/cm²" in str(caught.value)
    data["steps"][1] = {**data["steps"][1], "current_limit_ma": 8.0}
    step = Protocol.model_validate(data).steps[1]
    assert isinstance(step, DeliveryStep)
    assert step.current_limit_ma == 8.0
