"""The skin under a bipolar handpiece: impedance, electroporation and its recovery, contact.

Model (numbers and sources in docs/simulator.md; domain notes for the ranges): a series
resistance ``R_s`` (electrode, serum, hair; 100–300 Ω) in series with the stratum corneum, a
resistance ``R_sc`` (1–10 kΩ for the reference area) in parallel with a capacitance ``C_sc``.
``R_sc`` and ``C_sc`` scale with the electrode area of the handpiece. Once the voltage the intact
stratum corneum would see passes a threshold (30–50 V), its conductance rises by up to a drop
factor (×5 to ×1000); the fast part recovers in seconds, a slow residue that builds with heavy
dosing (> 200 V·s) recovers in minutes. Partial contact divides the contact area by ``f``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from controller.wire import Contact
from controller.wire.constants import HANDPIECE_AREA_CM2, Handpiece
from simulator.pulses import pulse_square_charge

#: The skin parameters are given for the scalp roller's 4.0 cm² (§8).
REFERENCE_AREA_CM2 = 4.0

#: §6 contact classes by impedance, as the device reports it.
SHORT_BELOW_OHM = 50
OK_MAX_OHM = 10_000
MARGINAL_MAX_OHM = 20_000


def classify_contact(impedance_ohm: int) -> Contact:
    """§6: short < 50 Ω; ok 50 Ω–10 kΩ; marginal 10–20 kΩ; none > 20 kΩ (bounds inclusive)."""
    if impedance_ohm < SHORT_BELOW_OHM:
        return Contact.SHORT
    if impedance_ohm <= OK_MAX_OHM:
        return Contact.OK
    if impedance_ohm <= MARGINAL_MAX_OHM:
        return Contact.MARGINAL
    return Contact.NONE


@dataclass(frozen=True)
class SkinParams:
    """Electrical and thermal constants of one client's scalp; defaults are mid-range."""

    r_series_ohm: float = 200.0
    r_sc_ohm: float = 4000.0
    c_sc_nf_per_cm2: float = 2.0
    poration_threshold_v: float = 40.0
    poration_drop_factor: float = 50.0
    recovery_fast_s: float = 2.0
    recovery_slow_s: float = 300.0
    heavy_dose_vs: float = 200.0
    heavy_dose_residual: float = 0.35
    skin_temperature_c: float = 32.5
    ambient_temperature_c: float = 24.0
    thermal_resistance_k_per_w: float = 4.0
    thermal_time_constant_s: float = 60.0
    open_circuit_ohm: float = 5_000_000.0


@dataclass(frozen=True)
class Drive:
    """What the output stage applies during one tick."""

    amplitude_v: float
    pulse_width_us: int
    frequency_hz: int
    phases: int
    #: Share of the tick inside a burst (1.0 for continuous pulsing).
    on_fraction: float


class Skin:
    """Electroporation state of the skin under the electrodes, advanced in fixed ticks."""

    def __init__(self, params: SkinParams, tick_ms: int) -> None:
        self.params = params
        self.tick_s = tick_ms / 1000.0
        self._fast_decay = math.exp(-self.tick_s / params.recovery_fast_s)
        self._slow_decay = math.exp(-self.tick_s / params.recovery_slow_s)
        self.porated = 0.0
        self.dose_vs = 0.0
        self._charge_memo: tuple[float, int, float] = (-1.0, -1, 0.0)
        self.set_area(REFERENCE_AREA_CM2)

    def set_area(self, area_cm2: float) -> None:
        p = self.params
        self.r_sc_intact = p.r_sc_ohm * REFERENCE_AREA_CM2 / area_cm2
        self.c_sc = p.c_sc_nf_per_cm2 * area_cm2 * 1e-9
        self._charge_memo = (-1.0, -1, 0.0)
        self._update()

    def _update(self) -> None:
        self.r_sc_now = self.r_sc_intact / self.conductance_gain()

    def conductance_gain(self, porated: float | None = None) -> float:
        p = self.params
        residue = min(1.0, self.dose_vs / p.heavy_dose_vs)
        level = self.porated if porated is None else porated
        return (
            1.0
            + (p.poration_drop_factor - 1.0) * level
            + (1.0 / p.heavy_dose_residual - 1.0) * residue
        )

    def r_sc_if_driven(self, amplitude_v: float) -> float:
        """``R_sc`` once pulses of ``amplitude_v`` have porated the skin (for prediction)."""
        level = max(self.porated, self.drive_level(amplitude_v))
        return self.r_sc_intact / self.conductance_gain(level)

    def r_sc(self) -> float:
        return self.r_sc_now

    def resistance(self) -> float:
        """``R_s + R_sc`` at full contact, what the device measures at the end of a pulse."""
        return self.params.r_series_ohm + self.r_sc_now

    def square_charge(self, width_us: int, r_sc: float | None = None) -> float:
        """∫ i² dt of one phase of 1 V at full contact (A²·s/V²), memoised per skin state.

        ``r_sc`` replaces today's stratum corneum resistance (to predict).
        """
        if r_sc is not None:
            return pulse_square_charge(self.params.r_series_ohm, r_sc, self.c_sc, width_us * 1e-6)
        r_sc_memo, width, value = self._charge_memo
        if r_sc_memo != self.r_sc_now or width != width_us:
            value = pulse_square_charge(
                self.params.r_series_ohm, self.r_sc_now, self.c_sc, width_us * 1e-6
            )
            self._charge_memo = (self.r_sc_now, width_us, value)
        return value

    def drive_level(self, amplitude_v: float) -> float:
        """0..1: how far the intact stratum corneum's voltage is past the poration threshold."""
        p = self.params
        v_sc = amplitude_v * self.r_sc_intact / (p.r_series_ohm + self.r_sc_intact)
        if v_sc <= p.poration_threshold_v:
            return 0.0
        return min(1.0, (v_sc - p.poration_threshold_v) / p.poration_threshold_v)

    def advance(self, drive: Drive | None) -> None:
        """One tick: pores open within the tick above threshold, then recover."""
        if self.porated or self.dose_vs:
            self.porated *= self._fast_decay
            self.dose_vs *= self._slow_decay
            if self.porated < 1e-9 and self.dose_vs < 1e-9:
                self.porated = self.dose_vs = 0.0
            self._update()
        if drive is None or drive.on_fraction <= 0.0 or drive.amplitude_v <= 0.0:
            return
        level = self.drive_level(drive.amplitude_v)
        if level <= 0.0:
            return
        self.porated = max(self.porated, level)
        on_s = (
            drive.pulse_width_us
            * 1e-6
            * drive.frequency_hz
            * drive.phases
            * drive.on_fraction
            * self.tick_s
        )
        self.dose_vs += drive.amplitude_v * on_s
        self._update()


class Thermal:
    """Handpiece temperature: first-order towards skin (or room) plus the delivered power."""

    def __init__(self, params: SkinParams, tick_ms: int) -> None:
        self.params = params
        self.tick_s = tick_ms / 1000.0
        self._alpha = 1.0 - math.exp(-self.tick_s / params.thermal_time_constant_s)
        self.temperature_c = params.skin_temperature_c

    def advance(self, power_w: float, on_skin: bool, heater_c_per_s: float) -> None:
        p = self.params
        rest = p.skin_temperature_c if on_skin else p.ambient_temperature_c
        target = rest + power_w * p.thermal_resistance_k_per_w
        self.temperature_c += (target - self.temperature_c) * self._alpha
        self.temperature_c += heater_c_per_s * self.tick_s


class Plant:
    """The handpiece on the client's scalp, plus the injected hardware conditions.

    Fault injection sets the public attributes (``contact_override``, ``short_ohm``, ...); the
    firmware reads :meth:`impedance` and calls :meth:`advance` once per tick.
    """

    def __init__(self, params: SkinParams, tick_ms: int, handpiece: Handpiece) -> None:
        self.params = params
        self.skin = Skin(params, tick_ms)
        self.thermal = Thermal(params, tick_ms)
        self.handpiece = Handpiece.NONE
        self.attach(handpiece)
        #: 0..1 share of the electrode area in contact, set by the practitioner model.
        self.contact_fraction = 1.0
        #: Fault: forced contact fraction (0 for contact lost) instead of the practitioner's.
        self.contact_override: float | None = None
        #: Fault: impedance of a short across the electrodes.
        self.short_ohm: float | None = None
        #: Fault: output (0.1 V) the stage delivers while it should be off.
        self.stuck_dv = 0
        #: Fault: the output stage pushes this multiple of the current limit whatever the setpoint.
        self.overcurrent_factor = 0.0
        #: Fault: BI_SQUARE output carries a net DC component.
        self.net_dc = False
        #: Fault: heating of the handpiece, °C/s, until ``heater_target_c``.
        self.heater_c_per_s = 0.0
        self.heater_target_c = 0.0
        #: Impedance measured during the last :meth:`advance`.
        self.last_impedance = self.impedance()

    def attach(self, handpiece: Handpiece) -> None:
        self.handpiece = Handpiece(handpiece)
        if self.handpiece is not Handpiece.NONE:
            self.skin.set_area(HANDPIECE_AREA_CM2[self.handpiece])

    def fraction(self) -> float:
        if self.handpiece is Handpiece.NONE:
            return 0.0
        if self.contact_override is not None:
            return self.contact_override
        return self.contact_fraction

    def intact_resistance(self) -> float:
        """Full-contact resistance of skin that is not porated (the practitioner's reference)."""
        return self.params.r_series_ohm + self.skin.r_sc_intact

    def impedance(self) -> float:
        """What the device measures across the electrodes (probe signal when output is off)."""
        if self.handpiece is Handpiece.NONE:
            return self.params.open_circuit_ohm
        if self.short_ohm is not None:
            return self.short_ohm
        f = self.fraction()
        if f <= 1e-4:
            return self.params.open_circuit_ohm
        return min(self.params.open_circuit_ohm, self.skin.resistance() / f)

    def mean_square_per_v2(
        self, drive_pw_us: int, frequency_hz: int, phases: int, amplitude_v: float | None = None
    ) -> float:
        """Mean square current (A²) per V² of amplitude while pulsing continuously.

        With ``amplitude_v``, for the skin as pulses of that amplitude would leave it.
        """
        if self.handpiece is Handpiece.NONE:
            return 0.0
        if self.short_ohm is not None:
            return drive_pw_us * 1e-6 * frequency_hz * phases / (self.short_ohm**2)
        f = self.fraction()
        if f <= 1e-4:
            return 0.0
        r_sc = None if amplitude_v is None else self.skin.r_sc_if_driven(amplitude_v)
        return f * f * self.skin.square_charge(drive_pw_us, r_sc) * frequency_hz * phases

    def advance(self, drive: Drive | None) -> float:
        """One tick with ``drive`` applied (None: output off); the tick's mean square current."""
        mean_square = 0.0
        if drive is not None and drive.amplitude_v > 0.0 and drive.on_fraction > 0.0:
            per_v2 = self.mean_square_per_v2(drive.pulse_width_us, drive.frequency_hz, drive.phases)
            mean_square = per_v2 * drive.amplitude_v**2 * drive.on_fraction
        in_contact = self.fraction() > 1e-4 and self.handpiece is not Handpiece.NONE
        self.skin.advance(drive if in_contact and self.short_ohm is None else None)
        heater = 0.0
        if self.heater_c_per_s > 0.0 and self.thermal.temperature_c < self.heater_target_c:
            heater = self.heater_c_per_s
        z = self.impedance()
        self.last_impedance = z
        self.thermal.advance(mean_square * z if in_contact else 0.0, in_contact, heater)
        return mean_square
