"""Saving a protocol file: atomic, previous bytes kept in ``.bak``, permissions kept."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from controller.ui.technician.file_save import backup_path, file_digest, save_atomic


def test_new_file_has_no_backup(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    result = save_atomic(path, "a: 1\n")
    assert path.read_text() == "a: 1\n"
    assert result.backup is None and not backup_path(path).exists()
    assert result.sha256 == file_digest(path)


def test_save_keeps_previous_content_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("old: 1\n")
    path.chmod(0o640)
    result = save_atomic(path, "new: 2\n")
    assert path.read_text() == "new: 2\n"
    assert result.backup == tmp_path / "p.yaml.bak"
    assert result.backup.read_text() == "old: 1\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    save_atomic(path, "newer: 3\n")
    assert backup_path(path).read_text() == "new: 2\n"
    # No temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml", "p.yaml.bak"]


def test_failed_replace_leaves_the_file_and_no_temp(tmp_path: Path, monkeypatch: Any) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("old: 1\n")
    real_replace = os.replace

    def failing_replace(src: str, dst: str) -> None:
        if Path(dst) == path:
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space"):
        save_atomic(path, "new: 2\n")
    assert path.read_text() == "old: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml", "p.yaml.bak"]


def test_digest_of_missing_file_is_none(tmp_path: Path) -> None:
    assert file_digest(tmp_path / "missing.yaml") is None
