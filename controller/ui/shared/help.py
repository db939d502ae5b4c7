"""The help screen (F1): every key of every screen, the alarm colours, the SIMULATOR marker.

Why: at 80×24 the footer shows only the main keys of the screen in front; the help lists them
all, read from the screens' own bindings (so it cannot fall out of date), with the emergency
stop first and unmissable. It also explains the two things a practitioner must read correctly
at a glance: what the alarm colours and flashing mean, and the SIMULATOR marker.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Header, Static

from controller.session.alarms import Priority
from controller.ui.shared.help_model import KeySection, all_sections, estop_keys
from controller.ui.theme import SIM_BANNER_BACKGROUND, SIM_BANNER_FOREGROUND

KEY_WIDTH = 18

_PRIORITY_WORDS = {
    Priority.HIGH: "respond immediately",
    Priority.MEDIUM: "respond promptly",
    Priority.LOW: "be aware",
}


def estop_text(keys: str) -> str:
    return f"EMERGENCY STOP: {keys} — works on every screen, at once, never asks"


def alarm_lines() -> list[Content]:
    """One line per IEC 60601-1-8 priority, painted in its own fixed colour."""
    lines = []
    for priority in sorted(Priority, key=lambda p: p.rank):
        style = priority.style
        foreground = "#ffffff" if priority is Priority.HIGH else "#000000"
        flash = f"flashing {style.flash_hz:g} Hz" if style.flash_hz else "steady"
        swatch = f" {priority.value.upper():^8} "
        lines.append(
            Content.assemble(
                (swatch, f"bold {foreground} on {style.colour}"),
                f" {style.colour}, {flash}: {_PRIORITY_WORDS[priority]}",
            )
        )
    return lines


def section_content(section: KeySection) -> Content:
    parts: list[str | tuple[str, str]] = [(f"{section.title}\n", "bold underline")]
    if section.problem:
        parts.append((f"  (its keys could not be read: {section.problem})\n", "$text-error"))
    for row in section.rows:
        key_style = "bold $text-error" if row.action.endswith("emergency_stop") else "bold"
        parts.append((f"  {row.keys:<{KEY_WIDTH}}", key_style))
        parts.append(f" {row.description}\n")
    return Content.assemble(*parts)


class HelpScreen(Screen[None]):
    """Every key, the alarm colours and the simulator marker. Esc, F1 or q closes it."""

    CSS_PATH = "../technician/technician.tcss"
    HELP_TITLE = "Help"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,f1,q", "close", "Close"),
        Binding("home", "top", "Top", show=False),
        Binding("end", "bottom", "Bottom", show=False),
    ]

    def compose(self) -> ComposeResult:
        app_cls = type(self.app)
        yield Header()
        yield Static(estop_text(estop_keys(app_cls)), id="help-estop", markup=False)
        with VerticalScroll(id="help-body"):
            yield Static(Content.styled("Alarms", "bold underline"), classes="help-heading")
            for line in alarm_lines():
                yield Static(line, classes="help-alarm")
            yield Static(
                "An alarm stays shown until its cause is gone and someone acknowledged it. "
                "Alarm colours never change with the theme.\n",
                classes="help-text",
                markup=False,
            )
            yield Static(Content.styled("Simulator", "bold underline"), classes="help-heading")
            yield Static(
                Content.assemble(
                    (
                        " SIMULATOR — not a treatment ",
                        f"bold {SIM_BANNER_FOREGROUND} on {SIM_BANNER_BACKGROUND}",
                    ),
                    " is shown on every screen while the connected device is the simulator "
                    "(its serial begins with SIM-). Nothing done then is a treatment; such "
                    "sessions are marked SIM in the records and never count towards a course.\n",
                ),
                classes="help-text",
            )
            yield Static(Content.styled("Keys", "bold underline"), classes="help-heading")
            yield Static(
                "A key shown dimmed does not apply now; on the home, device and new-session "
                "screens, pressed anyway, it says why. Enter goes on to the next page, space "
                "toggles in lists. Ctrl+C quits like Ctrl+Q.\n",
                classes="help-text",
                markup=False,
            )
            for section in all_sections(app_cls):
                yield Static(section_content(section), classes="help-section")

    def on_mount(self) -> None:
        self.title = "Help — keys"
        self.query_one("#help-body", VerticalScroll).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_top(self) -> None:
        self.query_one("#help-body", VerticalScroll).scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.query_one("#help-body", VerticalScroll).scroll_end(animate=False)
