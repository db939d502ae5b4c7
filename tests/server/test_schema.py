"""The clinic server's schema and roles, on a real PostgreSQL (tests/server/conftest.py)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from controller.server import ServerError, ServerSchemaTooNewError
from controller.server.schema import (
    LATEST_SERVER_VERSION,
    ROLES,
    init_server,
    server_version,
)
from controller.server.url import connection_problem, url_problem

HASH = "a" * 64
STATION = "5f0c8a52-2f7e-4c3b-9a1d-0e6b7c8d9e10"


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    return {r[0] for r in rows}


def test_init_creates_the_schema_and_the_roles(pg_url: str) -> None:
    report = init_server(pg_url)
    assert report.version == LATEST_SERVER_VERSION
    assert report.applied == tuple(range(1, LATEST_SERVER_VERSION + 1))
    assert tables(pg_url) == {
        "schema_version",
        "clinic",
        "stations",
        "events",
        "clinic_events",
        "sessions",
        "documents",
    }
    with psycopg.connect(pg_url) as conn:
        assert server_version(conn) == LATEST_SERVER_VERSION
        found = conn.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'epm_%'"
        ).fetchall()
        assert dict(found) == {role: False for role in ROLES}
        key = conn.execute(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'events'::regclass "
            "AND i.indisprimary ORDER BY a.attname"
        ).fetchall()
        assert [r[0] for r in key] == ["position", "station_id"]


def test_init_twice_changes_nothing(pg_url: str) -> None:
    init_server(pg_url)
    again = init_server(pg_url)
    assert again.applied == () and again.roles_created == ()
    assert again.version == LATEST_SERVER_VERSION


def test_a_newer_schema_is_refused_and_left_alone(pg_url: str) -> None:
    init_server(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = %s", (LATEST_SERVER_VERSION + 3,))
    with pytest.raises(ServerSchemaTooNewError, match="set up by a newer epm"):
        init_server(pg_url)
    with psycopg.connect(pg_url) as conn:
        assert server_version(conn) == LATEST_SERVER_VERSION + 3


def _insert_event(conn: psycopg.Connection, position: int = 1) -> None:
    conn.execute(
        "INSERT INTO events (station_id, position, session_id, seq, wall_time, mono_ms, kind, "
        "data, prev_hash, hash) VALUES (%s, %s, NULL, %s, 'w', 0, 'approval', '{}', %s, %s)",
        (STATION, position, position, "0" * 64, HASH),
    )


def login_as(pg_url: str, role: str, group: str) -> str:
    """A URL of a new login role, member of ``group`` (the socket trusts local users). Roles
    belong to the whole server, shared by the tests' databases: each name is made unique."""
    role = f"{role}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN IN ROLE {group}")
    return pg_url.replace("postgresql://postgres@", f"postgresql://{role}@")


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET kind = 'x'",
        "DELETE FROM events",
        "DELETE FROM clinic_events",
        "DELETE FROM sessions",
        "INSERT INTO clinic_events VALUES (1, 'approval', '{}', NULL, 'x', 'x', 'x', 'x')",
        "SELECT epm_clinic_insert('approval', '{}', NULL)",
    ],
    ids=["update", "delete", "delete-ledger", "delete-sessions", "insert-ledger", "insert-fn"],
)
def test_the_station_role_cannot_change_or_delete_events(pg_url: str, statement: str) -> None:
    init_server(pg_url)
    url = login_as(pg_url, "room_2", "epm_station")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO stations (station_id, name) VALUES (%s, 'Room 2')", (STATION,))
        _insert_event(conn)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


def test_a_station_claims_clients_but_never_approves(pg_url: str) -> None:
    init_server(pg_url)
    url = login_as(pg_url, "room_2", "epm_station")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO stations (station_id, name) VALUES (%s, 'Room 2')", (STATION,))
        (position,) = conn.execute(
            "SELECT epm_clinic_append('client', %s, %s)",
            ('{"code": "C-1", "name": "Ana"}', STATION),
        ).fetchone()
        assert position == 1
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="only a technician"):
            conn.execute(
                "SELECT epm_clinic_append('approval', %s, NULL)", (f'{{"sha256": "{HASH}"}}',)
            )


def test_the_technician_role_approves_and_revokes_but_never_changes_the_ledger(
    pg_url: str,
) -> None:
    init_server(pg_url)
    url = login_as(pg_url, "dana", "epm_technician")
    with psycopg.connect(url, autocommit=True) as conn:
        approval = f'{{"sha256": "{HASH}", "protocol_id": "p", "protocol_version": 1}}'
        first = conn.execute("SELECT epm_clinic_append('approval', %s, NULL)", (approval,))
        again = conn.execute("SELECT epm_clinic_append('approval', %s, NULL)", (approval,))
        assert first.fetchone() == again.fetchone() == (1,)
        revoke = f'{{"sha256": "{HASH}", "revoked_by": "Dana", "reason": "old"}}'
        assert conn.execute(
            "SELECT epm_clinic_append('revocation', %s, NULL)", (revoke,)
        ).fetchone() == (2,)
        with pytest.raises(psycopg.errors.RaiseException, match="never approved again"):
            conn.execute("SELECT epm_clinic_append('approval', %s, NULL)", (approval,))
        rows = conn.execute("SELECT sha256, approved_by FROM approvals").fetchall()
        assert [r[0] for r in rows] == [HASH]
        made_by = conn.execute("SELECT made_by FROM clinic_events").fetchall()
        assert [m[0].split("_")[0] for m in made_by] == ["dana", "dana"]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM clinic_events")


def test_two_names_under_one_client_code_are_flagged_on_the_server(pg_url: str) -> None:
    init_server(pg_url)
    other = "7a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for station in (STATION, other):
            conn.execute("INSERT INTO stations (station_id) VALUES (%s)", (station,))
        for station, name in ((STATION, "Ana Diaz"), (STATION, " ana  DIAZ "), (other, "Bo Li")):
            conn.execute(
                "SELECT epm_clinic_append('client', %s, %s)",
                (f'{{"code": "C-7", "name": "{name}"}}', station),
            )
        kinds = conn.execute("SELECT kind FROM clinic_events ORDER BY position").fetchall()
        assert [k[0] for k in kinds] == ["client", "client", "client_conflict"]
        assert conn.execute("SELECT names_differ FROM clients").fetchall() == [(True,)]


def test_events_are_append_only_even_for_the_owner(pg_url: str) -> None:
    init_server(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO stations (station_id) VALUES (%s)", (STATION,))
        _insert_event(conn)
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            conn.execute("DELETE FROM events")


# --- the URL rules (no server needed) ----------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://epm:secret@db.example/epm?sslmode=verify-full",
        "postgresql://epm@db.example/epm?sslmode=verify-full&password=secret",
    ],
)
def test_a_password_in_the_url_is_refused(url: str) -> None:
    problem = url_problem(url)
    assert problem is not None and "PGPASSWORD" in problem and "password file" in problem


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://epm@db.example/epm",
        "postgresql://epm@db.example/epm?sslmode=require",
        "postgresql://epm@db.example:5433/epm?sslmode=verify-ca",
        "postgresql://epm@localhost,db.example/epm?sslmode=disable",
        "postgresql://epm@localhost/epm?hostaddr=10.0.0.5",
    ],
)
def test_the_network_without_verify_full_is_refused(url: str) -> None:
    problem = connection_problem(url, env={})
    assert problem is not None and "sslmode=verify-full" in problem


@pytest.mark.parametrize(
    ("url", "env"),
    [
        ("postgresql://epm@db.example/epm?sslmode=verify-full", {}),
        ("postgresql://epm@db.example/epm", {"PGSSLMODE": "verify-full"}),
        ("postgresql://epm@localhost/epm", {}),
        ("postgresql://epm@127.0.0.1:5432/epm?sslmode=disable", {}),
        ("postgresql://epm@[::1]/epm", {}),
        ("postgresql:///epm", {}),
        ("postgresql://epm@/epm?host=/var/run/postgresql", {}),
        ("postgresql://epm:@/epm?host=/tmp/pg", {}),  # an empty password is no password
    ],
)
def test_a_socket_loopback_or_verify_full_is_accepted(url: str, env: dict[str, str]) -> None:
    assert connection_problem(url, env=env) is None


def test_pghost_is_taken_into_account() -> None:
    assert connection_problem("postgresql:///epm", env={"PGHOST": "db.example"}) is not None


def test_init_refuses_before_connecting() -> None:
    with pytest.raises(ServerError, match="sslmode=verify-full"):
        init_server("postgresql://epm@db.invalid/epm")


def test_sessions_follow_their_events_and_are_never_changed_by_hand(pg_url: str) -> None:
    init_server(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO stations (station_id) VALUES (%s)", (STATION,))
        conn.execute(
            "INSERT INTO events (station_id, position, session_id, seq, wall_time, mono_ms, "
            "kind, data, prev_hash, hash) VALUES (%s, 1, 1, 1, 'w', 0, 'session_started', "
            '\'{"client_code": "C-1"}\', %s, %s)',
            (STATION, "0" * 64, HASH),
        )
        row = conn.execute("SELECT client_code, protocol_id, outcome FROM sessions").fetchone()
        assert row == ("C-1", "", "running")  # a field missing is stored empty, not refused
        for statement in ("UPDATE sessions SET outcome = 'completed'", "DELETE FROM sessions"):
            with pytest.raises(psycopg.errors.RaiseException, match="never changed or deleted"):
                conn.execute(statement)
        conn.execute(
            "INSERT INTO events (station_id, position, session_id, seq, wall_time, mono_ms, "
            "kind, data, prev_hash, hash) VALUES (%s, 2, 1, 2, 'w2', 0, 'session_end', "
            '\'{"outcome": "completed"}\', %s, %s)',
            (STATION, HASH, "b" * 64),
        )
        assert conn.execute("SELECT outcome, ended_at FROM sessions").fetchone() == (
            "completed",
            "w2",
        )
