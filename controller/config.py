"""The clinic's settings: ``config.yaml`` in the data folder.

A small two-level YAML mapping (``clinic:`` then ``  name: ...``) for what a clinic sets once:
its name and contact line for reports and handouts, the treatment room's label, the device
port and baud rate, the default practitioner and the report paper size. Every key is described
once, in :data:`KEYS` (type, default, meaning, example); add a key there and an attribute of
the same name (dots as underscores) to :class:`Config`.

- :func:`load_config` reads the file (a missing file gives the defaults). Whatever is wrong is
  reported all at once, each problem at its ``file:line:col`` as protocol files are, in one
  :class:`ConfigError` that ends with how to fix it.
- :func:`set_value` and :func:`unset_value` change one key and keep the file's comments and
  other keys (ruamel.yaml round trip). The file is written atomically (a temporary file in the
  same folder, fsync, rename), mode 0600, and never through a symbolic link.
- :func:`effective` picks the port, baud rate and practitioner to use: a command-line flag,
  else the environment (``EPM_PORT``, ``EPM_BAUD``, ``EPM_PRACTITIONER``), else the file, else
  the default; and says where each came from.

The data folder is the records' (``--data-dir`` > ``$EPM_HOME`` > the platform's per-user
folder); reading never creates it, writing creates it as the records do (mode 0700).
"""

from __future__ import annotations

import contextlib
import difflib
import io
import os
import re
import shlex
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import CommentMark, MarkedYAMLError, YAMLError
from ruamel.yaml.tokens import CommentToken

from controller.records.paths import ENV_VAR, FILE_MODE, default_data_dir, resolve_data_dir

__all__ = [
    "BAUD_RATES",
    "CONFIG_FILENAME",
    "KEYS",
    "OVERRIDES",
    "PAPER_SIZES",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "Effective",
    "Key",
    "Setting",
    "config_path",
    "effective",
    "key_spec",
    "load_config",
    "resolve",
    "set_value",
    "unset_value",
]

#: The file's name inside the data folder.
CONFIG_FILENAME = "config.yaml"
#: A configuration file is a few hundred bytes; past this it is not one.
MAX_BYTES = 64 * 1024
#: The rates the EPM-1's serial link can run at.
BAUD_RATES = (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
#: Report paper sizes, as stored.
PAPER_SIZES = ("A4", "Letter")
#: Written at the top of a new file.
HEADER = (
    "# epm settings for this data folder (docs/configuration.md).\n"
    "# Change them here or with `epm config set KEY VALUE`; `epm config show` lists them.\n"
)

Value = str | int
Kind = Literal["text", "baud", "paper", "server_url", "days"]
#: Where a value came from: a command-line flag, the environment, the file, the default.
Source = Literal["flag", "env", "file", "default"]

#: Characters a one-line text value may not hold (control characters, line separators).
_NOT_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class ConfigError(Exception):
    """The configuration cannot be read, changed or used. The message says what is wrong,
    where, and how to fix it; ``problems`` holds the located ones (file problems only)."""

    def __init__(
        self, message: str, problems: tuple[ConfigProblem, ...] = (), path: Path | None = None
    ) -> None:
        super().__init__(message)
        self.problems = problems
        self.path = path


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in the file: ``file:line:col: key: message`` (lines and columns from 1)."""

    file: str
    line: int
    column: int
    key: str
    message: str

    def format(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}: "
        return f"{where}{self.key}: {self.message}" if self.key else where + self.message


class _RefusedError(Exception):
    """A value a key does not take; the message says what is allowed (without the key)."""


@dataclass(frozen=True)
class Key:
    """One setting: its dotted ``name``, type, default, meaning and an example value."""

    name: str
    kind: Kind
    default: Value
    meaning: str
    example: Value
    #: Text keys: the most characters a value may have.
    max_length: int = 0

    @property
    def section(self) -> str:
        return self.name.partition(".")[0]

    @property
    def field(self) -> str:
        return self.name.partition(".")[2]

    @property
    def attr(self) -> str:
        """The :class:`Config` attribute that holds it."""
        return self.name.replace(".", "_")

    def set_command(self, value: Value | None = None) -> str:
        """``epm config set KEY VALUE`` with ``value`` (the example by default)."""
        shown = self.example if value is None else value
        return f"epm config set {self.name} {shlex.quote(str(shown))}"

    def check(self, value: object) -> Value:
        """``value`` as read from the file, checked; :class:`_RefusedError` when not allowed."""
        if self.kind == "baud":
            return _check_baud(value)
        if self.kind == "paper":
            return _check_paper(value)
        if self.kind == "server_url":
            return _check_server_url(self._check_text(value))
        if self.kind == "days":
            return _check_days(value)
        return self._check_text(value)

    def from_text(self, text: str) -> Value:
        """``text`` as typed (``epm config set``, an environment variable), checked."""
        if self.kind == "baud":
            word = text.strip().replace("_", "")
            if not word.isascii() or not word.isdigit():
                raise _RefusedError(
                    f"{text.strip()!r} is not a number: use one of "
                    f"{', '.join(map(str, BAUD_RATES))}"
                )
            return _check_baud(int(word))
        if self.kind == "days":
            word = text.strip()
            if not word.isascii() or not word.isdigit():
                raise _RefusedError(f"{word!r} is not a whole number of days: use 1 to 365")
            return _check_days(int(word))
        return self.check(text)

    def _check_text(self, value: object) -> str:
        if isinstance(value, bool | int | float):
            raise _RefusedError(
                f"{_shown(value)} is {_what(value)}, not text: put it in quotes, e.g. "
                f'{self.field}: "{_shown(value)}"'
            )
        if not isinstance(value, str):
            raise _RefusedError(
                f"{_what(value)} is not allowed here: write one line of text, e.g. "
                f'{self.field}: "{self.example}"'
            )
        text = value.strip()
        if _NOT_ONE_LINE.search(text):
            raise _RefusedError(
                "must be one line of text, without line breaks, tabs or control characters"
            )
        if len(text) > self.max_length:
            raise _RefusedError(
                f"is {len(text)} characters long; at most {self.max_length} are allowed: shorten it"
            )
        return text


def _check_baud(value: object) -> int:
    rates = ", ".join(map(str, BAUD_RATES))
    if isinstance(value, str) and value.strip().isdigit():
        raise _RefusedError(f"{str(value)!r} is text, not a number: write it without quotes")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _RefusedError(f"{_shown(value)} is not a number: use one of {rates}")
    if int(value) not in BAUD_RATES:
        raise _RefusedError(
            f"{int(value)} is not a baud rate the EPM-1 link runs at: use one of {rates}"
        )
    return int(value)


def _check_days(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        raise _RefusedError(f"{str(value)!r} is text, not a number: write it without quotes")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= int(value) <= 365:
        raise _RefusedError(f"{_shown(value)} is not a number of days from 1 to 365")
    return int(value)


def _check_paper(value: object) -> str:
    if isinstance(value, str):
        for size in PAPER_SIZES:
            if value.strip().casefold() == size.casefold():
                return size
    raise _RefusedError(f"{_shown(value)} is not a paper size: use {' or '.join(PAPER_SIZES)}")


def _check_server_url(text: str) -> str:
    from controller.server.url import url_problem

    problem = url_problem(text) if text else None
    if problem:
        raise _RefusedError(problem)
    return text


def _shown(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = str(value)  # not ruamel's quoted-string subclasses' repr
        return repr(text if len(text) <= 40 else text[:37] + "...")
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(int(value))
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return "this value"


def _what(value: object) -> str:
    if isinstance(value, bool):
        return "a yes/no value"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return "a tagged or special value"


#: Every key, in the order ``epm config show`` lists them. Add new keys here (and to Config).
KEYS: tuple[Key, ...] = (
    Key(
        "clinic.name",
        "text",
        "",
        "the clinic's name, printed on reports and client handouts",
        "Clínica Capilar Norte",
        max_length=120,
    ),
    Key(
        "clinic.contact",
        "text",
        "",
        "a phone number or e-mail line for the client handout",
        "+34 910 000 000 · recepcion@example.com",
        max_length=200,
    ),
    Key(
        "station.name",
        "text",
        "",
        "this treatment room's label",
        "Room 2",
        max_length=60,
    ),
    Key(
        "device.port",
        "text",
        "",
        'the EPM-1\'s device path or pyserial URL; "" means the built-in simulator',
        "/dev/serial/by-id/usb-EPM-1",
        max_length=200,
    ),
    Key(
        "device.baud",
        "baud",
        115200,
        "the serial link's baud rate",
        115200,
    ),
    Key(
        "practitioner.default",
        "text",
        "",
        'the name recorded with each session; "" means the login name',
        "Dana Example",
        max_length=120,
    ),
    Key(
        "report.paper",
        "paper",
        "A4",
        "the paper size of printed reports: A4 or Letter",
        "Letter",
    ),
    Key(
        "server.url",
        "server_url",
        "",
        'the clinic server (PostgreSQL) as a postgresql:// URL, never with a password; "" means '
        "none",
        "postgresql://epm@records.clinic.example/epm?sslmode=verify-full",
        max_length=500,
    ),
    Key(
        "server.offline_days",
        "days",
        7,
        "with a clinic server: after this many days without a pull, approved protocols stop "
        "running on a real device until the station pulls again",
        3,
    ),
)
_BY_NAME: dict[str, Key] = {key.name: key for key in KEYS}
_SECTIONS: dict[str, tuple[Key, ...]] = {}
for _key in KEYS:
    _SECTIONS.setdefault(_key.section, ())
    _SECTIONS[_key.section] += (_key,)

#: Keys a command-line flag and an environment variable can override: key -> (flag, variable).
OVERRIDES: dict[str, tuple[str, str]] = {
    "device.port": ("--port", "EPM_PORT"),
    "device.baud": ("--baud", "EPM_BAUD"),
    "practitioner.default": ("--practitioner", "EPM_PRACTITIONER"),
}


def _known() -> str:
    return "the known keys are " + ", ".join(_BY_NAME)


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def key_spec(name: str) -> Key:
    """The :class:`Key` called ``name``; :class:`ConfigError` naming the known keys if none is."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(
            f"unknown key {name!r}{_did_you_mean(name, list(_BY_NAME))}: {_known()}"
        ) from None


# --- the settings ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """The settings of one data folder; build it with :func:`load_config` (or
    :meth:`defaults`). The defaults live in :data:`KEYS` only."""

    clinic_name: str
    clinic_contact: str
    station_name: str
    device_port: str
    device_baud: int
    practitioner_default: str
    report_paper: str
    server_url: str
    server_offline_days: int
    #: The file these came from (it may not exist).
    path: Path | None = None
    #: The keys the file sets; the others have their default.
    in_file: frozenset[str] = frozenset()

    @classmethod
    def defaults(cls, path: Path | None = None) -> Config:
        """Every key at its default."""
        return cls._build({}, path)

    @classmethod
    def _build(cls, values: Mapping[str, Value], path: Path | None) -> Config:
        kwargs: dict[str, Any] = {key.attr: values.get(key.name, key.default) for key in KEYS}
        return cls(**kwargs, path=path, in_file=frozenset(values))

    def get(self, key: str) -> Value:
        """The value of the dotted ``key`` (``clinic.name``...)."""
        value: Value = getattr(self, key_spec(key).attr)
        return value

    def source(self, key: str) -> Literal["file", "default"]:
        """Where ``key``'s value comes from: ``file`` or ``default``."""
        key_spec(key)
        return "file" if key in self.in_file else "default"


def _data_folder(data_dir: str | Path | None, *, create: bool) -> Path:
    """The data folder, by the records' precedence. Reading never creates it (a folder that
    does not exist holds no settings); writing creates it as the records do."""
    if create:
        return resolve_data_dir(data_dir, create=True)
    if data_dir is not None and str(data_dir).strip():
        chosen = Path(data_dir).expanduser()
    elif os.environ.get(ENV_VAR, "").strip():
        chosen = Path(os.environ[ENV_VAR].strip()).expanduser()
    else:
        chosen = default_data_dir()
    if os.path.lexists(chosen):  # refuses a file where the folder belongs; creates nothing
        return resolve_data_dir(data_dir, create=True)
    return chosen


def config_path(data_dir: str | Path | None = None, *, create: bool = False) -> Path:
    """``config.yaml`` in the data folder (``create``: make the folder if it is missing)."""
    return _data_folder(data_dir, create=create) / CONFIG_FILENAME


def load_config(data_dir: str | Path | None = None) -> Config:
    """The settings in ``data_dir``'s ``config.yaml``; the defaults when there is none.

    Raises :class:`ConfigError` listing every problem at its ``file:line:col``.
    """
    path = config_path(data_dir)
    text = _read(path)
    if text is None:
        return Config.defaults(path)
    root = _parse(text, path)
    values, problems = _settings(root, str(path))
    if problems:
        raise _invalid(path, problems, settable=root is None or isinstance(root, CommentedMap))
    return Config._build(values, path)


def _read(path: Path) -> str | None:
    """The file's text; None when there is no file."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(
                f"the configuration file {path} is not a regular file: remove it, or point "
                "--data-dir (or EPM_HOME) at another folder",
                path=path,
            )
        if info.st_size > MAX_BYTES:
            raise _invalid(
                path,
                [
                    _problem(
                        path,
                        (0, 0),
                        "",
                        f"the file is {info.st_size:,} bytes; a configuration file is a few "
                        f"hundred (at most {MAX_BYTES:,}): is this the right file?",
                    )
                ],
                settable=False,
            )
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(
            f"the configuration file {path} cannot be read: {exc.strerror or exc}; check its "
            "permissions (epm needs to read it)",
            path=path,
        ) from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        before = raw[: err.start].split(b"\n")
        where = (len(before) - 1, len(before[-1].decode("utf-8", errors="replace")))
        raise _invalid(
            path,
            [
                _problem(
                    path,
                    where,
                    "",
                    f"the file is not UTF-8 text (byte 0x{raw[err.start]:02X} cannot be read): "
                    "save it with UTF-8 encoding",
                )
            ],
            settable=False,
        ) from None


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096  # never fold a long value over two lines
    return yaml


def _parse(text: str, path: Path) -> Any:
    """The YAML document (round trip, positions kept); syntax errors are located problems."""
    try:
        return _yaml().load(text)
    except YAMLError as err:
        raise _invalid(path, [_syntax_problem(err, text, path)], settable=False) from None
    except Exception:  # nothing in a file may make reading raise
        raise _invalid(
            path,
            [_problem(path, (0, 0), "", "the YAML cannot be read: " + _GENERIC)],
            settable=False,
        ) from None


def _settings(root: object, file: str) -> tuple[dict[str, Value], list[ConfigProblem]]:
    """The values ``root`` sets, and every problem with them."""
    values: dict[str, Value] = {}
    problems: list[ConfigProblem] = []
    if root is None:  # empty, or only comments
        return values, problems
    if not isinstance(root, CommentedMap):
        kind = "a list" if isinstance(root, list) else "a single value"
        problems.append(
            _problem(
                file,
                _root_position(root),
                "",
                f"the file holds {kind}, not settings: write a section name on its own line "
                "(e.g. clinic:) with its keys indented below it (e.g.   name: ...)",
            )
        )
        return values, problems
    for section_name, section in root.items():
        name = str(section_name)
        keys = _SECTIONS.get(name) if isinstance(section_name, str) else None
        if keys is None:
            problems.append(
                _problem(
                    file,
                    root.lc.key(section_name),
                    name,
                    f"unknown section{_did_you_mean(name, list(_SECTIONS))}: {_known()}",
                )
            )
            continue
        if section is None:  # "clinic:" with nothing below it
            continue
        if not isinstance(section, CommentedMap):
            problems.append(
                _problem(
                    file,
                    root.lc.value(section_name),
                    name,
                    f"must hold its keys on the lines below it, indented (e.g.   {keys[0].field}"
                    f": {keys[0].example}), not {_shown(section)}",
                )
            )
            continue
        fields = {key.field: key for key in keys}
        for field_name, value in section.items():
            dotted = f"{name}.{field_name}"
            key = fields.get(field_name) if isinstance(field_name, str) else None
            if key is None:
                problems.append(
                    _problem(
                        file,
                        section.lc.key(field_name),
                        dotted,
                        f"unknown key{_did_you_mean(dotted, list(_BY_NAME))}: {_known()}",
                    )
                )
                continue
            if value is None:  # "name:" with no value: the default
                continue
            try:
                values[key.name] = key.check(value)
            except _RefusedError as refused:
                problems.append(_problem(file, section.lc.value(field_name), dotted, str(refused)))
    return values, problems


def _root_position(root: object) -> tuple[int, int]:
    lc = getattr(root, "lc", None)
    return (lc.line, lc.col) if lc is not None and lc.line is not None else (0, 0)


def _problem(
    file: str | Path, position: tuple[int, int] | None, key: str, message: str
) -> ConfigProblem:
    """A problem at ruamel's 0-based ``position`` (shown from 1)."""
    line, column = position if position is not None else (0, 0)
    return ConfigProblem(str(file), line + 1, column + 1, key, message)


def _invalid(path: Path, problems: list[ConfigProblem], *, settable: bool = True) -> ConfigError:
    """The error listing ``problems``; ``settable``: ``epm config set`` can fix them (the file
    is YAML epm can edit), else only an editor can."""
    count = len(problems)
    if settable:
        fix = f"Edit {path} or use `epm config set KEY VALUE` (`epm config show` lists the keys)."
    else:
        fix = f"Edit {path} to fix it, or move it away to start again from the defaults."
    lines = [
        f"the configuration file {path} has {count} problem{'' if count == 1 else 's'}:",
        *(problem.format() for problem in problems),
        fix,
    ]
    return ConfigError("\n".join(lines), tuple(problems), path)


# --- syntax errors in plain words ---------------------------------------------------------------

_GENERIC = "check this line for a quote, bracket, colon or dash out of place, and its indentation"
#: (words of the parser's problem or context) -> message.
_PLAIN: tuple[tuple[str, str], ...] = (
    (
        "expected <block end>",
        "this line's indentation does not line up with the lines above it: check the number "
        "of spaces at the start of the line",
    ),
    (
        "mapping values are not allowed here",
        'a ":" is not allowed here: check the indentation, or put text that contains ": " in '
        "quotes",
    ),
    ("could not find expected ':'", 'a line is missing the ":" between the key and its value'),
    (
        "another document",
        'the file holds more than one YAML document ("---"): keep one',
    ),
    (
        "expected <block mapping start>",
        "this line does not fit the structure above it: check its indentation",
    ),
    (
        "expected a comment or a line break",
        "something follows the value on this line that YAML cannot read: put the whole value "
        "in quotes",
    ),
    (
        "'<stream end>'",
        "the file ends in the middle of a value: check the last lines for an unclosed quote or "
        "bracket",
    ),
    (
        "unexpected end of stream",
        "the file ends in the middle of a value: check the last lines for an unclosed quote or "
        "bracket",
    ),
)


def _syntax_problem(err: YAMLError, text: str, path: Path) -> ConfigProblem:
    if not isinstance(err, MarkedYAMLError):
        return _problem(path, (0, 0), "", "the YAML cannot be read: " + _GENERIC)
    problem = str(err.problem or "")
    context = str(err.context or "")
    context_mark = err.context_mark
    duplicate = re.match(r'found duplicate key "(.*?)"', problem)
    if duplicate and err.problem_mark is not None:
        mark = err.problem_mark
        return _problem(
            path,
            (mark.line, mark.column),
            "",
            f'the key "{duplicate.group(1)}" appears twice in this mapping: keep one of them',
        )
    if "quoted scalar" in context and context_mark is not None:
        return _problem(
            path,
            (context_mark.line, context_mark.column),
            "",
            "the quote opened here is never closed: add the closing quote at the end of the text",
        )
    flows = {"flow mapping": ("{", "}"), "flow sequence": ("[", "]")}
    for what, (opening, closing) in flows.items():
        if what in context and context_mark is not None:
            return _problem(
                path,
                (context_mark.line, context_mark.column),
                "",
                f'the "{opening}" opened here is not closed with "{closing}", or a "," is '
                "missing between its items",
            )
    mark = err.problem_mark or context_mark
    if mark is None:
        return _problem(path, (0, 0), "", "the YAML cannot be read: " + _GENERIC)
    lines = text.splitlines()
    line_text = lines[mark.line] if 0 <= mark.line < len(lines) else ""
    before, here = line_text[: mark.column], line_text[mark.column : mark.column + 1]
    if "'\\t'" in problem or "tab" in problem:
        if not before.strip():
            message = "a tab character is used for indentation: YAML indents with spaces only"
        else:
            message = "a tab character here: YAML separates keys and values with spaces only"
    elif "cannot start any token" in problem and here.strip():
        message = f'a value cannot start with "{here}": put the value in quotes'
    else:
        message = next(
            (plain for needle, plain in _PLAIN if needle in problem or needle in context),
            "the YAML cannot be read here: " + _GENERIC,
        )
    return _problem(path, (mark.line, mark.column), "", message)


# --- changing the file --------------------------------------------------------------------------


def set_value(data_dir: str | Path | None, key: str, text: str) -> Config:
    """Set ``key`` to ``text`` (checked as ``epm config set`` types it) in the file, keeping its
    comments and other keys; the settings as they now are.

    An unknown key or a value the key does not take is refused before anything is written
    (:class:`ConfigError` with what is allowed and an example). A file YAML cannot read, or whose
    structure leaves no place for the key, is refused as well. If the value was written but the
    file has other problems, :class:`ConfigError` says both.
    """
    spec = key_spec(key)
    try:
        value = spec.from_text(text)
    except _RefusedError as refused:
        raise ConfigError(f"{key}: {refused}, e.g. `{spec.set_command()}`") from None
    path = config_path(data_dir, create=True)

    def change(root: CommentedMap) -> None:
        if spec.section not in root:
            _append(root, spec.section, CommentedMap([(spec.field, value)]))
            return
        section = root[spec.section]
        if section is None:  # "clinic:" with nothing below it
            tail = _split_tail(root, spec.section)
            root[spec.section] = CommentedMap([(spec.field, value)])
            _add_tail(root[spec.section], spec.field, tail)
        elif not isinstance(section, CommentedMap):
            raise _invalid(
                path,
                [
                    _problem(
                        path,
                        root.lc.value(spec.section),
                        spec.section,
                        f"must hold its keys on the lines below it, indented, not "
                        f"{_shown(section)}",
                    )
                ],
                settable=False,
            )
        elif spec.field in section:
            section[spec.field] = value
        else:
            _append(section, spec.field, value)

    _edit(path, change)
    return _reload(path, f"{key} was set to {value!r} in {path}")


def unset_value(data_dir: str | Path | None, key: str) -> Config:
    """Remove ``key`` from the file (it goes back to its default), keeping the file's comments
    and other keys; the settings as they now are. Nothing to remove is not an error."""
    spec = key_spec(key)
    path = config_path(data_dir)
    if _read(path) is None:
        return Config.defaults(path)
    removed = False

    def change(root: CommentedMap) -> None:
        nonlocal removed
        section = root.get(spec.section)
        if not isinstance(section, CommentedMap) or spec.field not in section:
            return
        removed = True
        tail = _remove(section, spec.field)
        if not section:  # the section goes too; the comments after it stay
            _add_tail(root, spec.section, tail)
            _keep_on_top(root, _remove(root, spec.section))

    _edit(path, change, only_if=lambda: removed)
    return _reload(path, f"{key} was removed from {path}")


def _reload(path: Path, done: str) -> Config:
    try:
        return load_config(path.parent)
    except ConfigError as exc:
        raise ConfigError(
            f"{done}, but the file has other problems:\n{exc}", exc.problems, path
        ) from None


def _edit(
    path: Path,
    change: Callable[[CommentedMap], None],
    only_if: Callable[[], bool] | None = None,
) -> None:
    """Apply ``change(root)`` to the file's document and write it back (not when ``only_if()``
    is false afterwards)."""
    _refuse_link(path)
    text = _read(path)
    prefix = ""
    root: Any = None
    if text is not None:
        root = _parse(text, path)
        if root is None:  # only comments: keep them on top
            prefix = "".join(
                line
                for line in text.splitlines(keepends=True)
                if not line.strip() or line.lstrip().startswith("#")
            )
    else:
        prefix = HEADER
    if root is None:
        root = CommentedMap()
    if not isinstance(root, CommentedMap):
        _values, problems = _settings(root, str(path))
        raise _invalid(path, problems, settable=False)
    change(root)
    if only_if is not None and not only_if():
        return
    out = io.StringIO()
    _yaml().dump(root, out)
    body = out.getvalue()
    if not root:  # nothing left: keep the comments, drop the "{}"
        body = "".join(line for line in body.splitlines(keepends=True) if line.strip() != "{}")
    if prefix and not prefix.endswith("\n"):
        prefix += "\n"
    _write(path, prefix + body)


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise ConfigError(
            f"{path} is a symbolic link: epm does not write its settings through a link (that "
            "would change a file elsewhere). Replace the link with a regular file, or remove it, "
            "and try again",
            path=path,
        )


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically with ``text``, mode 0600 (a rename never follows a link)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _unwritable(path, exc) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise _unwritable(path, exc) from exc
        raise
    with contextlib.suppress(OSError):  # the rename itself survives a power cut
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _unwritable(path: Path, exc: OSError) -> ConfigError:
    return ConfigError(
        f"the configuration file {path} cannot be written: {exc.strerror or exc}; check the "
        "folder's permissions and free space",
        path=path,
    )


# Comments after a mapping's last value (blank lines, the next section's comment) belong to
# that value in ruamel; a key added after it or removed takes them along unless moved.


def _post(mapping: CommentedMap, key: object) -> Any:
    items = mapping.ca.items.get(key)
    return items[2] if items and len(items) > 2 else None


def _split_tail(mapping: CommentedMap, key: object) -> str:
    """Cut the lines after the first from ``key``'s trailing comment, and return them."""
    token = _post(mapping, key)
    if token is None:
        return ""
    first, newline, rest = str(token.value).partition("\n")
    if rest:
        token.value = first + newline
    return rest


def _items(mapping: CommentedMap, key: object) -> list[Any]:
    """ruamel's comment slots of ``key`` (1: before it, 2: after its value)."""
    items: list[Any] = mapping.ca.items.setdefault(key, [None, None, None, None])
    while len(items) < 4:
        items.append(None)
    return items


def _add_tail(mapping: CommentedMap, key: object, tail: str) -> None:
    """Put ``tail`` (whole comment lines) after ``key``'s value."""
    if not tail:
        return
    token = _post(mapping, key)
    if token is not None:
        token.value = str(token.value) + tail
    else:
        _items(mapping, key)[2] = CommentToken("\n" + tail, CommentMark(0), None)


def _last_holder(mapping: CommentedMap) -> tuple[CommentedMap, object] | None:
    """The mapping and key whose trailing comment ends ``mapping`` (its deepest last key)."""
    if not mapping:
        return None
    return _end_of(mapping, list(mapping)[-1])


def _end_of(mapping: CommentedMap, key: object) -> tuple[CommentedMap, object]:
    """The mapping and key whose trailing comment ends ``key``'s entry."""
    value = mapping[key]
    if isinstance(value, CommentedMap) and value:
        return _end_of(value, list(value)[-1])
    return mapping, key


def _append(mapping: CommentedMap, key: str, value: object) -> None:
    """Add ``key`` at the end of ``mapping``; comments that followed the last entry follow the
    new one."""
    holder = _last_holder(mapping)
    mapping[key] = value
    if holder is not None:
        _add_tail(*_end_of(mapping, key), _split_tail(*holder))


def _remove(mapping: CommentedMap, key: object) -> str:
    """Delete ``key``; comments that followed its entry stay where they were (after the entry
    before it, or before the entry after it). Returns them when ``mapping`` is left empty."""
    tail = _split_tail(*_end_of(mapping, key))
    keys = list(mapping)
    at = keys.index(key)
    del mapping[key]
    if not tail or not mapping:
        return tail
    if at > 0:
        _add_tail(*_end_of(mapping, keys[at - 1]), tail)
    else:
        items = _items(mapping, keys[1])
        items[1] = [CommentToken(tail, CommentMark(0), None), *(items[1] or [])]
    return ""


def _keep_on_top(root: CommentedMap, tail: str) -> None:
    """Comments whose entry went, with none before it: they stay at the top of the file."""
    if not tail:
        return
    comment = root.ca.comment
    if comment is None:
        comment = root.ca.comment = [None, None]
    if comment[1] is None:
        comment[1] = []
    comment[1].append(CommentToken(tail, CommentMark(0), None))


# --- what to use: flag > environment > file > default -------------------------------------------


@dataclass(frozen=True)
class Setting:
    """A value to use, and where it came from (``origin``: the flag, the variable, the file's
    path, or ``default``)."""

    key: str
    value: Value
    source: Source
    origin: str


def resolve(
    config: Config | None,
    key: str,
    flag: Value | None = None,
    *,
    env: Mapping[str, str] = os.environ,
) -> Setting:
    """``key``'s value to use: ``flag`` (given, not blank), else its environment variable (not
    blank; checked like the file's value, :class:`ConfigError` when refused), else
    ``config`` (the defaults when None)."""
    spec = key_spec(key)
    flag_name, variable = OVERRIDES.get(key, ("", ""))
    if flag is not None and str(flag).strip():
        return Setting(key, flag.strip() if isinstance(flag, str) else flag, "flag", flag_name)
    raw = env.get(variable, "") if variable else ""
    if raw.strip():
        try:
            value = spec.from_text(raw)
        except _RefusedError as refused:
            raise ConfigError(
                f"{variable} (which overrides {key}): {refused}, e.g. "
                f"{variable}={shlex.quote(str(spec.example))}; or unset {variable} to use the "
                "configuration file"
            ) from None
        return Setting(key, value, "env", variable)
    config = config if config is not None else Config.defaults()
    source = config.source(key)
    origin = str(config.path) if source == "file" else "default"
    return Setting(key, config.get(key), source, origin)


@dataclass(frozen=True)
class Effective:
    """The device port (``""``: the built-in simulator), baud rate and practitioner (``""``:
    the login name) to use, and where each came from."""

    port: str
    baud: int
    practitioner: str
    settings: tuple[Setting, ...]

    def source(self, key: str) -> Source:
        """Where ``device.port``, ``device.baud`` or ``practitioner.default`` came from."""
        for setting in self.settings:
            if setting.key == key:
                return setting.source
        raise KeyError(key)


def effective(
    config: Config | None,
    *,
    port: str | None = None,
    baud: int | None = None,
    practitioner: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Effective:
    """The settings ``epm`` runs with: a command-line flag wins, then the environment
    (``EPM_PORT``, ``EPM_BAUD``, ``EPM_PRACTITIONER``), then the file, then the default.
    An environment value a key does not take is :class:`ConfigError`."""
    chosen = (
        resolve(config, "device.port", port, env=env),
        resolve(config, "device.baud", baud, env=env),
        resolve(config, "practitioner.default", practitioner, env=env),
    )
    port_value, baud_value, name = (setting.value for setting in chosen)
    return Effective(str(port_value), int(baud_value), str(name), chosen)
