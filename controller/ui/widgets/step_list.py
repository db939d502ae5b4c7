"""The session's steps with their status and delivered time, the current one marked.

Why: the practitioner sees where they are in the protocol and what comes next; after a skip or
an interruption the list shows which zones are still owed.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from controller.session.model import StepStatus, StepView
from controller.ui.widgets import formatting as fmt


def step_lines(steps: tuple[StepView, ...], current: int | None) -> Text:
    """One line per step: mark, number, zone or title, delivered / planned time."""
    text = Text(no_wrap=True, overflow="ellipsis")
    for n, step in enumerate(steps):
        if n:
            text.append("\n")
        mark = fmt.STEP_MARKS.get(step.status, "?")
        name = fmt.zone(step.zone) if step.kind == "delivery" and step.zone else step.title
        times = (
            f"{fmt.elapsed(step.delivered_ms)}/{fmt.clock(step.planned_ms)}"
            if step.kind == "delivery"
            else (fmt.clock(step.planned_ms) if step.planned_ms else "manual")
        )
        style = "bold reverse" if step.index == current else ""
        if step.status in (StepStatus.SKIPPED, StepStatus.STOPPED, StepStatus.INTERRUPTED):
            style = "dim"
        line = f"{mark} {step.index:>2} {fmt.ellipsize(name, 20):<20} {times:>9}"
        if step.status in (StepStatus.SKIPPED, StepStatus.STOPPED, StepStatus.INTERRUPTED):
            line += f" {step.status.value}"
        text.append(line, style=style)
    return text


class StepList(Static):
    """Call :meth:`show` with the snapshot's steps and current step index."""

    DEFAULT_CSS = """
    StepList {
        width: 100%;
        height: auto;
        text-wrap: nowrap;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._shown: tuple[Text, int | None] | None = None

    def show(self, steps: tuple[StepView, ...], current: int | None) -> bool:
        """Show the steps; True when the current step changed (the caller may scroll).

        Redrawn only when the text changes (delivered times are shown in whole seconds, so
        the 20 Hz refresh redraws this list about once a second, not every tick).
        """
        text = step_lines(steps, current)
        key = (text, current)
        if key == self._shown:
            return False
        moved = self._shown is None or self._shown[1] != current
        same_size = self._shown is not None and len(self._shown[0].plain.splitlines()) == len(steps)
        self._shown = key
        # One line per step: only a different number of steps changes the size.
        self.update(text, layout=not same_size)
        return moved
