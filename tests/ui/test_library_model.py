"""The library's pure parts: change detection, scanning with approvals, the new-file template."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.records import RecordStore
from controller.records.approvals import approve
from controller.ui.technician.library_model import (
    LibraryUnreadableError,
    folder_fingerprint,
    scan_library,
)
from controller.ui.technician.protocol_template import (
    TemplateNameError,
    new_protocol_path,
    template_text,
)
from protocols import load_protocol, load_protocol_text
from tests.ui.test_library_harness import FixedClock, make_library, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with open_store(tmp_path / "data", FixedClock()) as s:
        yield s


def test_fingerprint_changes_with_content_and_ignores_other_files(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "lib")
    before = folder_fingerprint(lib)
    assert before is not None and [name for name, _, _ in before] == [
        "aga-base.yaml",
        "bad-amplitude.yaml",
        "high-amplitude.yaml",
    ]
    (lib / "aga-base.yaml.bak").write_text("ignored")
    (lib / "notes.txt").write_text("ignored")
    assert folder_fingerprint(lib) == before
    path = lib / "aga-base.yaml"
    path.write_text(path.read_text() + "# changed\n")
    assert folder_fingerprint(lib) != before


def test_fingerprint_sees_a_same_size_rewrite_by_its_mtime(tmp_path: Path) -> None:
    lib = make_library(tmp_path / "lib")
    path = lib / "aga-base.yaml"
    before = folder_fingerprint(lib)
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    assert folder_fingerprint(lib) != before


def test_fingerprint_of_a_missing_folder_is_none(tmp_path: Path) -> None:
    assert folder_fingerprint(tmp_path / "nope") is None


def test_scan_reports_validity_identity_and_approval(tmp_path: Path, store: RecordStore) -> None:
    lib = make_library(tmp_path / "lib")
    entries = {e.name: e for e in scan_library(lib, store)}
    good, bad, warn = (
        entries["aga-base.yaml"],
        entries["bad-amplitude.yaml"],
        entries["high-amplitude.yaml"],
    )
    assert (good.validity, good.protocol_id, good.version, good.status) == (
        "valid",
        "aga-base",
        "3",
        "approved",
    )
    assert bad.validity == "1 error" and bad.errors == 1 and bad.status == "?"
    assert warn.validity == "valid, 1 warning"
    assert good.approval is None and good.approved_label == "no"

    result = load_protocol(lib / "aga-base.yaml")
    approve(store, result, lib / "aga-base.yaml", "Head technician")
    again = {e.name: e for e in scan_library(lib, store)}
    assert again["aga-base.yaml"].approval is not None
    assert again["aga-base.yaml"].approval.approved_by == "Head technician"
    assert again["aga-base.yaml"].approved_label == "yes"
    # An edit (even a comment) is different bytes: no longer approved.
    path = lib / "aga-base.yaml"
    path.write_text(path.read_text() + "# edited\n")
    assert {e.name: e for e in scan_library(lib, store)}["aga-base.yaml"].approval is None


def test_scan_of_a_missing_folder_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(LibraryUnreadableError, match=r"does not exist.*--library"):
        scan_library(tmp_path / "missing", None)


def test_template_is_a_valid_draft_named_after_the_file() -> None:
    result = load_protocol_text(template_text("aga-trial"), "aga-trial.yaml")
    assert result.ok, [p.format() for p in result.problems]
    assert result.protocol is not None
    assert result.protocol.id == "aga-trial"
    assert str(result.protocol.status) == "draft"


def test_new_protocol_path_rules(tmp_path: Path) -> None:
    assert new_protocol_path(tmp_path, "aga-trial") == tmp_path / "aga-trial.yaml"
    assert new_protocol_path(tmp_path, " aga-trial.yml ") == tmp_path / "aga-trial.yml"
    with pytest.raises(TemplateNameError, match="type a file name"):
        new_protocol_path(tmp_path, "  ")
    with pytest.raises(TemplateNameError, match="cannot be a protocol id"):
        new_protocol_path(tmp_path, "Bad Name")
    with pytest.raises(TemplateNameError, match="folder separator"):
        new_protocol_path(tmp_path, "sub/aga-trial")
    (tmp_path / "aga-trial.yaml").write_text("x")
    with pytest.raises(TemplateNameError, match="already exists"):
        new_protocol_path(tmp_path, "aga-trial")
