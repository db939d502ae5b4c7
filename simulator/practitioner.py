"""A practitioner moving a roller over the scalp: the contact the device sees over a session.

Off by default (the unit then sits on the scalp with good contact). When a scenario enables it,
the handpiece stays on one zone for about ``zone_s``, is lifted for about ``lift_s`` and placed on
the next zone; lifting and placing pass through a few tens of ms of partial contact, and while on
a zone it sometimes wobbles into marginal contact for ``marginal_s``. Times are drawn from a
seeded generator and advance in simulated time, so a run repeats exactly.
"""

from __future__ import annotations

import random
from enum import Enum

from simulator.scenario import PractitionerModel

#: Impedance to aim at while partly lifted: the middle of the marginal band (§6).
MARGINAL_TARGET_OHM = 15_000.0
#: Lifting or placing a roller takes this long at partial contact (our choice).
EDGE_MS = 40


class _Phase(Enum):
    ON = "on"
    WOBBLE = "wobble"
    LIFTING = "lifting"
    OFF = "off"
    PLACING = "placing"


class Practitioner:
    """Contact fraction over simulated time; :meth:`advance` once per tick."""

    def __init__(self, model: PractitionerModel, rng: random.Random) -> None:
        self.model = model
        self._rng = rng
        self._phase = _Phase.ON
        self._left_ms = self._draw(model.zone_s * 1000.0)
        self._wobble_in_ms = self._next_wobble()

    def _draw(self, mean_ms: float) -> float:
        j = self.model.jitter
        return mean_ms * (1.0 + self._rng.uniform(-j, j))

    def _next_wobble(self) -> float:
        per_min = self.model.marginal_per_min
        if per_min <= 0:
            return float("inf")
        return self._rng.expovariate(per_min / 60_000.0)

    def advance(self, dt_ms: int) -> None:
        self._left_ms -= dt_ms
        if self._phase is _Phase.ON:
            self._wobble_in_ms -= dt_ms
            if self._left_ms <= 0:
                self._phase, self._left_ms = _Phase.LIFTING, float(EDGE_MS)
            elif self._wobble_in_ms <= 0:
                self._phase = _Phase.WOBBLE
                self._wobble_left = self._draw(self.model.marginal_s * 1000.0)
                self._wobble_in_ms = self._next_wobble()
        elif self._phase is _Phase.WOBBLE:
            self._wobble_left -= dt_ms
            if self._wobble_left <= 0:
                self._phase = _Phase.ON
        elif self._left_ms <= 0:
            if self._phase is _Phase.LIFTING:
                self._phase, self._left_ms = _Phase.OFF, self._draw(self.model.lift_s * 1000.0)
            elif self._phase is _Phase.OFF:
                self._phase, self._left_ms = _Phase.PLACING, float(EDGE_MS)
            else:
                self._phase = _Phase.ON
                self._left_ms = self._draw(self.model.zone_s * 1000.0)

    def fraction(self, intact_resistance_ohm: float) -> float:
        """Share of the electrode in contact now, given the full-contact resistance."""
        if self._phase is _Phase.ON:
            return 1.0
        if self._phase is _Phase.OFF:
            return 0.0
        return min(1.0, intact_resistance_ohm / MARGINAL_TARGET_OHM)

    @property
    def phase(self) -> str:
        return self._phase.value
