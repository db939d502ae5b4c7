"""Target ``library``: mutated protocol files through ``load_protocol_text`` and ``load_library``.

Seeds are the bundled protocols (``protocols/library/*.yaml``) and the valid test fixtures. Each
case applies one to three mutations (bytes, lines, or a scalar replaced by an awkward value);
the first cases of every seed are fixed size extremes. Invariants, beyond "nothing escapes":

- every problem is located (line and column ≥ 1, line at most the number of lines + 1) and has
  a code and a plain message, with no parser text in it;
- the verdict is consistent: ``protocol`` is None exactly when there is an error;
- a protocol that loads converts to device values inside the device's hard limits;
- a file never gets more than 101 problems (100 and one "and N more");
- ``load_library`` on a folder of mutants returns one result per file, each well-formed.
"""

from __future__ import annotations

import random
import re
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import protocols
from benchmarks.fuzz.mutate import byte_mutation, case_random, line_mutation, show
from benchmarks.fuzz.runner import ROOT, Case, Failure, escape_failure
from protocols import LoadResult, Severity, to_device_step
from protocols.yamlread import MAX_BYTES as YAML_MAX_BYTES

#: The size limit of a protocol file; extremes are built at it, and at 1 MiB beyond it.
LIMIT = YAML_MAX_BYTES
MAX_BYTES = 1024 * 1024
MAX_PROBLEMS = 101
SEED_FILES: tuple[Path, ...] = (
    *sorted((ROOT / "protocols" / "library").glob("*.yaml")),
    *sorted((ROOT / "tests" / "data" / "protocols" / "valid").glob("*.yaml")),
)
#: Text of a problem message that shows the parser's words instead of plain ones.
RAW_PARSER_TEXT: tuple[str, ...] = (
    "while parsing",
    "while scanning",
    "while constructing",
    "expected <",
    "found character",
    "found unexpected",
    "ruamel",
    "Traceback",
    "validation error for",
    "For further information visit",
    "[type=",
)
_LINE_COLUMN = re.compile(r"line \d+, column")
_LINE_BREAK = re.compile(rb"\r\n|\r|\n")

# --- awkward values ---------------------------------------------------------------------------

NUMBERS = (
    "0",
    "-0",
    "-1",
    "-40",
    "0.0",
    "-0.0",
    "1e309",
    "-1e309",
    "1e-309",
    "9" * 30,
    "9" * 5000,  # beyond Python's 4300-digit int conversion limit
    "18446744073709551616",
    "0x1F4",
    "0X1f4",
    "50_0",
    "1_000",
    "0o764",
    "0o",
    "0b101",
    "+50",
    ".5",
    "5.",
    "5e2",
    "5E+2",
    ".inf",
    "-.inf",
    ".Inf",
    ".nan",
    ".NaN",
    "NaN",
    "inf",
    "1:30",
    "12:30:00",
    # the edges of the protocol limits and of rounding to device units
    "0.1",
    "0.05",
    "0.049",
    "119.95",
    "120",
    "120.04",
    "120.05",
    "49.99",
    "49.5",
    "2000.4",
    "2000.5",
    "5000.49",
    "5000.5",
    "9.9995",
    "10.0004",
    "1200.0004",
    "1200.0005",
    "0.4995",
    "60.0001",
    "1800",
    "1801",
)
DATES = (
    "2026-02-29",
    "2026-13-01",
    "2026-00-10",
    "2026-01-32",
    "2026-04-31",
    "0000-01-01",
    "0001-01-01",
    "9999-12-31",
    "10000-01-01",
    "2026-1-5",
    "2026-02-29T25:61:61",
    "2026-11-20 12:00:00",
    "2026-11-20T12:00:00+25:00",
    "2026-11-20T12:00:00.123456789Z",
    "2024-02-29",
    "1970-01-01",
)
TEXTS = (
    "",
    "''",
    '""',
    "x" * 10_000,
    "é" * 300,
    "\u200b",
    "😀",
    "'unterminated",
    '"unterminated',
    '"\\uD800"',
    '"\\x00"',
    '"\\0"',
    '"\\u2028"',
    '"\\N\\L\\P"',
    '"\\q"',
    "|\n  block text",
    ">-\n  folded",
    "%",
    "@x",
    "`x`",
    "a: b",
    "a #b",
    "- item",
    "? key",
    "delivery",
    "manual",
    "biphasic_square",
    "comb",
)
NULLS_AND_BOOLS = ("~", "null", "Null", "NULL", "true", "True", "false", "yes", "no", "on", "off")
COLLECTIONS = (
    "[]",
    "{}",
    "[[]]",
    "{a: 1}",
    "[1, 2",
    "{",
    "]",
    "[" * 50 + "]" * 50,
    "[" * 1000 + "]" * 1000,
    "[" * 20_000,
    "{a: " * 500 + "1" + "}" * 500,
    "[{kind: delivery}]",
)
YAML_FEATURES = (
    "*a",
    "&a 5",
    "&a [1, *a]",
    "!!python/object:os.system",
    "!!python/object/apply:os.system ['true']",
    "!!binary aGVsbG8=",
    "!!timestamp 2026-02-29",
    "!!int 0x10",
    "!!float 1",
    "!!str 5",
    "!!set {a}",
    "!!omap [a: 1]",
    "!custom x",
    "!<tag:yaml.org,2002:int> 5",
    "<<: *a",
)
VALUE_POOLS = (NUMBERS, DATES, TEXTS, NULLS_AND_BOOLS, COLLECTIONS, YAML_FEATURES)
KEYS = ("<<", "?", "1", "null", "[a]", "{a: 1}", "x" * 300, "id", "steps", "kind", "é", '"a b"')

#: A scalar after ``key: `` (block or flow), a list item after ``- ``, or an item in ``[...]``.
_VALUE = re.compile(
    rb"(?:(?<=: )|(?<=- )|(?<=\[)|(?<=, ))[^\s\n#{}\[\],][^\n#{}\[\],]*?(?=\s*(?:[\n#,\]}]|$))"
)
_KEY = re.compile(rb"^[ ]*(?:- )?([A-Za-z_][\w]*)(?=:)", re.MULTILINE)
_NUMBER = re.compile(rb"^-?\d+(?:\.\d+)?$")


def _numeric_neighbour(rnd: random.Random, text: str) -> str:
    value = float(text)
    choice = rnd.choice(("x10", "/10", "+0.05", "-0.05", "+1", "-1", "neg", "tiny", "digits"))
    if choice == "x10":
        return repr(value * 10)
    if choice == "/10":
        return repr(value / 10)
    if choice == "+0.05":
        return repr(round(value + 0.05, 6))
    if choice == "-0.05":
        return repr(round(value - 0.05, 6))
    if choice == "+1":
        return repr(value + 1)
    if choice == "-1":
        return repr(value - 1)
    if choice == "neg":
        return repr(-value)
    if choice == "tiny":
        return repr(value + 1e-9)
    return text + "0000001"


def value_mutation(rnd: random.Random, data: bytes) -> tuple[str, bytes]:
    """Replace a scalar (or a key) with an awkward value."""
    if rnd.random() < 0.12:
        keys = list(_KEY.finditer(data))
        if keys:
            match = rnd.choice(keys)
            new = rnd.choice(KEYS).encode()
            what = f"key {match.group(1).decode(errors='replace')} -> {show(new)}"
            return what, data[: match.start(1)] + new + data[match.end(1) :]
    spans = list(_VALUE.finditer(data))
    if not spans:
        return byte_mutation(rnd, data)
    match = rnd.choice(spans)
    old = match.group(0)
    if _NUMBER.match(old) and rnd.random() < 0.35:
        new_text = _numeric_neighbour(rnd, old.decode())
    else:
        new_text = rnd.choice(rnd.choice(VALUE_POOLS))
    new = new_text.encode()
    line = data[: match.start()].count(b"\n") + 1
    what = f"line {line}: {show(old, 16)} -> {show(new, 30)}"
    return what, data[: match.start()] + new + data[match.end() :]


# --- size extremes ----------------------------------------------------------------------------


def _padded(base: bytes, size: int) -> bytes:
    """``base`` followed by a comment line that brings the file to exactly ``size`` bytes."""
    head = base if base.endswith(b"\n") else base + b"\n"
    filler = size - len(head) - 3
    return head + b"# " + b"x" * max(filler, 0) + b"\n"


def _aliases(size: int) -> bytes:
    head = b"format: epm-protocol/1\nid: &a aga-x\nnotes: ["
    count = (size - len(head) - 2) // 4
    return head + b"*a, " * count + b"]\n"


def _many_keys(size: int) -> bytes:
    lines = [b"format: epm-protocol/1\n"]
    total, n = len(lines[0]), 0
    while True:
        line = b"k%d: v\n" % n
        if total + len(line) > size:
            break
        lines.append(line)
        total += len(line)
        n += 1
    return b"".join(lines)


def extremes(base: bytes) -> list[tuple[str, bytes]]:
    """Fixed inputs at the edges of size and shape: the first cases of every seed."""
    return [
        ("size extreme: empty file", b""),
        ("size extreme: only a BOM", b"\xef\xbb\xbf"),
        ("size extreme: 4 KiB of NUL", b"\0" * 4096),
        ("size extreme: 1 MiB of newlines", b"\n" * MAX_BYTES),
        ("size extreme: just over 1 MiB (valid file + comment)", _padded(base, MAX_BYTES + 1)),
        ("size extreme: exactly 1 MiB (valid file + comment)", _padded(base, MAX_BYTES)),
        ("size extreme: at the limit (valid file + comment)", _padded(base, LIMIT)),
        ("size extreme: just over the limit", _padded(base, LIMIT + 1)),
        ("size extreme: the limit of '['", b"[" * LIMIT),
        ("size extreme: the limit of aliases", _aliases(LIMIT)),
        ("size extreme: the limit of unknown keys", _many_keys(LIMIT)),
        ("size extreme: the limit of list items", (b"- x\n" * (LIMIT // 4))),
        ("size extreme: the limit of flow items", b"steps: [" + b"1," * (LIMIT // 2 - 8) + b"]\n"),
        ("size extreme: 1 MiB of '['", b"[" * MAX_BYTES),
        ("size extreme: 1 MiB of '{a: ' nesting", (b"{a: " * (MAX_BYTES // 4))[:MAX_BYTES]),
        ("size extreme: 1 MiB of aliases", _aliases(MAX_BYTES)),
        ("size extreme: 1 MiB of unknown keys", _many_keys(MAX_BYTES)),
        ("size extreme: 1 MiB of duplicate keys", (b"id: a\n" * (MAX_BYTES // 6))),
        ("size extreme: 1 MiB of list items", (b"- x\n" * (MAX_BYTES // 4))),
        ("size extreme: 50k steps", base.split(b"steps:")[0] + b"steps:\n" + b"  - {}\n" * 50_000),
    ]


# --- invariants -------------------------------------------------------------------------------


def check_result(result: LoadResult, source: bytes) -> list[Failure]:
    """Everything a load result must be (copied from tests/protocols/test_protocol_fuzz.py's
    ``check_report``, plus the problem cap and plain messages), as failures, not asserts."""
    failures: list[Failure] = []

    def fail(signature: str, detail: str) -> None:
        failures.append(Failure("invariant", signature, detail))

    lines = len(_LINE_BREAK.findall(source)) + 2  # YAML's line breaks, as check_report counts
    if len(result.problems) > MAX_PROBLEMS:
        fail("more than 101 problems", f"{len(result.problems)} problems")
    for problem in result.problems:
        where = f"{problem.code} at {problem.line}:{problem.column}"
        if problem.line < 1 or problem.column < 1:
            fail("problem line or column < 1", where)
        if problem.line > lines:
            fail("problem line past the end of the file", f"{where}, file has {lines - 1} lines")
        if not problem.code:
            fail("problem without a code", repr(problem))
        if not problem.message:
            fail("problem without a message", repr(problem))
        if problem.severity not in (Severity.ERROR, Severity.WARNING):
            fail("problem with an unknown severity", repr(problem.severity))
        raw = [needle for needle in RAW_PARSER_TEXT if needle in problem.message]
        if _LINE_COLUMN.search(problem.message):
            raw.append("line N, column")
        if raw:
            fail(f"parser text in a message ({raw[0]})", f"{where}: {problem.message[:200]}")
        if not problem.format().startswith(f"{problem.file}:{problem.line}:{problem.column}: "):
            fail("problem.format() does not start with file:line:column", problem.format()[:200])
    has_errors = any(p.severity is Severity.ERROR for p in result.problems)
    if (result.protocol is None) != has_errors:
        fail(
            "verdict inconsistent (protocol is None iff an error)",
            f"protocol {'None' if result.protocol is None else 'set'}, errors: {has_errors}",
        )
    if result.protocol is not None:
        failures += check_device_values(result)
    return failures


def check_device_values(result: LoadResult) -> list[Failure]:
    protocol = result.protocol
    assert protocol is not None
    out: list[Failure] = []
    for number, step in enumerate(protocol.delivery_steps, start=1):
        try:
            v = to_device_step(step, protocol.handpiece, number)
        except Exception as error:
            out.append(escape_failure(error, "to_device_step"))
            continue
        phases = 2 if v.waveform == 2 else 1
        checks = {
            "1 <= amplitude_dv <= amplitude_max_dv <= 1200": (
                1 <= v.amplitude_dv <= v.amplitude_max_dv <= 1200
            ),
            "50 <= pulse_width_us <= 2000": 50 <= v.pulse_width_us <= 2000,
            "1 <= frequency_hz <= 5000": 1 <= v.frequency_hz <= 5000,
            "500 <= current_limit_ua <= 10000": 500 <= v.current_limit_ua <= 10000,
            "10000 <= duration_ms <= 1200000": 10000 <= v.duration_ms <= 1_200_000,
            "burst on and off both zero or both set": (v.burst_on_ms == 0) == (v.burst_off_ms == 0),
            "burst_on_ms * frequency_hz >= 1000": not v.burst_on_ms
            or v.burst_on_ms * v.frequency_hz >= 1000,
            "duty pulse_width * frequency * phases <= 500000": (
                v.pulse_width_us * v.frequency_hz * phases <= 500_000
            ),
        }
        for rule, ok in checks.items():
            if not ok:
                out.append(Failure("invariant", f"device value outside limits: {rule}", repr(v)))
    return out


# --- the target -------------------------------------------------------------------------------


class LibraryFuzzer:
    name = "library"
    default_count = 10_000
    batch = 50

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.seeds = [(path.name, path.read_bytes()) for path in SEED_FILES]
        self.extremes = extremes(self.seeds[0][1])

    def __enter__(self) -> LibraryFuzzer:
        self.folder = self.workdir / "library"
        self.folder.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def generate(self, seed: int, index: int) -> Case:
        if index < len(self.extremes):
            what, data = self.extremes[index]
            return Case(self.name, seed, index, what, data, {"kind": "extreme"})
        rnd = case_random(self.name, seed, index)
        name, data = rnd.choice(self.seeds)
        steps = []
        kinds = []
        for _ in range(rnd.choice((1, 1, 1, 2, 2, 3))):
            kind = rnd.choices(("byte", "line", "value"), weights=(35, 25, 40))[0]
            mutation = {"byte": byte_mutation, "line": line_mutation, "value": value_mutation}
            what, data = mutation[kind](rnd, data)
            steps.append(f"{kind}: {what}")
            kinds.append(kind)
        return Case(self.name, seed, index, f"{name}: " + "; ".join(steps), data, {"kinds": kinds})

    def check(self, case: Case, notes: Counter[str]) -> list[Failure]:
        for kind in case.meta.get("kinds", ["extreme"]):
            notes[f"mutations: {kind}"] += 1
        result = protocols.load_protocol_text(case.data, "mutant.yaml")
        notes["loaded" if result.protocol is not None else "refused"] += 1
        for code in {p.code for p in result.problems}:
            notes[f"code: {code}"] += 1
        return check_result(result, case.data)

    def check_batch(self, cases: Sequence[Case], notes: Counter[str]) -> list[tuple[Case, Failure]]:
        """The cases as files of one folder through ``load_library``: one result per file."""
        for old in self.folder.iterdir():
            old.unlink()
        names = {}
        for case in cases:
            name = f"case-{case.index:07d}.yaml"
            (self.folder / name).write_bytes(case.data)
            names[name] = case
        try:
            results = protocols.load_library(self.folder)
        except Exception as error:
            return self._culprits(cases, error)
        out: list[tuple[Case, Failure]] = []
        got = [r.path.name for r in results]
        if sorted(got) != sorted(names):
            missing = sorted(set(names) - set(got))
            extra = sorted(set(got) - set(names))
            detail = f"{len(results)} results for {len(names)} files; missing {missing[:3]}"
            failure = Failure("invariant", "load_library: not one result per file", detail)
            out.append((names[missing[0]] if missing else cases[0], failure))
            if extra:
                notes["library: unexpected results"] += len(extra)
        for result in results:
            source = names.get(result.path.name)
            if source is None:
                continue
            for failure in check_result(result, source.data):
                sig = f"load_library: {failure.signature}"
                out.append((source, Failure(failure.kind, sig, failure.detail)))
        notes["library files"] += len(names)
        return out

    def _culprits(self, cases: Sequence[Case], error: Exception) -> list[tuple[Case, Failure]]:
        """``load_library`` raised: find the files that make it raise on their own."""
        out: list[tuple[Case, Failure]] = []
        for case in cases:
            for old in self.folder.iterdir():
                old.unlink()
            (self.folder / "alone.yaml").write_bytes(case.data)
            try:
                protocols.load_library(self.folder)
            except Exception as alone:
                out.append((case, escape_failure(alone, "load_library")))
        if not out:
            out.append((cases[0], escape_failure(error, "load_library (whole folder)")))
        return out
