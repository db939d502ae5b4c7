"""A closed standard output (``epm ... | head -2``) is never mistaken for success: every command
exits 141 (128 + SIGPIPE) without a traceback, and ``epm run --headless`` first ends the session
with the ramped stop, so the device is never left delivering for a reader that went away."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from controller.cli import EXIT_BROKEN_PIPE
from controller.records import RecordStore
from tests.integration.helpers import protocol_path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "protocols" / "library"


def _env(buffered: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    return env


def _into_a_closed_pipe(argv: list[str], buffered: bool) -> subprocess.CompletedProcess[str]:
    """Run ``epm argv`` with standard output to a pipe nobody reads (already closed)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "controller", *argv],
            cwd=ROOT,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(buffered),
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    with RecordStore.open(data) as store:
        store.get_or_create_client("C-0042")
    return data


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("command", ["validate", "records-list", "schema"])
def test_output_into_a_closed_pipe_exits_141_without_a_traceback(
    command: str, buffered: bool, recorded: Path
) -> None:
    argv = {
        "validate": ["validate", str(LIBRARY)],
        "records-list": ["records", "list", "--data-dir", str(recorded)],
        "schema": ["schema"],
    }[command]
    done = _into_a_closed_pipe(argv, buffered)
    assert done.returncode == EXIT_BROKEN_PIPE == 141, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr


def _headless(data: Path, buffered: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, "-m", "controller", "run", "--headless",
            "--protocol", str(protocol_path("one-zone.yaml")),
            "--client", "C-0042", "--data-dir", str(data),
            "--checklist-confirmed", "--sim-speed", "20",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(buffered),
    )  # fmt: skip


def _only_session(data: Path) -> tuple[Any, list[Any], list[Any]]:
    with RecordStore.open(data, exclusive=False) as store:
        (session,) = store.list_sessions()
        return session, store.steps(session.id), store.events(session.id)


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_headless_run_piped_into_head_2_stops_the_session_and_exits_141(
    tmp_path: Path, buffered: bool
) -> None:
    """``epm run --headless ... | head -2``: the reader leaves after two lines."""
    data = tmp_path / "data"
    proc = _headless(data, buffered)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        lines = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert lines[0]["event"] == "start"
        proc.stdout.close()
        code = proc.wait(60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
    assert code == EXIT_BROKEN_PIPE, err
    assert "standard output was closed" in err and "Traceback" not in err
    session, steps, _ = _only_session(data)
    assert session.ended_at is not None
    assert session.outcome not in ("running", "completed")
    assert all(s.outcome not in (None, "running", "completed") for s in steps)


def test_headless_run_whose_reader_leaves_mid_delivery_ramps_down_and_exits_141(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    proc = _headless(data, buffered=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        while True:
            line = proc.stdout.readline()
            assert line, "the run ended before it delivered"
            event = json.loads(line)
            if event["event"] == "progress" and event["zone_delivered_ms"] > 0:
                break
        proc.stdout.close()
        code = proc.wait(60)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
    assert code == EXIT_BROKEN_PIPE, err
    session, steps, events = _only_session(data)
    assert session.outcome == "stopped"
    assert "standard output was closed" in (session.outcome_reason or "")
    (step,) = steps
    assert step.outcome == "stopped" and 0 < step.delivered_ms < step.planned_ms
    sent = [e.data["command"] for e in events if e.kind == "command_sent"]
    assert sent[-1] == "STOP"  # the ramped stop, as for SIGINT
    assert not [e for e in events if e.kind == "estop"]
    assert events[-1].kind == "session_end"


def test_headless_run_into_an_already_closed_pipe_starts_no_session_and_exits_141(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    argv = ["run", "--headless", "--protocol", str(protocol_path("one-zone.yaml"))]
    argv += ["--client", "C-0042", "--data-dir", str(data), "--checklist-confirmed"]
    done = _into_a_closed_pipe(argv, buffered=True)
    assert done.returncode == EXIT_BROKEN_PIPE, done.stderr
    assert "standard output was closed" in done.stderr and "Traceback" not in done.stderr
    with RecordStore.open(data, exclusive=False) as store:
        assert store.list_sessions() == []
