"""Safe reading of a protocol file's bytes into data that remembers its positions.

YAML 1.2 through ruamel.yaml's round-trip loader, which records the line and column of every
key and list item. Before anything is built, the event stream is checked: tags, anchors and
aliases are refused (a protocol is plain data; aliases can also blow up in size), and every
duplicate key is reported with both of its lines. Syntax errors become a position and a
plain-English message, never a traceback.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedKeyMap, CommentedKeySeq, CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)
from ruamel.yaml.reader import ReaderError

MAX_BYTES = 1024 * 1024
#: Problems after which the document is not built at all.
_UNSAFE = frozenset({"yaml_tag", "yaml_anchor", "yaml_alias", "yaml_version"})


@dataclass(frozen=True)
class FileIssue:
    """A problem with the file itself, at a 1-based position."""

    line: int
    column: int
    code: str
    message: str


@dataclass
class Document:
    """A parsed file: ``root`` keeps positions, ``data`` is the same content as plain Python."""

    root: CommentedMap
    data: dict[str, object]
    issues: list[FileIssue] = field(default_factory=list)


@dataclass
class ReadOutcome:
    document: Document | None
    issues: list[FileIssue]


def read_document(raw: bytes) -> ReadOutcome:
    """Decode and parse ``raw``; ``document`` is None when nothing can be validated."""
    if len(raw) > MAX_BYTES:
        return _fail(
            "too_large",
            f"the file is {len(raw):,} bytes, larger than the 1 MiB (1,048,576 bytes) a "
            "protocol file may have: is this the right file?",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        return _fail(
            "not_utf8",
            f"the file is not UTF-8 text (byte 0x{raw[err.start]:02X} on line {line} cannot "
            "be read): save it with UTF-8 encoding",
        )
    if not text.strip():
        return _fail("empty_file", "the file is empty: a protocol needs its fields")

    try:
        issues = list(_check_events(text))
        if any(issue.code in _UNSAFE for issue in issues):
            return ReadOutcome(None, issues)
        loader = YAML(typ="rt")
        loader.allow_duplicate_keys = True
        root = loader.load(text)
    except YAMLError as err:
        return ReadOutcome(None, [_syntax_issue(err, text)])
    except RecursionError:
        return _fail("yaml_syntax", "the YAML is nested too deeply to be a protocol")

    if root is None:
        return _fail("empty_file", "the file holds only comments: a protocol needs its fields")
    if not isinstance(root, CommentedMap):
        kind = "a list" if isinstance(root, CommentedSeq) else "a single value"
        return _fail(
            "not_a_mapping",
            f"the file holds {kind}, not a protocol: a protocol is a mapping of fields such "
            'as "format: epm-protocol/1" and "id: ...", each on its own line',
        )
    data = _plain_mapping(root, issues)
    return ReadOutcome(Document(root, data, issues), issues)


def _fail(code: str, message: str) -> ReadOutcome:
    return ReadOutcome(None, [FileIssue(1, 1, code, message)])


# --- tags, anchors, aliases, directives ------------------------------------------------------


def _check_events(text: str) -> Iterator[FileIssue]:
    """Tags, anchors, aliases, YAML version, duplicate and non-text keys, from the events.

    Working on the event stream costs one extra parse and sees what a loaded document no
    longer shows: which tags were written, which nodes are aliases, and every duplicate key
    with the line of its first occurrence.
    """
    frames: list[_Frame] = []
    for event in YAML(typ="rt").parse(text):
        yield from _check_event(event, text)
        if isinstance(event, MappingEndEvent | SequenceEndEvent):
            frames.pop()
            continue
        if not isinstance(event, ScalarEvent | AliasEvent | MappingStartEvent | SequenceStartEvent):
            continue
        frame = frames[-1] if frames else None
        is_key = frame is not None and frame.next_is_key()
        if is_key and frame is not None:
            yield from frame.check_key(event)
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            frames.append(_Frame(isinstance(event, MappingStartEvent)))


class _Frame:
    """An open mapping or sequence while walking the events."""

    def __init__(self, is_mapping: bool) -> None:
        self.is_mapping = is_mapping
        self._expect_key = True
        self._seen: dict[str, int] = {}

    def next_is_key(self) -> bool:
        if not self.is_mapping:
            return False
        is_key = self._expect_key
        self._expect_key = not self._expect_key
        return is_key

    def check_key(self, event: Event) -> Iterator[FileIssue]:
        mark = event.start_mark
        line, column = mark.line + 1, mark.column + 1
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            yield FileIssue(
                line,
                column,
                "key_not_text",
                "a key must be a plain field name, not a list or mapping",
            )
        elif isinstance(event, ScalarEvent):
            if event.value in self._seen:
                yield FileIssue(
                    line,
                    column,
                    "duplicate_key",
                    f'the key "{event.value}" appears twice in this mapping (first on line '
                    f"{self._seen[event.value]}): keep one of them",
                )
            else:
                self._seen[event.value] = line


def _directive_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("%YAML"):
            return number
    return 1


def _check_event(event: Event, text: str) -> Iterator[FileIssue]:
    mark = event.start_mark
    line, column = mark.line + 1, mark.column + 1
    if isinstance(event, DocumentStartEvent):
        version = getattr(event, "version", None)
        if version is not None and tuple(version) != (1, 2):
            yield FileIssue(
                _directive_line(text),
                1,
                "yaml_version",
                f"the file asks for YAML {'.'.join(map(str, version))}; protocol files are "
                "YAML 1.2: remove the %YAML line",
            )
        return
    if isinstance(event, AliasEvent):
        yield FileIssue(
            line,
            column,
            "yaml_alias",
            f'the alias "*{event.anchor}" is not allowed: write the values out in full',
        )
        return
    anchor = getattr(event, "anchor", None)
    if anchor is not None:
        yield FileIssue(
            line,
            column,
            "yaml_anchor",
            f'the anchor "&{anchor}" is not allowed: write the values out in full at each '
            "place they are needed",
        )
    tag = getattr(event, "tag", None)
    if tag is not None:
        shown = str(tag).replace("tag:yaml.org,2002:", "!!")
        yield FileIssue(
            line,
            column,
            "yaml_tag",
            f'the tag "{shown}" is not allowed: remove it and write the plain value',
        )


# --- plain data ------------------------------------------------------------------------------


def _plain_mapping(node: CommentedMap, issues: list[FileIssue]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in node.items():
        if isinstance(key, str):
            out[str(key)] = _plain(value, issues)
        elif not isinstance(key, CommentedKeyMap | CommentedKeySeq):
            line, column = node.lc.key(key)
            issues.append(
                FileIssue(
                    line + 1,
                    column + 1,
                    "key_not_text",
                    f'the key "{key}" is not a field name: field names are words such as '
                    '"duration_s"',
                )
            )
    return out


def _plain(value: object, issues: list[FileIssue]) -> object:
    """The same content as built-in Python types (ruamel's subclasses carry formatting)."""
    if isinstance(value, CommentedMap):
        return _plain_mapping(value, issues)
    if isinstance(value, CommentedSeq):
        return [_plain(item, issues) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    return value


# --- syntax errors in plain words ------------------------------------------------------------

_PLAIN_PROBLEMS: tuple[tuple[str, str], ...] = (
    ("'\\t'", "a tab character is used for indentation: YAML indents with spaces only"),
    ("tab character", "a tab character is used for indentation: YAML indents with spaces only"),
    (
        "expected <block end>",
        "this line's indentation does not line up with the lines above it: check the "
        "number of spaces at the start of the line",
    ),
    (
        "mapping values are not allowed here",
        'a ":" is not allowed here: check the indentation, or put text that contains ": " '
        "in quotes",
    ),
    (
        "could not find expected ':'",
        'a line is missing the ":" between the field name and its value',
    ),
    (
        "another document",
        'the file holds more than one YAML document ("---"): a protocol file holds exactly one',
    ),
    (
        "expected <block mapping start>",
        "this line does not fit the structure above it: check its indentation",
    ),
    (
        "did not find expected '-' indicator",
        'a list item does not line up with the other items: align the "-" of each item',
    ),
    (
        "expected <block sequence start>",
        'a list item does not line up with the other items: align the "-" of each item',
    ),
)


def _syntax_issue(err: YAMLError, text: str) -> FileIssue:
    if isinstance(err, ReaderError):
        before = text[: err.position]
        line = before.count("\n") + 1
        column = err.position - (before.rfind("\n") + 1) + 1
        return FileIssue(
            line,
            column,
            "yaml_syntax",
            f"the character U+{err.character:04X} is not allowed in a YAML file: remove it"
            if isinstance(err.character, int)
            else "a character here is not allowed in a YAML file: remove it",
        )
    if not isinstance(err, MarkedYAMLError):
        return FileIssue(1, 1, "yaml_syntax", f"the YAML cannot be read: {err}")
    problem = err.problem or ""
    context = err.context or ""
    mark = err.problem_mark or err.context_mark
    if "quoted scalar" in context and err.context_mark is not None:
        quote = err.context_mark
        return FileIssue(
            quote.line + 1,
            quote.column + 1,
            "yaml_syntax",
            "the quote opened here is never closed: add the closing quote at the end of the text",
        )
    flow = {"flow mapping": ('"{"', '"}"'), "flow sequence": ('"["', '"]"')}
    for what, (opening, closing) in flow.items():
        if what in context and err.context_mark is not None:
            start = err.context_mark
            return FileIssue(
                start.line + 1,
                start.column + 1,
                "yaml_syntax",
                f'the {opening} opened here is not closed with {closing}, or a "," is '
                "missing between its items",
            )
    message = next((plain for needle, plain in _PLAIN_PROBLEMS if needle in problem), None)
    if message is None:
        detail = f"{problem} ({context})" if context else problem
        message = f"the YAML cannot be read here: {detail.strip() or 'syntax error'}"
    if mark is None:
        return FileIssue(1, 1, "yaml_syntax", message)
    return FileIssue(mark.line + 1, mark.column + 1, "yaml_syntax", message)
