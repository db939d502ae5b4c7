"""Files that must not break the tools: every input gives a located report, never a traceback,
a hang or a flood of lines.

Impossible dates, anything else the YAML parser raises, nesting bombs, problem floods,
non-decimal numbers, special files in a library folder, and messages at the edges (a value a
hair below its limit, a tab after a colon, sizes and positions of file-level problems).
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import LoadResult, Severity, load_library, load_protocol, load_protocol_text
from protocols.yamlread import MAX_BYTES, MAX_DEPTH, MAX_VALUES
from tests.protocols.test_protocol_fuzz import YAML_CHARS, check_report

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"
BASE_PATH = DATA / "valid" / "base.yaml"
BASE = BASE_PATH.read_text(encoding="utf-8")
STEP2 = "steps → step 2 (delivery, frontal)"


def _problems(result: LoadResult) -> list[tuple[str, int, int, str]]:
    return [(p.code, p.line, p.column, p.message) for p in result.problems]


def _only(result: LoadResult) -> tuple[str, int, int, str]:
    (problem,) = _problems(result)
    return problem


# --- 1. every exception from parsing becomes a located problem --------------------------------


@pytest.mark.parametrize(
    ("old", "new", "line", "column", "message"),
    [
        (
            "approved_on: 2026-11-20",
            "approved_on: 2026-02-29",
            9,
            14,
            "2026-02-29 is not a date: February 2026 has 28 days",
        ),
        (
            "approved_on: 2026-11-20",
            "approved_on: 2026-13-01",
            9,
            14,
            "2026-13-01 is not a date: a month is 1 to 12",
        ),
        (
            "approved_on: 2026-11-20",
            "approved_on: 2024-04-31",
            9,
            14,
            "2024-04-31 is not a date: April 2024 has 30 days",
        ),
        (
            "approved_on: 2026-11-20",
            "approved_on: 0000-01-01",
            9,
            14,
            "0000-01-01 is not a date: years count from 0001",
        ),
        (
            "  - No intense exercise for 24 hours.",
            "  - 2025-02-30",
            62,
            5,
            "2025-02-30 is not a date: February 2025 has 28 days",
        ),
        (
            "  - No intense exercise for 24 hours.",
            "  - No intense exercise for 24 hours.\nnotes: 2026-13-45",
            63,
            8,
            "2026-13-45 is not a date: a month is 1 to 12",
        ),
        (
            "approved_on: 2026-11-20",
            "approved_on: 2026-11-20 25:00:00",
            9,
            14,
            "2026-11-20 25:00:00 is not a date and time: an hour is 0 to 23",
        ),
    ],
)
def test_impossible_dates_are_located_problems(
    old: str, new: str, line: int, column: int, message: str
) -> None:
    text = BASE.replace(old, new, 1)
    result = load_protocol_text(text, "t.yaml")
    assert _only(result) == ("not_a_date", line, column, message)
    assert result.protocol is None
    check_report(result, text.encode())


def test_impossible_date_shows_the_field_path() -> None:
    result = load_protocol(DATA / "syntax" / "impossible-date.yaml")
    (problem,) = result.problems
    assert problem.format().endswith(
        ":9:14: approved_on: 2026-02-29 is not a date: February 2026 has 28 days"
    )
    # the rest of the file is still checked: id and version are known, other problems shown
    assert (result.id, result.version) == ("aga-early-scalp", 3)
    worse = (DATA / "syntax" / "impossible-date.yaml").read_text(encoding="utf-8")
    worse = worse.replace("pulse_width_us: 500", "pulse_width_us: 9", 1)
    codes = [p.code for p in load_protocol_text(worse, "t.yaml").problems]
    assert codes == ["not_a_date", "out_of_range"]


def test_a_real_date_in_a_text_field_is_still_refused_as_a_date() -> None:
    text = BASE + "notes: 2026-11-20\n"
    (problem,) = load_protocol_text(text, "t.yaml").problems
    assert problem.code == "wrong_type"
    assert 'put it in quotes, "2026-11-20"' in problem.message


def test_a_date_key_that_is_impossible_is_reported() -> None:
    text = BASE + "2026-02-30: x\n"
    codes = {p.code for p in load_protocol_text(text, "t.yaml").problems}
    assert "not_a_date" in codes


def test_a_huge_integer_is_a_problem_not_an_exception() -> None:
    text = BASE.replace("    duration_s: 300\n", "    duration_s: " + "1" * 5000 + "\n", 1)
    code, line, column, message = _only(load_protocol_text(text, "t.yaml"))
    assert (code, line, column) == ("not_a_number", 24, 17)
    assert message.startswith("11111111111111111111… is too long")
    assert len(message) < 200


def test_a_huge_float_is_a_problem_not_infinity() -> None:
    text = BASE.replace("    duration_s: 300\n", "    duration_s: 1e999\n", 1)
    assert _only(load_protocol_text(text, "t.yaml"))[:3] == ("not_a_number", 24, 17)


@pytest.mark.parametrize(
    "error", [ValueError("boom"), OverflowError("boom"), RecursionError("boom"), KeyError("x")]
)
def test_any_exception_while_parsing_becomes_a_located_problem(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    from ruamel.yaml.scanner import Scanner

    original = Scanner.fetch_more_tokens
    calls = 0

    def failing(self: Scanner) -> None:
        nonlocal calls
        calls += 1
        if calls > 40:
            raise error
        original(self)

    monkeypatch.setattr(Scanner, "fetch_more_tokens", failing)
    result = load_protocol_text(BASE, "t.yaml")
    (problem,) = result.problems
    assert problem.code == "yaml_unreadable"
    assert problem.line > 1
    assert "boom" not in problem.message and "'x'" not in problem.message
    assert problem.message.startswith("the YAML cannot be read here")
    check_report(result, BASE.encode())


def test_any_exception_while_building_becomes_a_located_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ruamel.yaml.constructor import RoundTripConstructor

    def failing(self: RoundTripConstructor, node: object, tag: object = None) -> object:
        raise OverflowError("boom")

    monkeypatch.setattr(RoundTripConstructor, "construct_non_recursive_object", failing)
    (problem,) = load_protocol_text(BASE, "t.yaml").problems
    assert (problem.code, problem.line) == ("yaml_unreadable", 2)
    assert "boom" not in problem.message


@given(st.binary(max_size=300))
@settings(max_examples=300, deadline=None)
def test_any_bytes_give_a_report(source: bytes) -> None:
    check_report(load_protocol_text(source, "any.yaml"), source)


@given(st.text(YAML_CHARS + "\r\v\f", max_size=200))
@settings(max_examples=300, deadline=None)
def test_any_yaml_like_text_gives_a_report(source: str) -> None:
    check_report(load_protocol_text(source, "any.yaml"), source.encode())


def test_library_lists_the_impossible_date_file_with_the_others() -> None:
    results = {r.path.name: r for r in load_library(DATA / "library-broken")}
    assert sorted(results) == ["good.yaml", "leap-day.yaml"]
    assert results["good.yaml"].ok
    (problem,) = results["leap-day.yaml"].problems
    assert (problem.code, problem.line, problem.column) == ("not_a_date", 9, 14)


def test_library_turns_an_unexpected_failure_into_a_problem_on_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from protocols import library

    shutil.copy(BASE_PATH, tmp_path / "good.yaml")
    shutil.copy(BASE_PATH, tmp_path / "cursed.yaml")
    real = library.analyse_file

    def analyse(path: Path) -> object:
        if path.name == "cursed.yaml":
            raise RuntimeError("an internal bug")
        return real(path)

    monkeypatch.setattr(library, "analyse_file", analyse)
    results = {r.path.name: r for r in load_library(tmp_path)}
    assert results["good.yaml"].ok
    (problem,) = results["cursed.yaml"].problems
    assert problem.code == "internal"
    assert problem.severity is Severity.ERROR
    assert "cursed.yaml" in problem.message and "RuntimeError" in problem.message
    assert results["cursed.yaml"].protocol is None


# --- 2. nesting depth, checked on the text before parsing ------------------------------------


def test_a_nesting_bomb_is_refused_by_the_depth_check() -> None:
    text = "[" * 16_000
    result = load_protocol_text(text, "bomb.yaml")
    assert _only(result)[:3] == ("too_deep", 1, MAX_DEPTH + 1)
    check_report(result, text.encode())


@pytest.mark.parametrize(
    "unit", [": ", "- ", "? ", "{a: ", "[x, ", "- [", "? - ", "a: {b: [", "- &a !t ["]
)
def test_every_kind_of_nesting_bomb_is_refused(unit: str) -> None:
    text = unit * 16_000 + "x\n"
    assert _only(load_protocol_text(text, "bomb.yaml"))[:2] == ("too_deep", 1)


def test_a_mebibyte_of_brackets_is_refused_by_the_depth_check(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_bytes(b"steps: " + b"{" * (MAX_BYTES - 7))
    assert _only(load_protocol(path))[:3] == ("too_deep", 1, 8 + MAX_DEPTH - 1)


def test_deep_block_nesting_is_refused_where_it_becomes_too_deep() -> None:
    text = "".join(f"{'  ' * level}k{level}:\n" for level in range(60)) + "  " * 60 + "v: 1\n"
    code, line, column, message = _only(load_protocol_text(text, "deep.yaml"))
    assert (code, line, column) == ("too_deep", MAX_DEPTH + 1, 2 * MAX_DEPTH + 1)
    assert "more than 50 levels" in message


def test_deep_nesting_of_list_items_on_one_line_is_counted() -> None:
    text = "a:\n" + "- " * 60 + "x\n"
    assert _only(load_protocol_text(text, "deep.yaml"))[:2] == ("too_deep", 2)


def test_fifty_levels_are_allowed() -> None:
    text = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    codes = [p.code for p in load_protocol_text(text, "t.yaml").problems]
    assert "too_deep" not in codes


@pytest.mark.parametrize(
    "value",
    [
        '"' + "[" * 100 + '"',
        "'" + "{" * 100 + "'",
        "text [" + "[" * 100,
        "x # " + "[" * 100,
        "|\n" + "".join(f"  {' ' * n}[\n" for n in range(100)),
        '"multi\n  line ' + "[" * 100 + '\n  end"',
        "[\"a ]\", '[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[', don't]",
    ],
)
def test_brackets_in_text_and_comments_do_not_count(value: str) -> None:
    text = BASE + f"notes: {value}\n"
    codes = [p.code for p in load_protocol_text(text, "t.yaml").problems]
    assert "too_deep" not in codes


def test_every_bundled_and_valid_file_passes_the_depth_check() -> None:
    from protocols.depth import too_deep

    paths = [*sorted((DATA / "valid").glob("*.yaml"))]
    paths += sorted(Path(__file__).resolve().parents[2].joinpath("protocols", "library").glob("*"))
    assert len(paths) > 5
    for path in paths:
        assert too_deep(path.read_text(encoding="utf-8-sig")) is None, path


def test_a_flood_of_values_is_refused_before_parsing_at_its_line() -> None:
    text = "".join(f"k{i}: {i}\n" for i in range(MAX_VALUES + 500))
    assert len(text) <= MAX_BYTES
    (problem,) = load_protocol_text(text, "flood.yaml").problems
    assert (problem.code, problem.line) == ("too_many_values", MAX_VALUES + 1)
    listed = "steps: [" + ", ".join(["1"] * (MAX_VALUES + 1)) + "]\n"
    (problem,) = load_protocol_text(listed, "flood.yaml").problems
    assert problem.code == "too_many_values"


# --- 3. at most 100 problems per file -----------------------------------------------------------


def test_an_alias_flood_is_capped_at_a_hundred_and_one_lines() -> None:
    text = "a: &x 1\n" + "b: *x\n" * (MAX_VALUES - 1)
    assert len(text) <= MAX_BYTES
    result = load_protocol_text(text, "flood.yaml")
    assert len(result.problems) == 101
    last = result.problems[-1]
    assert last.code == "too_many_problems"
    assert last.message.startswith("and more problems")
    assert "fix the ones above first" in last.message
    assert (last.line, last.column) > (result.problems[-2].line, result.problems[-2].column)
    check_report(result, text.encode())


def test_many_problems_end_with_how_many_more() -> None:
    text = BASE + "".join(f"extra_{n}: 1\n" for n in range(150))
    result = load_protocol_text(text, "t.yaml")
    assert len(result.problems) == 101
    assert [p.code for p in result.problems[:100]] == ["unknown_field"] * 100
    last = result.problems[-1]
    assert (last.code, last.line, last.column) == ("too_many_problems", 163, 1)
    assert last.message == "and 50 more problems (fix the ones above first)"
    assert last.severity is Severity.ERROR


# --- 4. file-level messages: the real size, the right line ---------------------------------------


def test_too_large_gives_the_real_size(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * 2_000_000 + b"\n")
    code, line, column, message = _only(load_protocol(big))
    assert (code, line, column) == ("too_large", 1, 1)
    assert "2,000,003 bytes" in message


def test_not_utf8_is_located_at_its_line_and_column() -> None:
    text = BASE.encode().replace(b"title: Early", b"title: \xe9arly", 1)
    code, line, column, message = _only(load_protocol_text(text, "t.yaml"))
    assert (code, line, column) == ("not_utf8", 5, 8)
    assert "0xE9" in message


def test_not_utf8_column_counts_characters_not_bytes() -> None:
    text = "a: é€ ".encode() + b"\xff\n"
    assert _only(load_protocol_text(text, "t.yaml"))[:3] == ("not_utf8", 1, 7)


def test_positions_count_carriage_returns_as_line_breaks() -> None:
    """A file saved with CR-only line ends: lines as the parser and editors count them."""
    text = BASE.replace("\n", "\r")
    bad = text.encode().replace(b"title: Early", b"title: \xe9arly", 1)
    assert _only(load_protocol_text(bad, "t.yaml"))[:3] == ("not_utf8", 5, 8)
    deep = text + "notes: " + "[" * 60
    assert _only(load_protocol_text(deep, "t.yaml"))[:3] == ("too_deep", 63, 57)


# --- 5. messages at the edges -----------------------------------------------------------------


def test_a_value_a_hair_below_the_limit_shows_its_digits() -> None:
    text = BASE.replace("current_limit_ma: 6.0", "current_limit_ma: 0.4999999", 1)
    (problem,) = load_protocol_text(text, "t.yaml").problems
    assert problem.message == "0.4999999 mA is below the minimum of 0.5 mA"


def test_a_value_a_hair_above_the_limit_shows_its_digits() -> None:
    text = BASE.replace("pulse_width_us: 500", "pulse_width_us: 2000.0001", 1)
    (problem,) = load_protocol_text(text, "t.yaml").problems
    assert problem.message == "2000.0001 µs is above the maximum of 2000 µs"


def test_derived_rules_never_show_the_value_equal_to_its_limit() -> None:
    from protocols import rules

    (issue,) = [
        i
        for i in rules.check_delivery_step(
            {
                "waveform": "biphasic_square",
                "amplitude_v": 40,
                "amplitude_max_v": 60,
                "pulse_width_us": 500,
                "frequency_hz": 50,
                "duration_s": 100,
                "ramp_up_s": 50.00001,
                "ramp_down_s": 2,
                "current_limit_ma": 6.0,
            },
            ("steps", 0),
            None,
        )
        if i.code == "ramp_too_long"
    ]
    assert issue.message.startswith(
        "50.00001 s is more than half of duration_s (100 s): at most 50 s"
    )


def test_a_tab_after_a_colon_is_not_called_indentation() -> None:
    text = BASE.replace("    duration_s: 300\n", "    duration_s:\t300\n", 1)
    code, line, column, message = _only(load_protocol_text(text, "t.yaml"))
    assert (code, line, column) == ("yaml_syntax", 24, 16)
    assert message.startswith('a tab character after the ":"')
    assert "indentation" not in message and "use a space" in message


def test_a_tab_in_the_indentation_still_says_indentation() -> None:
    text = BASE.replace("    duration_s: 300\n", "\tduration_s: 300\n", 1)
    assert "indentation" in _only(load_protocol_text(text, "t.yaml"))[3]


@pytest.mark.parametrize(
    "text",
    [
        "a: b\n c: d\n",
        "a: [1, 2\nb: 3\n",
        "a: 'x\n",
        "? - a\n: b\n- c\n",
        "a: !\n",
        "a: &\n",
        "a: b\n---\nc: d\n",
        "%FOO bar\n---\na: 1\n",
        "a: @x\n",
        "a: `x\n",
        "{a: 1}}\n",
        "a: 1\n  - b\n",
    ],
)
def test_syntax_messages_never_show_raw_parser_text(text: str) -> None:
    for problem in load_protocol_text(text, "t.yaml").problems:
        for raw in ("while ", "expected <", "found ", "could not", "scanning", "parsing"):
            assert raw not in problem.message, problem.message


# --- 6. numbers are plain decimal ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "code", "message"),
    [
        ("0x1F4", "not_decimal", "0x1F4 is not a plain decimal number: write 500"),
        ("50_0", "not_decimal", "50_0 is not a plain decimal number: write 500"),
        ("0o764", "not_decimal", "0o764 is not a plain decimal number: write 500"),
        ("0b111110100", "not_decimal", "0b111110100 is not a plain decimal number: write 500"),
        ("-0x10", "not_decimal", "-0x10 is not a plain decimal number: write -16"),
        ("1_000.5", "not_decimal", "1_000.5 is not a plain decimal number: write 1000.5"),
        (
            ".inf",
            "not_a_number",
            ".inf is not a number a protocol can use: write a plain decimal number",
        ),
        (
            "-.inf",
            "not_a_number",
            "-.inf is not a number a protocol can use: write a plain decimal number",
        ),
        (
            ".NaN",
            "not_a_number",
            ".NaN is not a number a protocol can use: write a plain decimal number",
        ),
    ],
)
def test_numbers_that_are_not_plain_decimal_are_refused(
    value: str, code: str, message: str
) -> None:
    text = BASE.replace("    duration_s: 300\n", f"    duration_s: {value}\n", 1)
    result = load_protocol_text(text, "t.yaml")
    (problem,) = result.problems
    assert (problem.code, problem.line, problem.column) == (code, 24, 17)
    assert problem.path == f"{STEP2} → duration_s"
    assert problem.message == message
    assert result.protocol is None


@pytest.mark.parametrize("value", ["300", "+300", "300.0", "3e2", "3.0E+2", "0300", "300."])
def test_plain_decimal_numbers_are_accepted(value: str) -> None:
    text = BASE.replace("    duration_s: 300\n", f"    duration_s: {value}\n", 1)
    assert load_protocol_text(text, "t.yaml").ok


def test_a_quoted_hexadecimal_is_text() -> None:
    text = BASE.replace("    duration_s: 300\n", '    duration_s: "0x1F4"\n', 1)
    (problem,) = load_protocol_text(text, "t.yaml").problems
    assert problem.code == "wrong_type"


def test_non_decimal_numbers_in_text_fields_are_refused_too() -> None:
    text = BASE + "notes: 0x10\n"
    assert _only(load_protocol_text(text, "t.yaml"))[:3] == ("not_decimal", 63, 8)


# --- 7. special files ------------------------------------------------------------------------


def _load_with_timeout(path: Path, seconds: float = 10) -> LoadResult:
    found: list[LoadResult] = []
    worker = threading.Thread(target=lambda: found.append(load_protocol(path)), daemon=True)
    worker.start()
    worker.join(seconds)
    assert found, f"loading {path} blocked"
    return found[0]


posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")


@posix_only
def test_a_named_pipe_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    code, line, column, message = _only(_load_with_timeout(fifo))
    assert (code, line, column) == ("unreadable", 1, 1)
    assert "is not a regular file (a named pipe)" in message
    assert "a protocol is a .yaml file" in message


@posix_only
def test_odd_entries_of_a_folder_are_listed_as_unreadable(tmp_path: Path) -> None:
    shutil.copy(BASE_PATH, tmp_path / "good.yaml")
    os.mkfifo(tmp_path / "pipe.yaml")
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "dangling.yml").symlink_to(tmp_path / "gone.yaml")
    (tmp_path / "notes.txt").write_text("not a protocol")
    found: list[list[LoadResult]] = []
    worker = threading.Thread(target=lambda: found.append(load_library(tmp_path)), daemon=True)
    worker.start()
    worker.join(10)
    assert found, "the library blocked"
    results = {r.path.name: r for r in found[0]}
    assert sorted(results) == ["dangling.yml", "folder.yaml", "good.yaml", "pipe.yaml"]
    assert results["good.yaml"].ok
    messages = {}
    for name in ("dangling.yml", "folder.yaml", "pipe.yaml"):
        (problem,) = results[name].problems
        assert (problem.code, problem.severity) == ("unreadable", Severity.ERROR)
        messages[name] = problem.message
    assert "a named pipe" in messages["pipe.yaml"]
    assert "a folder" in messages["folder.yaml"]
    assert "gone.yaml" in messages["dangling.yml"] and "does not exist" in messages["dangling.yml"]


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root reads files whatever their mode"
)
def test_an_unreadable_file_in_a_folder_is_listed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.yaml"
    shutil.copy(BASE_PATH, secret)
    secret.chmod(0)
    try:
        (result,) = load_library(tmp_path)
    finally:
        secret.chmod(0o600)
    assert [p.code for p in result.problems] == ["unreadable"]
