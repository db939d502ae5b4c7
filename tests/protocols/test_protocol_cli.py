"""`epm validate`, `epm schema` and the library summary of plain `epm`."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import protocols
from controller.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"
BASE = DATA / "valid" / "base.yaml"
BAD = DATA / "bad" / "pulse-width-out-of-range.yaml"
WARN = DATA / "bad" / "ramp-up-short.yaml"


def test_valid_file_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(BASE)]) == 0
    out = capsys.readouterr().out
    assert f"{BASE}: valid" in out
    assert out.rstrip().endswith("1 file: 1 valid, 0 invalid")


def test_warnings_alone_exit_0_and_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(WARN)]) == 0
    out = capsys.readouterr().out
    assert f"{WARN}:55:5: warning: steps → step 4 (delivery, crown) → ramp_up_s:" in out
    assert "(1 warning)" in out


def test_invalid_file_exits_1_with_located_problem(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(BASE), str(BAD), str(WARN)]) == 1
    out = capsys.readouterr().out
    assert (
        f"  {BAD}:52:5: steps → step 4 (delivery, crown) → pulse_width_us: "
        "2500 µs is above the maximum of 2000 µs"
    ) in out
    assert f"{BAD}: INVALID (1 error)" in out
    assert out.rstrip().splitlines()[-1] == "3 files: 2 valid, 1 invalid (1 error, 1 warning)"


def test_errors_are_listed_before_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    main(["validate", str(DATA / "bad" / "total-delivery-time.yaml")])
    lines = capsys.readouterr().out.splitlines()
    assert ":18:1: steps: the delivery steps add up to 100 min" in lines[1]
    assert ":18:1: warning: steps: the session lasts 102 min" in lines[2]


def test_missing_path_exits_2_with_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["validate", str(BASE), str(missing)]) == 2
    captured = capsys.readouterr()
    assert f"no such file or folder: {missing}" in captured.err
    assert captured.out == ""


def test_folder_without_protocols_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["validate", str(tmp_path)]) == 2
    assert "no .yaml or .yml files" in capsys.readouterr().err


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["validate", "--no-such-option"])
    assert caught.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err


def test_validate_without_paths_as_json_checks_the_bundled_library(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    library = protocols.load_library(protocols.bundled_library_path())
    assert [entry["path"] for entry in report["files"]] == [str(r.path) for r in library]
    assert {entry["verdict"] for entry in report["files"]} == {"valid"}
    assert report["summary"] == {
        "files": len(library),
        "valid": len(library),
        "invalid": 0,
        "skipped": 0,
        "errors": 0,
        "warnings": 0,
    }


def test_folder_is_checked_as_a_library(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(DATA / "library-duplicate")]) == 1
    out = capsys.readouterr().out
    assert "is also used by b.yaml with different content" in out
    assert "is also used by a.yaml with different content" in out
    assert out.rstrip().endswith("3 files: 1 valid, 2 invalid (2 errors)")


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--format", "json", str(BAD), str(WARN), str(BASE)]) == 1
    report = json.loads(capsys.readouterr().out)
    bad, warn, base = report["files"]
    assert bad == {
        "path": str(BAD),
        "verdict": "invalid",
        "id": "aga-early-scalp",
        "version": 3,
        "sha256": hashlib.sha256(BAD.read_bytes()).hexdigest(),
        "problems": [
            {
                "file": str(BAD),
                "line": 52,
                "column": 5,
                "path": "steps → step 4 (delivery, crown) → pulse_width_us",
                "severity": "error",
                "code": "out_of_range",
                "message": "2500 µs is above the maximum of 2000 µs",
            }
        ],
    }
    assert (warn["path"], warn["verdict"]) == (str(WARN), "valid")
    assert warn["problems"] == [
        {
            "file": str(WARN),
            "line": 55,
            "column": 5,
            "path": "steps → step 4 (delivery, crown) → ramp_up_s",
            "severity": "warning",
            "code": "ramp_up_short",
            "message": warn["problems"][0]["message"],
        },
    ]
    assert (base["verdict"], base["problems"]) == ("valid", [])
    assert report["summary"] == {
        "files": 3,
        "valid": 2,
        "invalid": 1,
        "skipped": 0,
        "errors": 1,
        "warnings": 1,
    }


def test_json_output_of_a_valid_file_gives_its_identity(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate", "--format", "json", str(BASE)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["files"] == [
        {
            "path": str(BASE),
            "verdict": "valid",
            "id": "aga-early-scalp",
            "version": 3,
            "sha256": hashlib.sha256(BASE.read_bytes()).hexdigest(),
            "problems": [],
        }
    ]


def test_json_output_of_an_unreadable_file_has_no_identity(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "lib"
    folder.mkdir()
    shutil.copy(BASE, folder / "good.yaml")
    (folder / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    assert main(["validate", "--format", "json", str(folder)]) == 1
    dangling, good = json.loads(capsys.readouterr().out)["files"]
    assert (dangling["verdict"], dangling["id"], dangling["version"], dangling["sha256"]) == (
        "skipped",
        None,
        None,
        None,
    )
    assert [p["code"] for p in dangling["problems"]] == ["unreadable"]
    assert good["verdict"] == "valid"


def test_folder_with_a_broken_file_lists_every_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = DATA / "library-broken"
    assert main(["validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"{folder / 'good.yaml'}: valid" in out
    assert (
        f"{folder / 'leap-day.yaml'}:9:14: approved_on: 2026-02-29 is not a date: "
        "February 2026 has 28 days"
    ) in out
    assert out.rstrip().endswith("2 files: 1 valid, 1 invalid (1 error)")


def test_syntax_error_is_reported_not_raised(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(DATA / "syntax" / "tab.yaml")]) == 1
    assert ":24:1: a tab character" in capsys.readouterr().out


def test_schema_command_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == protocols.json_schema()


def test_validate_without_paths_summarises_the_bundled_library(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["validate"]) == 0
    out = capsys.readouterr().out
    for result in protocols.load_library(protocols.bundled_library_path()):
        assert result.protocol is not None
        (line,) = [row for row in out.splitlines() if row.startswith(result.protocol.id + " ")]
        assert result.protocol.title in line
        assert str(result.protocol.indication) in line
        assert str(result.protocol.handpiece) in line
        assert "approved" in line and "valid" in line
    assert out.rstrip().splitlines()[-1].endswith("valid, 0 invalid")


def test_summary_exits_1_when_the_bundled_library_is_broken(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from controller.cli import cmd_validate

    shutil.copy(BASE, tmp_path / "good.yaml")
    shutil.copy(BAD, tmp_path / "broken.yaml")
    monkeypatch.setattr(protocols, "bundled_library_path", lambda: tmp_path)
    assert cmd_validate.summarise_bundled_library() == 1
    out = capsys.readouterr().out
    assert "INVALID" in out
    assert ":52:5: steps → step 4 (delivery, crown) → pulse_width_us" in out


def test_odd_entries_of_a_folder_are_listed_as_skipped(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    folder = tmp_path / "lib"
    folder.mkdir()
    shutil.copy(BASE, folder / "good.yaml")
    (folder / "dangling.yaml").symlink_to(tmp_path / "gone.yaml")
    (folder / "sub.yml").mkdir()
    (folder / ".#good.yaml").symlink_to("user@host.1234")  # an editor's lock: hidden, left out
    assert main(["validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert f"{folder / 'dangling.yaml'}: SKIPPED\n" in out
    assert f"{folder / 'sub.yml'}: SKIPPED\n" in out
    assert ".#good.yaml" not in out
    assert out.rstrip().endswith("3 files: 1 valid, 0 invalid, 2 skipped (not a readable file)")
