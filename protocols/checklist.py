"""The pre-session checklist: the built-in items, a protocol's own, and their evaluation.

A "yes" to any contraindication blocks the session; every confirmation must be answered
"yes"; notes are shown and never block. An unanswered contraindication or confirmation blocks
too: the practitioner must answer every item.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from protocols.models import Protocol


class ItemKind(StrEnum):
    CONTRAINDICATION = "contraindication"
    CONFIRMATION = "confirmation"
    NOTE = "note"


@dataclass(frozen=True)
class ChecklistItem:
    id: str
    text: str
    kind: ItemKind

    @property
    def blocking(self) -> bool:
        return self.kind is not ItemKind.NOTE


def _contra(item_id: str, text: str) -> ChecklistItem:
    return ChecklistItem(item_id, text, ItemKind.CONTRAINDICATION)


#: The built-in checklist, in the order it is shown. Ids are stable: session records keep them.
BUILTIN_CHECKLIST: tuple[ChecklistItem, ...] = (
    _contra(
        "scalp-infection-or-wound",
        "Active scalp infection or open wounds in the treatment area?",
    ),
    _contra(
        "chronic-scalp-disorder",
        "Chronic scalp skin disorder, such as psoriasis, in the treatment area?",
    ),
    _contra("clotting-disorder", "Blood-clotting disorder or anticoagulant medication?"),
    _contra("serum-allergy", "Known allergy to any ingredient of the serum?"),
    _contra("implanted-device", "Pacemaker or other implanted electronic device?"),
    _contra("pregnancy", "Pregnancy?"),
    _contra("epilepsy", "Epilepsy?"),
    _contra("metal-implant", "Metal implants in the treatment area?"),
    ChecklistItem(
        "consultation-done",
        "Consultation done and scalp examined?",
        ItemKind.CONFIRMATION,
    ),
    ChecklistItem(
        "serum-lot-recorded",
        "Serum and its lot number recorded?",
        ItemKind.CONFIRMATION,
    ),
    ChecklistItem(
        "numbing-cream",
        "Numbing cream applied or declined?",
        ItemKind.CONFIRMATION,
    ),
    ChecklistItem(
        "complete-baldness",
        "Long-standing complete baldness of a zone responds poorly to treatment.",
        ItemKind.NOTE,
    ),
)

PROTOCOL_ITEM_PREFIX = "protocol-contraindication-"


def build_checklist(protocol: Protocol) -> tuple[ChecklistItem, ...]:
    """The built-in items followed by the protocol's ``contraindications``.

    A protocol's items get ids ``protocol-contraindication-<n>`` (from 1, in file order).
    """
    extra = tuple(
        _contra(f"{PROTOCOL_ITEM_PREFIX}{number}", text)
        for number, text in enumerate(protocol.contraindications, start=1)
    )
    return BUILTIN_CHECKLIST + extra


def evaluate_checklist(
    items: Sequence[ChecklistItem], answers: Mapping[str, bool | None]
) -> list[str]:
    """Reasons the session may not start; empty when it may.

    ``answers`` maps item ids to ``True`` (yes), ``False`` (no) or ``None``/absent
    (unanswered). An answer for an id not in ``items`` is a programming error.
    """
    known = {item.id for item in items}
    stray = sorted(set(answers) - known)
    if stray:
        raise ValueError(f"answers for items not in the checklist: {', '.join(stray)}")
    reasons: list[str] = []
    for item in items:
        answer = answers.get(item.id)
        if item.kind is ItemKind.NOTE:
            continue
        if answer is None:
            reasons.append(f"Not answered: {item.text}")
        elif item.kind is ItemKind.CONTRAINDICATION and answer:
            reasons.append(f"Contraindication present: {item.text}")
        elif item.kind is ItemKind.CONFIRMATION and not answer:
            reasons.append(f"Not confirmed: {item.text}")
    return reasons
