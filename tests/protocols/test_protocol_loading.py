"""Loading from paths and from memory: identity, file-level errors, results."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from protocols import Severity, load_protocol, load_protocol_text
from protocols.yamlread import MAX_BYTES

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"
BASE = DATA / "valid" / "base.yaml"


def test_valid_file_carries_its_identity() -> None:
    result = load_protocol(BASE)
    digest = hashlib.sha256(BASE.read_bytes()).hexdigest()
    assert result.sha256 == digest
    assert result.identity is not None
    assert (result.identity.id, result.identity.version, result.identity.sha256) == (
        "aga-early-scalp",
        3,
        digest,
    )
    assert result.path == BASE
    assert result.ok


def test_invalid_file_keeps_hash_id_and_version_but_no_protocol() -> None:
    path = DATA / "bad" / "pulse-width-out-of-range.yaml"
    result = load_protocol(path)
    assert result.protocol is None
    assert result.identity is None
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (result.id, result.version) == ("aga-early-scalp", 3)
    assert not result.ok


def test_text_and_bytes_load_the_same_as_the_file() -> None:
    text = BASE.read_text(encoding="utf-8")
    from_text = load_protocol_text(text, "editor.yaml")
    from_bytes = load_protocol_text(BASE.read_bytes(), "editor.yaml")
    assert from_text.protocol == from_bytes.protocol == load_protocol(BASE).protocol
    assert from_text.sha256 == hashlib.sha256(text.encode()).hexdigest()


def test_problems_carry_the_filename_given() -> None:
    text = BASE.read_text(encoding="utf-8").replace("pulse_width_us: 500", "pulse_width_us: 9", 1)
    result = load_protocol_text(text, "live-editor")
    (problem,) = result.problems
    assert problem.file == "live-editor"
    assert problem.format().startswith("live-editor:28:5: steps → step 2 (delivery, frontal)")


def test_one_pass_reports_field_and_derived_errors_together() -> None:
    text = (
        BASE.read_text(encoding="utf-8")
        .replace("zone: crown", "zone: crwn")
        .replace(
            "    pulse_width_us: 500\n    frequency_hz: 50\n",
            "    pulse_width_us: 2000\n    frequency_hz: 200\n",
            1,
        )
        .replace("handpiece: scalp_roller", "handpiece: scalp_roller\ncolour: blue")
    )
    codes = {p.code for p in load_protocol_text(text, "x.yaml").problems}
    assert {"invalid_choice", "duty_cycle", "unknown_field"} <= codes


def test_warnings_do_not_block_the_protocol() -> None:
    result = load_protocol(DATA / "bad" / "ramp-up-short.yaml")
    assert result.protocol is not None
    assert result.ok
    assert [p.severity for p in result.warnings] == [Severity.WARNING]
    assert result.errors == ()


def test_file_over_one_mebibyte_is_refused_without_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# " + b"x" * MAX_BYTES + b"\n")
    result = load_protocol(big)
    assert [(p.code, p.line, p.column) for p in result.problems] == [("too_large", 1, 1)]
    assert result.protocol is None


def test_file_of_exactly_one_mebibyte_is_read(tmp_path: Path) -> None:
    text = BASE.read_bytes()
    path = tmp_path / "padded.yaml"
    path.write_bytes(text + b"#" * (MAX_BYTES - len(text) - 1) + b"\n")
    assert load_protocol(path).ok


def test_missing_file_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    result = load_protocol(tmp_path / "nope.yaml")
    assert [(p.code, p.line, p.column) for p in result.problems] == [("unreadable", 1, 1)]
    assert result.sha256 is None


def test_folder_given_as_file_is_a_problem(tmp_path: Path) -> None:
    result = load_protocol(tmp_path)
    assert [p.code for p in result.problems] == ["unreadable"]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "empty_file"),
        ("   \n\n", "empty_file"),
        ("[1, 2]", "not_a_mapping"),
        ("42", "not_a_mapping"),
        ("a: [1, 2\n", "yaml_syntax"),
        ("a: 1\n\x00", "yaml_syntax"),
    ],
)
def test_text_level_problems(text: str, code: str) -> None:
    result = load_protocol_text(text, "t.yaml")
    assert [p.code for p in result.problems] == [code]
    assert result.protocol is None


def test_problem_format_without_a_path() -> None:
    (problem,) = load_protocol_text("", "t.yaml").problems
    assert problem.format() == "t.yaml:1:1: the file is empty: a protocol needs its fields"
    assert problem.to_dict() == {
        "file": "t.yaml",
        "line": 1,
        "column": 1,
        "path": "",
        "severity": "error",
        "code": "empty_file",
        "message": "the file is empty: a protocol needs its fields",
    }


def test_explicit_null_for_optional_field_is_an_error() -> None:
    text = BASE.read_text(encoding="utf-8").replace(
        "    zone: frontal\n", "    zone: frontal\n    burst:\n", 1
    )
    text = text.replace("    burst: {on_ms: 500, off_ms: 500}\n", "", 1)
    codes = [(p.code, p.path) for p in load_protocol_text(text, "t.yaml").problems]
    assert codes == [("missing_value", "steps → step 2 (delivery, frontal) → burst")]


def test_quoted_date_is_accepted_and_datetime_is_not() -> None:
    text = BASE.read_text(encoding="utf-8")
    quoted = text.replace("approved_on: 2026-11-20", 'approved_on: "2026-11-20"')
    assert load_protocol_text(quoted, "t.yaml").ok
    timed = text.replace("approved_on: 2026-11-20", "approved_on: 2026-11-20T10:00:00")
    assert [p.code for p in load_protocol_text(timed, "t.yaml").problems] == ["invalid_date"]
    impossible = text.replace("approved_on: 2026-11-20", 'approved_on: "2026-02-30"')
    assert [p.code for p in load_protocol_text(impossible, "t.yaml").problems] == ["invalid_date"]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("true", "wrong_type"),
        ("yes", "wrong_type"),
        ("no", "wrong_type"),
        ('"300"', "wrong_type"),
        (".inf", "not_a_number"),
        (".nan", "not_a_number"),
    ],
)
def test_non_numbers_are_refused_for_numeric_fields(value: str, code: str) -> None:
    text = BASE.read_text(encoding="utf-8").replace(
        "    duration_s: 300\n", f"    duration_s: {value}\n", 1
    )
    problems = load_protocol_text(text, "t.yaml").problems
    assert [(p.code, p.line) for p in problems] == [(code, 24)]


def test_yaml_1_2_keeps_no_as_text() -> None:
    text = BASE.read_text(encoding="utf-8").replace(
        "  name: Biotin and panthenol cocktail", "  name: no"
    )
    result = load_protocol_text(text, "t.yaml")
    assert result.protocol is not None
    assert result.protocol.serum.name == "no"
