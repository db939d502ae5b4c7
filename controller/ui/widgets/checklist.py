"""The pre-session checklist as a keyboard list: move with the arrows, answer with y or n.

Why: every item must be answered before a session starts (``protocols.evaluate_checklist``
decides; this widget only collects answers). A "yes" to a contraindication is shown as blocking
right where it was given; notes are shown and need no answer. Enter or a click cycles an
answer (unanswered → no → yes → no), so the mouse works too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from protocols import ChecklistItem, ItemKind


def item_prompt(item: ChecklistItem, answer: bool | None) -> Text:
    text = Text()
    if item.kind is ItemKind.NOTE:
        text.append(" NOTE ", style="bold reverse")
        text.append(f" {item.text}", style="italic")
        return text
    if answer is None:
        text.append(" ---- ", style="dim")
    elif item.kind is ItemKind.CONTRAINDICATION and answer:
        text.append(" YES! ", style="bold reverse")
    elif item.kind is ItemKind.CONFIRMATION and not answer:
        text.append("  NO! ", style="bold reverse")
    else:
        text.append(" yes  " if answer else " no   ", style="bold")
    text.append(f" {item.text}")
    if item.kind is ItemKind.CONTRAINDICATION and answer:
        text.append("  — blocks the session", style="bold")
    if item.kind is ItemKind.CONFIRMATION and answer is False:
        text.append("  — must be yes", style="bold")
    return text


class ChecklistAnswers(OptionList):
    """The items of ``protocols.build_checklist(protocol)`` with their answers."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
    ]

    class Changed(Message):
        """An answer changed."""

        def __init__(self, checklist: ChecklistAnswers) -> None:
            super().__init__()
            self.checklist = checklist

        @property
        def control(self) -> ChecklistAnswers:
            return self.checklist

    def __init__(self, items: Sequence[ChecklistItem] = (), *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self._items: list[ChecklistItem] = []
        self._answers: dict[str, bool | None] = {}
        self._pending = list(items)

    def on_mount(self) -> None:
        self.set_items(self._pending)

    @property
    def items(self) -> tuple[ChecklistItem, ...]:
        return tuple(self._items)

    @property
    def answers(self) -> dict[str, bool | None]:
        """Answers of every item that takes one (notes are left out)."""
        return dict(self._answers)

    def set_items(self, items: Sequence[ChecklistItem]) -> None:
        """Show a new checklist; answers of items that stay are kept."""
        old = self._answers
        self._items = list(items)
        self._answers = {
            item.id: old.get(item.id) for item in self._items if item.kind is not ItemKind.NOTE
        }
        self.clear_options()
        self.add_options(
            [
                Option(item_prompt(item, self._answers.get(item.id)), id=item.id)
                for item in self._items
            ]
        )
        if self._items:
            self.highlighted = 0

    def set_answer(self, item_id: str, answer: bool | None) -> None:
        if item_id not in self._answers:
            return
        self._answers[item_id] = answer
        index = next(i for i, item in enumerate(self._items) if item.id == item_id)
        self.replace_option_prompt_at_index(index, item_prompt(self._items[index], answer))
        self.post_message(self.Changed(self))

    def _highlighted_item(self) -> ChecklistItem | None:
        if self.highlighted is None or not 0 <= self.highlighted < len(self._items):
            return None
        return self._items[self.highlighted]

    def action_answer(self, yes: bool) -> None:
        item = self._highlighted_item()
        if item is None or item.kind is ItemKind.NOTE:
            return
        self.set_answer(item.id, yes)
        self.highlight_next_question()

    def highlight_next_question(self) -> None:
        """Move to the next item that takes an answer (notes are skipped)."""
        start = (self.highlighted or 0) + 1
        for index in range(start, len(self._items)):
            if self._items[index].kind is not ItemKind.NOTE:
                self.highlighted = index
                return

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        item = self._highlighted_item()
        if item is None or item.kind is ItemKind.NOTE:
            return
        current = self._answers.get(item.id)
        self.set_answer(item.id, current is False)
