"""Capability checks before sending, and plain messages for the device's NAKs."""

from __future__ import annotations

import dataclasses

import pytest

from controller.device import (
    Capabilities,
    DeviceInfo,
    LimitRefusal,
    check_step,
    refusal_message,
    to_wire,
)
from controller.wire import messages as m
from controller.wire.constants import Handpiece, MsgType, NakCode, State, Waveform

CAPS = Capabilities(
    max_amplitude_dv=1200,
    max_current_ua=10000,
    pulse_width_min_us=50,
    pulse_width_max_us=2000,
    frequency_min_hz=1,
    frequency_max_hz=5000,
    max_step_ms=1_200_000,
    waveforms=frozenset({Waveform.MONO_SQUARE, Waveform.BI_SQUARE}),
    max_telemetry_hz=1000,
)
INFO = DeviceInfo(
    model="EPM-1",
    serial="SIM-000001",
    firmware="1.0.0",
    boot_id=1,
    capabilities=CAPS,
    handpiece=Handpiece.SCALP_ROLLER,
    is_simulator=True,
    url="sim://",
    baud=115200,
    proto_version=1,
)
GOOD = m.ConfigureStep(
    step_id=3,
    waveform=1,
    polarity=2,
    amplitude_dv=400,
    amplitude_max_dv=600,
    pulse_width_us=1000,
    frequency_hz=100,
    burst_on_ms=500,
    burst_off_ms=500,
    ramp_up_ms=3000,
    ramp_down_ms=1000,
    current_limit_ua=4000,
    duration_ms=300_000,
    handpiece=1,
)


def reasons(step: m.ConfigureStep, info: DeviceInfo = INFO) -> list[LimitRefusal]:
    return check_step(step, info)


def test_a_valid_step_passes() -> None:
    assert reasons(GOOD) == []


def test_dataclass_values_like_protocols_device_step_are_accepted() -> None:
    @dataclasses.dataclass(frozen=True)
    class Values:
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

    values = Values(*GOOD)
    assert check_step(values, INFO) == []
    assert to_wire(values) == GOOD


def test_amplitude_max_above_device_maximum() -> None:
    [refusal] = reasons(GOOD._replace(amplitude_max_dv=1300))
    assert refusal.message == "amplitude_max 130.0 V exceeds this device's maximum of 120.0 V"
    assert (refusal.field, refusal.field_number, refusal.limit) == (
        "amplitude_max_dv",
        5,
        "max_amplitude_dv",
    )
    assert refusal.value == 1300


def test_current_limit_above_device_maximum() -> None:
    [refusal] = reasons(GOOD._replace(current_limit_ua=12000))
    assert refusal.message == "current limit 12.0 mA exceeds this device's maximum of 10.0 mA"
    assert refusal.field_number == 12


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        (
            {"pulse_width_us": 20},
            "pulse_width_us",
            "pulse width 20 µs is outside the device's range 50-2000 µs",
        ),
        (
            {"frequency_hz": 6000},
            "frequency_hz",
            "frequency 6000 Hz is outside the device's range 1-5000 Hz",
        ),
        ({"duration_ms": 1_300_000}, "duration_ms", "exceeds this device's maximum of 1200 s"),
        ({"current_limit_ua": 100}, "current_limit_ua", "below the device's minimum of 0.5 mA"),
        ({"ramp_up_ms": 70000}, "ramp_up_ms", "ramp-up 70000 ms"),
        ({"ramp_down_ms": 20000}, "ramp_down_ms", "ramp-down 20000 ms"),
        ({"burst_on_ms": 5, "burst_off_ms": 5}, "burst_on_ms", "not 0 or 10-2000 ms"),
        ({"handpiece": 5}, "handpiece", "handpiece 5 is not 1..3"),
        ({"polarity": 7}, "polarity", "polarity 7 is not 0..3"),
        ({"waveform": 9}, "waveform", "waveform 9 is not 1"),
        ({"amplitude_dv": 0}, "amplitude_dv", "must be at least 0.1 V"),
        ({"step_id": 70000}, "step_id", "outside the device's range 0-65535"),
    ],
)
def test_own_range_refusals(change: dict[str, int], field: str, text: str) -> None:
    found = reasons(GOOD._replace(**change))
    assert found, change
    assert found[0].field == field
    assert text in found[0].message


def test_waveform_the_device_does_not_offer() -> None:
    mono_only = dataclasses.replace(
        INFO, capabilities=dataclasses.replace(CAPS, waveforms=frozenset({Waveform.MONO_SQUARE}))
    )
    [refusal] = reasons(GOOD._replace(waveform=2, polarity=0), mono_only)
    assert refusal.limit == "waveforms"
    assert "BI_SQUARE is not supported by this device (it offers MONO_SQUARE)" in refusal.message


@pytest.mark.parametrize(
    ("change", "field", "text"),
    [
        ({"amplitude_dv": 700}, "amplitude_dv", "above the step's ceiling"),
        ({"waveform": 2, "polarity": 1}, "polarity", "need polarity 0"),
        ({"polarity": 3, "burst_on_ms": 0, "burst_off_ms": 0}, "polarity", "needs bursts"),
        ({"burst_off_ms": 0}, "burst_off_ms", "must be 0 exactly when burst_on_ms"),
        ({"frequency_hz": 50, "burst_on_ms": 10}, "burst_on_ms", "holds no pulse at 50 Hz"),
        ({"pulse_width_us": 2000, "frequency_hz": 300}, "pulse_width_us", "duty cycle 60 %"),
    ],
)
def test_cross_field_rules(change: dict[str, int], field: str, text: str) -> None:
    found = reasons(GOOD._replace(**change))
    assert [r.field for r in found] == [field]
    assert text in found[0].message


def test_pulse_energy_rule_on_a_stronger_device() -> None:
    strong = dataclasses.replace(
        INFO, capabilities=dataclasses.replace(CAPS, max_amplitude_dv=5000)
    )
    step = GOOD._replace(amplitude_max_dv=4000, pulse_width_us=2000, frequency_hz=10)
    [refusal] = reasons(step, strong)
    assert refusal.field_number == 5
    assert "carries 640 mJ into 500 Ω, above the 300 mJ limit" in refusal.message


def test_handpiece_attached_and_matching() -> None:
    none = dataclasses.replace(INFO, handpiece=Handpiece.NONE)
    assert [r.message for r in reasons(GOOD, none)] == ["no handpiece is attached to the device"]
    comb = dataclasses.replace(INFO, handpiece=Handpiece.COMB)
    [refusal] = reasons(GOOD, comb)
    assert refusal.message == "the step is for the SCALP_ROLLER handpiece but the COMB is attached"


def test_all_refusals_are_reported_at_once() -> None:
    bad = GOOD._replace(amplitude_max_dv=1300, current_limit_ua=12000, pulse_width_us=10)
    assert [r.field for r in reasons(bad)] == [
        "amplitude_max_dv",
        "pulse_width_us",
        "current_limit_ua",
    ]


def test_nak_out_of_range_names_the_field() -> None:
    text = refusal_message(MsgType.CONFIGURE_STEP, NakCode.OUT_OF_RANGE, 6)
    assert text.startswith(
        "CONFIGURE_STEP refused: pulse_width_us (field 6) is out of range for this device"
    )
    assert "duty cycle" in text  # field 6 also carries the duty-cycle rule


def test_nak_out_of_range_uses_the_local_reason_when_known() -> None:
    local = reasons(GOOD._replace(current_limit_ua=12000))
    text = refusal_message(MsgType.CONFIGURE_STEP, NakCode.OUT_OF_RANGE, 12, local=local)
    assert text == (
        "CONFIGURE_STEP refused: current_limit_ua (field 12) is out of range for this device: "
        "current limit 12.0 mA exceeds this device's maximum of 10.0 mA."
    )


def test_nak_messages_for_other_codes() -> None:
    assert refusal_message(MsgType.START, NakCode.BAD_STATE, 0, state=State.IDLE) == (
        "START refused: not allowed while the device is IDLE."
    )
    assert "rate_hz (field 1)" in refusal_message(MsgType.SET_TELEMETRY, NakCode.OUT_OF_RANGE, 1)
    assert "amplitude_max" in refusal_message(MsgType.SET_AMPLITUDE, NakCode.OUT_OF_RANGE, 1)
    assert "clear faults" in refusal_message(MsgType.START, NakCode.FAULT_LATCHED, 0)
    assert "still present" in refusal_message(MsgType.CLEAR_FAULTS, NakCode.FAULT_PERSISTS, 0)
    assert "field 14" in refusal_message(MsgType.CONFIGURE_STEP, NakCode.WRONG_HANDPIECE, 0)
    assert "unknown NAK code 99" in refusal_message(MsgType.START, 99, 0)
