"""The run screen's questions — a reason for a skip or an early end, "Stop the session?" — as a
panel under the readings instead of a window over them.

Why: output may be on while the practitioner answers; a modal window would hide the live
output and the countdown exactly then. The panel sits below the readings (which keep updating),
takes the keyboard while it is open, and says when the session moved on since it opened (the
engine then refuses the answer, as it was given on another state). F12 still stops everything.

Keys: Enter submits (a reason is required), Esc cancels; a yes/no question also takes y and n.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingsMap, BindingType
from textual.containers import Vertical
from textual.widgets import Input, Label

#: Called with the answer: the reason, True/False for a yes/no question, None when cancelled.
Answer = Callable[[str | bool | None], None]
#: The two kinds of question.
REASON = "reason"
CONFIRM = "confirm"


class ReasonInput(Input):
    """The reason's field: Enter submits it, and the footer says so (Input hides that key)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Confirm", key_display="⏎"),
    ]


class PromptPanel(Vertical, can_focus=True):
    """Hidden until :meth:`open`; calls back with the answer when closed: the reason, True or
    False for a yes/no question, or None when it was cancelled."""

    DEFAULT_CSS = """
    PromptPanel {
        display: none;
        height: auto;
        width: 100%;
        padding: 0 1;
        border-top: thick $accent;
        background: $boost;
    }
    PromptPanel.-open {
        display: block;
    }
    PromptPanel #prompt-question {
        width: 100%;
        text-style: bold;
    }
    PromptPanel #prompt-explain {
        width: 100%;
    }
    PromptPanel Input {
        width: 100%;
        background: $surface;
    }
    PromptPanel.-confirm Input {
        display: none;
    }
    PromptPanel #prompt-note {
        width: 100%;
        height: auto;
        color: $text-warning;
        text-style: bold;
    }
    PromptPanel #prompt-hint {
        width: 100%;
        color: $text-muted;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Confirm", key_display="⏎"),
        Binding("y", "answer(True)", "Yes"),
        Binding("n", "answer(False)", "No"),
        Binding("escape", "cancel", "Cancel", key_display="Esc"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.key = ""
        self.kind = REASON
        self._note = ""
        self._answered: Answer | None = None

    def compose(self) -> ComposeResult:
        yield Label("", id="prompt-question")
        yield Label("", id="prompt-explain")
        yield ReasonInput(
            placeholder="reason (required)", id="prompt-reason", max_length=500, compact=True
        )
        yield Label("", id="prompt-note")
        yield Label("", id="prompt-hint")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(
        self, key: str, kind: str, question: str, explain: str, hint: str, *, answered: Answer
    ) -> None:
        """Show the question and take the keyboard; ``answered(value)`` is called when it
        closes (at once, not through a message: nothing can happen in between)."""
        self._answered = answered
        self.key = key
        self.kind = kind
        self.set_class(kind == CONFIRM, "-confirm")
        self.refresh_bindings()
        self.query_one("#prompt-question", Label).update(question)
        self.query_one("#prompt-explain", Label).update(explain)
        self.query_one("#prompt-hint", Label).update(hint)
        self._note = "-"
        self.note("")
        self.query_one("#prompt-reason", Input).value = ""
        self.add_class("-open")
        self.take_keyboard()

    def take_keyboard(self) -> None:
        """Focus the reason's Input, or the panel itself for a yes/no question."""
        if self.kind == REASON:
            self.query_one("#prompt-reason", Input).focus()
        else:
            self.focus()

    def note(self, text: str) -> None:
        """A line under the question (a missing reason, the session having moved on)."""
        if text == self._note and self.is_mounted:
            return
        self._note = text
        note = self.query_one("#prompt-note", Label)
        note.update(text)
        note.display = bool(text)

    def close(self, value: str | bool | None) -> None:
        if not self.is_open:
            return
        self.remove_class("-open")
        self.screen.set_focus(None)
        answered, self._answered = self._answered, None
        if answered is not None:
            answered(value)

    def handles(self, key: str) -> bool:
        """Whether ``key`` is one of the open panel's keys: its own, or one the reason's field
        edits with (not the scrolling keys every widget inherits: those stay the screen's, and
        the screen holds them while the question is open)."""
        if not self.is_open or not self.has_focus_within:
            return False
        if key in PANEL_KEYS:
            return True
        return isinstance(self.app.focused, Input) and key in INPUT_KEYS

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # y and n answer a yes/no question only (in a reason they are typed).
        return self.kind == CONFIRM if action == "answer" else True

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_submit(self) -> None:
        if self.kind == CONFIRM:
            self.close(True)
            return
        reason = self.query_one("#prompt-reason", Input).value.strip()
        if not reason:
            self.note("A reason is required: type why (e.g. 'client uncomfortable'), then Enter.")
            return
        self.close(reason)

    def action_answer(self, yes: bool) -> None:
        if self.kind == CONFIRM:
            self.close(yes)

    def action_cancel(self) -> None:
        self.close(None)


#: The keys the open panel takes: its own, and those a text field edits with.
PANEL_KEYS = frozenset(BindingsMap(PromptPanel.BINDINGS).key_to_bindings)
INPUT_KEYS = frozenset(BindingsMap(Input.BINDINGS).key_to_bindings) | frozenset(
    BindingsMap(ReasonInput.BINDINGS).key_to_bindings
)
