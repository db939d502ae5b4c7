"""A problem found in a protocol file, located to its line and column."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from enum import StrEnum

#: Problems reported for one file; past them, one more line says how many were left out.
MAX_PROBLEMS = 100


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One problem: ``file:line:col: path: message``. Lines and columns count from 1."""

    file: str
    line: int
    column: int
    path: str
    severity: Severity
    code: str
    message: str

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: "
        return f"{where}{self.path}: {self.message}" if self.path else where + self.message

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["severity"] = str(self.severity)
        return data

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR


def sort_key(problem: Problem) -> tuple[int, int, int, str, str]:
    """Errors before warnings, then in file order."""
    return (
        0 if problem.is_error else 1,
        problem.line,
        problem.column,
        problem.path,
        problem.code,
    )


def capped(problems: Iterable[Problem], *, more: bool = False) -> tuple[Problem, ...]:
    """``problems`` sorted and without repeats, at most :data:`MAX_PROBLEMS` of them, then one
    that says how many more there are, at the place of the first one left out.

    ``more``: whoever found them stopped early, so there are more than ``problems`` holds.
    """
    ordered = sorted(dict.fromkeys(problems), key=sort_key)
    if not ordered or (len(ordered) <= MAX_PROBLEMS and not more):
        return tuple(ordered)
    shown, hidden = ordered[:MAX_PROBLEMS], ordered[MAX_PROBLEMS:]
    at = hidden[0] if hidden else ordered[-1]
    if more:
        message = "and more problems after these (fix the ones above first, then check again)"
    else:
        count = len(hidden)
        message = f"and {count} more problem{'' if count == 1 else 's'} (fix the ones above first)"
    severity = Severity.ERROR if more or any(p.is_error for p in hidden) else Severity.WARNING
    return (
        *shown,
        Problem(at.file, at.line, at.column, "", severity, "too_many_problems", message),
    )
