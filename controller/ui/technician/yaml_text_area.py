"""A YAML text area that marks the lines with problems and colours keys and comments.

Why: textual 8.2.8's tree-sitter highlighting needs the optional ``textual[syntax]`` extras,
which epm does not depend on. A protocol file is simple YAML, so a few regular expressions per
visible line give keys, comments and list dashes their colours; and the lines the live
validation found problems on get a background (the theme's error or warning) with the problem's
column underlined, so the technician sees where to look without leaving the text. Colours
come from the theme (``error``/``warning`` and their muted backgrounds; red, yellow and cyan
belong to the alarms) and are looked up again when the theme changes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from rich.style import Style
from rich.text import Text
from textual.app import App
from textual.widgets import TextArea

from controller.ui.technician.colours import colour
from protocols import Problem

_KEY = re.compile(r"^(\s*(?:-\s+)?)([A-Za-z_][A-Za-z0-9_]*)(:)(?=\s|$)")
_DASH = re.compile(r"^(\s*)(-)(?=\s|$)")
_COMMENT = re.compile(r"(^|\s)(#.*)$")

COMMENT_STYLE = Style(dim=True, italic=True)
PROBLEM_COLUMN = Style(underline=True, bold=True)


class _Palette:
    """The theme-derived styles, resolved once per theme."""

    def __init__(self, app: App[object]) -> None:
        self.key = Style(color=colour(app, "accent"), bold=True)
        self.dash = Style(color=colour(app, "secondary"), bold=True)
        self.error_line = Style(bgcolor=colour(app, "error-muted"))
        self.warning_line = Style(bgcolor=colour(app, "warning-muted"))


class YamlTextArea(TextArea):
    """A :class:`TextArea` for protocol YAML: two-space indent, problem lines marked."""

    def __init__(self, text: str = "", *, id: str | None = None) -> None:
        super().__init__(
            text,
            id=id,
            soft_wrap=False,
            show_line_numbers=True,
            tab_behavior="focus",
        )
        self.indent_width = 2
        self.indent_type = "spaces"
        #: 0-based line index → (is_error, 0-based column) of the worst problem on it.
        self._marks: dict[int, tuple[bool, int]] = {}
        self._palette: _Palette | None = None

    def on_mount(self) -> None:
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _theme_changed(self, _theme: str) -> None:
        self._palette = None
        self._line_cache.clear()
        self.refresh()

    def _styles(self) -> _Palette:
        if self._palette is None:
            self._palette = _Palette(self.app)
        return self._palette

    def mark_problems(self, problems: Iterable[Problem]) -> None:
        """Mark the lines of ``problems`` (1-based lines and columns, as validation gives)."""
        marks: dict[int, tuple[bool, int]] = {}
        for problem in problems:
            index = max(problem.line - 1, 0)
            existing = marks.get(index)
            if existing is None or (problem.is_error and not existing[0]):
                marks[index] = (problem.is_error, max(problem.column - 1, 0))
        if marks != self._marks:
            self._marks = marks
            self._line_cache.clear()
            self.refresh()

    @property
    def marked_lines(self) -> dict[int, bool]:
        """1-based line number → True for an error line, False for a warning line."""
        return {index + 1: is_error for index, (is_error, _) in self._marks.items()}

    def get_line(self, line_index: int) -> Text:
        line = super().get_line(line_index)
        palette = self._styles()
        plain = line.plain
        comment = _COMMENT.search(plain)
        code_end = comment.start(2) if comment else len(plain)
        key = _KEY.match(plain[:code_end])
        if key:
            line.stylize(palette.key, key.start(2), key.end(3))
        dash = _DASH.match(plain)
        if dash:
            line.stylize(palette.dash, dash.start(2), dash.end(2))
        if comment:
            line.stylize(COMMENT_STYLE, comment.start(2), len(plain))
        mark = self._marks.get(line_index)
        if mark is not None:
            is_error, column = mark
            line.stylize(
                palette.error_line if is_error else palette.warning_line, 0, max(len(plain), 1)
            )
            line.stylize(PROBLEM_COLUMN, min(column, len(plain)), min(column, len(plain)) + 1)
        return line
