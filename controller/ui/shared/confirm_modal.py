"""A yes/no question in a modal: "Stop the session? y/n".

Why: stopping ends the session with a ramp-down and cannot be undone, so it is asked once;
the emergency stop (F12) is never asked and still works while this modal is open.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label


class ConfirmModal(ModalScreen[bool]):
    """Dismisses with True for yes (``y`` or the Yes button), False for no (``n``, Esc)."""

    DEFAULT_CSS = """
    ConfirmModal {
        align: center middle;
    }
    ConfirmModal > Vertical {
        width: 60;
        max-width: 95%;
        height: auto;
        padding: 1 2;
        border: thick $primary;
        background: $surface;
    }
    ConfirmModal #question {
        text-style: bold;
        width: 100%;
    }
    ConfirmModal #explain {
        width: 100%;
        margin-top: 1;
    }
    ConfirmModal Horizontal {
        height: auto;
        margin-top: 1;
        align-horizontal: center;
    }
    ConfirmModal Button {
        margin: 0 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, explain: str = "", *, yes: str = "Yes", no: str = "No"):
        super().__init__()
        self.question = question
        self.explain = explain
        self._yes = yes
        self._no = no

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.question}  y/n", id="question")
            if self.explain:
                yield Label(self.explain, id="explain")
            with Horizontal():
                yield Button(f"{self._yes} (y)", id="yes", variant="primary")
                yield Button(f"{self._no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")
