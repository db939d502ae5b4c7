"""Large digits that grow with the screen: Textual's 3-row ``Digits``, 5 rows tall on a big one.

Why: at 120×40 a practitioner stands further from the screen, and the output and the time
left should grow with it. Textual's ``Digits`` are three rows of box-drawing strokes; drawing
them taller needs no new font: between the top and middle rows, and between the middle and
bottom rows, a row is added that continues every vertical stroke (a cell whose upper neighbour
reaches down and whose lower neighbour reaches up gets a vertical line). Horizontal strokes
stay where they are, so every digit keeps its shape, only taller. The widget is Textual's own
``Digits`` when it does not have the ``-tall`` class.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.renderables.digits import Digits as DigitsRenderable
from textual.widgets import Digits

#: Box-drawing characters with a stroke reaching the bottom edge of their cell ...
REACH_DOWN = frozenset("│┃┐┌┬├┤┼╭╮╷┏┓┣┫╋┳╻╫╪")
#: ... and the top edge.
REACH_UP = frozenset("│┃┘└┴├┤┼╯╰╵┗┛┣┫╋┻╹╫╪")
HEAVY = frozenset("┃┏┓┗┛┣┫╋┳┻╹╻━")
#: Rows added between the top and middle, and between the middle and bottom rows.
EXTRA_ROWS = 1


def digit_rows(text: str, *, bold: bool = False) -> list[str]:
    """The three rows Textual's ``Digits`` draws for ``text``."""
    rows: list[str] = []
    line = ""
    for segment in DigitsRenderable(text).render(Style(bold=bold)):
        piece = segment.text if isinstance(segment, Segment) else str(segment)
        if piece == "\n":
            rows.append(line)
            line = ""
        else:
            line += piece
    if line:
        rows.append(line)
    width = max((len(r) for r in rows), default=0)
    return [r.ljust(width) for r in rows]


def joining_row(above: str, below: str) -> str:
    """A row continuing every vertical stroke from ``above`` to ``below``."""
    cells = []
    for up, down in zip(above, below, strict=True):
        if up in REACH_DOWN and down in REACH_UP:
            cells.append("┃" if up in HEAVY or down in HEAVY else "│")
        else:
            cells.append(" ")
    return "".join(cells)


def tall_rows(text: str, *, bold: bool = False, extra: int = EXTRA_ROWS) -> list[str]:
    """``text`` as digits ``3 + 2 × extra`` rows tall (5 by default)."""
    top, middle, bottom = digit_rows(text, bold=bold)
    return [
        top,
        *[joining_row(top, middle)] * extra,
        middle,
        *[joining_row(middle, bottom)] * extra,
        bottom,
    ]


class GrowingDigits(Digits):
    """Textual's ``Digits``; with the ``-tall`` class, drawn 5 rows tall (see the module)."""

    def render(self) -> RenderResult:
        if not self.has_class("-tall"):
            return super().render()
        bold = bool(self.rich_style.bold)
        return Text("\n".join(tall_rows(self.value, bold=bold)), no_wrap=True)
