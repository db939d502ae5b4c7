"""Schema migrations: fresh and old databases reach the latest version; newer ones are refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from controller.records import RecordStore, SchemaTooNewError
from controller.records.db import connect
from controller.records.migrations import (
    LATEST_VERSION,
    MIGRATIONS,
    Migration,
    migrate,
    schema_version,
    split_statements,
)
from controller.records.paths import DB_FILENAME


def tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_fresh_database_gets_every_migration(data_dir: Path) -> None:
    with RecordStore.open(data_dir) as store, store.read_connection() as conn:
        assert schema_version(conn) == LATEST_VERSION == MIGRATIONS[-1].version
        assert {"clients", "sessions", "steps", "events", "telemetry", "approvals"} <= tables(conn)


def test_versions_are_consecutive_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))


def test_old_version_database_is_upgraded_and_keeps_its_data(data_dir: Path) -> None:
    data_dir.mkdir(mode=0o700)
    conn = connect(data_dir / DB_FILENAME)
    migrate(conn, migrations=MIGRATIONS[:1])
    assert schema_version(conn) == 1
    assert "approvals" not in tables(conn)
    conn.execute("INSERT INTO clients (code, name, created_at) VALUES ('OLD-1', 'Old', 'x')")
    conn.close()

    with RecordStore.open(data_dir) as store:
        with store.read_connection() as rc:
            assert schema_version(rc) == LATEST_VERSION
            assert "approvals" in tables(rc)
            columns = {r[1] for r in rc.execute("PRAGMA table_info(sessions)")}
            assert "notes" in columns
        assert store.get_client("OLD-1").name == "Old"


def test_database_from_a_newer_epm_is_refused_and_left_alone(data_dir: Path) -> None:
    with RecordStore.open(data_dir):
        pass
    raw = sqlite3.connect(data_dir / DB_FILENAME)
    raw.execute(f"PRAGMA user_version = {LATEST_VERSION + 5}")
    raw.close()
    with pytest.raises(SchemaTooNewError, match="written by a newer epm") as err:
        RecordStore.open(data_dir)
    assert f"schema version {LATEST_VERSION + 5}" in str(err.value)
    raw = sqlite3.connect(data_dir / DB_FILENAME)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == LATEST_VERSION + 5
    raw.close()


def test_a_failing_migration_rolls_back_completely(tmp_path: Path) -> None:
    conn = connect(tmp_path / "db.sqlite3")
    broken = (
        *MIGRATIONS[:1],
        Migration(2, "broken", "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;\n"),
    )
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, migrations=broken)
    assert schema_version(conn) == 1
    assert "half_done" not in tables(conn)
    assert not conn.in_transaction
    conn.close()


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = (
        "CREATE TABLE t (x);\n"
        "CREATE TRIGGER t_no BEFORE DELETE ON t\nBEGIN\n    SELECT RAISE(ABORT, 'no');\nEND;\n"
    )
    statements = split_statements(script)
    assert len(statements) == 2
    assert statements[1].startswith("CREATE TRIGGER") and statements[1].endswith("END;")
    with pytest.raises(ValueError, match="incomplete SQL"):
        split_statements("CREATE TABLE u (x)")
