"""Physics sanity: electroporation, recovery, current, contact classes, area, temperature."""

from __future__ import annotations

import math

import pytest

from controller.wire import Contact, EventCode, Handpiece, Heartbeat, SetTelemetry, Start, State
from simulator.physics import Drive, Plant, SkinParams, Thermal, classify_contact
from simulator.pulses import burst_on_time, pulse_square_charge, worst_window_on_fraction
from tests.simulator.helpers import STEP, Host, into_state

PARAMS = SkinParams()


def _plant(handpiece: Handpiece = Handpiece.SCALP_ROLLER, tick_ms: int = 1) -> Plant:
    return Plant(PARAMS, tick_ms, handpiece)


def _drive(volts: float, *, frequency_hz: int = 100, on: float = 1.0, phases: int = 2) -> Drive:
    return Drive(volts, 500, frequency_hz, phases, on)


def _pulse(plant: Plant, drive: Drive | None, ms: int) -> float:
    mean_square = 0.0
    for _ in range(ms):
        mean_square = plant.advance(drive)
    return mean_square


@pytest.mark.parametrize(
    ("ohm", "contact"),
    [
        (0, Contact.SHORT),
        (49, Contact.SHORT),
        (50, Contact.OK),
        (10_000, Contact.OK),
        (10_001, Contact.MARGINAL),
        (20_000, Contact.MARGINAL),
        (20_001, Contact.NONE),
        (5_000_000, Contact.NONE),
    ],
)
def test_contact_classes_at_the_thresholds(ohm: int, contact: Contact) -> None:
    assert classify_contact(ohm) == contact


@pytest.mark.parametrize(
    ("ohm", "contact"),
    [(10_000, Contact.OK), (10_001, Contact.MARGINAL), (20_000, Contact.MARGINAL)],
)
def test_the_unit_reports_the_class_of_the_impedance_it_reports(
    host: Host, ohm: int, contact: Contact
) -> None:
    plant = host.sim.engine.plant
    plant.contact_override = plant.skin.resistance() / ohm
    host.advance(20)
    last = host.telemetry[-1]
    assert (last.impedance_ohm, last.contact) == (ohm, contact)


def test_impedance_is_measured_before_any_output(host: Host) -> None:
    host.advance(20)
    last = host.telemetry[-1]
    assert last.state == State.IDLE
    assert last.impedance_ohm == PARAMS.r_series_ohm + PARAMS.r_sc_ohm
    assert last.contact == Contact.OK
    assert last.amplitude_dv == 0 and last.current_ua == 0


def test_impedance_drops_once_the_voltage_passes_about_40_v() -> None:
    intact = _plant().impedance()
    dropped: dict[int, float] = {}
    for volts in (20, 35, 41, 45, 60, 100):
        plant = _plant()
        _pulse(plant, _drive(volts), 50)
        dropped[volts] = plant.impedance() / intact
    assert dropped[20] == dropped[35] == dropped[41] == 1.0
    assert dropped[45] < 0.9
    assert dropped[60] < 0.3
    assert dropped[100] < 0.1
    # By at most the drop factor (×5–×1000; ×50 by default) on the stratum corneum.
    floor = (PARAMS.r_series_ohm + PARAMS.r_sc_ohm / PARAMS.poration_drop_factor) / intact
    assert dropped[100] >= floor * 0.99


def test_poration_recovers_in_seconds_after_mild_dosing() -> None:
    plant = _plant()
    intact = plant.impedance()
    _pulse(plant, _drive(60), 20)
    porated = plant.impedance()
    _pulse(plant, None, 2000)
    after_2s = plant.impedance()
    _pulse(plant, None, 18_000)  # 20 s = 10 time constants
    assert porated < after_2s < intact
    assert plant.impedance() > 0.97 * intact


def test_heavy_dosing_leaves_a_slow_residue() -> None:
    plant = _plant(tick_ms=10)
    intact = plant.impedance()
    # 100 V continuous BI pulses, 2 × 500 µs at 500 Hz: ~50 V·s per second across the skin.
    heavy = Drive(100, 500, 500, 2, 1.0)
    _pulse(plant, heavy, 1000)  # 10 s
    assert plant.skin.dose_vs > PARAMS.heavy_dose_vs
    _pulse(plant, None, 3000)  # 30 s: the fast part is gone
    residue = plant.impedance() / intact
    assert residue < 0.6
    _pulse(plant, None, 180_000)  # 30 min
    assert plant.impedance() / intact > 0.95


def test_rms_current_scales_with_duty_and_amplitude() -> None:
    plant = _plant()
    base = plant.advance(_drive(20, frequency_hz=100))
    # Mean square current ∝ duty: twice the pulse rate, half the burst time, one phase.
    assert plant.advance(_drive(20, frequency_hz=200)) == pytest.approx(2 * base)
    assert plant.advance(_drive(20, on=0.5)) == pytest.approx(0.5 * base)
    assert plant.advance(_drive(20, phases=1)) == pytest.approx(0.5 * base)
    # Below the poration threshold the skin is linear: r.m.s. ∝ amplitude.
    assert math.sqrt(plant.advance(_drive(30))) == pytest.approx(1.5 * math.sqrt(base))


def test_current_of_a_long_pulse_is_ohms_law() -> None:
    r_s, r_p = 200.0, 4000.0
    charge = pulse_square_charge(r_s, r_p, 0.0, 1e-3)
    assert charge == pytest.approx((1 / (r_s + r_p)) ** 2 * 1e-3)
    with_c = pulse_square_charge(r_s, r_p, 8e-9, 1e-3)
    assert with_c > charge  # the charging spike adds to it


def test_burst_timing() -> None:
    assert burst_on_time(0, 100, 0, 0) == 100
    assert burst_on_time(0, 100, 10, 10) == 50
    assert burst_on_time(5, 15, 10, 10) == 5
    assert worst_window_on_fraction(0, 0) == 1.0
    assert worst_window_on_fraction(500, 500) == 1.0
    assert worst_window_on_fraction(10, 10) == 0.5
    assert worst_window_on_fraction(30, 50) == pytest.approx(0.5)  # 30+20 of 100


def test_electrode_area_scales_the_impedance() -> None:
    by_handpiece = {h: _plant(h).impedance() for h in Handpiece if h != Handpiece.NONE}
    r_s = PARAMS.r_series_ohm
    scalp = by_handpiece[Handpiece.SCALP_ROLLER] - r_s
    assert by_handpiece[Handpiece.FLAT_PROBE] - r_s == pytest.approx(2 * scalp)  # 2.0 cm²
    assert by_handpiece[Handpiece.COMB] - r_s == pytest.approx(scalp * 4 / 6)  # 6.0 cm²
    assert _plant(Handpiece.NONE).impedance() > 20_000


def test_temperature_rises_with_power_and_cools_to_skin() -> None:
    rises = []
    for power in (0.0, 0.2, 0.8):
        thermal = Thermal(PARAMS, 100)
        for _ in range(600):  # 60 s
            thermal.advance(power, True, 0.0)
        rises.append(thermal.temperature_c - PARAMS.skin_temperature_c)
    assert rises[0] == pytest.approx(0.0)
    assert 0 < rises[1] < rises[2]
    # Cooling back.
    thermal = Thermal(PARAMS, 100)
    thermal.temperature_c = 40.0
    for _ in range(6000):  # 10 min = 10 time constants
        thermal.advance(0.0, True, 0.0)
    assert thermal.temperature_c == pytest.approx(PARAMS.skin_temperature_c, abs=0.05)


def test_normal_use_cannot_reach_overtemp() -> None:
    """The most power a step can put into the skin (≈ 0.85 W, see docs) stays far below 41 °C."""
    thermal = Thermal(PARAMS, 100)
    for _ in range(36_000):  # an hour
        thermal.advance(0.85, True, 0.0)
    assert thermal.temperature_c < 37.0


def test_delivery_heats_the_handpiece(host: Host) -> None:
    step = STEP._replace(amplitude_dv=400, pulse_width_us=1000, frequency_hz=250)
    into_state(host, State.RUNNING, step)

    for _ in range(100):
        host.advance(100)
        host.request(Heartbeat())
    temps = [t.temperature_dc for t in host.telemetry]
    assert temps[-1] > temps[0]


def test_regulation_keeps_the_current_at_or_below_the_limit(host: Host) -> None:
    step = STEP._replace(amplitude_dv=1000, amplitude_max_dv=1000, current_limit_ua=3000)
    into_state(host, State.READY, step)
    host.request(SetTelemetry(1000))
    host.request(Start())
    for _ in range(20):
        host.advance(100)
        host.request(Heartbeat())
    limited = host.events_of(EventCode.AMPLITUDE_LIMITED)
    assert limited and limited[0].arg < 1000
    assert host.status().amplitude_dv == limited[-1].arg
    steady = host.telemetry[200:]
    assert max(t.current_ua for t in steady) <= 3000 * 1.02  # measurement noise is 0.5 %
    assert min(t.current_ua for t in steady) > 2000
    assert host.sim.state == State.RUNNING
