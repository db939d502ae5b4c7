"""The fixed vocabularies of ``epm-protocol/1`` (every enum the format defines)."""

from __future__ import annotations

from enum import StrEnum


class Indication(StrEnum):
    EARLY_ANDROGENETIC_ALOPECIA = "early_androgenetic_alopecia"
    TELOGEN_EFFLUVIUM = "telogen_effluvium"
    ALOPECIA_AREATA = "alopecia_areata"
    DAMAGED_HAIR = "damaged_hair"
    MAINTENANCE = "maintenance"


class Status(StrEnum):
    """approved: runs for clients on a real device; draft: simulator only; retired: never."""

    DRAFT = "draft"
    APPROVED = "approved"
    RETIRED = "retired"


class Handpiece(StrEnum):
    SCALP_ROLLER = "scalp_roller"
    FLAT_PROBE = "flat_probe"
    COMB = "comb"


class Zone(StrEnum):
    FRONTAL = "frontal"
    MIDSCALP = "midscalp"
    CROWN = "crown"
    TEMPORAL_LEFT = "temporal_left"
    TEMPORAL_RIGHT = "temporal_right"
    OCCIPITAL = "occipital"
    PATCH = "patch"


class Waveform(StrEnum):
    MONOPHASIC_SQUARE = "monophasic_square"
    BIPHASIC_SQUARE = "biphasic_square"

    @property
    def phases(self) -> int:
        """Phases per pulse: 2 for biphasic (charge-balanced), 1 for monophasic."""
        return 2 if self is Waveform.BIPHASIC_SQUARE else 1


class Polarity(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    ALTERNATE_PULSE = "alternate_pulse"
    ALTERNATE_BURST = "alternate_burst"

    @property
    def is_fixed(self) -> bool:
        """A fixed polarity on a monophasic waveform carries direct current."""
        return self in (Polarity.POSITIVE, Polarity.NEGATIVE)


class StepKind(StrEnum):
    DELIVERY = "delivery"
    MANUAL = "manual"


#: Effective electrode area of each handpiece in cm² (device interface §8).
HANDPIECE_AREA_CM2: dict[Handpiece, float] = {
    Handpiece.SCALP_ROLLER: 4.0,
    Handpiece.FLAT_PROBE: 2.0,
    Handpiece.COMB: 6.0,
}
