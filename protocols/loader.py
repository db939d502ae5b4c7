"""Loading one protocol file: every problem at once, each with its line, column and path."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from protocols import messages, rules
from protocols.locate import human_path, position
from protocols.models import Protocol
from protocols.problem import Problem, Severity, capped
from protocols.rules import Issue, Loc
from protocols.yamlread import MAX_BYTES, Document, FileIssue, read_document


@dataclass(frozen=True)
class ProtocolIdentity:
    """What every session record stores about the protocol it ran."""

    id: str
    version: int
    sha256: str


@dataclass(frozen=True)
class LoadResult:
    """The outcome of loading one file. ``protocol`` is None when there is any error."""

    path: Path
    protocol: Protocol | None
    problems: tuple[Problem, ...]
    sha256: str | None
    #: ``id`` and ``version`` as written, when they have the right type (also for an invalid
    #: file, so a library can tell which files claim the same identity).
    id: str | None = None
    version: int | None = None

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.ERROR)

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity is Severity.WARNING)

    @property
    def ok(self) -> bool:
        return self.protocol is not None and not self.errors

    @property
    def skipped(self) -> bool:
        """The entry is not a file that could be read at all (a folder, a named pipe, a link
        to nothing, no permission): listed as skipped, never checked."""
        return len(self.problems) == 1 and self.problems[0].code == "unreadable"

    @property
    def identity(self) -> ProtocolIdentity | None:
        if self.protocol is None or self.sha256 is None:
            return None
        return ProtocolIdentity(self.protocol.id, self.protocol.version, self.sha256)


@dataclass(frozen=True)
class Analysis:
    """A load result with the parsed document, for checks across files (see the library)."""

    result: LoadResult
    document: Document | None
    #: Every problem found, before the result's were capped at ``MAX_PROBLEMS`` (a library
    #: adds its own and caps again); None: the result's are all.
    problems: tuple[Problem, ...] | None = None
    #: The reader stopped early: there are more problems than it found.
    truncated: bool = False

    @property
    def all_problems(self) -> tuple[Problem, ...]:
        return self.result.problems if self.problems is None else self.problems


def load_protocol(path: str | Path) -> LoadResult:
    """Load and check the protocol file at ``path``."""
    return analyse_file(Path(path)).result


def load_protocol_text(text_or_bytes: str | bytes, filename: str = "<editor>") -> LoadResult:
    """Check a protocol held in memory (the UI's live editor); ``filename`` labels problems."""
    raw = text_or_bytes.encode("utf-8") if isinstance(text_or_bytes, str) else text_or_bytes
    return analyse(raw, filename, Path(filename)).result


def analyse_file(path: Path) -> Analysis:
    """Check the file at ``path``; only a regular file is opened (a named pipe would block)."""
    display = str(path)
    refusal = special_file(path)
    if refusal is not None:
        return unreadable(path, refusal)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
        with os.fdopen(descriptor, "rb") as stream:
            info = os.fstat(stream.fileno())
            if not stat.S_ISREG(info.st_mode):  # it changed since it was looked at
                return unreadable(path, _not_regular(info.st_mode))
            raw = stream.read(MAX_BYTES + 1)
    except OSError as err:
        return unreadable(path, f"the file cannot be read: {err.strerror or err}")
    if len(raw) > MAX_BYTES:
        return analyse(raw, display, path, hashed=False, size=info.st_size)
    return analyse(raw, display, path)


def special_file(path: Path) -> str | None:
    """Why ``path`` is not a file to read (a folder, a named pipe, a dangling link...), as a
    message; None for a regular file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            try:
                target = os.readlink(path)
            except OSError:
                target = "a missing file"
            return f"this is a link to {target}, which does not exist: fix or remove the link"
        return "the file cannot be read: it does not exist"
    except OSError as err:
        return f"the file cannot be read: {err.strerror or err}"
    if stat.S_ISDIR(info.st_mode):
        return "this is a folder, not a file: a protocol is a .yaml file"
    if not stat.S_ISREG(info.st_mode):
        return _not_regular(info.st_mode)
    return None


def _not_regular(mode: int) -> str:
    kinds = (
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISDIR, "a folder"),
    )
    kind = next((name for test, name in kinds if test(mode)), "a special file")
    return f"this is not a regular file ({kind}): a protocol is a .yaml file"


def unreadable(path: Path, message: str, code: str = "unreadable") -> Analysis:
    """A file that could not be checked at all: one error, at line 1."""
    problem = Problem(str(path), 1, 1, "", Severity.ERROR, code, message)
    return Analysis(LoadResult(path, None, (problem,), None), None)


def analyse(
    raw: bytes, display: str, path: Path, *, hashed: bool = True, size: int | None = None
) -> Analysis:
    """Check ``raw``, the bytes of a protocol file shown to the user as ``display``.

    ``size`` is the size of the whole file when ``raw`` holds only its beginning.
    """
    sha256 = hashlib.sha256(raw).hexdigest() if hashed else None
    outcome = read_document(raw, size)
    problems = [_file_problem(display, issue, None) for issue in outcome.issues]
    document = outcome.document
    if document is None:
        result = LoadResult(path, None, capped(problems, more=outcome.truncated), sha256)
        return Analysis(result, None, tuple(problems), outcome.truncated)

    problems = [_file_problem(display, issue, document) for issue in outcome.issues]
    protocol, issues = _validate(document.data, document.refused)
    problems += [_problem(display, document, issue) for issue in issues]
    if any(p.severity is Severity.ERROR for p in problems):
        protocol = None
    identifier = document.data.get("id")
    version = document.data.get("version")
    result = LoadResult(
        path,
        protocol,
        capped(problems),
        sha256,
        identifier if isinstance(identifier, str) else None,
        version if isinstance(version, int) and not isinstance(version, bool) else None,
    )
    return Analysis(result, document, tuple(problems))


def _validate(data: dict[str, object], refused: list[Loc]) -> tuple[Protocol | None, list[Issue]]:
    """Field validation and the rules pass together, so every problem shows at once.

    ``refused`` values were reported by the reader already: nothing else is said about them.
    """
    try:
        protocol: Protocol | None = Protocol.model_validate(data)
        errors = []
    except ValidationError as err:
        protocol = None
        errors = err.errors(include_url=False)
    errors = [e for e in errors if not _under(tuple(e["loc"]), refused)]
    field_issues = [issue for e in errors if (issue := messages.translate(e, data)) is not None]
    invalid: list[Loc] = [tuple(e["loc"]) for e in errors if e["type"] != messages.RULES_ERROR_TYPE]
    invalid += refused
    rule_issues = rules.check_protocol(data, invalid)
    issues = field_issues + rule_issues
    summary = [e for e in errors if e["type"] == messages.RULES_ERROR_TYPE]
    if summary and not any(i.severity is Severity.ERROR for i in issues):
        # The model refused the protocol for a rule the raw pass did not see: never let the
        # protocol through, and show the model's own words.
        issues.append(Issue(("steps",), "protocol_rules", str(summary[0]["msg"])))
    return protocol, issues


def _under(loc: Loc, refused: list[Loc]) -> bool:
    return any(loc[: len(bad)] == bad for bad in refused)


def _problem(display: str, document: Document, issue: Issue) -> Problem:
    line, column = position(document.root, issue.loc)
    path_loc = issue.path_loc if issue.path_loc is not None else issue.loc
    return Problem(
        display,
        line,
        column,
        human_path(document.data, path_loc),
        issue.severity,
        issue.code,
        issue.message,
    )


def _file_problem(display: str, issue: FileIssue, document: Document | None) -> Problem:
    path = ""
    if issue.loc is not None and document is not None:
        path = human_path(document.data, issue.loc)
    return Problem(
        display, issue.line, issue.column, path, Severity.ERROR, issue.code, issue.message
    )
