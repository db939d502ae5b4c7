"""The hash-chained event log: verify passes on an intact log and names the first bad row after
an attacker edits, deletes, reorders or truncates rows behind epm's back."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from controller.records import RecordStore
from controller.records.chain import canonical_json, row_hash
from controller.records.migrations import GENESIS_HASH
from tests.records.conftest import begin, drop_triggers


@pytest.fixture
def filled(store: RecordStore) -> RecordStore:
    """Two sessions with interleaved events: ids 1..10."""
    a = begin(store)  # event 1
    b = begin(store, client_code="C-2", device_serial="SIM-0007")  # event 2
    for i in range(3):
        store.append_event(a, "device_event", {"i": i, "arg": 1000 + i})  # 3, 5, 7
        store.append_event(b, "device_event", {"i": i})  # 4, 6, 8
    store.end_session(a, "completed", "done")  # 9
    store.end_session(b, "stopped", "client asked")  # 10
    return store


@pytest.fixture
def attacker(filled: RecordStore) -> Iterator[sqlite3.Connection]:
    """A raw connection that first drops every trigger, as an attacker would."""
    conn = sqlite3.connect(filled.path, isolation_level=None)
    drop_triggers(conn)
    yield conn
    conn.close()


def test_intact_log_verifies(filled: RecordStore) -> None:
    report = filled.verify_chain()
    assert report.ok and report.events == 10 and report.reason is None
    last = filled.events(2)[-1]
    assert report.head_hash == last.hash
    assert "intact: 10 events" in report.describe()


def test_empty_log_verifies(store: RecordStore) -> None:
    report = store.verify_chain()
    assert (report.ok, report.events, report.head_hash) == (True, 0, GENESIS_HASH)


def test_the_hash_is_sha256_of_prev_hash_and_canonical_content(filled: RecordStore) -> None:
    import hashlib

    first = filled.events(1)[0]
    content = canonical_json(
        {
            "session_id": first.session_id,
            "seq": first.seq,
            "wall_time": first.wall_time,
            "mono_ms": first.mono_ms,
            "kind": first.kind,
            "data": first.data,
        }
    )
    expected = hashlib.sha256(GENESIS_HASH.encode() + content.encode()).hexdigest()
    assert first.prev_hash == GENESIS_HASH
    assert first.hash == expected
    assert (
        row_hash(
            first.prev_hash,
            first.session_id,
            first.seq,
            first.wall_time,
            first.mono_ms,
            first.kind,
            canonical_json(first.data),
        )
        == expected
    )


def test_edited_data_is_a_hash_mismatch(filled: RecordStore, attacker: sqlite3.Connection) -> None:
    attacker.execute("""UPDATE events SET data = '{"arg":9999,"i":1}' WHERE id = 5""")
    report = filled.verify_chain()
    assert not report.ok
    assert (report.bad_event_id, report.bad_session_id) == (5, 1)
    assert report.reason is not None and report.reason.startswith("hash mismatch")
    assert report.events == 4  # rows before the bad one verified
    assert "TAMPERED at event 5 (session 1)" in report.describe()


def test_edit_with_recomputed_own_hash_breaks_the_next_link(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    row = attacker.execute(
        "SELECT session_id, seq, wall_time, mono_ms, kind, prev_hash FROM events WHERE id = 5"
    ).fetchone()
    data = canonical_json({"arg": 9999, "i": 1})
    forged = row_hash(row[5], row[0], row[1], row[2], row[3], row[4], data)
    attacker.execute("UPDATE events SET data = ?, hash = ? WHERE id = 5", (data, forged))
    report = filled.verify_chain()
    assert (report.ok, report.bad_event_id) == (False, 6)
    assert report.reason is not None and report.reason.startswith("broken link")


def test_deleted_row_is_a_missing_row(filled: RecordStore, attacker: sqlite3.Connection) -> None:
    attacker.execute("DELETE FROM events WHERE id = 4")
    report = filled.verify_chain()
    assert (report.ok, report.bad_event_id) == (False, 5)
    assert report.reason is not None and "missing row: event 4" in report.reason


def test_deleted_row_with_renumbered_ids_is_a_broken_link(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    attacker.execute("DELETE FROM events WHERE id = 4")
    for event_id in range(5, 11):
        attacker.execute("UPDATE events SET id = ? WHERE id = ?", (event_id - 1, event_id))
    report = filled.verify_chain()
    assert (report.ok, report.bad_event_id) == (False, 4)
    assert report.reason is not None and report.reason.startswith("broken link")


def test_reordered_rows_are_a_broken_link(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    attacker.execute("UPDATE events SET id = -1 WHERE id = 3")
    attacker.execute("UPDATE events SET id = 3 WHERE id = 5")
    attacker.execute("UPDATE events SET id = 5 WHERE id = -1")
    report = filled.verify_chain()
    assert (report.ok, report.bad_event_id) == (False, 3)
    assert report.reason is not None and report.reason.startswith("broken link")


def test_rows_cut_off_the_end_are_missing(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    attacker.execute("DELETE FROM events WHERE id >= 9")
    report = filled.verify_chain()
    assert not report.ok
    assert report.reason is not None and "missing row" in report.reason
    assert "should end at event 10" in report.reason


def test_a_whole_deleted_session_is_detected(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    attacker.execute("PRAGMA foreign_keys = ON")
    attacker.execute("DELETE FROM events WHERE session_id = 2")
    attacker.execute("DELETE FROM sessions WHERE id = 2")
    report = filled.verify_chain()
    assert (report.ok, report.bad_event_id) == (False, 3)
    assert report.reason is not None and "missing row: event 2" in report.reason


def test_a_changed_session_row_is_detected(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    attacker.execute("UPDATE sessions SET serum_lot = 'OTHER-LOT' WHERE id = 1")
    report = filled.verify_chain()
    assert (report.ok, report.bad_session_id, report.bad_event_id) == (False, 1, 1)
    assert report.reason is not None and "serum_lot" in report.reason


def test_a_changed_outcome_is_detected(filled: RecordStore, attacker: sqlite3.Connection) -> None:
    attacker.execute("UPDATE sessions SET outcome = 'completed' WHERE id = 2")
    report = filled.verify_chain()
    assert (report.ok, report.bad_session_id) == (False, 2)
    assert report.reason is not None and "outcome is 'completed'" in report.reason
    assert "'stopped'" in report.reason


def test_turning_a_simulated_session_into_a_real_one_is_detected(
    filled: RecordStore, attacker: sqlite3.Connection
) -> None:
    attacker.execute("UPDATE sessions SET simulated = 0 WHERE id = 2")
    report = filled.verify_chain()
    assert (report.ok, report.bad_session_id) == (False, 2)
    assert report.reason is not None and "simulated" in report.reason
