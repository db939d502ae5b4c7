"""``epm records list|show|export|verify --server`` against a real PostgreSQL: every station's
records as the clinic server holds them (controller/server/records_view.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from controller.records import RecordStore
from controller.records.chain import canonical_json, row_hash
from controller.server.records_view import (
    AddressError,
    Station,
    parse_address,
    resolve_station,
    station_labels,
)
from controller.server.schema import init_server
from controller.server.sync import push
from tests.records.conftest import FakeClock, FakeMonotonic, begin

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def server(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    init_server(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def make_station(
    folder: Path, clients: list[str], *, simulated_last: bool = False, outcome: str = "completed"
) -> RecordStore:
    """A station with one ended session per client code in ``clients`` (a day apart)."""
    clock = FakeClock()
    store = RecordStore.open(folder, clock=clock, monotonic=FakeMonotonic())
    for number, client in enumerate(clients, start=1):
        extra: dict[str, Any] = {}
        if simulated_last and number == len(clients):
            extra = {"device_serial": "SIM-0001", "serum_lot": ""}
        session_id = begin(store, client_code=client, **extra)
        store.set_notes(session_id, f"notes {folder.name} {session_id}")
        store.end_session(session_id, outcome)
        clock.advance(days=1)
    return store


@pytest.fixture
def two_rooms(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> Iterator[tuple[RecordStore, RecordStore]]:
    """Room A (named, 2 sessions, the second simulated) and an unnamed room (3 sessions),
    both pushed to the server."""
    with (
        make_station(tmp_path / "room-a", ["C-0042", "C-0042"], simulated_last=True) as a,
        make_station(tmp_path / "room-b", ["C-0042", "C-0077", "C-0077"], outcome="aborted") as b,
    ):
        push(a, pg_url, name="Room A")
        push(b, pg_url)
        yield a, b


def no_records(tmp_path: Path) -> str:
    """A data folder with no records and no configuration: --server needs neither."""
    return str(tmp_path / "elsewhere")


def session_events(store: RecordStore, session_id: int) -> list[tuple[Any, ...]]:
    with store.read_connection() as conn:
        return conn.execute(
            "SELECT id, session_id, seq, wall_time, mono_ms, kind, data, prev_hash, hash "
            "FROM events WHERE session_id = ? ORDER BY id",
            (session_id,),
        ).fetchall()


def change_event(conn: psycopg.Connection[Any], station_id: str, position: int) -> None:
    """Change one event's data on the server, as the owner working around the trigger would."""
    conn.execute("ALTER TABLE events DISABLE TRIGGER USER")
    try:
        conn.execute(
            "UPDATE events SET data = replace(data, 'notes', 'NOTES') "
            "WHERE station_id = %s AND position = %s",
            (station_id, position),
        )
    finally:
        conn.execute("ALTER TABLE events ENABLE TRIGGER USER")


def note_position(conn: psycopg.Connection[Any], station_id: str) -> int:
    (position,) = conn.execute(
        "SELECT min(position) FROM events WHERE station_id = %s AND kind = 'note'", (station_id,)
    ).fetchone()
    return int(position)


# -- list ------------------------------------------------------------------------------------------


def test_list_shows_every_station_newest_first(
    epm: Run, two_rooms: tuple[RecordStore, RecordStore], pg_url: str, tmp_path: Path
) -> None:
    a, b = two_rooms
    code, out, err = epm("records", "list", "--server", pg_url, "--data-dir", no_records(tmp_path))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == [
        "STATION",
        "ID",
        "SIM",
        "STARTED",
        "CLIENT",
        "PROTOCOL",
        "OUTCOME",
        "PRACTITIONER",
        "DEVICE",
    ]
    rows = [line for line in lines[1:] if line.startswith(("Room A ", b.station_id[:8]))]
    assert len(rows) == 5
    assert sum(1 for r in rows if r.startswith("Room A ")) == 2
    assert sum(1 for r in rows if r.startswith(b.station_id[:8] + " ")) == 3
    simulated = [r for r in rows if " SIM " in r]
    assert len(simulated) == 1 and simulated[0].startswith("Room A ") and "SIM-0001" in simulated[0]
    assert "5 session(s) from 2 station(s); 1 marked SIM ran on the simulator" in out
    assert "epm records show --server STATION:ID" in out

    code, out, err = epm(
        "records",
        "list",
        "--server",
        pg_url,
        "--format",
        "json",
        "--data-dir",
        no_records(tmp_path),
    )
    assert (code, err) == (0, "")
    listed = json.loads(out)
    started = [s["started_at"] for s in listed]
    assert started == sorted(started, reverse=True)  # newest first
    assert {s["address"] for s in listed} == {
        "Room A:1",
        "Room A:2",
        *(f"{b.station_id[:8]}:{n}" for n in (1, 2, 3)),
    }
    by_address = {s["address"]: s for s in listed}
    assert by_address["Room A:2"]["simulated"] is True
    assert by_address["Room A:1"] | {"simulated": False} == by_address["Room A:1"]
    assert by_address["Room A:1"]["station_id"] == a.station_id
    assert by_address["Room A:1"]["station_name"] == "Room A"
    assert by_address["Room A:1"]["practitioner"] == "Dana Practitioner"
    assert by_address[f"{b.station_id[:8]}:3"]["outcome"] == "aborted"

    code, out, err = epm(
        "records",
        "list",
        "--server",
        pg_url,
        "--client",
        "C-0077",
        "--format",
        "json",
        "--data-dir",
        no_records(tmp_path),
    )
    assert (code, err) == (0, "")
    assert sorted(s["session_id"] for s in json.loads(out)) == [2, 3]


def test_list_takes_the_configured_server_url(
    epm: Run, two_rooms: tuple[RecordStore, RecordStore], pg_url: str, tmp_path: Path
) -> None:
    data = no_records(tmp_path)
    code, _out, err = epm("config", "set", "server.url", pg_url, "--data-dir", data)
    assert (code, err) == (0, "")
    code, out, err = epm("records", "list", "--server", "--data-dir", data)
    assert (code, err) == (0, "")
    assert "5 session(s) from 2 station(s)" in out


def test_list_since_and_until(
    epm: Run, two_rooms: tuple[RecordStore, RecordStore], pg_url: str, tmp_path: Path
) -> None:
    a, _b = two_rooms
    first = a.list_sessions()[-1].started_at[:10]  # both rooms start on the same fake day
    code, out, err = epm(
        "records",
        "list",
        "--server",
        pg_url,
        "--since",
        first,
        "--until",
        first,
        "--format",
        "json",
        "--data-dir",
        no_records(tmp_path),
    )
    assert (code, err) == (0, "")
    assert sorted(s["address"][-1] for s in json.loads(out)) == ["1", "1"]


# -- show and export -------------------------------------------------------------------------------


def test_show_one_session(
    epm: Run, two_rooms: tuple[RecordStore, RecordStore], pg_url: str, tmp_path: Path
) -> None:
    a, b = two_rooms
    code, out, err = epm(
        "records", "show", "--server", pg_url, "Room A:1", "--data-dir", no_records(tmp_path)
    )
    assert (code, err) == (0, "")
    assert out.startswith("Session Room A:1: completed\n")
    assert f"station       Room A ({a.station_id})" in out
    assert "client        C-0042" in out
    assert "SIMULATED" not in out
    kinds = [line.split()[2] for line in out.split("Events")[1].splitlines()[1:] if line.strip()]
    assert kinds[0] == "session_started" and "session_end" in kinds and "note" in kinds
    assert "each hash matches its content" in out

    # --server STATION:ID (the URL from the configuration), a station by its id's prefix.
    data = no_records(tmp_path)
    epm("config", "set", "server.url", pg_url, "--data-dir", data)
    code, out, err = epm(
        "records", "show", "--server", f"{b.station_id[:12]}:3", "--data-dir", data
    )
    assert (code, err) == (0, "")
    assert out.startswith(f"Session {b.station_id[:8]}:3: aborted")
    assert f"station       {b.station_id}\n" in out
    assert "client        C-0077" in out

    code, out, err = epm("records", "show", "--server", "Room A:2", "--data-dir", data)
    assert (code, err) == (0, "")
    assert out.startswith("*** SIMULATED SESSION")


def test_export_is_json_with_the_stations_hashes(
    epm: Run, two_rooms: tuple[RecordStore, RecordStore], pg_url: str, tmp_path: Path
) -> None:
    _a, b = two_rooms
    code, out, err = epm(
        "records",
        "export",
        "--server",
        pg_url,
        f"{b.station_id[:8]}:2",
        "--format",
        "json",
        "--data-dir",
        no_records(tmp_path),
    )
    assert code == 0
    assert "events from the clinic server, each hash matching its content" in err
    document = json.loads(out)
    assert document["format"] == "epm-server-session/1"
    assert (document["station_id"], document["station_name"]) == (b.station_id, "")
    assert document["session_id"] == 2
    assert document["simulated"] is False
    assert document["session"]["client_code"] == "C-0077"
    local = session_events(b, 2)
    assert [
        (e["position"], e["kind"], e["wall_time"], e["prev_hash"], e["hash"])
        for e in document["events"]
    ] == [(r[0], r[5], r[3], r[7], r[8]) for r in local]
    assert [e["data"] for e in document["events"]] == [json.loads(r[6]) for r in local]
    for e in document["events"]:  # another program can check every hash again
        digest = row_hash(
            e["prev_hash"],
            e["session_id"],
            e["seq"],
            e["wall_time"],
            e["mono_ms"],
            e["kind"],
            canonical_json(e["data"]),
        )
        assert digest == e["hash"]

    target = tmp_path / "session.json"
    code, out, err = epm(
        "records",
        "export",
        "--server",
        pg_url,
        f"{b.station_id[:8]}:2",
        "--output",
        str(target),
        "--data-dir",
        no_records(tmp_path),
    )
    assert (code, out) == (0, "")
    assert f"wrote {target}" in err
    assert json.loads(target.read_text(encoding="utf-8"))["events"] == document["events"]


def test_export_with_server_is_json_only_and_one_session(epm: Run, tmp_path: Path) -> None:
    code, out, err = epm(
        "records", "export", "--server", "Room A:1", "--format", "fhir", "--data-dir", str(tmp_path)
    )
    assert (code, out) == (2, "")
    assert "--server exports JSON only" in err
    code, _out, err = epm("records", "export", "--server", "--all", "--data-dir", str(tmp_path))
    assert code == 2 and "one session at a time" in err


# -- verify ----------------------------------------------------------------------------------------


def test_verify_intact(
    epm: Run, two_rooms: tuple[RecordStore, RecordStore], pg_url: str, tmp_path: Path
) -> None:
    a, b = two_rooms
    code, out, err = epm(
        "records", "verify", "--server", pg_url, "--data-dir", no_records(tmp_path)
    )
    assert (code, err) == (0, "")
    count_a = len(session_events(a, 1)) + len(session_events(a, 2))
    assert f"station Room A ({a.station_id}): {count_a} events, chain intact" in out
    assert f"station (no name) ({b.station_id}): " in out
    assert "clinic ledger: 0 events, chain intact" in out
    assert out.endswith("the clinic server's records verify\n")


def test_verify_finds_an_event_changed_on_the_server(
    epm: Run,
    two_rooms: tuple[RecordStore, RecordStore],
    server: psycopg.Connection[Any],
    pg_url: str,
    tmp_path: Path,
) -> None:
    a, b = two_rooms
    position = note_position(server, b.station_id)
    change_event(server, b.station_id, position)
    code, out, err = epm(
        "records", "verify", "--server", pg_url, "--data-dir", no_records(tmp_path)
    )
    assert (code, err) == (1, "")
    broken = next(line for line in out.splitlines() if b.station_id in line)
    assert f"chain BROKEN at position {position}: hash mismatch" in broken
    assert f"station Room A ({a.station_id}): " in out and "chain intact" in out
    assert "compare with each station named above" in out

    code, out, err = epm(
        "records",
        "verify",
        "--server",
        pg_url,
        "--format",
        "json",
        "--data-dir",
        no_records(tmp_path),
    )
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False
    by_id = {s["station_id"]: s for s in report["stations"]}
    assert by_id[b.station_id]["broken_position"] == position
    assert by_id[a.station_id]["ok"] is True

    # show and export say it too.
    code, out, _err = epm(
        "records", "show", "--server", pg_url, f"{b.station_id[:8]}:1", "--data-dir", str(tmp_path)
    )
    assert code == 0 and f"HASH MISMATCH at position(s) {position}" in out


def test_verify_finds_a_missing_event(
    epm: Run,
    two_rooms: tuple[RecordStore, RecordStore],
    server: psycopg.Connection[Any],
    pg_url: str,
    tmp_path: Path,
) -> None:
    a, _b = two_rooms
    server.execute("ALTER TABLE events DISABLE TRIGGER USER")
    server.execute("DELETE FROM events WHERE station_id = %s AND position = 3", (a.station_id,))
    server.execute("ALTER TABLE events ENABLE TRIGGER USER")
    code, out, _err = epm(
        "records", "verify", "--server", pg_url, "--data-dir", no_records(tmp_path)
    )
    assert code == 1
    assert f"station Room A ({a.station_id}): " in out
    assert "chain BROKEN at position 3: missing event" in out


def test_verify_finds_a_changed_sessions_row(
    epm: Run,
    two_rooms: tuple[RecordStore, RecordStore],
    server: psycopg.Connection[Any],
    pg_url: str,
    tmp_path: Path,
) -> None:
    a, _b = two_rooms
    # The derived sessions table refuses changes by hand; someone with the server's owner role
    # can still switch its guard off: verify compares it with the chain.
    server.execute("ALTER TABLE sessions DISABLE TRIGGER USER")
    server.execute(
        "UPDATE sessions SET outcome = 'completed' WHERE station_id = %s AND session_id = 2",
        (a.station_id,),
    )
    server.execute(
        "UPDATE sessions SET outcome = 'aborted' WHERE station_id = %s AND session_id = 1",
        (a.station_id,),
    )
    server.execute("ALTER TABLE sessions ENABLE TRIGGER USER")
    code, out, _err = epm(
        "records", "verify", "--server", pg_url, "--data-dir", no_records(tmp_path)
    )
    assert code == 1
    assert (
        "sessions table WRONG: session 1: the sessions table says outcome 'aborted', the "
        "station's events say 'completed'" in out
    )


def test_verify_finds_a_changed_clinic_ledger(
    epm: Run,
    two_rooms: tuple[RecordStore, RecordStore],
    server: psycopg.Connection[Any],
    pg_url: str,
    tmp_path: Path,
) -> None:
    for n in (1, 2):
        data = json.dumps(
            {
                "sha256": f"{n}" * 64,
                "protocol_id": "aga-test",
                "protocol_version": n,
                "approved_by": "Head technician",
            }
        )
        server.execute("SELECT epm_clinic_append('approval', %s, NULL)", (data,))
    code, out, _err = epm(
        "records", "verify", "--server", pg_url, "--data-dir", no_records(tmp_path)
    )
    assert code == 0 and "clinic ledger: 2 events, chain intact" in out
    server.execute("ALTER TABLE clinic_events DISABLE TRIGGER USER")
    server.execute(
        "UPDATE clinic_events SET data = replace(data, 'Head', 'Any') WHERE position = 2"
    )
    server.execute("ALTER TABLE clinic_events ENABLE TRIGGER USER")
    code, out, err = epm(
        "records", "verify", "--server", pg_url, "--data-dir", no_records(tmp_path)
    )
    assert (code, err) == (1, "")
    assert "clinic ledger: 2 events, chain BROKEN at position 2: its content gives hash" in out
    assert "Nothing was taken" not in out


# -- addresses and errors --------------------------------------------------------------------------


def test_an_ambiguous_or_unknown_station_is_one_clear_line(
    epm: Run, server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    with (
        make_station(tmp_path / "one", ["C-1"]) as one,
        make_station(tmp_path / "two", ["C-2"]) as two,
    ):
        push(one, pg_url, name="Room A")
        push(two, pg_url, name="Room A")
        one_id, two_id = one.station_id, two.station_id
    data = no_records(tmp_path)

    code, out, err = epm("records", "show", "--server", pg_url, "Room A:1", "--data-dir", data)
    assert (code, out) == (1, "")
    assert err.startswith("epm records: error: station 'Room A' is ambiguous")
    assert one_id in err and two_id in err
    assert err.count("\n") == 1 and "Traceback" not in err

    code, out, err = epm("records", "show", "--server", pg_url, "Room Z:1", "--data-dir", data)
    assert (code, out) == (1, "")
    assert err.startswith("epm records: error: no station 'Room Z' on the clinic server")
    assert one_id[:8] in err  # the stations it has, as they are addressed

    code, _out, err = epm("records", "show", "--server", pg_url, "abc:1", "--data-dir", data)
    assert code == 1 and "at least 8 of its hex characters" in err

    code, _out, err = epm(
        "records", "export", "--server", pg_url, f"{one_id[:8]}:9", "--data-dir", data
    )
    assert code == 1 and f"Room A ({one_id}) has no session 9" in err

    # Same-named stations are listed by their ids, which address them.
    code, out, err = epm(
        "records", "list", "--server", pg_url, "--format", "json", "--data-dir", data
    )
    assert code == 0
    assert {s["address"] for s in json.loads(out)} == {
        f"{one_id[:8]}:1",
        f"{two_id[:8]}:1",
    }
    code, out, err = epm(
        "records", "show", "--server", pg_url, f"{two_id[:8]}:1", "--data-dir", data
    )
    assert code == 0 and "client        C-2" in out


def test_session_addresses_written_wrong_are_usage_errors(epm: Run, tmp_path: Path) -> None:
    data = str(tmp_path)
    code, _out, err = epm("records", "show", "--server", "Room A", "--data-dir", data)
    assert code == 2 and "write it as STATION:ID" in err
    code, _out, err = epm(
        "records", "show", "--server", "postgresql://x@/db", "3", "--data-dir", data
    )
    assert code == 2 and "with --server a session is STATION:ID, not 3" in err
    code, _out, err = epm("records", "show", "Room A:3", "--data-dir", data)
    assert code == 2 and "add --server" in err
    code, _out, err = epm("records", "show", "--data-dir", data)
    assert code == 2 and "the following arguments are required: ID" in err
    code, _out, err = epm("records", "list", "--server", "Room A", "--data-dir", data)
    assert code == 2 and "--server takes a postgresql:// URL" in err


def test_no_server_configured_says_how_to_set_one(epm: Run, tmp_path: Path) -> None:
    for argv in (["list"], ["verify"], ["show", "Room A:1"], ["export", "Room A:1"]):
        code, out, err = epm("records", *argv, "--server", "--data-dir", no_records(tmp_path))
        assert (code, out) == (1, "")
        assert err.startswith("epm records: error: no clinic server")
        assert "epm config set server.url" in err and "Traceback" not in err
    assert not Path(no_records(tmp_path)).exists()  # nothing created


def test_a_server_without_the_schema_or_unreachable(epm: Run, pg_url: str, tmp_path: Path) -> None:
    code, _out, err = epm("records", "list", "--server", pg_url, "--data-dir", str(tmp_path))
    assert code == 1 and "no epm schema yet" in err and "epm server init" in err
    url = f"postgresql://postgres@/epm?host={tmp_path / 'nowhere'}"
    code, _out, err = epm("records", "verify", "--server", url, "--data-dir", str(tmp_path))
    assert code == 1 and err.startswith("epm records: error: cannot connect to the clinic server")
    assert err.count("\n") == 1
    code, _out, err = epm(
        "records",
        "list",
        "--server",
        "postgresql://epm@db.invalid/epm?sslmode=require",
        "--data-dir",
        str(tmp_path),
    )
    assert code == 1 and "sslmode=verify-full" in err


# -- addresses without a server --------------------------------------------------------------------

A = "1a2b3c4d-0000-4000-8000-000000000001"
B = "1a2b3c4d-9999-4000-8000-000000000002"
C = "77777777-0000-4000-8000-000000000003"


def test_resolve_station_by_name_or_unambiguous_id_prefix() -> None:
    known = [Station(A, "Room A"), Station(B, ""), Station(C, "room a")]
    assert resolve_station(known, C[:8]) == known[2]
    assert resolve_station(known, "1a2b3c4d-9") == known[1]
    with pytest.raises(AddressError, match="ambiguous"):
        resolve_station(known, "1a2b3c4d")  # A and B
    with pytest.raises(AddressError, match="ambiguous"):
        resolve_station(known, "ROOM  A")  # names compare without case and spacing
    with pytest.raises(AddressError, match="at least 8"):
        resolve_station(known, "1a2b")
    with pytest.raises(AddressError, match="no stations yet"):
        resolve_station([], "Room A")
    labels = station_labels(known)
    assert labels == {A: "1a2b3c4d-0", B: "1a2b3c4d-9", C: "77777777"}
    for station in known:
        assert resolve_station(known, labels[station.station_id]) == station


def test_parse_address() -> None:
    assert parse_address("Room A:12") == ("Room A", 12)
    assert parse_address("Lab: 2:3") == ("Lab: 2", 3)  # the number follows the last colon
    for wrong in ("Room A", ":3", "Room A:0", "Room A:x", "Room A:²"):
        with pytest.raises(ValueError, match="STATION:ID"):
            parse_address(wrong)
