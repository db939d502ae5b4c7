"""``epm server init``, ``server.url`` in the configuration and the station id, through the CLI."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from controller.records import RecordStore
from controller.server.schema import LATEST_SERVER_VERSION

Run = Callable[..., tuple[int, str, str]]
UUID4 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_init_from_the_argument_then_again(epm: Run, pg_url: str, tmp_path: Path) -> None:
    code, out, err = epm("server", "init", pg_url, "--data-dir", str(tmp_path / "d"))
    assert (code, err) == (0, "")
    applied = ", ".join(str(v) for v in range(1, LATEST_SERVER_VERSION + 1))
    assert out.splitlines()[0] == f"schema at version {LATEST_SERVER_VERSION} (applied: {applied})"
    code, out, err = epm("server", "init", pg_url, "--data-dir", str(tmp_path / "d"))
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"schema already at version {LATEST_SERVER_VERSION}: nothing to apply",
        "role epm_station: already there, rights granted",
        "role epm_technician: already there, rights granted",
    ]


def test_init_uses_server_url_from_the_configuration(epm: Run, pg_url: str, tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    code, _out, err = epm("config", "set", "server.url", pg_url, "--data-dir", data)
    assert (code, err) == (0, "")
    code, out, err = epm("server", "init", "--data-dir", data)
    assert (code, err) == (0, "")
    assert f"schema at version {LATEST_SERVER_VERSION}" in out


def test_init_without_a_url_says_how_to_give_one(epm: Run, tmp_path: Path) -> None:
    code, out, err = epm("server", "init", "--data-dir", str(tmp_path / "d"))
    assert code == 1 and out == ""
    assert err.startswith("epm server init: error: no clinic server")
    assert "epm config set server.url" in err


def test_init_refuses_the_network_without_verify_full(epm: Run, tmp_path: Path) -> None:
    code, _out, err = epm(
        "server",
        "init",
        "postgresql://epm@db.invalid/epm?sslmode=require",
        "--data-dir",
        str(tmp_path),
    )
    assert code == 1
    assert "sslmode=require" in err and "sslmode=verify-full" in err
    assert "Traceback" not in err


def test_config_refuses_a_url_with_a_password(epm: Run, tmp_path: Path) -> None:
    data = tmp_path / "d"
    code, _out, err = epm(
        "config",
        "set",
        "server.url",
        "postgresql://epm:hunter2@db.example/epm",
        "--data-dir",
        str(data),
    )
    assert code == 1
    assert "PGPASSWORD" in err and "password file" in err
    assert "hunter2" not in err
    assert not (data / "config.yaml").exists()


def test_the_station_id_is_made_once_and_survives_reopening(tmp_path: Path) -> None:
    with RecordStore.open(tmp_path / "d") as store:
        first = store.station_id
    assert UUID4.fullmatch(first)
    with RecordStore.open(tmp_path / "d", exclusive=False) as store:
        assert store.station_id == first
    with RecordStore.open(tmp_path / "other") as other:
        assert other.station_id != first


def test_config_show_shows_the_station_id(epm: Run, tmp_path: Path) -> None:
    data = tmp_path / "d"
    code, out, _err = epm("config", "show", "--data-dir", str(data))
    assert code == 0
    assert (
        "station.id            records  none yet (made with the records database) (read-only)"
        in (out.splitlines())
    )
    assert not data.exists()
    with RecordStore.open(data) as store:
        station = store.station_id
    code, out, _err = epm("config", "show", "--data-dir", str(data))
    assert code == 0
    assert f"station.id            records  {station} (read-only)" in out.splitlines()
    code, out, _err = epm("config", "show", "--format", "json", "--data-dir", str(data))
    assert '"station_id": "' + station + '"' in out
