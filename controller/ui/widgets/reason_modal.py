"""Ask for the reason of a skip or an early end (the record keeps it).

Why: a skipped zone or a session ended early changes what the client received; the reason is
part of the treatment record and cannot be left empty.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class ReasonModal(ModalScreen[str | None]):
    """Dismisses with the reason (Enter), or None (Esc)."""

    DEFAULT_CSS = """
    ReasonModal {
        align: center middle;
    }
    ReasonModal > Vertical {
        width: 70;
        max-width: 95%;
        height: auto;
        padding: 1 2;
        border: thick $primary;
        background: $surface;
    }
    ReasonModal #title {
        text-style: bold;
    }
    ReasonModal #problem {
        color: $error;
        height: auto;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, prompt: str, *, confirm: str = "Enter confirms") -> None:
        super().__init__()
        self.title_text = title
        self.prompt = prompt
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, id="title")
            yield Label(self.prompt)
            yield Input(placeholder="reason (required)", id="reason", max_length=500)
            yield Label("", id="problem")
            yield Label(f"{self.confirm} · Esc cancels", classes="hint")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        reason = event.value.strip()
        if not reason:
            self.query_one("#problem", Label).update(
                "A reason is required: type why (e.g. 'client uncomfortable'), then Enter."
            )
            return
        self.dismiss(reason)

    def action_cancel(self) -> None:
        self.dismiss(None)
