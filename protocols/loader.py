"""Loading one protocol file: every problem at once, each with its line, column and path."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from protocols import messages, rules
from protocols.locate import human_path, position
from protocols.models import Protocol
from protocols.problem import Problem, Severity, sort_key
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
    def identity(self) -> ProtocolIdentity | None:
        if self.protocol is None or self.sha256 is None:
            return None
        return ProtocolIdentity(self.protocol.id, self.protocol.version, self.sha256)


@dataclass(frozen=True)
class Analysis:
    """A load result with the parsed document, for checks across files (see the library)."""

    result: LoadResult
    document: Document | None


def load_protocol(path: str | Path) -> LoadResult:
    """Load and check the protocol file at ``path``."""
    return analyse_file(Path(path)).result


def load_protocol_text(text_or_bytes: str | bytes, filename: str = "<editor>") -> LoadResult:
    """Check a protocol held in memory (the UI's live editor); ``filename`` labels problems."""
    raw = text_or_bytes.encode("utf-8") if isinstance(text_or_bytes, str) else text_or_bytes
    return analyse(raw, filename, Path(filename)).result


def analyse_file(path: Path) -> Analysis:
    display = str(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_BYTES + 1)
    except OSError as err:
        reason = err.strerror or str(err)
        problem = Problem(
            display, 1, 1, "", Severity.ERROR, "unreadable", f"the file cannot be read: {reason}"
        )
        return Analysis(LoadResult(path, None, (problem,), None), None)
    if len(raw) > MAX_BYTES:
        return analyse(raw, display, path, hashed=False)
    return analyse(raw, display, path)


def analyse(raw: bytes, display: str, path: Path, *, hashed: bool = True) -> Analysis:
    """Check ``raw``, the bytes of a protocol file shown to the user as ``display``."""
    sha256 = hashlib.sha256(raw).hexdigest() if hashed else None
    outcome = read_document(raw)
    problems = [_file_problem(display, issue) for issue in outcome.issues]
    document = outcome.document
    if document is None:
        return Analysis(LoadResult(path, None, _finish(problems), sha256), None)

    protocol, issues = _validate(document.data)
    problems += [_problem(display, document, issue) for issue in issues]
    if any(p.severity is Severity.ERROR for p in problems):
        protocol = None
    identifier = document.data.get("id")
    version = document.data.get("version")
    result = LoadResult(
        path,
        protocol,
        _finish(problems),
        sha256,
        identifier if isinstance(identifier, str) else None,
        version if isinstance(version, int) and not isinstance(version, bool) else None,
    )
    return Analysis(result, document)


def _validate(data: dict[str, object]) -> tuple[Protocol | None, list[Issue]]:
    """Field validation and the rules pass together, so every problem shows at once."""
    try:
        protocol: Protocol | None = Protocol.model_validate(data)
        errors = []
    except ValidationError as err:
        protocol = None
        errors = err.errors(include_url=False)
    field_issues = [issue for e in errors if (issue := messages.translate(e, data)) is not None]
    invalid: list[Loc] = [tuple(e["loc"]) for e in errors if e["type"] != messages.RULES_ERROR_TYPE]
    rule_issues = rules.check_protocol(data, invalid)
    issues = field_issues + rule_issues
    summary = [e for e in errors if e["type"] == messages.RULES_ERROR_TYPE]
    if summary and not any(i.severity is Severity.ERROR for i in issues):
        # The model refused the protocol for a rule the raw pass did not see: never let the
        # protocol through, and show the model's own words.
        issues.append(Issue(("steps",), "protocol_rules", str(summary[0]["msg"])))
    return protocol, issues


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


def _file_problem(display: str, issue: FileIssue) -> Problem:
    return Problem(display, issue.line, issue.column, "", Severity.ERROR, issue.code, issue.message)


def _finish(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(dict.fromkeys(problems), key=sort_key))
