"""A modal that asks for one line of text (an approver's name, a new file's name).

Why one small reusable modal: every question the technician screens ask is "type a value,
Enter to confirm, Escape to cancel", with the facts the answer depends on shown above the
field. A ``check`` function may refuse a value with a message that says how to fix it; the
dialog then stays open, so nothing is lost to a typo.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class PromptDialog(ModalScreen[str | None]):
    """Dismisses with the typed text (stripped), or ``None`` when cancelled."""

    DEFAULT_CSS = """
    PromptDialog {
        align: center middle;
    }
    PromptDialog .tech-dialog {
        width: 76;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    PromptDialog .tech-dialog-title {
        text-style: bold;
        width: 100%;
        margin-bottom: 1;
    }
    PromptDialog .tech-hint {
        color: $text-muted;
        height: 1;
    }
    PromptDialog .tech-error {
        color: $text-error;
        height: auto;
    }
    PromptDialog .tech-dialog-details {
        height: auto;
        max-height: 10;
    }
    PromptDialog .tech-dialog-buttons {
        height: auto;
        align-horizontal: right;
    }
    PromptDialog .tech-dialog-buttons Button {
        margin-left: 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        prompt: str,
        *,
        details: Sequence[Content | str] = (),
        value: str = "",
        placeholder: str = "",
        ok_label: str = "OK",
        check: Callable[[str], str | None] | None = None,
    ) -> None:
        super().__init__(classes="tech-dialog-screen")
        self._title = title
        self._prompt = prompt
        self._details = tuple(details)
        self._value = value
        self._placeholder = placeholder
        self._ok_label = ok_label
        self._check = check

    def compose(self) -> ComposeResult:
        with Vertical(classes="tech-dialog"):
            yield Label(self._title, classes="tech-dialog-title")
            if self._details:
                with VerticalScroll(classes="tech-dialog-details"):
                    for line in self._details:
                        yield Static(line, markup=False)
            yield Label(self._prompt)
            yield Input(value=self._value, placeholder=self._placeholder, id="prompt-input")
            yield Static("", id="prompt-error", classes="tech-error", markup=False)
            with Horizontal(classes="tech-dialog-buttons"):
                yield Button(self._ok_label, variant="primary", id="prompt-ok")
                yield Button("Cancel (Esc)", id="prompt-cancel")

    def on_mount(self) -> None:
        self.query_one("#prompt-input", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "prompt-ok":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def _submit(self) -> None:
        value = self.query_one("#prompt-input", Input).value.strip()
        problem = self._check(value) if self._check is not None else None
        if problem:
            self.query_one("#prompt-error", Static).update(problem)
            return
        self.dismiss(value)
