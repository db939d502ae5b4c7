"""RecordStore: clients, sessions, steps, events and their durability, locking and reading."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from controller.records import (
    InvalidRecordError,
    ReadOnlyStoreError,
    RecordStore,
    SessionEndedError,
    StoreLockedError,
    UnknownClientError,
    UnknownSessionError,
)
from tests.records.conftest import FakeClock, begin, local_noon

# -- clients -------------------------------------------------------------------------------------


def test_client_codes_are_validated(store: RecordStore) -> None:
    for bad in ["", "has space", "x" * 33, "semi;colon", "ünï"]:
        with pytest.raises(InvalidRecordError, match=r"client code .* is not valid"):
            store.get_or_create_client(bad)
    assert store.get_or_create_client("  C-0042_b ").code == "C-0042_b"


def test_get_or_create_returns_the_same_client(store: RecordStore) -> None:
    first = store.get_or_create_client("C-1", "Ann Example")
    again = store.get_or_create_client("C-1")
    same_name = store.get_or_create_client("C-1", "  ann   example ")
    assert first == again == same_name


def test_a_code_cannot_be_given_to_a_second_person(store: RecordStore) -> None:
    store.get_or_create_client("C-1", "Ann Example")
    with pytest.raises(InvalidRecordError, match="already belongs to 'Ann Example'"):
        store.get_or_create_client("C-1", "Bob Other")


def test_a_name_can_be_added_to_a_client_without_one(store: RecordStore) -> None:
    store.get_or_create_client("C-1")
    assert store.get_or_create_client("C-1", "Ann").name == "Ann"


def test_find_clients_by_code_or_name(store: RecordStore) -> None:
    store.get_or_create_client("C-100", "Ann Example")
    store.get_or_create_client("C-200", "Bob Sample")
    store.get_or_create_client("X_9", "100% Percent")
    assert [c.code for c in store.find_clients("c-")] == ["C-100", "C-200"]
    assert [c.code for c in store.find_clients("sample")] == ["C-200"]
    assert [c.code for c in store.find_clients("100")] == ["C-100", "X_9"]
    assert [c.code for c in store.find_clients("%")] == ["X_9"]  # LIKE wildcards are literal
    assert [c.code for c in store.find_clients("_")] == ["X_9"]
    assert len(store.find_clients("")) == 3


# -- sessions ------------------------------------------------------------------------------------


def test_begin_session_records_everything_and_a_started_event(store: RecordStore) -> None:
    sid = begin(store)
    session = store.get_session(sid)
    assert session.outcome == "running"
    assert session.simulated is False
    assert session.client_code == "C-0042"
    assert session.protocol_sha256 == "ab" * 32
    assert session.planned_zones == ["frontal", "midscalp", "crown"]
    assert session.checklist == {"active_infection": False, "consultation_done": True}
    (event,) = store.events(sid)
    assert (event.seq, event.kind) == (1, "session_started")
    assert event.data["serum_lot"] == "LOT-2026-117"
    assert event.data["device_serial"] == "EPM1-000123"


def test_sim_serial_marks_a_session_simulated_and_lot_is_optional_there(
    store: RecordStore,
) -> None:
    sid = begin(store, device_serial="SIM-0001", serum_lot="")
    assert store.get_session(sid).simulated is True


def test_a_real_treatment_needs_the_serum_lot(store: RecordStore) -> None:
    with pytest.raises(InvalidRecordError, match="serum lot number is empty"):
        begin(store, serum_lot="  ")


def test_begin_session_refuses_bad_values(store: RecordStore) -> None:
    with pytest.raises(InvalidRecordError, match="64 hex digits"):
        begin(store, protocol_sha256="not-a-hash")
    with pytest.raises(InvalidRecordError, match="practitioner's name is empty"):
        begin(store, practitioner="")
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        begin(store, checklist={"when": object()})
    with pytest.raises(UnknownClientError, match="no client has the code"):
        store.begin_session(**{**_defaults(), "client_code": "NOBODY"})
    assert store.list_sessions() == []


def _defaults() -> dict[str, Any]:
    from tests.records.conftest import SESSION_DEFAULTS

    return dict(SESSION_DEFAULTS)


def test_end_session_sets_outcome_once(store: RecordStore, clock: FakeClock) -> None:
    sid = begin(store)
    clock.advance(minutes=25)
    event = store.end_session(sid, "completed", "all steps delivered", {"delivered_ms": 1200})
    assert event.kind == "session_end"
    seal = event.data.pop("seal")
    assert event.data == {
        "outcome": "completed",
        "reason": "all steps delivered",
        "summary": {"delivered_ms": 1200},
    }
    assert len(seal["digest"]) == 64 and seal["v"] == 1
    session = store.get_session(sid)
    assert (session.outcome, session.outcome_reason) == ("completed", "all steps delivered")
    assert session.ended_at == event.wall_time
    with pytest.raises(SessionEndedError, match="already ended as completed"):
        store.end_session(sid, "aborted")


def test_end_session_refuses_unknown_outcomes(store: RecordStore) -> None:
    sid = begin(store)
    with pytest.raises(InvalidRecordError, match="not one of completed, stopped"):
        store.end_session(sid, "running")
    with pytest.raises(InvalidRecordError):
        store.end_session(sid, "finished")
    with pytest.raises(UnknownSessionError):
        store.end_session(999, "completed")


def test_notes_can_change_after_the_end_and_each_change_is_logged(store: RecordStore) -> None:
    sid = begin(store)
    store.end_session(sid, "completed")
    store.set_notes(sid, "Client felt tingling at crown.")
    store.set_notes(sid, "Client felt tingling at crown; fine after 2 min.")
    assert store.get_session(sid).notes.endswith("fine after 2 min.")
    notes = [e.data["notes"] for e in store.events(sid) if e.kind == "note"]
    assert notes == [
        "Client felt tingling at crown.",
        "Client felt tingling at crown; fine after 2 min.",
    ]


# -- the event log -------------------------------------------------------------------------------


def test_append_event_is_committed_before_it_returns(store: RecordStore) -> None:
    sid = begin(store)
    other = sqlite3.connect(store.path)  # an independent reader, as after a crash
    try:
        event = store.append_event(sid, "command_sent", {"command": "START", "seq": 7})
        row = other.execute(
            "SELECT seq, kind, data, hash FROM events WHERE id = ?", (event.id,)
        ).fetchone()
    finally:
        other.close()
    assert row == (2, "command_sent", '{"command":"START","seq":7}', event.hash)


def test_event_seq_counts_per_session_and_the_chain_is_global(store: RecordStore) -> None:
    a = begin(store)
    b = begin(store, client_code="C-2")
    e1 = store.append_event(a, "state", {"new": "RUNNING"})
    e2 = store.append_event(b, "state", {"new": "RUNNING"})
    e3 = store.append_event(a, "state", {"new": "IDLE"})
    assert [e.seq for e in (e1, e2, e3)] == [2, 2, 3]
    assert e2.prev_hash == e1.hash and e3.prev_hash == e2.hash


def test_append_event_refuses_what_json_cannot_hold(store: RecordStore) -> None:
    sid = begin(store)
    with pytest.raises(ValueError, match="finite number"):
        store.append_event(sid, "warning", {"x": float("nan")})
    with pytest.raises(ValueError, match="cannot be stored as JSON"):
        store.append_event(sid, "warning", {"raw": b"\x00"})
    with pytest.raises(UnknownSessionError, match="no session has the id 77"):
        store.append_event(77, "warning", {})
    assert [e.kind for e in store.events(sid)] == ["session_started"]


def test_the_database_refuses_to_change_or_delete_events(store: RecordStore) -> None:
    sid = begin(store)
    raw = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE events SET kind = 'x'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM events")
        with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
            raw.execute("DELETE FROM sessions WHERE id = ?", (sid,))
        with pytest.raises(sqlite3.IntegrityError, match="never changed"):
            raw.execute("UPDATE sessions SET protocol_sha256 = 'x' WHERE id = ?", (sid,))
    finally:
        raw.close()
    store.end_session(sid, "completed")
    raw = sqlite3.connect(store.path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match=r"never changed|keeps its outcome"):
            raw.execute("UPDATE sessions SET outcome = 'aborted' WHERE id = ?", (sid,))
        with pytest.raises(sqlite3.IntegrityError, match="never changed"):
            raw.execute("UPDATE sessions SET notes = 'x' WHERE id = ?", (sid,))
    finally:
        raw.close()


def test_concurrent_writers_and_readers_keep_the_log_consistent(store: RecordStore) -> None:
    a = begin(store)
    b = begin(store, client_code="C-2")
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def writer(sid: int) -> None:
        try:
            start.wait(timeout=10)
            for i in range(40):
                store.append_event(sid, "device_event", {"i": i})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            start.wait(timeout=10)
            for _ in range(40):
                store.list_sessions()
                store.events(a)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(a,), daemon=True)]
    threads.append(threading.Thread(target=writer, args=(b,), daemon=True))
    threads.append(threading.Thread(target=reader, daemon=True))
    # The barrier has 3 parties: both writers and the reader start together.
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()
    assert errors == []
    assert [e.seq for e in store.events(a)] == list(range(1, 42))
    assert [e.data["i"] for e in store.events(b)[1:]] == list(range(40))
    assert store.verify_chain().ok


# -- steps ---------------------------------------------------------------------------------------


def test_steps_record_start_changes_holds_and_end(store: RecordStore) -> None:
    sid = begin(store)
    store.record_step_start(sid, 2, kind="delivery", zone="frontal", planned_ms=600_000)
    store.record_amplitude_change(sid, 2, from_dv=400, to_dv=450, source="practitioner")
    store.record_amplitude_change(sid, 2, from_dv=450, to_dv=430, source="device_limited")
    store.record_hold(sid, 2, held_ms=1500)
    store.record_hold(sid, 2, held_ms=500)
    step = store.record_step_end(sid, 2, outcome="completed", delivered_ms=600_000)
    assert (step.index, step.attempt, step.zone) == (2, 1, "frontal")
    assert (step.delivered_ms, step.holds, step.hold_ms) == (600_000, 2, 2000)
    assert [(c["from_dv"], c["to_dv"], c["source"]) for c in step.amplitude_changes] == [
        (400, 450, "practitioner"),
        (450, 430, "device_limited"),
    ]
    kinds = [e.kind for e in store.events(sid)]
    assert kinds == [
        "session_started",
        "step_start",
        "amplitude_change",
        "amplitude_change",
        "hold_end",
        "hold_end",
        "step_end",
    ]


def test_a_restarted_step_gets_a_new_attempt(store: RecordStore) -> None:
    sid = begin(store)
    store.record_step_start(sid, 1, kind="delivery", zone="crown", planned_ms=1000)
    store.record_step_end(sid, 1, outcome="faulted", delivered_ms=400)
    store.record_step_start(sid, 1, kind="delivery", zone="crown", planned_ms=1000)
    store.record_step_end(sid, 1, outcome="completed", delivered_ms=1000)
    steps = store.steps(sid)
    assert [(s.attempt, s.outcome, s.delivered_ms) for s in steps] == [
        (1, "faulted", 400),
        (2, "completed", 1000),
    ]


def test_step_calls_need_a_running_step(store: RecordStore) -> None:
    sid = begin(store)
    with pytest.raises(InvalidRecordError, match=r"step 3 of session \d+ is not running"):
        store.record_step_end(sid, 3, outcome="completed", delivered_ms=1)
    with pytest.raises(InvalidRecordError, match="1-based"):
        store.record_step_start(sid, 0, kind="manual")
    store.record_step_start(sid, 1, kind="manual")
    with pytest.raises(InvalidRecordError, match="held_ms"):
        store.record_hold(sid, 1, held_ms=-1)


def test_skips_record_the_reason(store: RecordStore) -> None:
    sid = begin(store)
    store.record_step_start(sid, 1, kind="delivery", zone="frontal", planned_ms=1000)
    running = store.record_skip(sid, 1, "client asked to stop this zone")
    never_started = store.record_skip(sid, 2, "zone not treated today", kind="delivery")
    assert running.skipped and running.attempt == 1 and running.outcome == "skipped"
    assert never_started.skipped and never_started.started_at is None
    assert never_started.skip_reason == "zone not treated today"
    with pytest.raises(InvalidRecordError, match="reason for skipping"):
        store.record_skip(sid, 3, " ")
    skipped = [e.data for e in store.events(sid) if e.kind == "step_skipped"]
    assert [d["index"] for d in skipped] == [1, 2]


# -- locking -------------------------------------------------------------------------------------


def test_only_one_store_runs_sessions_per_folder(store: RecordStore, data_dir: Path) -> None:
    with pytest.raises(StoreLockedError, match="another epm is already running sessions"):
        RecordStore.open(data_dir)
    with RecordStore.open(data_dir, exclusive=False) as reader:
        sid = begin(store)
        assert reader.get_session(sid).outcome == "running"
        with pytest.raises(ReadOnlyStoreError, match="cannot begin a session"):
            begin(reader)
        with pytest.raises(ReadOnlyStoreError, match="cannot recover"):
            reader.recover_interrupted()
        with pytest.raises(ReadOnlyStoreError, match="cannot append an event"):
            reader.append_event(sid, "note", {})


def test_the_lock_is_released_on_close(data_dir: Path) -> None:
    RecordStore.open(data_dir).close()
    with RecordStore.open(data_dir) as again:
        assert again.exclusive


def test_a_closed_store_says_so(data_dir: Path) -> None:
    s = RecordStore.open(data_dir)
    s.close()
    s.close()  # idempotent
    with pytest.raises(InvalidRecordError, match="closed"):
        s.list_sessions()


# -- reading -------------------------------------------------------------------------------------


def test_list_sessions_filters_by_client_and_local_dates(
    store: RecordStore, clock: FakeClock
) -> None:
    days = [dt.date(2026, 3, 1), dt.date(2026, 3, 5), dt.date(2026, 3, 9)]
    ids = []
    for i, day in enumerate(days):
        clock.now = local_noon(day)
        ids.append(begin(store, client_code=f"C-{i % 2}"))
    assert [s.id for s in store.list_sessions()] == ids[::-1]
    assert [s.id for s in store.list_sessions(client="C-0")] == [ids[2], ids[0]]
    assert [s.id for s in store.list_sessions(since=dt.date(2026, 3, 5))] == [ids[2], ids[1]]
    assert [s.id for s in store.list_sessions(until=dt.date(2026, 3, 5))] == [ids[1], ids[0]]
    assert [
        s.id for s in store.list_sessions(since=dt.date(2026, 3, 5), until=dt.date(2026, 3, 5))
    ] == [ids[1]]
    clock.now = local_noon(dt.date(2026, 3, 5))
    assert [s.id for s in store.today_sessions()] == [ids[1]]


def test_session_detail_has_steps_events_and_telemetry_summary(store: RecordStore) -> None:
    sid = begin(store)
    store.record_step_start(sid, 1, kind="manual")
    store.record_step_end(sid, 1, outcome="completed", delivered_ms=None)
    store.end_session(sid, "completed")
    detail = store.session_detail(sid)
    assert detail.session.id == sid
    assert [s.index for s in detail.steps] == [1]
    assert [e.kind for e in detail.events][-1] == "session_end"
    assert detail.telemetry.rows == 0
    with pytest.raises(UnknownSessionError, match="epm records list"):
        store.session_detail(sid + 100)


def test_an_ended_session_takes_no_more_steps(store: RecordStore) -> None:
    sid = begin(store)
    store.record_step_start(sid, 1, kind="delivery", zone="crown", planned_ms=1000)
    store.end_session(sid, "aborted", "client unwell")
    (step,) = store.steps(sid)
    assert (step.outcome, step.delivered_ms) == ("aborted", None) and step.ended_at is not None
    with pytest.raises(InvalidRecordError, match="not running"):
        store.record_step_end(sid, 1, outcome="completed", delivered_ms=1000)
    with pytest.raises(SessionEndedError, match="already ended as aborted"):
        store.record_step_start(sid, 2, kind="delivery")
    with pytest.raises(SessionEndedError):
        store.record_skip(sid, 2, "too late")
    # A late device event is still recorded after the end.
    assert store.append_event(sid, "device_event", {"event": "STATE_CHANGED"}).seq == 4
