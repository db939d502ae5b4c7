"""Records that prove everything they show: every table and shown column is under the chain.

Each tampering case edits the database as someone with the file would (triggers dropped, raw
SQL), then ``verify`` must fail and name the session, the table and the row.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.records import NoRecordsError, RecordStore
from controller.records.anchor import ANCHOR_FILENAME
from controller.records.approvals import approve, check_runnable, is_approved
from controller.records.chain import row_hash
from controller.records.db import connect
from controller.records.migrations import MIGRATIONS, migrate
from controller.records.paths import DB_FILENAME
from protocols import load_protocol
from tests.records.conftest import FakeClock, FakeMonotonic, begin, drop_triggers, protocol_text
from tests.records.test_telemetry import sample


def closed_session(store: RecordStore, **overrides: Any) -> int:
    """A session with a manual step, a delivery step with a hold, an amplitude change and
    3 s of telemetry, a skipped step, notes; then closed."""
    sid = begin(store, **overrides)
    store.record_step_start(sid, 1, kind="manual")
    store.record_step_end(sid, 1, outcome="completed", delivered_ms=None)
    store.record_step_start(sid, 2, kind="delivery", zone="frontal", planned_ms=600_000)
    store.record_amplitude_change(sid, 2, from_dv=400, to_dv=380, source="practitioner")
    store.record_hold(sid, 2, held_ms=1200)
    store.add_telemetry(sid, [sample(t) for t in range(0, 3000, 10)])
    store.record_step_end(sid, 2, outcome="completed", delivered_ms=600_000)
    store.record_skip(sid, 3, "client asked", kind="delivery", zone="crown")
    store.set_notes(sid, "tolerated well")
    store.end_session(sid, "stopped", "client asked to stop")
    return sid


@pytest.fixture
def filled(store: RecordStore) -> RecordStore:
    closed_session(store)
    return store


@pytest.fixture
def attacker(filled: RecordStore) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(filled.path, isolation_level=None)
    drop_triggers(conn)
    yield conn
    conn.close()


def test_a_closed_session_verifies_as_sealed(filled: RecordStore) -> None:
    report = filled.verify_chain()
    assert report.ok, report.describe()
    assert report.sealed == (1,) and report.uncovered == () and report.open_sessions == ()
    assert "sealed sessions: 1" in report.describe()


# Every shown column of every table, changed behind epm's back.
TAMPERING = [
    ("sessions", "UPDATE sessions SET notes = 'forged' WHERE id = 1", "1"),
    ("sessions", "UPDATE sessions SET protocol_title = 'Other' WHERE id = 1", "1"),
    ("sessions", "UPDATE sessions SET serum_name = 'Other serum' WHERE id = 1", "1"),
    ("sessions", "UPDATE sessions SET device_firmware = '9.9.9' WHERE id = 1", "1"),
    ("sessions", "UPDATE sessions SET checklist = '{\"infection\": true}' WHERE id = 1", "1"),
    ("sessions", "UPDATE sessions SET planned_zones = '[\"crown\"]' WHERE id = 1", "1"),
    ("sessions", "UPDATE sessions SET ended_at = '2020-01-01' WHERE id = 1", "1"),
    ("sessions", "UPDATE sessions SET outcome_reason = 'fine' WHERE id = 1", "1"),
    ("clients", "UPDATE clients SET name = 'Someone Else' WHERE id = 1", "1"),
    ("steps", "UPDATE steps SET delivered_ms = 900000 WHERE session_id = 1 AND idx = 2", "2"),
    ("steps", "UPDATE steps SET skip_reason = 'device fault' WHERE idx = 3", "3"),
    ("steps", "UPDATE steps SET amplitude_changes = '[]' WHERE idx = 2", "2"),
    ("steps", "UPDATE steps SET holds = 0, hold_ms = 0 WHERE idx = 2", "2"),
    ("steps", "UPDATE steps SET outcome = 'completed' WHERE idx = 3", "3"),
    ("steps", "DELETE FROM steps WHERE idx = 3", "3"),
    (
        "steps",
        "INSERT INTO steps (session_id, idx, attempt, kind, zone, delivered_ms) "
        "VALUES (1, 4, 1, 'delivery', 'crown', 600000)",
        "4",
    ),
    ("telemetry", "UPDATE telemetry SET current_max_ua = 1 WHERE id = 7", "1–30"),
    ("telemetry", "DELETE FROM telemetry WHERE id = 30", "1–30"),
    (
        "telemetry",
        "INSERT INTO telemetry SELECT NULL, session_id, boot_id, t_first_ms, t_last_ms, n, state, "
        "states_seen, faults, faults_seen, step_id, step_elapsed_ms, amplitude_dv, "
        "amplitude_min_dv, amplitude_max_dv, current_ua, current_min_ua, current_max_ua, "
        "impedance_ohm, impedance_min_ohm, impedance_max_ohm, temperature_dc, "
        "temperature_min_dc, temperature_max_dc, contact, contact_changes "
        "FROM telemetry WHERE id = 3",
        "1–30",
    ),
]


@pytest.mark.parametrize(("table", "sql", "row"), TAMPERING, ids=[t[1][:48] for t in TAMPERING])
def test_every_table_and_shown_column_is_covered(
    filled: RecordStore, attacker: sqlite3.Connection, table: str, sql: str, row: str
) -> None:
    attacker.execute(sql)
    report = filled.verify_chain()
    assert not report.ok
    named = [(f.table, f.row, f.session_id) for f in report.findings]
    assert (table, row, 1) in named, report.describe()
    assert f"session 1, table {table}, row {row}" in report.describe()


def test_a_later_note_is_a_chained_event_shown_instead_of_the_row(filled: RecordStore) -> None:
    filled.set_notes(1, "redness gone next morning")
    assert filled.get_session(1).notes == "redness gone next morning"
    with filled.read_connection() as conn:
        (row_notes,) = conn.execute("SELECT notes FROM sessions WHERE id = 1").fetchone()
    assert row_notes == "tolerated well"  # the sealed row keeps what was recorded at the close
    assert filled.verify_chain().ok


def test_a_forged_note_event_breaks_the_chain(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    attacker.execute("UPDATE events SET data = '{\"notes\": \"forged\"}' WHERE kind = 'note'")
    report = filled.verify_chain()
    assert not report.ok and report.findings[0].table == "events"


def test_a_corrected_serum_lot_is_shown_beside_the_original(filled: RecordStore) -> None:
    filled.amend_session(1, "serum_lot", "LOT-2026-118", by="Dana", reason="typo on the vial")
    session = filled.get_session(1)
    assert session.serum_lot == "LOT-2026-117"
    amended = session.amended("serum_lot")
    assert amended is not None and amended["value"] == "LOT-2026-118"
    assert amended["original"] == "LOT-2026-117" and amended["by"] == "Dana"
    assert filled.verify_chain().ok


def test_a_closed_clients_name_is_corrected_by_a_chained_event(filled: RecordStore) -> None:
    client = filled.get_or_create_client("C-0042", "Alex Client")
    assert client.name == "Alex Client"
    assert filled.get_session(1).client_name == "Alex Client"
    with filled.read_connection() as conn:
        (name,) = conn.execute("SELECT name FROM clients WHERE code = 'C-0042'").fetchone()
    assert name is None  # the sealed row is unchanged
    assert filled.verify_chain().ok


def test_the_database_refuses_changes_to_a_closed_sessions_rows(filled: RecordStore) -> None:
    raw = sqlite3.connect(filled.path)
    try:
        for sql in (
            "UPDATE steps SET delivered_ms = 1 WHERE session_id = 1",
            "INSERT INTO steps (session_id, idx, attempt, kind) VALUES (1, 9, 1, 'manual')",
            "UPDATE telemetry SET current_ua = 1",
            "DELETE FROM telemetry",
            "DELETE FROM clients",
            "UPDATE clients SET name = 'x'",
            "UPDATE sessions SET notes = 'x'",
        ):
            with pytest.raises(sqlite3.IntegrityError):
                raw.execute(sql)
    finally:
        raw.close()


# -- approvals --------------------------------------------------------------------------------


def approved_file(store: RecordStore, tmp_path: Path) -> Path:
    path = tmp_path / "aga.yaml"
    path.write_text(protocol_text(), encoding="utf-8")
    approve(store, load_protocol(path), path, "Head technician")
    return path


def test_an_approval_is_a_chained_event(store: RecordStore, tmp_path: Path) -> None:
    path = approved_file(store, tmp_path)
    events = [e for e in store.events_outside_sessions() if e.kind == "approval"]
    assert len(events) == 1 and events[0].session_id is None
    assert events[0].data["sha256"] == load_protocol(path).sha256
    report = store.verify_chain()
    assert report.ok and report.approvals == 1


def test_a_forged_approval_insert_is_never_honoured_and_verify_names_it(
    store: RecordStore, tmp_path: Path
) -> None:
    path = tmp_path / "changed.yaml"
    path.write_text(protocol_text(version=2), encoding="utf-8")
    result = load_protocol(path)
    raw = sqlite3.connect(store.path, isolation_level=None)
    raw.execute(
        "INSERT INTO approvals (sha256, protocol_id, protocol_version, approved_by, approved_at, "
        "file_path) VALUES (?, 'aga-test', 2, 'Head technician', '2026-03-01', ?)",
        (result.sha256, str(path)),
    )
    raw.close()
    assert is_approved(store, str(result.sha256)) is None
    (reason,) = check_runnable(result, device_is_simulator=False, store=store)
    assert "runs only as approved" in reason
    report = store.verify_chain()
    assert not report.ok
    (finding,) = report.findings
    assert (finding.table, finding.row) == ("approvals", "1")
    assert "not in the chain" in finding.reason


def test_an_edited_approver_name_is_named(
    store: RecordStore, tmp_path: Path, clock: FakeClock
) -> None:
    approved_file(store, tmp_path)
    raw = sqlite3.connect(store.path, isolation_level=None)
    drop_triggers(raw)
    raw.execute("UPDATE approvals SET approved_by = 'Somebody' WHERE id = 1")
    raw.close()
    report = store.verify_chain()
    assert not report.ok
    assert "table approvals, row 1: the row's approved_by differ" in report.describe()


# -- no false reassurance, deleted sessions, anchors --------------------------------------------


def test_a_folder_without_records_is_said_so_and_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "mistyped"
    with pytest.raises(NoRecordsError, match="does not exist"):
        RecordStore.open(missing, exclusive=False, create=False)
    assert not missing.exists()
    missing.mkdir()
    with pytest.raises(NoRecordsError, match="holds no records database"):
        RecordStore.open(missing, exclusive=False, create=False)
    assert list(missing.iterdir()) == []


def _delete_last_session(conn: sqlite3.Connection) -> None:
    drop_triggers(conn)
    (sid,) = conn.execute("SELECT max(id) FROM sessions").fetchone()
    for table in ("events", "telemetry", "steps"):
        conn.execute(f"DELETE FROM {table} WHERE session_id = ?", (sid,))
    conn.execute("DELETE FROM sessions WHERE id = ?", (sid,))
    last_id, last_hash = conn.execute("SELECT id, hash FROM events ORDER BY id DESC").fetchone()
    conn.execute(
        "UPDATE chain_head SET last_id = ?, last_hash = ?, count = ?", (last_id, last_hash, last_id)
    )


def test_a_deleted_last_session_is_found_by_the_head(filled: RecordStore) -> None:
    closed_session(filled, client_code="C-2")
    raw = sqlite3.connect(filled.path, isolation_level=None)
    drop_triggers(raw)
    (sid,) = raw.execute("SELECT max(id) FROM sessions").fetchone()
    for table in ("events", "telemetry", "steps"):
        raw.execute(f"DELETE FROM {table} WHERE session_id = ?", (sid,))
    raw.execute("DELETE FROM sessions WHERE id = ?", (sid,))
    raw.close()
    report = filled.verify_chain()
    assert not report.ok and "rows were cut off the end" in (report.reason or "")


def test_a_deleted_last_session_with_its_head_moved_is_found_by_the_saved_anchor(
    filled: RecordStore,
) -> None:
    closed_session(filled, client_code="C-2")
    report, saved = filled.save_anchor("records export")
    assert report.ok and saved is not None and saved.events == report.events
    assert (filled.data_dir / ANCHOR_FILENAME).is_file()
    raw = sqlite3.connect(filled.path, isolation_level=None)
    _delete_last_session(raw)
    raw.close()
    report = filled.verify_chain()
    assert not report.ok
    assert [f.table for f in report.findings] == ["chain_anchor"]
    assert "the chain was truncated" in report.describe()


def test_a_rewritten_chain_is_found_by_the_saved_anchor(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    filled.save_anchor("records export")
    # Change the first event and recompute every hash after it, head included.
    rows = attacker.execute(
        "SELECT id, session_id, seq, wall_time, mono_ms, kind, data FROM events ORDER BY id"
    ).fetchall()
    prev = "0" * 64
    for event_id, sid, seq, wall, mono, kind, stored in rows:
        data = stored
        if event_id == 1:
            data = json.dumps({**json.loads(stored), "practitioner": "Someone Else"})
        digest = row_hash(prev, sid, seq, wall, mono, kind, data)
        attacker.execute(
            "UPDATE events SET data = ?, prev_hash = ?, hash = ? WHERE id = ?",
            (data, prev, digest, event_id),
        )
        prev = digest
    attacker.execute("UPDATE chain_head SET last_hash = ?", (prev,))
    attacker.execute("UPDATE sessions SET practitioner = 'Someone Else'")
    report = filled.verify_chain()
    assert not report.ok
    assert any(f.table == "chain_anchor" for f in report.findings)
    assert "the chain was rewritten" in report.describe()


def test_a_tampered_chain_never_becomes_the_anchor(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    attacker.execute("UPDATE steps SET delivered_ms = 1 WHERE idx = 2")
    report, saved = filled.save_anchor("records export")
    assert not report.ok and saved is None
    assert not (filled.data_dir / ANCHOR_FILENAME).exists()


# -- migration and interrupted sessions -------------------------------------------------------


def test_an_old_database_migrates_its_approvals_into_the_chain(
    data_dir: Path, clock: FakeClock, mono: FakeMonotonic
) -> None:
    data_dir.mkdir(mode=0o700)
    conn = connect(data_dir / DB_FILENAME)
    migrate(conn, migrations=MIGRATIONS[:2])
    conn.execute("INSERT INTO clients (code, created_at) VALUES ('C-1', '2026-01-01')")
    sha = hashlib.sha256(b"old file").hexdigest()
    conn.execute(
        "INSERT INTO approvals (sha256, protocol_id, protocol_version, approved_by, approved_at, "
        "file_path) VALUES (?, 'old', 1, 'Former technician', '2026-01-02', '/p/old.yaml')",
        (sha,),
    )
    conn.close()
    with RecordStore.open(data_dir, clock=clock, monotonic=mono) as store:
        migrated = [e for e in store.events_outside_sessions() if e.kind == "approvals_migrated"]
        assert len(migrated) == 1
        assert [a["sha256"] for a in migrated[0].data["approvals"]] == [sha]
        approval = is_approved(store, sha)
        assert approval is not None and approval.approved_by == "Former technician"
        assert store.verify_chain().ok


def test_sessions_from_before_full_coverage_are_listed_never_failed(
    data_dir: Path, clock: FakeClock, mono: FakeMonotonic
) -> None:
    data_dir.mkdir(mode=0o700)
    conn = connect(data_dir / DB_FILENAME)
    migrate(conn, migrations=MIGRATIONS[:2])
    conn.close()
    # Write a session as the old code did: an ended session whose end carries no seal.
    with RecordStore.open(data_dir, clock=clock, monotonic=mono) as store:
        sid = begin(store)
        with store.write_transaction() as wc:
            store._append(wc, sid, "session_end", {"outcome": "completed", "reason": ""})
            wc.execute("UPDATE sessions SET outcome = 'completed' WHERE id = ?", (sid,))
        closed_session(store, client_code="C-2")
        report = store.verify_chain()
        assert report.ok, report.describe()
        assert report.uncovered == (sid,) and report.sealed == (sid + 1,)
        assert f"recorded before full coverage: session {sid}" in report.describe()


def test_an_interrupted_step_gets_an_estimated_delivered_time(
    data_dir: Path, clock: FakeClock, mono: FakeMonotonic
) -> None:
    with RecordStore.open(data_dir, clock=clock, monotonic=mono) as first:
        sid = begin(first)
        first.record_step_start(sid, 2, kind="delivery", zone="frontal", planned_ms=600_000)
        first.add_telemetry(sid, [sample(t) for t in range(0, 4_000, 10)])
        first.flush_telemetry(sid, final=True)
        first._open_sessions.clear()  # as if the process had died here
    clock.advance(hours=2)
    with RecordStore.open(data_dir, clock=clock, monotonic=mono) as second:
        assert second.recover_interrupted() == [sid]
        (step,) = second.steps(sid)
        assert step.delivered_ms == 3_990 and step.delivered_estimated
        session = second.get_session(sid)
        assert session.outcome == "interrupted"
        assert session.last_known_at is not None
        assert session.started_at < session.last_known_at < str(session.ended_at)
        end = second.events(sid)[-1]
        assert end.data["estimated"]["delivered_ms"] == 3_990
        assert second.verify_chain().ok


# -- the command line ---------------------------------------------------------------------------


def test_verify_names_the_session_table_and_row_and_exits_1(
    cli: Any, filled: RecordStore, attacker: sqlite3.Connection, data_dir: Path
) -> None:
    attacker.execute("UPDATE steps SET delivered_ms = 900000 WHERE idx = 2")
    code, out, _ = cli("records", "verify", "--data-dir", str(data_dir))
    assert code == 1
    assert "session 1, table steps, row 2: the step changed after the session was closed" in out
    code, out, _ = cli("records", "verify", "--format", "json", "--data-dir", str(data_dir))
    report = json.loads(out)
    assert code == 1 and report["findings"][0]["table"] == "steps"
    assert (report["findings"][0]["session_id"], report["findings"][0]["row"]) == (1, "2")


def test_every_export_prints_and_saves_the_head_and_event_count(
    cli: Any, filled: RecordStore, data_dir: Path
) -> None:
    code, out, err = cli("records", "export", "1", "--data-dir", str(data_dir))
    assert code == 0
    document = json.loads(out)
    head, events = document["chain"]["head_hash"], document["chain"]["events"]
    assert f"chain head {head}, {events} events (verified" in err
    saved = json.loads((data_dir / ANCHOR_FILENAME).read_text())
    assert (saved["head"], saved["events"]) == (head, events)
    code, out, err = cli("records", "export", "1", "--format", "csv", "--data-dir", str(data_dir))
    assert out.rstrip().endswith(f"{head},{events},true")
    code, out, _ = cli("records", "show", "1", "--data-dir", str(data_dir))
    assert f"chain head {head}, {events} events; verified" in out


def test_show_puts_a_correction_beside_the_recorded_value(
    cli: Any, filled: RecordStore, data_dir: Path
) -> None:
    filled.amend_session(1, "serum_lot", "LOT-2026-118", by="Dana", reason="typo on the vial")
    code, out, _ = cli("records", "show", "1", "--data-dir", str(data_dir))
    assert code == 0
    assert "lot LOT-2026-117 [corrected to LOT-2026-118 by Dana on " in out


def test_records_amend_appends_a_correction_and_keeps_the_original(
    cli: Any, filled: RecordStore, data_dir: Path
) -> None:
    args = ("--by", "Dana", "--reason", "typo", "--data-dir", str(data_dir))
    code, out, _ = cli("records", "amend", "1", "--serum-lot", "LOT-9", *args)
    assert code == 0 and "the original is kept" in out
    code, out, _ = cli("records", "amend", "1", "--client-name", "Alex Client", *args)
    assert code == 0
    session = filled.get_session(1)
    assert session.serum_lot == "LOT-2026-117" and session.amended("serum_lot") is not None
    assert session.client_name == "Alex Client"
    code, out, _ = cli("records", "verify", "--data-dir", str(data_dir))
    assert code == 0, out
    running = begin(filled, client_code="C-9")
    code, _, err = cli("records", "amend", str(running), "--serum-lot", "X", *args)
    assert code == 1 and "still running" in err


def test_a_value_of_the_wrong_type_is_a_records_error_and_a_failed_verify(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    from controller.records import DatabaseError
    from controller.records.export import export_json

    attacker.execute("UPDATE steps SET skip_reason = x'00ff' WHERE idx = 3")
    attacker.execute("UPDATE chain_head SET last_id = 'many'")
    with pytest.raises(DatabaseError, match="changed or damaged outside epm"):
        export_json(filled, [1])
    report = filled.verify_chain()
    assert not report.ok and report.findings[0].table == "database"
    assert "changed or damaged outside epm" in report.describe()


def _columns(table: str) -> list[str]:
    conn = sqlite3.connect(":memory:")
    try:
        migrate(conn)
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
    finally:
        conn.close()


EVERY_COLUMN = [
    (table, column)
    for table in ("sessions", "clients", "steps", "telemetry")
    for column in _columns(table)
]


@pytest.mark.parametrize(("table", "column"), EVERY_COLUMN, ids=[".".join(c) for c in EVERY_COLUMN])
def test_a_change_to_any_column_of_a_closed_session_is_found(
    filled: RecordStore, attacker: sqlite3.Connection, table: str, column: str
) -> None:
    (rowid, value) = attacker.execute(
        f'SELECT rowid, "{column}" FROM {table} ORDER BY rowid DESC LIMIT 1'
    ).fetchone()
    if isinstance(value, int):
        changed: object = value + 1000
    elif isinstance(value, str) and value.startswith(("[", "{")):
        changed = '[{"edited": 1}]' if value == "[]" else "[]"
    elif isinstance(value, str):
        changed = value + " (edited)"
    else:
        changed = "edited"
    attacker.execute("PRAGMA ignore_check_constraints = ON")
    attacker.execute(f'UPDATE {table} SET "{column}" = ? WHERE rowid = ?', (changed, rowid))
    report = filled.verify_chain()
    assert not report.ok, f"{table}.{column} changed and verify passed"
    assert report.findings[0].table in (table, "events", "sessions")


@pytest.mark.parametrize("column", _columns("approvals"))
def test_a_change_to_any_column_of_an_approval_is_found(
    store: RecordStore, tmp_path: Path, column: str
) -> None:
    approved_file(store, tmp_path)
    raw = sqlite3.connect(store.path, isolation_level=None)
    drop_triggers(raw)
    (value,) = raw.execute(f'SELECT "{column}" FROM approvals').fetchone()
    changed = value + 1000 if isinstance(value, int) else value + "0"
    raw.execute(f'UPDATE approvals SET "{column}" = ?', (changed,))
    raw.close()
    report = store.verify_chain()
    assert not report.ok and {f.table for f in report.findings} == {"approvals"}
