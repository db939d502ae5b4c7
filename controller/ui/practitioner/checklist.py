"""Lists answered with the keyboard on the new-session pages: the pre-session checklist and
the zones to treat today.

Why: every checklist item must be answered before a session starts
(``protocols.evaluate_checklist`` decides; this widget only collects answers), and the zones
list decides what is delivered today. One rule for both, so no key surprises anyone: **space**
toggles (a zone on or off; an answer no/yes), **y**/**n** answer, and **Enter always goes on**
to the next page — it never changes an answer or turns a zone off. Each line shows ✔ when it
lets the session go ahead as planned and ✘ when it does not (a zone left out, a blocking
answer), in words as well as the mark. A click toggles, so the mouse works too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.actions import SkipAction
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from protocols import ChecklistItem, ItemKind

#: The marks: the line lets the session go ahead as planned, or it does not.
TICK = "✔"
CROSS = "✘"


def item_prompt(item: ChecklistItem, answer: bool | None) -> Text:
    text = Text()
    if item.kind is ItemKind.NOTE:
        text.append("   NOTE ", style="bold reverse")
        text.append(f" {item.text}", style="italic")
        return text
    if answer is None:
        text.append(" ·  ---  ", style="dim")
    elif item.kind is ItemKind.CONTRAINDICATION and answer:
        text.append(f" {CROSS} YES!  ", style="bold reverse")
    elif item.kind is ItemKind.CONFIRMATION and not answer:
        text.append(f" {CROSS}  NO!  ", style="bold reverse")
    else:
        text.append(f" {TICK} yes   " if answer else f" {TICK} no    ", style="bold")
    text.append(f" {item.text}")
    if item.kind is ItemKind.CONTRAINDICATION and answer:
        text.append("  — blocks the session", style="bold")
    if item.kind is ItemKind.CONFIRMATION and answer is False:
        text.append("  — must be yes", style="bold")
    return text


class _GoOnList(OptionList):
    """An option list whose Enter is left to the screen (go on); a click selects."""

    BINDINGS: ClassVar[list[BindingType]] = [
        # Overrides OptionList's Enter (select): the screen's Enter (next page) runs instead.
        Binding("enter", "go_on", "Next", show=False),
    ]

    def action_go_on(self) -> None:
        raise SkipAction()


class ChecklistAnswers(_GoOnList):
    """The items of ``protocols.build_checklist(protocol)`` with their answers."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("space", "cycle", "No/yes", show=False),
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

    def action_cycle(self) -> None:
        """Space (or a click): unanswered → no → yes → no …"""
        item = self._highlighted_item()
        if item is None or item.kind is ItemKind.NOTE:
            return
        current = self._answers.get(item.id)
        self.set_answer(item.id, current is False)

    def highlight_next_question(self) -> None:
        """Move to the next item that takes an answer (notes are skipped)."""
        start = (self.highlighted or 0) + 1
        for index in range(start, len(self._items)):
            if self._items[index].kind is not ItemKind.NOTE:
                self.highlighted = index
                return

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()  # only a click selects here (Enter goes on)
        self.action_cycle()


def zone_prompt(label: str, on: bool) -> Text:
    text = Text()
    if on:
        text.append(f" {TICK} ", style="bold")
        text.append(label)
    else:
        text.append(f" {CROSS} ", style="bold reverse")
        text.append(label, style="strike")
        text.append("  — not today", style="bold")
    return text


class ToggleList(_GoOnList):
    """Values that are on or off (the zones to treat today): space or a click toggles the
    highlighted one; Enter goes on. ``selected`` lists the values that are on, in order."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "flip", "On/off"),
    ]

    class Changed(Message):
        """A value was turned on or off."""

        def __init__(self, toggles: ToggleList) -> None:
            super().__init__()
            self.toggles = toggles

        @property
        def control(self) -> ToggleList:
            return self.toggles

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self._entries: list[tuple[str, str]] = []
        self._on: dict[str, bool] = {}

    def set_entries(self, entries: Sequence[tuple[str, str, bool]]) -> None:
        """``(label, value, on)`` for each line, in order."""
        self._entries = [(label, value) for label, value, _ in entries]
        self._on = {value: on for _, value, on in entries}
        self.clear_options()
        self.add_options([Option(zone_prompt(label, on), id=value) for label, value, on in entries])
        if entries:
            self.highlighted = 0

    @property
    def selected(self) -> list[str]:
        return [value for _, value in self._entries if self._on.get(value)]

    def is_on(self, value: str) -> bool:
        return bool(self._on.get(value))

    def action_flip(self) -> None:
        """Space (or a click): the highlighted value on or off."""
        index = self.highlighted
        if index is None or not 0 <= index < len(self._entries):
            return
        label, value = self._entries[index]
        self._on[value] = not self._on.get(value)
        self.replace_option_prompt_at_index(index, zone_prompt(label, self._on[value]))
        self.post_message(self.Changed(self))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()  # only a click selects here (Enter goes on)
        self.action_flip()
