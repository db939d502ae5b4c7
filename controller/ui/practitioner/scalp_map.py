"""A small text-drawn map of the scalp, seen from above, with the zones done, now and next.

Why: "where does the handpiece go now, and where next" is answered faster by a picture than by
a zone name, and the map shows at the same glance which zones are done. Every zone of the
protocol format is drawn: frontal at the front (top), midscalp and crown behind it, occipital at
the back, and the left and right temporal zones on their own sides (the client's left is on
the left: the head is seen from above, face to the top). A ``patch`` step (a test spot) is not
a scalp zone: it is named beside the map.

Marks (also styled, so they read without colour): ``▶`` now (reverse), ``›`` next
(underlined), ``✓`` done, ``»`` skipped or cut short, ``·`` to come; a zone the session does not
treat is drawn dim without a mark.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from rich.text import Text
from textual.widgets import Static

from controller.session.model import Phase, StepStatus, StepView

#: Width of the middle column's cells, and of the side (temporal) cells.
MIDDLE = 13
SIDE = 3
#: The zones drawn on the map (protocol format ``zone`` values), front to back.
MAP_ZONES = ("frontal", "midscalp", "crown", "occipital", "temporal_left", "temporal_right")
PATCH = "patch"
NAMES = {
    "frontal": "Frontal",
    "midscalp": "Midscalp",
    "crown": "Crown",
    "occipital": "Occipital",
    "temporal_left": "L",
    "temporal_right": "R",
    PATCH: "patch",
}
LEGEND = "✓ done ▶ now › next"


class Mark(Enum):
    NOW = "▶"
    NEXT = "›"
    DONE = "✓"
    SKIPPED = "»"
    TO_COME = "·"
    NOT_PLANNED = " "


STYLES: dict[Mark, str] = {
    Mark.NOW: "bold reverse",
    Mark.NEXT: "bold underline",
    Mark.DONE: "dim",
    Mark.SKIPPED: "dim",
    Mark.TO_COME: "",
    Mark.NOT_PLANNED: "dim",
}


def zone_marks(steps: Sequence[StepView], current: int | None, phase: Phase) -> dict[str, Mark]:
    """Each zone's mark: the current step's zone is now; the next delivery step's is next."""
    ended = phase in (Phase.FINISHED, Phase.REFUSED)
    step = steps[current - 1] if current is not None and 0 < current <= len(steps) else None
    now_zone = step.zone if step is not None and step.kind == "delivery" and not ended else None
    after = step.index if step is not None else 0
    next_zone = None
    if not ended:
        for candidate in steps:
            if (
                candidate.index > after
                and candidate.kind == "delivery"
                and candidate.status is StepStatus.PENDING
                and candidate.zone is not None
            ):
                next_zone = candidate.zone
                break
    marks: dict[str, Mark] = {}
    for zone in (*MAP_ZONES, PATCH):
        statuses = [s.status for s in steps if s.kind == "delivery" and s.zone == zone]
        if not statuses:
            marks[zone] = Mark.NOT_PLANNED
        elif zone == now_zone:
            marks[zone] = Mark.NOW
        elif zone == next_zone:
            marks[zone] = Mark.NEXT
        elif any(s in (StepStatus.PENDING, StepStatus.ACTIVE) for s in statuses):
            marks[zone] = Mark.TO_COME
        elif all(s is StepStatus.DONE for s in statuses):
            marks[zone] = Mark.DONE
        else:
            marks[zone] = Mark.SKIPPED
    return marks


def _cell(text: Text, zone: str, marks: dict[str, Mark]) -> None:
    mark = marks[zone]
    label = f"{mark.value} {NAMES[zone]}" if mark is not Mark.NOT_PLANNED else NAMES[zone]
    text.append(label.center(MIDDLE), style=STYLES[mark])


def _side(text: Text, zone: str, row: int, marks: dict[str, Mark]) -> None:
    mark = marks[zone]
    shown = NAMES[zone] if row == 0 else mark.value
    text.append(shown.center(SIDE), style=STYLES[mark])


def scalp_map(steps: Sequence[StepView], current: int | None, phase: Phase) -> Text:
    """The map as text, one zone per cell, each cell styled and marked by its status."""
    marks = zone_marks(steps, current, phase)
    pad = " " * (SIDE + 1)
    text = Text(no_wrap=True, overflow="crop")
    text.append(f"{pad}╭{' front '.center(MIDDLE, '─')}╮\n")
    text.append(f"{pad}│")
    _cell(text, "frontal", marks)
    text.append("│\n")
    text.append(f"╭{'─' * SIDE}┼{'─' * MIDDLE}┼{'─' * SIDE}╮\n")
    for row, zone in enumerate(("midscalp", "crown")):
        text.append("│")
        _side(text, "temporal_left", row, marks)
        text.append("│")
        _cell(text, zone, marks)
        text.append("│")
        _side(text, "temporal_right", row, marks)
        text.append("│\n")
    text.append(f"╰{'─' * SIDE}┼{'─' * MIDDLE}┼{'─' * SIDE}╯\n")
    text.append(f"{pad}│")
    _cell(text, "occipital", marks)
    text.append("│\n")
    text.append(f"{pad}╰{' back '.center(MIDDLE, '─')}╯")
    patch = marks[PATCH]
    if patch is not Mark.NOT_PLANNED:
        text.append("\n")
        text.append(f"{patch.value} patch", style=STYLES[patch])
        text.append(" (test spot)", style="dim")
    text.append(f"\n{LEGEND}", style="dim")
    return text


class ScalpMap(Static):
    """Call :meth:`show` with the snapshot's steps, current step index and phase."""

    DEFAULT_CSS = """
    ScalpMap {
        width: 23;
        height: auto;
        text-wrap: nowrap;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._key: object = None
        self._lines = 0

    def show(self, steps: Sequence[StepView], current: int | None, phase: Phase) -> None:
        # Only statuses, zones and the current step matter (not the delivered times, which
        # change every tick).
        key = (tuple((s.kind, s.zone, s.status) for s in steps), current, phase)
        if key == self._key:
            return
        self._key = key
        text = scalp_map(steps, current, phase)
        lines = text.plain.count("\n") + 1
        # Only a patch line appearing or going changes the size.
        self.update(text, layout=lines != self._lines)
        self._lines = lines
