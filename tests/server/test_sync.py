"""``epm sync --once`` and :func:`controller.server.sync.push` against a real PostgreSQL."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from controller.records import RecordStore
from controller.records.chain import row_hash
from controller.records.migrations import GENESIS_HASH
from controller.records.paths import database_path
from controller.server import ServerError
from controller.server import sync as sync_module
from controller.server.schema import init_server
from controller.server.sync import ChainRefused, push
from tests.records.conftest import FakeClock, FakeMonotonic, begin, drop_triggers

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def server(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    init_server(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def make_station(folder: Path, sessions: int = 4, client: str = "C-0042") -> RecordStore:
    """A records store in ``folder`` with ``sessions`` sessions begun and ended."""
    clock = FakeClock()
    store = RecordStore.open(folder, clock=clock, monotonic=FakeMonotonic())
    for _ in range(sessions):
        session_id = begin(store, client_code=client)
        store.set_notes(session_id, f"notes of {folder.name} {session_id}")
        store.end_session(session_id, "completed")
        clock.advance(days=1)
    return store


def local_chain(store: RecordStore) -> list[tuple[Any, ...]]:
    with store.read_connection() as conn:
        return conn.execute(
            "SELECT id, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash "
            "FROM events ORDER BY id"
        ).fetchall()


def server_chain(conn: psycopg.Connection[Any], station_id: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT position, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash "
        "FROM events WHERE station_id = %s ORDER BY position",
        (station_id,),
    ).fetchall()


def assert_server_has(conn: psycopg.Connection[Any], store: RecordStore) -> None:
    rows = server_chain(conn, store.station_id)
    assert rows == local_chain(store)
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    prev = GENESIS_HASH
    for _pos, sid, seq, wall, mono, kind, data, prev_hash, digest in rows:
        assert prev_hash == prev
        assert row_hash(prev_hash, sid, seq, wall, mono, kind, data) == digest
        prev = digest


def test_two_stations_push_to_one_server(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    with make_station(tmp_path / "room-a") as a, make_station(tmp_path / "room-b", 5) as b:
        assert a.station_id != b.station_id
        result_a = push(a, pg_url, name="Room A")
        result_b = push(b, server, batch=4)
        assert result_a.sent == len(local_chain(a)) == result_a.server_position
        assert result_a.batches == 1
        assert result_b.sent == len(local_chain(b)) == result_b.server_position
        assert result_b.batches == -(-result_b.sent // 4)
        assert_server_has(server, a)
        assert_server_has(server, b)
        names = dict(server.execute("SELECT station_id::text, name FROM stations").fetchall())
        assert names == {a.station_id: "Room A", b.station_id: ""}


def test_pushing_twice_sends_nothing_the_second_time(
    server: psycopg.Connection[Any], tmp_path: Path
) -> None:
    with make_station(tmp_path / "room") as store:
        first = push(store, server)
        second = push(store, server)
        assert first.sent > 0
        assert (second.sent, second.batches) == (0, 0)
        assert second.server_position == first.server_position
        # New events later: only those are sent.
        begin(store)
        third = push(store, server)
        assert third.sent == 1 and third.server_position == first.server_position + 1
        assert_server_has(server, store)


def test_an_interrupted_push_resumes_without_loss_or_duplicate(
    server: psycopg.Connection[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_insert = sync_module._insert
    calls: list[int] = []

    def failing_insert(conn: Any, station_id: str, events: Any) -> None:
        calls.append(len(events))
        real_insert(conn, station_id, events)  # inserted, then the transaction fails
        if len(calls) == 2:
            raise ConnectionError("network lost")

    with make_station(tmp_path / "room", sessions=5) as store:
        total = len(local_chain(store))
        assert total > 10
        monkeypatch.setattr(sync_module, "_insert", failing_insert)
        with pytest.raises(ConnectionError):
            push(store, server, batch=5)
        held = server_chain(server, store.station_id)
        assert [r[0] for r in held] == [1, 2, 3, 4, 5]
        monkeypatch.setattr(sync_module, "_insert", real_insert)
        result = push(store, server, batch=5)
        assert result.sent == total - 5
        assert result.server_position == total
        assert_server_has(server, store)


def tamper(store: RecordStore, event_id: int) -> None:
    with sqlite3.connect(database_path(store.data_dir)) as conn:
        drop_triggers(conn)
        conn.execute(
            "UPDATE events SET data = json_set(data, '$.tampered', 1) WHERE id = ?", (event_id,)
        )
    conn.close()


def test_a_tampered_chain_is_refused_naming_station_and_position(
    server: psycopg.Connection[Any], tmp_path: Path
) -> None:
    with make_station(tmp_path / "room") as store:
        tamper(store, 7)
        with pytest.raises(ChainRefused) as info:
            push(store, server, batch=5)
        assert info.value.station_id == store.station_id
        assert info.value.position == 7
        assert store.station_id in str(info.value) and "position 7" in str(info.value)
        assert "hash mismatch" in str(info.value)
        # The first batch (1-5) went in; nothing of the refused batch (6-10) did.
        held = server_chain(server, store.station_id)
        assert [r[0] for r in held] == [1, 2, 3, 4, 5]


def test_a_broken_link_is_refused(server: psycopg.Connection[Any], tmp_path: Path) -> None:
    with make_station(tmp_path / "room") as store:
        with sqlite3.connect(database_path(store.data_dir)) as conn:
            drop_triggers(conn)
            conn.execute("DELETE FROM events WHERE id = 3")
        conn.close()
        with pytest.raises(ChainRefused) as info:
            push(store, server)
        assert info.value.position == 3
        assert server_chain(server, store.station_id) == []


def test_a_second_database_with_the_same_station_id_is_refused(
    server: psycopg.Connection[Any], tmp_path: Path
) -> None:
    with make_station(tmp_path / "room-a") as a:
        push(a, server)
        station_id = a.station_id
        held = server_chain(server, station_id)
    copy = make_station(tmp_path / "room-b", sessions=5, client="C-0099")
    copy.close()
    with sqlite3.connect(database_path(copy.data_dir)) as conn:
        drop_triggers(conn)
        conn.execute("UPDATE station SET station_id = ?", (station_id,))
    conn.close()
    with RecordStore.open(tmp_path / "room-b", exclusive=False, create=False) as b:
        assert b.station_id == station_id
        own_hash = local_chain(b)[held[-1][0] - 1][8]
        differ = next(r for r, s in zip(local_chain(b), held, strict=False) if r[8] != s[8])
        with pytest.raises(ChainRefused) as info:
            push(b, server)
    message = str(info.value)
    assert station_id in message and "second chain" in message
    last = held[-1]
    assert info.value.position == last[0]
    assert last[8] in message and own_hash in message  # both hashes
    assert differ  # the chains differ from their first events on
    assert server_chain(server, station_id) == held


def test_cli_sync_once(
    epm: Run, server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "room"
    with make_station(data) as store:
        station_id, total = store.station_id, len(local_chain(store))
        code, _out, err = epm("config", "set", "station.name", "Room 3", "--data-dir", str(data))
        assert (code, err) == (0, "")
        code, out, err = epm("sync", "--once", pg_url, "--data-dir", str(data))
        assert (code, err) == (0, "")
        # Its events, then the client code it claimed and received back from the ledger.
        assert out == (
            f"sent {total + 1} events (the server holds station {station_id} up to position "
            f"{total + 1}); claimed 1 client code(s); took 1 clinic ledger event(s); 0 session "
            "change(s) from other rooms\n"
        )
        code, _out, err = epm("config", "set", "server.url", pg_url, "--data-dir", str(data))
        assert (code, err) == (0, "")
        code, out, err = epm("sync", "--once", "--data-dir", str(data))
        assert (code, err) == (0, "")
        assert out.startswith("sent 0 events (")
    name = server.execute("SELECT name FROM stations WHERE station_id = %s", (station_id,))
    assert name.fetchone() == ("Room 3",)


def test_cli_refusal_is_one_line(
    epm: Run, server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "room"
    with make_station(data) as store:
        tamper(store, 2)
        code, out, err = epm("sync", "--once", pg_url, "--data-dir", str(data))
    assert code == 1 and out == ""
    assert err.count("\n") == 1
    assert err.startswith("epm sync: error: station ") and "position 2" in err


def test_cli_without_once_or_server(epm: Run, tmp_path: Path) -> None:
    data = str(tmp_path / "room")
    code, _out, err = epm("sync", "--data-dir", data)
    assert code == 1 and "no clinic server" in err and "epm config set server.url" in err
    code, _out, err = epm("sync", "--once", "--data-dir", data)
    assert code == 1 and "no clinic server" in err
    code, _out, err = epm(
        "sync", "--once", "postgresql://epm@db.invalid/epm?sslmode=require", "--data-dir", data
    )
    assert code == 1 and "sslmode=verify-full" in err and "Traceback" not in err


def test_an_unreachable_server_is_one_line(epm: Run, tmp_path: Path) -> None:
    data = tmp_path / "room"
    make_station(data, sessions=1).close()
    url = f"postgresql://postgres@/epm?host={tmp_path / 'nowhere'}"
    code, out, err = epm("sync", "--once", url, "--data-dir", str(data))
    assert code == 1 and out == ""
    assert err.startswith("epm sync: error: cannot connect to the clinic server")
    assert err.count("\n") == 1


def test_push_refuses_a_server_without_schema(pg_url: str, tmp_path: Path) -> None:
    with (
        make_station(tmp_path / "room", sessions=1) as store,
        pytest.raises(ServerError, match="epm server init"),
    ):
        push(store, pg_url)


def test_the_server_itself_refuses_an_event_that_does_not_continue_its_chain(
    server: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """A client that skips ``push`` and its checks cannot append a broken chain: the server's
    own trigger (schema version 2) holds the link. Re-sending a held position still passes
    on to ``ON CONFLICT DO NOTHING`` (a retry)."""
    with make_station(tmp_path / "room", sessions=1) as store:
        push(store, server)
        rows = server_chain(server, store.station_id)
        last_position, last_hash = rows[-1][0], rows[-1][8]
        sql = (
            "INSERT INTO events (station_id, position, session_id, seq, wall_time, mono_ms, "
            "kind, data, prev_hash, hash) VALUES (%s, %s, NULL, 1, 'now', 0, 'note', '{}', %s, "
            "%s) ON CONFLICT DO NOTHING"
        )
        station = store.station_id
        for position, prev in (
            (last_position + 1, "f" * 64),  # wrong link
            (last_position + 2, last_hash),  # a gap
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="chain broken at position"):
                server.execute(sql, (station, position, prev, "e" * 64))
        server.execute(sql, (station, last_position, "0" * 64, "d" * 64))  # held: a no-op
        assert server_chain(server, station) == rows
        server.execute(sql, (station, last_position + 1, last_hash, "c" * 64))  # continues
        assert len(server_chain(server, station)) == len(rows) + 1
