"""The session's steps with their status and delivered time, the current one marked.

Why: the practitioner sees where they are in the protocol and what comes next; after a skip or
an interruption the list shows which zones are still owed. Times are words ("2 min 3 s of
5 min 0 s"): only the big countdown uses mm:ss. Where the list is narrow (beside the readings
on a wide terminal) each step takes two lines, so names are not cut.
"""

from __future__ import annotations

from rich.text import Text
from textual.events import Resize
from textual.widgets import Static

from controller.session.model import StepStatus, StepView
from controller.ui.practitioner.run_text import duration_words
from controller.ui.shared import formatting as fmt

#: Width given to the step's name on one line.
NAME_WIDTH = 18
#: The mark and the step number: ``▶ 12 ``.
PREFIX = 5
_CUT_SHORT = (StepStatus.SKIPPED, StepStatus.STOPPED, StepStatus.INTERRUPTED)


def _parts(step: StepView) -> tuple[str, str, str]:
    mark = fmt.STEP_MARKS.get(step.status, "?")
    name = fmt.zone(step.zone) if step.kind == "delivery" and step.zone else step.title
    if step.kind == "delivery":
        times = f"{duration_words(step.delivered_ms)} of {duration_words(step.planned_ms)}"
    elif step.planned_ms:
        times = f"at least {duration_words(step.planned_ms)}"
    else:
        times = "manual"
    if step.status in _CUT_SHORT:
        times += f" {step.status.value}"
    return mark, name, times


def lines_per_step(steps: tuple[StepView, ...], width: int) -> int:
    """1 when every step fits on one line of ``width`` (0: unknown, one line), else 2."""
    if width <= 0 or not steps:
        return 1
    widest = max(len(_parts(step)[2]) for step in steps)
    return 1 if PREFIX + NAME_WIDTH + 1 + widest <= width else 2


def step_lines(steps: tuple[StepView, ...], current: int | None, width: int = 0) -> Text:
    """Per step: mark, number, zone or title, delivered / planned time — on one line, or on
    two (name, then time) when ``width`` is too narrow for one."""
    two = lines_per_step(steps, width) == 2
    text = Text(no_wrap=True, overflow="ellipsis")
    for n, step in enumerate(steps):
        if n:
            text.append("\n")
        mark, name, times = _parts(step)
        style = "bold reverse" if step.index == current else ""
        if step.status in _CUT_SHORT:
            style = "dim"
        if two:
            room = max(4, width - PREFIX)
            text.append(f"{mark} {step.index:>2} {fmt.ellipsize(name, room)}", style=style)
            text.append(f"\n{' ' * PREFIX}{fmt.ellipsize(times, room)}", style=style)
        else:
            line = f"{mark} {step.index:>2} {fmt.ellipsize(name, NAME_WIDTH):<{NAME_WIDTH}} {times}"
            text.append(line, style=style)
    return text


class StepList(Static):
    """Call :meth:`show` with the snapshot's steps and current step index."""

    DEFAULT_CSS = """
    StepList {
        width: 100%;
        height: auto;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._shown: tuple[Text, int | None] | None = None
        self._steps: tuple[StepView, ...] = ()
        self._current: int | None = None
        self.lines_per_step = 1

    def show(self, steps: tuple[StepView, ...], current: int | None) -> bool:
        """Show the steps; True when the current step changed (the caller may scroll).

        Redrawn only when the text changes (delivered times are shown in whole seconds, so
        the 20 Hz refresh redraws this list about once a second, not every tick).
        """
        self._steps, self._current = steps, current
        width = self.content_size.width
        text = step_lines(steps, current, width)
        key = (text, current)
        if key == self._shown:
            return False
        moved = self._shown is None or self._shown[1] != current
        lines = len(text.plain.splitlines())
        same_size = self._shown is not None and len(self._shown[0].plain.splitlines()) == lines
        self._shown = key
        self.lines_per_step = lines_per_step(steps, width)
        # Only a different number of lines changes the size.
        self.update(text, layout=not same_size)
        return moved

    def on_resize(self, event: Resize) -> None:
        if self._steps:
            self.show(self._steps, self._current)
