"""One clinic, many rooms, on a real PostgreSQL: courses across rooms, approvals made once,
revocations, flagged client codes, and syncs that are interrupted, offline or tampered with."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest

import protocols
from controller.records import RecordStore
from controller.records.approvals import check_runnable
from controller.records.courses import course_progress
from controller.records.models import parse_iso
from controller.records.received import conflicted_codes, received
from controller.records.sync_state import read_state, write_state
from controller.server import ServerError
from controller.server import pull as pull_module
from controller.server import sync as sync_module
from controller.server.pull import LedgerRefused
from controller.server.schema import init_server
from controller.server.sync import sync_once
from tests.records.conftest import FakeClock, FakeMonotonic, begin, protocol_text
from tests.server.test_sync import assert_server_has, local_chain

Run = Callable[..., tuple[int, str, str]]
COURSE = SimpleNamespace(
    id="aga-early-scalp",
    course=SimpleNamespace(sessions=6, interval_days=14, maintenance_interval_days=90),
)


@pytest.fixture
def server(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    init_server(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def station(folder: Path, clock: FakeClock | None = None) -> RecordStore:
    return RecordStore.open(folder, clock=clock or FakeClock(), monotonic=FakeMonotonic())


def treat(store: RecordStore, client: str, count: int, name: str | None = None) -> None:
    """``count`` completed real-device sessions of the client."""
    store.get_or_create_client(client, name)
    for _ in range(count):
        session_id = begin(store, client_code=client)
        store.end_session(session_id, "completed")


def test_two_rooms_count_one_course(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    with station(tmp_path / "a") as a, station(tmp_path / "b") as b:
        treat(a, "C-0042", 2)
        treat(b, "C-0042", 1)
        assert course_progress(a, "C-0042", COURSE).done == 2
        sync_once(a, pg_url, name="Room A")
        sync_once(b, pg_url, name="Room B")
        sync_once(a, pg_url, name="Room A")
        for store in (a, b):
            progress = course_progress(store, "C-0042", COURSE)
            assert progress.done == 3, progress.summary
            assert "other treatment rooms" in progress.summary
        # A client first seen in the other room is listed here too, with its name.
        treat(b, "C-0077", 1, name="Lee Park")
        sync_once(b, pg_url)
        sync_once(a, pg_url)
        assert a.get_client("C-0077").name == "Lee Park"
        assert course_progress(a, "C-0077", COURSE).done == 1


def test_an_approval_on_the_server_reaches_both_rooms_and_a_revocation_stops_both(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path, epm: Run
) -> None:
    path = tmp_path / "aga-test.yaml"
    path.write_text(protocol_text("approved"), encoding="utf-8")
    result = protocols.load_protocol(path)
    room_a, room_b = tmp_path / "a", tmp_path / "b"
    for room in (room_a, room_b):
        assert epm("config", "set", "server.url", pg_url, "--data-dir", str(room))[0] == 0
    station(room_b).close()
    code, out, err = epm("approve", str(path), "--by", "Head technician", "--data-dir", str(room_a))
    assert code == 0, err
    assert "approved on the clinic server" in out and "ledger position 1" in out
    with station(room_a) as a, station(room_b) as b:
        assert check_runnable(result, False, a, offline_days=7) == []
        refused = check_runnable(result, False, b, offline_days=7)
        assert refused and "never has" in refused[0]  # b has not pulled yet
        sync_once(b, pg_url)
        assert check_runnable(result, False, b, offline_days=7) == []
        approval = b.is_approved(str(result.sha256))
        assert approval is not None and "clinic server" in approval.file_path
    code, out, err = epm(
        "approve",
        "--revoke",
        str(path),
        "--by",
        "Head technician",
        "--reason",
        "burns reported at this setting",
        "--data-dir",
        str(room_b),
    )
    assert code == 0, err
    assert "revoked on the clinic server" in out
    with station(room_a) as a, station(room_b) as b:
        refused_b = check_runnable(result, False, b, offline_days=7)
        assert refused_b and "revoked" in refused_b[0] and "burns reported" in refused_b[0]
        assert check_runnable(result, False, a, offline_days=7) == []  # not pulled yet
        sync_once(a, pg_url)
        refused_a = check_runnable(result, False, a, offline_days=7)
        assert refused_a and "revoked" in refused_a[0]
        assert check_runnable(result, True, a) == []  # the simulator still trains on it
    code, _out, err = epm(
        "approve", str(path), "--by", "Head technician", "--data-dir", str(room_a)
    )
    assert code == 1 and "never approved again" in err


def test_revoking_without_a_server_stays_on_the_station(tmp_path: Path, epm: Run) -> None:
    path = tmp_path / "aga-test.yaml"
    path.write_text(protocol_text("approved"), encoding="utf-8")
    room = str(tmp_path / "room")
    assert epm("approve", str(path), "--by", "Tech", "--data-dir", room)[0] == 0
    code, _out, err = epm("approve", "--revoke", str(path), "--by", "Tech", "--data-dir", room)
    assert code == 2 and "--reason" in err
    code, out, _err = epm(
        "approve", "--revoke", str(path), "--by", "Tech", "--reason", "old", "--data-dir", room
    )
    assert code == 0 and "revoked on this station" in out
    with station(Path(room)) as store:
        refused = check_runnable(protocols.load_protocol(path), False, store)
        assert refused and "revoked by Tech" in refused[0]


def test_an_unreachable_server_revokes_here_and_says_so(
    tmp_path: Path, epm: Run, pg_server: Path
) -> None:
    path = tmp_path / "aga-test.yaml"
    path.write_text(protocol_text("approved"), encoding="utf-8")
    room = str(tmp_path / "room")
    gone = f"postgresql://postgres@/nowhere?host={tmp_path}"
    assert epm("config", "set", "server.url", gone, "--data-dir", room)[0] == 0
    code, _out, err = epm("approve", str(path), "--by", "Tech", "--data-dir", room)
    assert code == 1 and "nothing was approved" in err
    code, out, err = epm(
        "approve", "--revoke", str(path), "--by", "Tech", "--reason", "x", "--data-dir", room
    )
    assert code == 1 and "revoked on this station" in out and "again" in err


def test_a_station_that_stopped_pulling_refuses_approved_protocols_on_a_real_device(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path, epm: Run
) -> None:
    path = tmp_path / "aga-test.yaml"
    path.write_text(protocol_text("approved"), encoding="utf-8")
    result = protocols.load_protocol(path)
    room = tmp_path / "room"
    assert epm("config", "set", "server.url", pg_url, "--data-dir", str(room))[0] == 0
    assert epm("approve", str(path), "--by", "Tech", "--data-dir", str(room))[0] == 0
    with station(room) as store:
        assert check_runnable(result, False, store, offline_days=7) == []
        eight_days_ago = parse_iso(store.now()) - dt.timedelta(days=8)
        write_state(store, last_pull_at=eight_days_ago.isoformat(timespec="milliseconds"))
        refused = check_runnable(result, False, store, offline_days=7)
        assert refused and "7 days" in refused[0] and "epm sync --once" in refused[0]
        assert check_runnable(result, False, store, offline_days=10) == []
        assert check_runnable(result, False, store) == []  # the store says: no server
        store.offline_days = 7  # as the app and `epm run` set it from server.offline_days
        assert check_runnable(result, False, store) == refused
        assert check_runnable(result, True, store, offline_days=7) == []
        sync_once(store, pg_url)
        assert check_runnable(result, False, store, offline_days=7) == []


def test_a_sync_killed_mid_pull_resumes_with_nothing_lost_or_doubled(
    server: psycopg.Connection[Any],
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with station(tmp_path / "a") as a, station(tmp_path / "b") as b:
        for n in range(5):
            treat(a, f"C-{n:04d}", 1, name=f"Client {n}")
        sync_once(a, pg_url)
        monkeypatch.setattr(pull_module, "PAGE", 2)
        real = pull_module._append_received
        calls = []

        def dies_on_the_second_page(*args: Any) -> None:
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt  # the process killed between two transactions
            real(*args)

        monkeypatch.setattr(pull_module, "_append_received", dies_on_the_second_page)
        with pytest.raises(KeyboardInterrupt):
            sync_once(b, pg_url)
        assert len(received(b)) == 2
        monkeypatch.setattr(pull_module, "_append_received", real)
        sync_once(b, pg_url)
        positions = [item.server_position for item in received(b)]
        (held,) = server.execute("SELECT count(*) FROM clinic_events").fetchone()
        assert positions == list(range(1, held + 1))
        assert b.verify_chain().ok


def test_the_server_dropping_mid_sync_is_recorded_and_the_next_sync_completes(
    server: psycopg.Connection[Any],
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As on a server restart: the sync's connection is terminated between two batches."""
    with station(tmp_path / "a") as a:
        treat(a, "C-0042", 6)
        real = sync_module._push_round
        rounds = []

        def terminated_after_one_batch(conn: Any, *args: Any) -> tuple[int, int]:
            rounds.append(1)
            if len(rounds) == 2:
                (pid,) = conn.execute("SELECT pg_backend_pid()").fetchone()
                server.execute("SELECT pg_terminate_backend(%s)", (pid,))
            return real(conn, *args)

        monkeypatch.setattr(sync_module, "_push_round", terminated_after_one_batch)
        with pytest.raises(ServerError, match="clinic server failed"):
            sync_once(a, pg_url, batch=5)
        state = read_state(a)
        assert state.failing_since is not None and "clinic server failed" in state.last_error
        (held,) = server.execute("SELECT count(*) FROM events").fetchone()
        assert held == 5  # whole batches only
        monkeypatch.setattr(sync_module, "_push_round", real)
        sync_once(a, pg_url, batch=5)
        assert_server_has(server, a)
        state = read_state(a)
        assert (state.failing_since, state.last_error, state.waiting_events) == (None, "", 0)


def test_a_station_offline_for_a_day_sends_its_backlog_in_order(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    clock = FakeClock()
    unreachable = f"postgresql://postgres@/nowhere?host={tmp_path}"
    with station(tmp_path / "a", clock) as a:
        treat(a, "C-0042", 1)
        sync_once(a, pg_url)
        for hour in range(24):
            treat(a, f"C-{hour:04d}", 1)
            clock.advance(hours=1)
            with pytest.raises(ServerError):
                sync_once(a, unreachable)
        state = read_state(a)
        assert state.waiting_sessions == 24 and state.failing_since is not None
        sync_once(a, pg_url)
        assert_server_has(server, a)
        assert read_state(a).waiting_events == 0
        assert len(local_chain(a)) > 24


def test_a_client_code_under_two_names_is_flagged_in_both_rooms_until_resolved(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path, epm: Run
) -> None:
    with station(tmp_path / "a") as a, station(tmp_path / "b") as b:
        treat(a, "C-0007", 2, name="Ana Diaz")
        treat(b, "C-0007", 1, name="Bo Li")
        for store in (a, b, a):
            sync_once(store, pg_url)
        for store, own in ((a, 2), (b, 1)):
            assert "C-0007" in conflicted_codes(store)
            progress = course_progress(store, "C-0007", COURSE)
            assert progress.done == own and "flagged" in progress.summary
        (flags,) = server.execute("SELECT count(*) FROM clients WHERE names_differ").fetchone()
        assert flags == 1
        code, _out, err = epm(
            "server",
            "resolve-client",
            "C-0009",
            "--name",
            "X",
            "--by",
            "Tech",
            "--reason",
            "r",
            "--url",
            pg_url,
        )
        assert code == 1 and "not flagged" in err
        code, _out, err = epm(
            "server",
            "resolve-client",
            "C-0007",
            "--name",
            "Ana Diaz",
            "--by",
            "Tech",
            "--reason",
            "same person, the other room misspelt",
            "--url",
            pg_url,
        )
        assert code == 0, err
        for store in (a, b):
            sync_once(store, pg_url)
            assert conflicted_codes(store) == {}
            assert course_progress(store, "C-0007", COURSE).done == 3


def test_a_tampered_clinic_ledger_is_refused_and_nothing_is_taken(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    with station(tmp_path / "a") as a, station(tmp_path / "b") as b:
        treat(a, "C-0001", 1, name="Ana")
        treat(a, "C-0002", 1, name="Ben")
        sync_once(a, pg_url)
        server.execute("ALTER TABLE clinic_events DISABLE TRIGGER USER")
        server.execute(
            "UPDATE clinic_events SET data = replace(data, 'Ben', 'Bob') WHERE position = 2"
        )
        server.execute("ALTER TABLE clinic_events ENABLE TRIGGER USER")
        with pytest.raises(LedgerRefused, match="position 2") as refused:
            sync_once(b, pg_url)
        assert "nothing was taken" in str(refused.value).lower()
        assert received(b) == []
        assert read_state(b).failing_since is not None


def test_epm_sync_runs_rounds_until_stopped(
    server: psycopg.Connection[Any],
    pg_url: str,
    tmp_path: Path,
    epm: Run,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = tmp_path / "a"
    with station(room) as a:
        treat(a, "C-0042", 1)
        sessions_events = len(local_chain(a))
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise KeyboardInterrupt

    # Only the command's own pauses (the service log's thread sleeps too).
    monkeypatch.setattr("controller.cli.cmd_sync.time", SimpleNamespace(sleep=sleep))
    code, out, err = epm("sync", "--every", "5", pg_url, "--data-dir", str(room))
    assert code == 0, err
    assert f"sent {sessions_events + 1} events" in out  # and its client, received back
    assert out.rstrip().endswith("stopped")
    assert sleeps == [5.0, 5.0]
    with station(room) as a:
        assert_server_has(server, a)


def test_handed_out_documents_reach_the_server_checked(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    from controller.records.documents import publish_document
    from controller.records.paths import REPORTS_FOLDER

    with station(tmp_path / "a") as a:
        treat(a, "C-0042", 2)
        folder = a.data_dir / REPORTS_FOLDER
        folder.mkdir()
        written = []
        for session_id, kind in ((1, "report_written"), (2, "handout_given")):
            pdf = f"%PDF-1.4 document of session {session_id}".encode()
            path = folder / f"session-{session_id}-{kind}.pdf"
            publish_document(
                a, session_id, path, pdf, pages=1, paper="A4", document=kind, kind=kind
            )
            written.append((path, pdf))
        written[1][0].write_bytes(b"%PDF-1.4 changed behind epm's back")
        result = sync_once(a, pg_url)
        assert result.documents_missing == (written[1][0].name,)
        rows = server.execute(
            "SELECT session_id, kind, file_name, content FROM documents ORDER BY session_id"
        ).fetchall()
        assert rows == [(1, "report_written", written[0][0].name, written[0][1])]
        assert sync_once(a, pg_url).documents_missing == (written[1][0].name,)  # not doubled
        assert server.execute("SELECT count(*) FROM documents").fetchone() == (1,)
        station_id = a.station_id
    with pytest.raises(psycopg.errors.CheckViolation):  # bytes that are not the SHA-256
        server.execute(
            "INSERT INTO documents VALUES (%s, %s, 2, 'handout_given', 'x.pdf', 'x')",
            (station_id, hashlib.sha256(written[1][1]).hexdigest()),
        )
    with pytest.raises(psycopg.errors.RaiseException, match="no handout_given event"):
        server.execute(
            "INSERT INTO documents VALUES (%s, encode(sha256('y'), 'hex'), 2, "
            "'handout_given', 'y.pdf', 'y')",
            (station_id,),
        )


def test_a_station_role_appends_only_its_own_chain(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    from tests.server.test_schema import login_as

    room_a = login_as(pg_url, "room_a", "epm_station")
    room_b = login_as(pg_url, "room_b", "epm_station")
    with station(tmp_path / "a") as a, station(tmp_path / "b") as b:
        treat(a, "C-0001", 1, name="Ana")
        treat(b, "C-0002", 1, name="Ben")
        sync_once(a, room_a)
        sync_once(b, room_b)
        # Room B's login pretending to be room A (a copied configuration): refused.
        treat(a, "C-0001", 1)
        with pytest.raises(ServerError, match="belongs to the login role room_a_"):
            sync_once(a, room_b)
        sync_once(a, room_a)
        assert_server_has(server, a)
        assert_server_has(server, b)
        with (
            psycopg.connect(room_a, autocommit=True) as conn,
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a technician"),
        ):
            conn.execute("SELECT epm_clinic_append('approval', '{}', NULL)")


def test_a_server_restored_from_an_older_backup_is_refused_not_followed(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    """Ledger rows a station took that the server lost (a restore) are never silently
    replaced by others at the same positions: the pull is refused, naming the position."""
    with station(tmp_path / "a") as a:
        treat(a, "C-0001", 1, name="Ana")
        treat(a, "C-0002", 1, name="Ben")
        sync_once(a, pg_url)
        assert [r.server_position for r in received(a)] == [1, 2]
        server.execute("ALTER TABLE clinic_events DISABLE TRIGGER USER")
        server.execute("DELETE FROM clinic_events WHERE position = 2")  # the restore's loss
        server.execute("ALTER TABLE clinic_events ENABLE TRIGGER USER")
        with pytest.raises(LedgerRefused, match=r"position 2.*older backup"):
            sync_once(a, pg_url)
        server.execute(
            "SELECT epm_clinic_append('client', %s, NULL)", ('{"code": "C-0009", "name": "X"}',)
        )  # a new row at position 2, different from the one the station took
        with pytest.raises(LedgerRefused, match="the server now holds"):
            sync_once(a, pg_url)
        assert [r.server_position for r in received(a)] == [1, 2]


def test_an_idle_round_writes_nothing_to_the_records(
    server: psycopg.Connection[Any],
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A write takes the records' one write lock, which a running session needs: a round with
    nothing new writes nothing (the pull's time at most every 30 s)."""
    from controller.records import sync_state

    clock = FakeClock()
    with station(tmp_path / "a", clock) as a:
        treat(a, "C-0001", 1, name="Ana")
        sync_once(a, pg_url)
        writes: list[dict[str, Any]] = []
        real = sync_state.write_state
        monkeypatch.setattr(
            sync_state, "write_state", lambda store, **f: (writes.append(f), real(store, **f))
        )
        chain_length = len(local_chain(a))
        clock.advance(seconds=5)
        sync_once(a, pg_url)
        assert writes == [] and len(local_chain(a)) == chain_length
        clock.advance(seconds=30)
        sync_once(a, pg_url)
        assert [set(w) for w in writes] == [{"last_pull_at"}]
        treat(a, "C-0001", 1)
        sync_once(a, pg_url)
        assert {"pushed_position", "last_push_at", "last_pull_at"} <= set(writes[-1])
        assert read_state(a).waiting_events == 0


def test_a_room_correcting_its_own_clients_name_is_not_a_conflict_and_agreeing_resolves_one(
    server: psycopg.Connection[Any], pg_url: str, tmp_path: Path
) -> None:
    with station(tmp_path / "a") as a, station(tmp_path / "b") as b:
        treat(a, "C-0007", 1, name="Ana Dias")
        sync_once(a, pg_url)
        a.amend_client_name("C-0007", "Ana Diaz", by="Reception", reason="spelling")
        sync_once(a, pg_url)
        assert conflicted_codes(a) == {}  # one room, its own correction
        treat(b, "C-0007", 1, name="Ana Díaz-Ruiz")
        sync_once(b, pg_url)
        sync_once(a, pg_url)
        assert "C-0007" in conflicted_codes(a) and "C-0007" in conflicted_codes(b)
        assert course_progress(b, "C-0007", COURSE).done == 1
        # Room B checks with the client and corrects its record: the rooms agree again, and
        # the server itself lifts the flag.
        b.amend_client_name("C-0007", "ana  diaz", by="Reception", reason="checked the ID")
        sync_once(b, pg_url)
        sync_once(a, pg_url)
        for store in (a, b):
            assert conflicted_codes(store) == {}
            assert course_progress(store, "C-0007", COURSE).done == 2
        kinds = [k for (k,) in server.execute("SELECT kind FROM clinic_events ORDER BY position")]
        assert kinds.count("client_conflict") == 1 and kinds[-1] == "client_resolved"
        (by,) = server.execute(
            "SELECT data::jsonb->>'by' FROM clinic_events WHERE kind = 'client_resolved'"
        ).fetchone()
        assert by == "the clinic server"


def test_the_server_restarted_mid_sync_loses_nothing(
    server: psycopg.Connection[Any],
    pg_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pg_restart: Callable[[], None],
) -> None:
    """A real restart of the PostgreSQL server between two batches of one round."""
    with station(tmp_path / "a") as a:
        treat(a, "C-0042", 6, name="Ana")
        real = sync_module._push_round
        rounds = []

        def restarted_after_one_batch(conn: Any, *args: Any) -> tuple[int, int]:
            rounds.append(1)
            if len(rounds) == 2:
                pg_restart()
            return real(conn, *args)

        monkeypatch.setattr(sync_module, "_push_round", restarted_after_one_batch)
        with pytest.raises(ServerError, match="clinic server failed"):
            sync_once(a, pg_url, batch=5)
        monkeypatch.setattr(sync_module, "_push_round", real)
        with psycopg.connect(pg_url, autocommit=True) as fresh:
            (held,) = fresh.execute("SELECT count(*) FROM events").fetchone()
            assert held == 5  # the first batch, committed before the restart
            sync_once(a, pg_url, batch=5)
            assert_server_has(fresh, a)
        assert read_state(a).failing_since is None
