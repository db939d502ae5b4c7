"""The clinic server's schema and roles, on a real PostgreSQL (tests/server/conftest.py)."""

from __future__ import annotations

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
    assert {"schema_version", "stations", "events", "approvals", "revocations", "clients"} <= (
        tables(pg_url)
    )
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


@pytest.mark.parametrize(
    "statement", ["UPDATE events SET kind = 'x'", "DELETE FROM events"], ids=["update", "delete"]
)
def test_the_station_role_cannot_change_or_delete_events(pg_url: str, statement: str) -> None:
    init_server(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET ROLE epm_station")
        conn.execute("INSERT INTO stations (station_id, name) VALUES (%s, 'Room 2')", (STATION,))
        _insert_event(conn)
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (1,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "INSERT INTO approvals (sha256, protocol_id, protocol_version, approved_by) "
                "VALUES (%s, 'p', 1, 'x')",
                (HASH,),
            )


def test_the_technician_role_writes_approvals_but_never_changes_events(pg_url: str) -> None:
    init_server(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SET ROLE epm_technician")
        conn.execute(
            "INSERT INTO approvals (sha256, protocol_id, protocol_version, approved_by) "
            "VALUES (%s, 'p', 1, 'Tech')",
            (HASH,),
        )
        conn.execute(
            "INSERT INTO revocations (sha256, revoked_by, reason) VALUES (%s, 'Tech', 'old')",
            (HASH,),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM approvals")


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
