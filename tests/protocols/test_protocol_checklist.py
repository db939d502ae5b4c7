"""The pre-session checklist and its evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from protocols import (
    BUILTIN_CHECKLIST,
    ChecklistItem,
    ItemKind,
    Protocol,
    build_checklist,
    evaluate_checklist,
    load_protocol,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"


@pytest.fixture
def protocol() -> Protocol:
    result = load_protocol(DATA / "valid" / "base.yaml")
    assert result.protocol is not None
    return result.protocol.model_copy(
        update={"contraindications": ("Keloid scarring?", "Recent hair transplant?")}
    )


def _all_clear(items: tuple[ChecklistItem, ...]) -> dict[str, bool | None]:
    """No to every contraindication, yes to every confirmation."""
    return {
        item.id: item.kind is ItemKind.CONFIRMATION
        for item in items
        if item.kind is not ItemKind.NOTE
    }


def test_builtin_checklist_matches_the_format() -> None:
    kinds = [item.kind for item in BUILTIN_CHECKLIST]
    assert kinds.count(ItemKind.CONTRAINDICATION) == 8
    assert kinds.count(ItemKind.CONFIRMATION) == 3
    assert kinds.count(ItemKind.NOTE) == 1
    ids = [item.id for item in BUILTIN_CHECKLIST]
    assert len(set(ids)) == len(ids)
    assert "pregnancy" in ids
    assert "implanted-device" in ids


def test_protocol_contraindications_are_appended(protocol: Protocol) -> None:
    items = build_checklist(protocol)
    assert items[: len(BUILTIN_CHECKLIST)] == BUILTIN_CHECKLIST
    extra = items[len(BUILTIN_CHECKLIST) :]
    assert [(i.id, i.text, i.kind) for i in extra] == [
        ("protocol-contraindication-1", "Keloid scarring?", ItemKind.CONTRAINDICATION),
        ("protocol-contraindication-2", "Recent hair transplant?", ItemKind.CONTRAINDICATION),
    ]


def test_all_clear_lets_the_session_start(protocol: Protocol) -> None:
    items = build_checklist(protocol)
    assert evaluate_checklist(items, _all_clear(items)) == []


def test_a_yes_to_a_contraindication_blocks(protocol: Protocol) -> None:
    items = build_checklist(protocol)
    answers = _all_clear(items) | {"pregnancy": True, "protocol-contraindication-2": True}
    assert evaluate_checklist(items, answers) == [
        "Contraindication present: Pregnancy?",
        "Contraindication present: Recent hair transplant?",
    ]


def test_a_no_to_a_confirmation_blocks(protocol: Protocol) -> None:
    items = build_checklist(protocol)
    answers = _all_clear(items) | {"serum-lot-recorded": False}
    assert evaluate_checklist(items, answers) == [
        "Not confirmed: Serum and its lot number recorded?"
    ]


def test_unanswered_items_block_but_notes_never_do(protocol: Protocol) -> None:
    items = build_checklist(protocol)
    answers = _all_clear(items)
    del answers["epilepsy"]
    answers["consultation-done"] = None
    reasons = evaluate_checklist(items, answers | {"complete-baldness": True})
    assert reasons == [
        "Not answered: Epilepsy?",
        "Not answered: Consultation done and scalp examined?",
    ]


def test_answers_for_unknown_items_are_a_programming_error(protocol: Protocol) -> None:
    items = build_checklist(protocol)
    with pytest.raises(ValueError, match="not-an-item"):
        evaluate_checklist(items, _all_clear(items) | {"not-an-item": False})
