"""A modal that offers a few choices (export format, save before leaving).

Why: a list of choices with the keyboard (arrows and Enter, or the choice's number) is quicker
and harder to get wrong than a row of small buttons at 80×24; Escape always means "none of
these", so a technician can back out of anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option


class ChoiceDialog(ModalScreen[str | None]):
    """Dismisses with the chosen choice's id, or ``None`` when cancelled (Escape)."""

    DEFAULT_CSS = """
    ChoiceDialog {
        align: center middle;
    }
    ChoiceDialog .tech-dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    ChoiceDialog .tech-dialog-title {
        text-style: bold;
        width: 100%;
        margin-bottom: 1;
    }
    ChoiceDialog .tech-hint {
        color: $text-muted;
        height: 1;
    }
    ChoiceDialog .tech-error {
        color: $text-error;
        height: auto;
    }
    ChoiceDialog .tech-dialog-details {
        height: auto;
        max-height: 12;
    }
    ChoiceDialog #choice-list {
        height: auto;
        max-height: 10;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, message: str, choices: Sequence[tuple[str, str]]) -> None:
        """``choices`` are ``(id, label)`` pairs, shown numbered from 1."""
        super().__init__(classes="tech-dialog-screen")
        self._title = title
        self._message = message
        self._choices = tuple(choices)

    def compose(self) -> ComposeResult:
        with Vertical(classes="tech-dialog"):
            yield Label(self._title, classes="tech-dialog-title")
            if self._message:
                with VerticalScroll(classes="tech-dialog-details"):
                    yield Static(self._message, markup=False)
            yield OptionList(
                *(
                    Option(f"{n}. {label}", id=choice_id)
                    for n, (choice_id, label) in enumerate(self._choices, start=1)
                ),
                id="choice-list",
                markup=False,
            )
            yield Label("Enter chooses · a number chooses · Esc cancels", classes="tech-hint")

    def on_mount(self) -> None:
        options = self.query_one("#choice-list", OptionList)
        options.highlighted = 0
        options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def on_key(self, event: events.Key) -> None:
        if event.character is not None and event.character.isdigit():
            index = int(event.character) - 1
            if 0 <= index < len(self._choices):
                event.stop()
                self.dismiss(self._choices[index][0])

    def action_cancel(self) -> None:
        self.dismiss(None)
