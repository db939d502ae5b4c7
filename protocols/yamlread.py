"""Safe reading of a protocol file's bytes into data that remembers its positions.

YAML 1.2 through ruamel.yaml's round-trip loader, which records the line and column of every
key and list item. Before anything is built, the event stream is checked: tags, anchors and
aliases are refused (a protocol is plain data; aliases can also blow up in size), and every
duplicate key is reported with both of its lines. Syntax errors become a position and a
plain-English message, never a traceback.

Nothing in a file's bytes makes reading raise, hang or flood: the size is checked first, then
the nesting depth on the raw text (see :mod:`protocols.depth`), and the event check stops once
it has found more problems than a file may report. Dates that are not on the calendar and
numbers that are not plain decimal are refused where they are written; anything else the
parser or the builder raises becomes a problem at the last place they reached.
"""

from __future__ import annotations

import calendar
import datetime as dt
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedKeyMap, CommentedKeySeq, CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError, StreamMark, YAMLError
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
from ruamel.yaml.util import timestamp_regexp

from protocols.depth import LINE_BREAK, MAX_DEPTH, too_deep
from protocols.problem import MAX_PROBLEMS

__all__ = ["MAX_BYTES", "MAX_DEPTH", "Document", "FileIssue", "ReadOutcome", "read_document"]

#: A protocol file is a few kilobytes (the largest possible, 40 steps with every field and
#: comment, is under 64 KiB). The YAML parser reads about 1 MiB/s, twice (events, then the
#: document): the cap keeps the slowest file under a second, the editor's re-check too.
MAX_BYTES = 256 * 1024
#: Lines holding a value, plus flow-list items (commas): a full protocol has under 1,000.
MAX_VALUES = 4_000
#: Problems after which the document is not built at all.
_UNSAFE = frozenset({"yaml_tag", "yaml_anchor", "yaml_alias", "yaml_version"})
#: A key or list index path into the file's data.
Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class FileIssue:
    """A problem with the file itself, at a 1-based position."""

    line: int
    column: int
    code: str
    message: str
    #: Where in the data the refused value sits (None: the file itself, or a key).
    loc: Loc | None = None


@dataclass
class Document:
    """A parsed file: ``root`` keeps positions, ``data`` is the same content as plain Python."""

    root: CommentedMap
    data: dict[str, object]
    issues: list[FileIssue] = field(default_factory=list)
    #: Values already refused while reading (an impossible date, a hexadecimal number): they
    #: stay in ``data`` as the text written, and field checks leave them alone.
    refused: list[Loc] = field(default_factory=list)


@dataclass
class ReadOutcome:
    document: Document | None
    issues: list[FileIssue]
    #: The event check stopped early: the file has more problems than ``issues`` holds.
    truncated: bool = False


def read_document(raw: bytes, size: int | None = None) -> ReadOutcome:
    """Decode and parse ``raw``; ``document`` is None when nothing can be validated.

    ``size`` is the size of the whole file when ``raw`` holds only its beginning.
    """
    size = max(len(raw), size or 0)
    if size > MAX_BYTES:
        return _fail(
            "too_large",
            f"the file is {size:,} bytes, larger than the 256 KiB ({MAX_BYTES:,} bytes) a "
            "protocol file may have: is this the right file?",
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return ReadOutcome(None, [_not_utf8(raw, err)])
    if not text.strip():
        return _fail("empty_file", "the file is empty: a protocol needs its fields")
    deep = too_deep(text)
    if deep is not None:
        return ReadOutcome(
            None,
            [
                FileIssue(
                    *deep,
                    "too_deep",
                    f"lists and mappings nest more than {MAX_DEPTH} levels deep here (a "
                    "protocol needs 4): is this the right file?",
                )
            ],
        )

    crowded = _too_many_values(text)
    if crowded is not None:
        return ReadOutcome(
            None,
            [
                FileIssue(
                    crowded,
                    1,
                    "too_many_values",
                    f"the file holds more than {MAX_VALUES:,} values (lines or list items) by "
                    "here; a protocol has at most 40 steps and needs under 1,000: is this the "
                    "right file?",
                )
            ],
        )

    events = _EventCheck(text)
    try:
        events.run()
    except YAMLError as err:
        return ReadOutcome(None, [*events.issues, _syntax_issue(err, text)])
    except Exception:  # no bytes may make reading raise
        return ReadOutcome(None, [*events.issues, _unreadable(events.mark)])
    issues = events.issues
    if events.truncated or any(issue.code in _UNSAFE for issue in issues):
        return ReadOutcome(None, issues, events.truncated)

    loader = YAML(typ="rt")
    loader.Constructor = _Constructor
    loader.allow_duplicate_keys = True
    try:
        root = loader.load(text)
    except YAMLError as err:
        return ReadOutcome(None, [*issues, _syntax_issue(err, text)])
    except Exception:  # no bytes may make reading raise
        constructor = getattr(loader, "_constructor", None)
        return ReadOutcome(None, [*issues, _unreadable(getattr(constructor, "mark", None))])

    if root is None:
        return _fail("empty_file", "the file holds only comments: a protocol needs its fields")
    if not isinstance(root, CommentedMap):
        kind = "a list" if isinstance(root, CommentedSeq) else "a single value"
        return _fail(
            "not_a_mapping",
            f"the file holds {kind}, not a protocol: a protocol is a mapping of fields such "
            'as "format: epm-protocol/1" and "id: ...", each on its own line',
        )
    refused: list[Loc] = []
    data = _plain_mapping(root, issues, (), refused)
    return ReadOutcome(Document(root, data, issues, refused), issues)


def _too_many_values(text: str) -> int | None:
    """The line where ``text`` passes :data:`MAX_VALUES` values, or None (counted on the raw
    text: each line that is not blank or a comment, and each comma)."""
    count = 0
    for number, line in enumerate(LINE_BREAK.split(text), start=1):
        stripped = line.lstrip(" \t")
        if stripped and not stripped.startswith("#"):
            count += 1 + line.count(",")
            if count > MAX_VALUES:
                return number
    return None


def _fail(code: str, message: str) -> ReadOutcome:
    return ReadOutcome(None, [FileIssue(1, 1, code, message)])


_BYTE_LINE_BREAK = re.compile(rb"\r\n|\r|\n")


def _not_utf8(raw: bytes, err: UnicodeDecodeError) -> FileIssue:
    """The first byte that is not UTF-8, at its line and column (columns count characters)."""
    lines = _BYTE_LINE_BREAK.split(raw[: err.start])
    line = len(lines)
    before = lines[-1].decode("utf-8", errors="replace")
    if line == 1:
        before = before.removeprefix("\ufeff")
    return FileIssue(
        line,
        len(before) + 1,
        "not_utf8",
        f"the file is not UTF-8 text (byte 0x{raw[err.start]:02X} cannot be read): save it "
        "with UTF-8 encoding",
    )


def _unreadable(mark: StreamMark | None) -> FileIssue:
    """Anything unexpected the parser raised, at the last place it reached."""
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    return FileIssue(
        line,
        column,
        "yaml_unreadable",
        "the YAML cannot be read here: check this line and the ones just before it for a "
        "character, quote or bracket out of place",
    )


# --- tags, anchors, aliases, directives ------------------------------------------------------


class _EventCheck:
    """Tags, anchors, aliases, YAML version, duplicate and non-text keys, from the events.

    Working on the event stream costs one extra parse and sees what a loaded document no
    longer shows: which tags were written, which nodes are aliases, and every duplicate key
    with the line of its first occurrence. It stops once it has found more problems than a
    file reports (a mebibyte of aliases would otherwise take seconds to walk).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.issues: list[FileIssue] = []
        self.truncated = False
        #: Where the last event ended (where to point if the parser fails unexpectedly).
        self.mark: StreamMark | None = None

    def run(self) -> None:
        frames: list[_Frame] = []
        for event in YAML(typ="rt").parse(self.text):
            self.mark = event.end_mark
            found = list(self.check(event, frames))
            self.issues += found
            if len(self.issues) > MAX_PROBLEMS:
                self.truncated = True
                return

    def check(self, event: Event, frames: list[_Frame]) -> Iterator[FileIssue]:
        yield from _check_event(event, self.text)
        if isinstance(event, MappingEndEvent | SequenceEndEvent):
            frames.pop()
            return
        if not isinstance(event, ScalarEvent | AliasEvent | MappingStartEvent | SequenceStartEvent):
            return
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


# --- dates on the calendar, numbers in plain decimal ------------------------------------------

_DECIMAL = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")
_NOT_FINITE = re.compile(r"[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)")
#: Longest number text (digits, sign, point and exponent) a protocol can use.
MAX_NUMBER_CHARS = 30


@dataclass(frozen=True)
class _Refused:
    """A value refused while building: the text written and the problem it is."""

    text: str
    issue: FileIssue

    def __str__(self) -> str:
        return self.text


def _shown(text: str) -> str:
    return text if len(text) <= 20 else text[:20] + "…"


class _Constructor(RoundTripConstructor):
    """ruamel's round-trip builder that refuses impossible dates and non-decimal numbers where
    they are written, instead of raising, and remembers the node it reached last."""

    mark: StreamMark | None = None

    def construct_non_recursive_object(self, node: Any, tag: str | None = None) -> Any:
        self.mark = node.start_mark
        return super().construct_non_recursive_object(node, tag)

    def _refuse(self, node: Any, code: str, message: str) -> _Refused:
        mark = node.start_mark
        return _Refused(str(node.value), FileIssue(mark.line + 1, mark.column + 1, code, message))

    def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
        try:
            return super().construct_yaml_timestamp(node, values)
        except Exception:  # ValueError, OverflowError: not on the calendar
            return self._refuse(node, "not_a_date", _date_problem(str(node.value)))

    def construct_yaml_int(self, node: Any) -> Any:
        return self._number(node, super().construct_yaml_int)

    def construct_yaml_float(self, node: Any) -> Any:
        return self._number(node, super().construct_yaml_float)

    def _number(self, node: Any, build: Callable[[Any], Any]) -> Any:
        text = str(node.value)
        unusable = (
            f"{_shown(text)} is not a number a protocol can use: write a plain decimal number"
        )
        if _NOT_FINITE.fullmatch(text):
            return self._refuse(node, "not_a_number", unusable)
        if len(text.lstrip("+-")) > MAX_NUMBER_CHARS:
            return self._refuse(
                node,
                "not_a_number",
                f"{_shown(text)} is too long to be a number a protocol can use: write a plain "
                f"decimal number of at most {MAX_NUMBER_CHARS} characters",
            )
        try:
            value = build(node)
        except Exception:  # digits the YAML resolver took for a number
            value = None
        if isinstance(value, float) and not math.isfinite(value):
            return self._refuse(node, "not_a_number", unusable)
        if _DECIMAL.fullmatch(text) and value is not None:
            return value
        if isinstance(value, int | float):
            plain = str(int(value)) if isinstance(value, int) else repr(float(value))
            fix = f"write {plain}"
        else:
            fix = "write it with the digits 0-9, an optional sign and decimal point"
        return self._refuse(
            node, "not_decimal", f"{_shown(text)} is not a plain decimal number: {fix}"
        )


for _tag, _method in (
    ("timestamp", _Constructor.construct_yaml_timestamp),
    ("int", _Constructor.construct_yaml_int),
    ("float", _Constructor.construct_yaml_float),
):
    _Constructor.add_constructor(f"tag:yaml.org,2002:{_tag}", _method)


def _date_problem(text: str) -> str:
    """Why ``text``, which looks like a date, is not one."""
    found = timestamp_regexp.match(text)
    fallback = f"{text} is not a real date: write it as YYYY-MM-DD, e.g. 2026-11-20"
    if found is None:
        return fallback
    parts = found.groupdict()
    year, month, day = int(parts["year"]), int(parts["month"]), int(parts["day"])
    if year < 1:
        return f"{text} is not a date: years count from 0001"
    if not 1 <= month <= 12:
        return f"{text} is not a date: a month is 1 to 12"
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        return f"{text} is not a date: {calendar.month_name[month]} {year} has {days} days"
    what = f"{text} is not a date and time"
    for name, most in (("hour", 23), ("minute", 59), ("second", 59)):
        value = parts.get(name)
        if value is not None and int(value) > most:
            return f"{what}: {'an' if name == 'hour' else 'a'} {name} is 0 to {most}"
    if parts.get("tz_hour") is not None:
        return f"{what}: a time zone is at most 23 hours from UTC"
    return fallback


# --- plain data ------------------------------------------------------------------------------


def _plain_mapping(
    node: CommentedMap, issues: list[FileIssue], loc: Loc, refused: list[Loc]
) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in node.items():
        if isinstance(key, str):
            out[str(key)] = _plain(value, issues, (*loc, str(key)), refused)
        elif isinstance(key, _Refused):
            issues.append(replace(key.issue, loc=loc))
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


def _plain(value: object, issues: list[FileIssue], loc: Loc, refused: list[Loc]) -> object:
    """The same content as built-in Python types (ruamel's subclasses carry formatting)."""
    if isinstance(value, CommentedMap):
        return _plain_mapping(value, issues, loc, refused)
    if isinstance(value, CommentedSeq):
        return [_plain(item, issues, (*loc, n), refused) for n, item in enumerate(value)]
    if isinstance(value, _Refused):
        issues.append(replace(value.issue, loc=loc))
        refused.append(loc)
        return value.text
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

_INDENT_TAB = "a tab character is used for indentation: YAML indents with spaces only"
#: (words of the parser's problem, or of its context when the problem has none) -> message.
_PLAIN_PROBLEMS: tuple[tuple[str, str], ...] = (
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
    (
        "scanning an anchor",
        'an "&" must be followed by a name, and anchors are not allowed anyway: put text '
        'that starts with "&" in quotes',
    ),
    (
        "scanning an alias",
        'a "*" must be followed by a name, and aliases are not allowed anyway: put text '
        'that starts with "*" in quotes',
    ),
    (
        "scanning a tag",
        'a "!" here starts a YAML tag, which protocol files do not use: put text that starts '
        'with "!" in quotes',
    ),
    (
        "undefined tag handle",
        'a "!" here starts a YAML tag, which protocol files do not use: put text that starts '
        'with "!" in quotes',
    ),
    (
        "scanning a directive",
        'a line starting with "%" is a YAML directive, which protocol files do not use: '
        "remove the line",
    ),
    (
        "scanning a block scalar",
        'the "|" or ">" that starts a block of text must stand alone at the end of its line, '
        "with the text indented on the lines below",
    ),
    (
        "expected a comment or a line break",
        "something follows the value on this line that YAML cannot read: put the whole "
        "value in quotes",
    ),
    (
        "'<stream end>'",
        "the file ends in the middle of a value: check the last lines for an unclosed quote "
        "or bracket",
    ),
    (
        "unexpected end of stream",
        "the file ends in the middle of a value: check the last lines for an unclosed quote "
        "or bracket",
    ),
    (
        "expected ',' or ']'",
        'a "," is missing between the items of the list in brackets, or its "]" is missing',
    ),
    (
        "expected ',' or '}'",
        'a "," is missing between the fields in braces, or its "}" is missing',
    ),
)
_GENERIC = (
    "the YAML cannot be read here: check this line for a quote, bracket, colon or dash out "
    "of place, and its indentation"
)


def _syntax_issue(err: YAMLError, text: str) -> FileIssue:
    if isinstance(err, ReaderError):
        lines = LINE_BREAK.split(text[: err.position])
        line, column = len(lines), len(lines[-1]) + 1
        return FileIssue(
            line,
            column,
            "yaml_syntax",
            f"the character U+{err.character:04X} is not allowed in a YAML file: remove it"
            if isinstance(err.character, int)
            else "a character here is not allowed in a YAML file: remove it",
        )
    if not isinstance(err, MarkedYAMLError):
        return FileIssue(1, 1, "yaml_syntax", _GENERIC)
    problem = str(err.problem or "")
    context = str(err.context or "")
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
    if mark is None:
        return FileIssue(1, 1, "yaml_syntax", _plain_problem(problem, context, "", ""))
    lines = LINE_BREAK.split(text)
    line_text = lines[mark.line] if 0 <= mark.line < len(lines) else ""
    before = line_text[: mark.column]
    here = line_text[mark.column : mark.column + 1]
    message = _plain_problem(problem, context, before, here)
    return FileIssue(mark.line + 1, mark.column + 1, "yaml_syntax", message)


def _plain_problem(problem: str, context: str, before: str, here: str) -> str:
    """The parser's ``problem`` (and ``context``) in plain words; ``before`` is the text of the
    line before the place, ``here`` the character at it."""
    if "'\\t'" in problem or "tab" in problem:
        return _tab_problem(before)
    if "cannot start any token" in problem and here.strip():
        return (
            f'a value cannot start with "{here}": put the value in quotes if the "{here}" is meant'
        )
    for needle, plain in _PLAIN_PROBLEMS:
        if needle in problem or (needle in context and not problem):
            return plain
    for needle, plain in _PLAIN_PROBLEMS:
        if needle in context:
            return plain
    return _GENERIC


def _tab_problem(before: str) -> str:
    """A tab the parser refused, told by what stands before it on its line."""
    written = before.rstrip(" \t")
    if not written:
        return _INDENT_TAB
    if written.endswith(":"):
        return 'a tab character after the ":": use a space between a field name and its value'
    if written.endswith("-"):
        return 'a tab character after the "-" of a list item: use a space'
    return "a tab character here: YAML separates words and values with spaces only; use a space"
