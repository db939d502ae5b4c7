"""What the simulated unit says about itself in HELLO_REPLY (interface document §4 and §8).

Kept apart from the firmware so the CONFIGURE_STEP checks can be exercised with the ranges of a
hypothetical other model (the energy rule can only fail with a higher amplitude ceiling).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from controller.wire import HelloReply
from controller.wire.constants import SIM_SERIAL_PREFIX


@dataclass(frozen=True)
class Capabilities:
    """The capability fields of HELLO_REPLY; EPM-1's values by default (§8)."""

    model: str = "EPM-1"
    fw_major: int = 1
    fw_minor: int = 0
    fw_patch: int = 0
    max_amplitude_dv: int = 1200
    max_current_ua: int = 10_000
    pulse_width_min_us: int = 50
    pulse_width_max_us: int = 2000
    frequency_min_hz: int = 1
    frequency_max_hz: int = 5000
    max_step_ms: int = 1_200_000
    #: bit0 MONO_SQUARE, bit1 BI_SQUARE.
    waveforms: int = 0b11
    max_telemetry_hz: int = 1000

    def hello_reply(self, serial: str, boot_id: int, handpiece: int) -> HelloReply:
        return HelloReply(
            proto_version=1,
            model=self.model,
            serial=serial,
            fw_major=self.fw_major,
            fw_minor=self.fw_minor,
            fw_patch=self.fw_patch,
            boot_id=boot_id,
            max_amplitude_dv=self.max_amplitude_dv,
            max_current_ua=self.max_current_ua,
            pulse_width_min_us=self.pulse_width_min_us,
            pulse_width_max_us=self.pulse_width_max_us,
            frequency_min_hz=self.frequency_min_hz,
            frequency_max_hz=self.frequency_max_hz,
            max_step_ms=self.max_step_ms,
            waveforms=self.waveforms,
            max_telemetry_hz=self.max_telemetry_hz,
            handpiece=handpiece,
        )


EPM1 = Capabilities()


def draw_serial(rng: random.Random) -> str:
    """``SIM-`` and six digits drawn from ``rng``: never a real unit's serial."""
    return f"{SIM_SERIAL_PREFIX}{rng.randrange(1_000_000):06d}"


def serial_for_seed(seed: int) -> str:
    """The first unit's serial: drawn from the seed, so stable per seed."""
    return draw_serial(random.Random(f"epm-sim:{seed}:serial"))
