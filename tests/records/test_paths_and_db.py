"""The data folder's location and privacy, and the database's durability settings."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from controller.records import DatabaseError, DataDirError, RecordStore, resolve_data_dir
from controller.records.paths import DB_FILENAME, default_data_dir


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_explicit_dir_wins_over_epm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPM_HOME", str(tmp_path / "from-env"))
    chosen = resolve_data_dir(tmp_path / "explicit")
    assert chosen == (tmp_path / "explicit").resolve()
    assert not (tmp_path / "from-env").exists()


def test_epm_home_wins_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EPM_HOME", str(tmp_path / "from-env"))
    assert resolve_data_dir(None) == (tmp_path / "from-env").resolve()
    assert resolve_data_dir("") == (tmp_path / "from-env").resolve()


def test_default_is_platform_user_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EPM_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_data_dir() == tmp_path / "xdg" / "epm"
    assert resolve_data_dir(None) == (tmp_path / "xdg" / "epm").resolve()


def test_new_folder_is_private_even_with_a_loose_umask(tmp_path: Path) -> None:
    import os

    old = os.umask(0o002)
    try:
        chosen = resolve_data_dir(tmp_path / "a" / "b")
    finally:
        os.umask(old)
    assert mode(chosen) == 0o700


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("x")
    with pytest.raises(DataDirError, match="is a file, not a folder"):
        resolve_data_dir(tmp_path / "notadir")


def test_database_and_wal_files_are_private(data_dir: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        with RecordStore.open(data_dir) as store:
            store.get_or_create_client("C-1")
            files = [data_dir / DB_FILENAME, data_dir / f"{DB_FILENAME}-wal"]
            files.append(data_dir / f"{DB_FILENAME}-shm")
            for f in files:
                assert f.exists(), f
                assert mode(f) == 0o600, f
    finally:
        os.umask(old)


def test_wal_full_sync_and_foreign_keys_are_on(store: RecordStore) -> None:
    with store.read_connection() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    # And on a plain connection: WAL is a property of the file.
    raw = sqlite3.connect(store.path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_a_file_that_is_not_a_database_is_refused_clearly(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700)
    (data_dir / DB_FILENAME).write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError, match="not a usable records database"):
        RecordStore.open(data_dir)
