"""``epm run --headless`` as a separate process: SIGINT or SIGTERM stops with a ramp-down
(exit 3), a second one of either sends ESTOP (recorded; the run exits promptly), and SIGKILL at
any moment leaves a record that the next start marks interrupted with every event up to the
kill."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.cli import main
from controller.records import RecordStore
from tests.integration.helpers import protocol_path

ROOT = Path(__file__).resolve().parents[2]


class Child:
    """``epm run --headless`` in a subprocess, its JSON lines read by a daemon thread."""

    def __init__(self, *argv: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "controller", "run", "--headless", *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[dict[str, Any]] = []
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="test-child-reader", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.strip():
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def wait_line(
        self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        """The first (new) line that satisfies ``predicate``; fails after ``timeout`` s."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no such line within {timeout} s; got {self.lines}") from None
            if line is None:
                raise AssertionError(f"the run ended first: {self.lines}, {self.stderr()}")
            self.lines.append(line)
            if predicate(line):
                return line

    def finish(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        while True:
            line = self._queue.get_nowait() if not self._queue.empty() else None
            if line is None:
                break
            self.lines.append(line)
        return code

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def child() -> Iterator[Callable[..., Child]]:
    made: list[Child] = []

    def start(*argv: str) -> Child:
        c = Child(*argv)
        made.append(c)
        return c

    yield start
    for c in made:
        c.close()


def _argv(data: Path, protocol: str, speed: str) -> list[str]:
    return [
        "--protocol",
        str(protocol_path(protocol)),
        "--client",
        "C-0042",
        "--data-dir",
        str(data),
        "--checklist-confirmed",
        "--sim-speed",
        speed,
    ]


def _delivering(line: dict[str, Any]) -> bool:
    return line["event"] == "progress" and line["zone_delivered_ms"] > 0


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_sigint_or_sigterm_stops_with_a_ramp_down_and_exits_3(
    child: Callable[..., Child], tmp_path: Path, signum: signal.Signals
) -> None:
    run = child(*_argv(tmp_path / "data", "one-zone.yaml", "20"))
    run.wait_line(_delivering)
    run.proc.send_signal(signum)
    assert run.finish() == 3
    phases = [line["phase"] for line in run.lines if line["event"] == "state"]
    assert phases[-2:] == ["stopping", "finished"]
    summary = run.lines[-1]
    assert summary["event"] == "summary" and summary["outcome"] == "stopped"
    assert summary["exit_code"] == 3 and signum.name in summary["reason"]
    assert "expected_serial" not in summary and "found_serial" not in summary
    with RecordStore.open(tmp_path / "data", exclusive=False) as store:
        sid = summary["session_id"]
        assert store.get_session(sid).outcome == "stopped"
        (step,) = store.steps(sid)
        assert step.outcome == "stopped" and 0 < step.delivered_ms < step.planned_ms
        sent = [e.data["command"] for e in store.events(sid) if e.kind == "command_sent"]
        assert sent[-1] == "STOP"
        assert not [e for e in store.events(sid) if e.kind == "estop"]


def _stopping(line: dict[str, Any]) -> bool:
    return bool(line["event"] == "state" and line["phase"] == "stopping")


@pytest.mark.parametrize(
    ("first", "second", "wait_for_the_first"),
    [
        (signal.SIGTERM, signal.SIGINT, False),
        (signal.SIGINT, signal.SIGTERM, False),
        # Two SIGINTs sent back to back can arrive as one (a pending signal is not queued
        # twice, by the kernel or by Python): the second follows the first's ramped stop.
        (signal.SIGINT, signal.SIGINT, True),
    ],
    ids=["SIGTERM-SIGINT", "SIGINT-SIGTERM", "SIGINT-SIGINT"],
)
def test_a_second_interrupt_sends_an_emergency_stop_that_is_recorded_and_the_run_exits(
    child: Callable[..., Child],
    tmp_path: Path,
    first: signal.Signals,
    second: signal.Signals,
    wait_for_the_first: bool,
) -> None:
    run = child(*_argv(tmp_path / "data", "long-ramp.yaml", "5"))
    run.wait_line(_delivering)
    run.proc.send_signal(first)
    if wait_for_the_first:
        run.wait_line(_stopping)  # 10 s ramp-down at 5x: still ramping down
    run.proc.send_signal(second)
    assert run.finish(timeout=15.0) == 3  # promptly: no hang, no waiting out the ramp
    notice = next(line for line in run.lines if line.get("estop_sent") is not None)
    assert notice["event"] == "notice" and notice["estop_sent"] is True
    assert "emergency stop (ESTOP) sent" in notice["message"]
    summary = run.lines[-1]
    assert summary["event"] == "summary" and summary["outcome"] == "aborted"
    assert summary["exit_code"] == 3
    with RecordStore.open(tmp_path / "data", exclusive=False) as store:
        sid = summary["session_id"]
        assert store.get_session(sid).outcome == "aborted"
        estops = [e for e in store.events(sid) if e.kind == "estop"]
        assert [e.data["source"] for e in estops] == ["operator (second interrupt)"]
        assert estops[0].data["bytes_written"] is True


def test_sigkill_mid_session_leaves_a_record_the_next_start_marks_interrupted(
    child: Callable[..., Child], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "data"
    run = child(*_argv(data, "one-zone.yaml", "20"))
    run.wait_line(_delivering)
    announced = run.wait_line(lambda line: line["event"] == "progress" and line["t"] >= 2.0)
    os.kill(run.proc.pid, signal.SIGKILL)
    assert run.finish() == -signal.SIGKILL
    assert run.lines[-1]["event"] != "summary"

    with RecordStore.open(data, exclusive=False) as store:
        (session,) = store.list_sessions()
        assert session.outcome == "running" and session.simulated
        before = store.events(session.id)
        # Every event up to the kill is there, in order, and the chain is intact.
        kinds = [e.kind for e in before]
        assert kinds[:2] == ["session_started", "preflight"]
        commands = [(e.kind, e.data.get("command")) for e in before if e.kind.startswith("command")]
        assert commands[:4] == [
            ("command_sent", "CONFIGURE_STEP"),
            ("command_result", "CONFIGURE_STEP"),
            ("command_sent", "START"),
            ("command_result", "START"),
        ]
        assert any(e.kind == "state" and e.data["new"] == "delivering" for e in before)
        assert store.verify_chain().ok
        assert store.telemetry_summary(session.id).rows > 0
        assert announced["zone_delivered_ms"] > 0

    # The next start marks it interrupted (here a run that preflight then refuses).
    code = main(["run", "--headless", *_argv(data, "one-zone.yaml", "20"), "--zones", "nape"])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 2
    recovered = next(line for line in lines if line["event"] == "recovered")
    assert recovered["sessions"] == [session.id]
    with RecordStore.open(data, exclusive=False) as store:
        assert store.get_session(session.id).outcome == "interrupted"
        after = store.events(session.id)
        assert [e.id for e in after[: len(before)]] == [e.id for e in before]
        end = after[len(before)]
        assert end.kind == "session_end" and end.data["last_event"]["seq"] == before[-1].seq
        (step,) = store.steps(session.id)
        assert step.outcome == "interrupted"
        assert store.verify_chain().ok
