"""``epm log``: a readable story, --since, --level, --format json, -n, the rotated files in
order, a missing log, damaged lines skipped and counted, usage errors (exit 2)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller import servicelog
from controller.cli import main

NOW = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


def _line(minutes_ago: float, level: str, msg: str, **fields: object) -> str:
    when = NOW - dt.timedelta(minutes=minutes_ago)
    entry = {"ts": when.isoformat(timespec="milliseconds"), "level": level, "area": "link"}
    return json.dumps({**entry, "msg": msg, **fields})


@pytest.fixture
def written(data_dir: Path) -> Path:
    """A log with a rotated file before it, as epm leaves it."""
    path = servicelog.log_path(data_dir)
    path.parent.mkdir()
    (path.parent / "service.jsonl.1").write_text(
        _line(120, "INFO", "connected on sim://", serial="SIM-000001") + "\n"
        "{not json at all\n" + _line(90, "WARNING", "link lost") + "\n"
    )
    path.write_text(
        _line(30, "INFO", "session 4 started", session=4)
        + "\n"
        + _line(20, "ERROR", "device fault: OVERCURRENT", faults=["OVERCURRENT"], dseq=9)
        + "\n"
        + '{"ts": "yesterday", "level": "INFO", "area": "x", "msg": "bad time"}\n'
        + _line(10, "INFO", "session 4 ended: faulted", outcome="faulted")
        + "\n"
        + '{"ts": "2026-03-02T11:5'  # cut short by a crash
    )
    return data_dir


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Local time = UTC, so the times printed do not depend on the machine."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def _epm_log(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], str]:
    code = main(["log", *argv])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err


def test_the_log_is_read_oldest_first_backups_included_damaged_lines_counted(
    written: Path, capsys: pytest.CaptureFixture[str], utc: None
) -> None:
    code, lines, err = _epm_log(capsys, "--data-dir", str(written))
    assert code == 0
    assert lines == [
        "2026-03-02 10:00:00.000 INFO     link     connected on sim://  serial=SIM-000001",
        "2026-03-02 10:30:00.000 WARNING  link     link lost",
        "2026-03-02 11:30:00.000 INFO     link     session 4 started  session=4",
        "2026-03-02 11:40:00.000 ERROR    link     device fault: OVERCURRENT  dseq=9",
        "2026-03-02 11:50:00.000 INFO     link     session 4 ended: faulted",
    ]
    assert "3 line(s) were not log entries" in err


def test_level_since_lines_and_json(written: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, lines, _ = _epm_log(capsys, "--data-dir", str(written), "--level", "WARNING")
    assert [line.split(None, 4)[-1] for line in lines] == [
        "link lost",
        "device fault: OVERCURRENT  dseq=9",
    ]
    since = (NOW - dt.timedelta(minutes=25)).isoformat()
    _, lines, _ = _epm_log(capsys, "--data-dir", str(written), "--since", since)
    assert len(lines) == 2 and lines[0].endswith("device fault: OVERCURRENT  dseq=9")
    _, lines, _ = _epm_log(capsys, "--data-dir", str(written), "-n", "2", "--format", "json")
    raw = servicelog.log_path(written).read_text().splitlines()
    assert lines == [raw[1], raw[3]]  # the lines exactly as written
    code, lines, err = _epm_log(capsys, "--data-dir", str(written), "--since", "10m")
    assert code == 0 and lines == []  # all older than ten minutes from now
    assert "no entries" in err and "since" in err


def test_no_log_is_exit_1_with_where_it_looked(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines, err = _epm_log(capsys, "--data-dir", str(data_dir))
    assert code == 1 and lines == []
    assert f"no service log in {data_dir}" in err and "--data-dir" in err
    assert not (data_dir / "logs").exists()  # reading creates nothing


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [("--since", "last tuesday", "is not a time"), ("--level", "loud", "is not a level")],
)
def test_a_bad_since_or_level_is_a_usage_error(
    written: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, says: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["log", "--data-dir", str(written), option, value])
    assert exit_info.value.code == 2
    assert says in capsys.readouterr().err


def test_since_accepts_iso_times_clock_times_spans_and_words() -> None:
    now = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)
    parse = servicelog.parse_since
    assert parse("10m", now) == now - dt.timedelta(minutes=10)
    assert parse("2h", now) == now - dt.timedelta(hours=2)
    assert parse("90s", now) == now - dt.timedelta(seconds=90)
    assert parse("3 days", now) == now - dt.timedelta(days=3)
    assert parse("1w", now) == now - dt.timedelta(weeks=1)
    assert parse("2026-03-01T08:00:00Z", now) == dt.datetime(2026, 3, 1, 8, tzinfo=dt.UTC)
    local_midnight = parse("today", now)
    assert local_midnight.hour == 0 and local_midnight.tzinfo is not None
    assert parse("yesterday", now) < local_midnight
    assert parse("9:05", now).strftime("%H:%M") == "09:05"
    assert parse("2026-03-01", now).date() == dt.date(2026, 3, 1)
    with pytest.raises(ValueError, match="is not a time"):
        parse("soon", now)
    assert servicelog.parse_level("warn") == servicelog.parse_level("WARNING") == 30


def test_epm_log_into_a_closed_pipe_exits_141_without_a_traceback(written: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "controller", "log", "--data-dir", str(written)],
            cwd=Path(__file__).resolve().parents[2],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr
