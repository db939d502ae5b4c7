"""A high-priority alarm in full, in front of the run screen, until acknowledged or closed.

Why: a high-priority alarm means delivery stopped or may have gone wrong; the practitioner
must read what happened and what to do, not just see a red line. The practitioner's own
emergency stop is called "Emergency stop", never "Device fault". The run screen keeps updating
behind it and the emergency stop (F12) still works.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from controller.session.alarms import Alarm, Priority
from controller.ui.shared import formatting as fmt
from controller.ui.theme import alarm_colours


def _priority_css() -> str:
    """Border and title colours per priority, from ``Priority.style`` (never the theme)."""
    rules = []
    for priority in Priority:
        colours = alarm_colours(priority)
        rules.append(
            f"AlarmModal.-{priority.value} > Vertical {{ border: thick {colours.background}; }}\n"
            f"AlarmModal.-{priority.value} #alarm-title {{ background: {colours.background}; "
            f"color: {colours.foreground}; }}"
        )
    return "\n".join(rules)


class AlarmModal(ModalScreen[bool]):
    """Dismisses with True when the practitioner acknowledges (``a``), False on Esc."""

    DEFAULT_CSS = """
    AlarmModal {
        align: center middle;
    }
    AlarmModal > Vertical {
        width: 70;
        max-width: 90%;
        height: auto;
        padding: 0 1;
        background: $surface;
        overflow: hidden hidden;
    }
    AlarmModal #alarm-title {
        width: 100%;
        text-style: bold;
        padding: 0 1;
    }
    AlarmModal #alarm-message {
        width: 100%;
        padding: 1 1 0 1;
    }
    AlarmModal .hint {
        padding: 1 1 0 1;
        text-style: bold;
    }
    """ + _priority_css()

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "acknowledge", "Acknowledge"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, alarm: Alarm) -> None:
        super().__init__(classes=f"-{alarm.priority.value}")
        self.alarm = alarm

    def compose(self) -> ComposeResult:
        with Vertical():
            title = fmt.alarm_title(self.alarm.code.value, self.alarm.detail, self.alarm.title)
            yield Label(
                f"{self.alarm.priority.value.upper()} PRIORITY ALARM — {title}",
                id="alarm-title",
            )
            yield Static(Text(fmt.plain_words(self.alarm.message)), id="alarm-message")
            yield Label(
                "a acknowledge · Esc close (the alarm stays shown) · F12 E-STOP", classes="hint"
            )

    def action_acknowledge(self) -> None:
        self.dismiss(True)

    def action_close(self) -> None:
        self.dismiss(False)
