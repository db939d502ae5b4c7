"""A problem found in a protocol file, located to its line and column."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


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
