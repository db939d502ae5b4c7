"""The list of a protocol file's problems, each at its line and column.

Why: a technician fixes a protocol file from this list, so it shows every problem at once in
the ``file:line:col: path: message`` form ``epm validate`` prints, errors and warnings told
apart by word and colour (never by colour alone), errors first. Choosing one (Enter or a click)
posts :class:`ProblemList.ProblemChosen`, so the editor can put the cursor on that line.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from protocols import Problem

# Theme variables, not red/yellow: those colours belong to the alarms (controller.ui.theme).
ERROR_STYLE = "bold $text-error"
WARNING_STYLE = "bold $text-warning"


def problem_line(problem: Problem, label: str | None = None) -> str:
    """``label:line:col: path: message`` (``label`` defaults to the problem's own file)."""
    where = f"{label if label is not None else problem.file}:{problem.line}:{problem.column}: "
    return f"{where}{problem.path}: {problem.message}" if problem.path else where + problem.message


def problem_text(problem: Problem, label: str | None = None) -> Content:
    """One problem as shown: ``error``/``warning`` in its colour, then :func:`problem_line`."""
    word, style = ("error", ERROR_STYLE) if problem.is_error else ("warning", WARNING_STYLE)
    return Content.assemble((f"{word:<7} ", style), problem_line(problem, label))


def summary(problems: Sequence[Problem]) -> str:
    """``no problems``, ``2 errors, 1 warning`` ..."""
    errors = sum(1 for p in problems if p.is_error)
    warnings = len(problems) - errors
    parts = []
    if errors:
        parts.append(f"{errors} error" + ("" if errors == 1 else "s"))
    if warnings:
        parts.append(f"{warnings} warning" + ("" if warnings == 1 else "s"))
    return ", ".join(parts) if parts else "no problems"


class ProblemList(OptionList):
    """A focusable list of problems; Enter on one posts :class:`ProblemChosen`."""

    class ProblemChosen(Message):
        """The user chose ``problem`` (to jump to its line)."""

        def __init__(self, problem_list: ProblemList, problem: Problem) -> None:
            super().__init__()
            self.problem_list = problem_list
            self.problem = problem

    def __init__(
        self,
        *,
        empty_text: str = "No problems.",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes, markup=False)
        self._problems: tuple[Problem, ...] = ()
        self._label: str | None = None
        self._empty_text = empty_text

    @property
    def problems(self) -> tuple[Problem, ...]:
        return self._problems

    def on_mount(self) -> None:
        self._fill()

    def show(
        self, problems: Sequence[Problem], label: str | None = None, empty_text: str | None = None
    ) -> None:
        """Replace the list with ``problems`` (labelled ``label`` instead of their file path)."""
        self._problems = tuple(problems)
        self._label = label
        if empty_text is not None:
            self._empty_text = empty_text
        if self.is_mounted:
            self._fill()

    def lines(self) -> list[str]:
        """The shown problems as plain text (what a screen reader or a test sees)."""
        if not self._problems:
            return [self._empty_text]
        return [problem_text(p, self._label).plain for p in self._problems]

    def _fill(self) -> None:
        self.clear_options()
        if not self._problems:
            self.add_option(
                Option(Content.styled(self._empty_text, "$text-success"), disabled=True)
            )
            return
        self.add_options(Option(problem_text(p, self._label)) for p in self._problems)
        self.highlighted = 0

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if 0 <= event.option_index < len(self._problems):
            self.post_message(self.ProblemChosen(self, self._problems[event.option_index]))
