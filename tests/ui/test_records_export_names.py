"""The UI's exports never take a name that exists, even as a dangling symlink."""

from __future__ import annotations

import os
from pathlib import Path

from controller.ui.technician.records_model import _free


def test_a_dangling_symlink_is_a_taken_name(tmp_path: Path) -> None:
    os.symlink(tmp_path / "elsewhere" / "target.json", tmp_path / "session-1.json")
    chosen = _free(tmp_path, "session-1", ".json")
    assert chosen == tmp_path / "session-1-2.json"
    os.symlink(tmp_path / "nowhere.csv", tmp_path / "s-events.csv")
    assert _free(tmp_path, "s", ".csv", csv_tables=True) == tmp_path / "s-2.csv"
