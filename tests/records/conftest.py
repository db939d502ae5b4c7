"""Fixtures for the records tests: a private data folder, a store on a settable clock, protocol
files written into tmp_path, and a way to run the ``records``/``approve`` sub-commands."""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.cli import cmd_approve, cmd_records
from controller.records import RecordStore


class FakeClock:
    """An aware UTC clock the test moves by hand."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or local_noon(dt.date(2026, 3, 2))

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class FakeMonotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def local_noon(day: dt.date) -> dt.datetime:
    """Noon of a local calendar day, as an aware datetime (its local date is ``day`` in any TZ)."""
    return dt.datetime.combine(day, dt.time(12, 0)).astimezone().astimezone(dt.UTC)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "epm-data"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mono() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def store(data_dir: Path, clock: FakeClock, mono: FakeMonotonic) -> Iterator[RecordStore]:
    with RecordStore.open(data_dir, clock=clock, monotonic=mono) as s:
        yield s


SESSION_DEFAULTS: dict[str, Any] = {
    "client_code": "C-0042",
    "protocol_id": "aga-early-scalp",
    "protocol_version": 3,
    "protocol_sha256": "ab" * 32,
    "protocol_title": "Early androgenetic alopecia, scalp",
    "serum_name": "Biotin and panthenol cocktail",
    "serum_lot": "LOT-2026-117",
    "practitioner": "Dana Practitioner",
    "device_model": "EPM-1",
    "device_serial": "EPM1-000123",
    "device_firmware": "1.4.2",
    "device_boot_id": 0x5A5A,
    "device_port": "/dev/serial/by-id/usb-EPM-1",
    "checklist": {"active_infection": False, "consultation_done": True},
    "planned_zones": ["frontal", "midscalp", "crown"],
}


def begin(store: RecordStore, **overrides: Any) -> int:
    """Begin a session with sensible values (the client is created if needed)."""
    values = {**SESSION_DEFAULTS, **overrides}
    store.get_or_create_client(values["client_code"])
    return store.begin_session(**values)


PROTOCOL_YAML = """\
format: epm-protocol/1
id: {id}
version: {version}
title: Early androgenetic alopecia, scalp
indication: early_androgenetic_alopecia
status: {status}
{approval}handpiece: scalp_roller
serum:
  name: Biotin and panthenol cocktail
course:
  sessions: 6
  interval_days: 14
  maintenance_interval_days: 90
steps:
  - kind: manual
    title: Cleanse the scalp and apply the serum
    duration_s: 300
  - kind: delivery
    zone: frontal
    duration_s: 600
    waveform: biphasic_square
    amplitude_v: 40
    amplitude_max_v: 60
    pulse_width_us: 500
    frequency_hz: 50
    burst: {{on_ms: 500, off_ms: 500}}
    ramp_up_s: {ramp_up_s}
    ramp_down_s: 2
    current_limit_ma: 6.0
  - kind: delivery
    zone: crown
    duration_s: 600
    waveform: biphasic_square
    amplitude_v: 40
    amplitude_max_v: 60
    pulse_width_us: 500
    frequency_hz: 50
    ramp_up_s: 10
    ramp_down_s: 2
    current_limit_ma: 6.0
aftercare:
  - Do not wash the hair for 48 hours.
"""


def protocol_text(
    status: str = "approved", *, id: str = "aga-test", version: int = 1, ramp_up_s: int = 10
) -> str:
    approval = (
        "approved_by: Head technician\napproved_on: 2026-01-15\n" if status == "approved" else ""
    )
    return PROTOCOL_YAML.format(
        id=id, version=version, status=status, approval=approval, ramp_up_s=ramp_up_s
    )


@pytest.fixture
def write_protocol(tmp_path: Path) -> Any:
    """``write_protocol(name, text)`` writes a protocol file into tmp_path and returns its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


def _parser() -> argparse.ArgumentParser:
    """The real ``epm`` parser (a ``--data-dir`` before the command included)."""
    from controller.cli import build_parser

    return build_parser()


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    """``cli(*argv) -> (exit_code, stdout, stderr)`` for the records and approve commands."""

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            args = _parser().parse_args(list(argv))
        except SystemExit as exc:
            captured = capsys.readouterr()
            return int(exc.code or 0), captured.out, captured.err
        module = cmd_records if args.command == "records" else cmd_approve
        code = module.run(args)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def drop_triggers(conn: sqlite3.Connection) -> None:
    """Drop every trigger of a records database, as someone editing it behind epm's back would."""
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
    for name in names:
        conn.execute(f'DROP TRIGGER "{name}"')
