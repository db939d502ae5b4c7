"""``epm run --headless`` in process: JSON lines, the summary, and exit codes 0, 2, 4 and 5
(3, SIGINT, SIGTERM and SIGKILL are in tests/integration/test_headless_signals.py), and the
signal handler, the signal thread and the summary after another unit answered, each on its
own."""

from __future__ import annotations

import io
import json
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from controller.cli import main
from controller.records import RecordStore
from controller.session.headless import HeadlessOptions, JsonLines, _Runner, run_headless
from controller.session.model import Outcome
from tests.integration.helpers import protocol_path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]], str]:
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert all("event" in line for line in lines), out
    return code, lines, err


def _args(data_dir: Path, protocol: str = "two-zones.yaml", *extra: str) -> list[str]:
    return [
        "--headless",
        "--protocol",
        str(protocol_path(protocol)),
        "--client",
        "NEW-0007",
        "--data-dir",
        str(data_dir),
        *extra,
    ]


def test_a_headless_run_completes_reports_json_lines_and_exits_0(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    data = tmp_path / "data"
    code, lines, _ = _run(
        capsys, *_args(data, "two-zones.yaml", "--checklist-confirmed", "--sim-speed", "200")
    )
    assert code == 0
    events = [line["event"] for line in lines]
    assert events[0] == "start" and events[-1] == "summary"
    assert "progress" in events and "warning" in events
    phases = [line["phase"] for line in lines if line["event"] == "state"]
    assert phases[0] == "manual" and phases[-1] == "finished"
    assert {"place", "delivering"} <= set(phases)
    warning = next(line for line in lines if line["event"] == "warning")
    assert "5 min" in warning["message"]
    progress = next(line for line in lines if line["event"] == "progress")
    assert {"zone_delivered_ms", "session_planned_ms", "phase"} <= set(progress)
    summary = lines[-1]
    assert summary["outcome"] == "completed" and summary["exit_code"] == 0
    assert summary["simulated"] is True and summary["device_serial"].startswith("SIM-")
    assert [z["zone"] for z in summary["zones"]] == ["frontal", "crown"]
    for zone in summary["zones"]:
        assert abs(zone["delivered_ms"] - zone["planned_ms"]) <= 0.01 * zone["planned_ms"]
    with RecordStore.open(data, exclusive=False) as store:
        assert store.get_client("NEW-0007").code == "NEW-0007"  # an unknown client is created
        session = store.get_session(summary["session_id"])
        assert session.outcome == "completed" and session.simulated


def test_without_the_checklist_confirmed_the_run_is_refused_with_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, lines, _ = _run(capsys, *_args(tmp_path / "data", "two-zones.yaml"))
    assert code == 2
    assert lines[-1]["event"] == "summary" and lines[-1]["outcome"] == "refused"
    assert "--checklist-confirmed" in lines[-1]["reason"]


def test_a_preflight_refusal_exits_2_with_the_reasons(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, lines, _ = _run(
        capsys,
        *_args(tmp_path / "data", "two-zones.yaml", "--checklist-confirmed", "--zones", "nape"),
    )
    assert code == 2
    summary = lines[-1]
    assert summary["outcome"] == "refused" and summary["exit_code"] == 2
    assert any(r.startswith("Zones: nape not in protocol") for r in summary["refusals"])


def test_run_without_headless_points_to_the_ui(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["run", "--protocol", "x.yaml", "--client", "C-1"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "the interactive session UI is `epm` itself" in err and "--headless" in err


@pytest.mark.parametrize(
    ("scenario", "outcome", "exit_code", "alarm"),
    [
        ("overcurrent-scenario.yaml", "faulted", 4, "device_fault"),
        ("restart-scenario.yaml", "interrupted", 5, "device_restarted"),
        ("restart-unplugged-scenario.yaml", "interrupted", 5, "device_restarted"),
        ("replug-scenario.yaml", "interrupted", 5, "unit_changed"),
    ],
)
def test_a_device_fault_exits_4_and_a_device_restart_exits_5_without_resuming(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    scenario: str,
    outcome: str,
    exit_code: int,
    alarm: str,
) -> None:
    port = f"sim://?speed=200&scenario={protocol_path(scenario)}"
    code, lines, _ = _run(
        capsys,
        *_args(tmp_path / "data", "one-zone.yaml", "--checklist-confirmed", "--port", port),
    )
    assert code == exit_code
    alarms = [line for line in lines if line["event"] == "alarm" and line["change"] == "raised"]
    raised = next(line for line in alarms if line["code"] == alarm)
    assert raised["priority"] == "high" and raised["message"]
    summary = lines[-1]
    assert summary["outcome"] == outcome and summary["exit_code"] == exit_code
    (zone,) = summary["zones"]
    assert 0 < zone["delivered_ms"] < zone["planned_ms"]
    phases = [line["phase"] for line in lines if line["event"] == "state"]
    trouble = {4: "fault", 5: "link_lost" if alarm == "unit_changed" else "recovery"}
    after_trouble = phases[phases.index(trouble[exit_code]) :]
    assert "delivering" not in after_trouble  # never resumed
    if alarm == "unit_changed":  # both serials, in the alarm and in the summary
        assert summary["expected_serial"] in raised["message"]
        assert summary["found_serial"] in raised["message"]
        assert summary["expected_serial"] != summary["found_serial"]


# --- the signal handler and the signal thread (no subprocess, no device) ----------------------


class FakeEngine:
    """Only what the runner's signal path may touch: ``emergency_stop``, and only on the signal
    thread. Anything else the handler did to the engine would raise AttributeError."""

    def __init__(self, test_thread: threading.Thread, sent: bool = True) -> None:
        self.test_thread = test_thread
        self.sent = sent
        self.estops: list[tuple[str, str]] = []  # (source, thread name)
        self.estopped = threading.Event()

    def add_listener(self, callback: Callable[[Any], None]) -> None:
        pass

    def emergency_stop(self, source: str) -> bool:
        if threading.current_thread() is self.test_thread:
            pytest.fail("emergency_stop ran on the thread that got the signal")
        self.estops.append((source, threading.current_thread().name))
        self.estopped.set()
        return self.sent


def _runner(engine: FakeEngine) -> tuple[_Runner, io.StringIO]:
    out = io.StringIO()
    return _Runner(engine, JsonLines(out)), out  # type: ignore[arg-type]


def _watcher_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "epm-headless-signals"]


def test_the_signal_handler_only_counts_the_signal_and_sets_the_event() -> None:
    engine = FakeEngine(threading.current_thread())
    runner, out = _runner(engine)

    runner.on_signal(signal.SIGTERM, None)
    assert runner.interrupts == 1 and runner._signalled.is_set()
    runner.on_signal(signal.SIGINT, None)  # a second interrupt: still nothing but counting
    assert runner.interrupts == 2 and runner._signalled.is_set()
    assert engine.estops == [] and runner.notices.empty() and out.getvalue() == ""

    # The signal thread does the rest: ESTOP on its own thread, a notice, and a wake-up.
    runner.start_watcher()
    try:
        assert engine.estopped.wait(5.0), "the signal thread did not send ESTOP"
    finally:
        runner.stop_watcher()
    assert engine.estops == [("operator (second interrupt)", "epm-headless-signals")]
    assert runner.notices.get(timeout=5.0) is None  # wakes the loop for _decide
    (notice,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert notice["event"] == "notice" and notice["estop_sent"] is True
    assert not _watcher_threads()


@pytest.mark.parametrize("sent", [True, False], ids=["sent", "not-sent"])
def test_the_signal_thread_says_whether_the_estop_went_out(sent: bool) -> None:
    engine = FakeEngine(threading.current_thread(), sent=sent)
    runner, out = _runner(engine)
    runner.start_watcher()
    try:
        runner.on_signal(signal.SIGINT, None)
        assert runner.notices.get(timeout=5.0) is None  # the first: only the loop is woken
        assert engine.estops == []
        runner.on_signal(signal.SIGINT, None)
        assert engine.estopped.wait(5.0), "the signal thread did not send ESTOP"
    finally:
        runner.stop_watcher()
    (notice,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert notice["estop_sent"] is sent
    if sent:
        assert "ESTOP) sent to the device" in notice["message"]
    else:
        assert "could NOT be sent" in notice["message"]
        assert (
            "lift the handpiece" in notice["message"] and "switch the unit off" in notice["message"]
        )
    assert len(engine.estops) == 1 and not _watcher_threads()


def test_a_signal_that_interrupts_the_handler_is_counted_without_deadlocking() -> None:
    """Python runs a handler between two bytecodes, even inside another handler: one that
    came while the first was inside ``Event.set`` must not wait for the event's lock."""
    engine = FakeEngine(threading.current_thread())
    runner, _ = _runner(engine)

    class NestedSignalEvent(threading.Event):
        nested = False

        def set(self) -> None:
            with self._cond:  # type: ignore[attr-defined]  # as Event.set holds it
                if not self.nested:
                    self.nested = True
                    runner.on_signal(signal.SIGINT, None)  # a signal arrives here
            super().set()

    runner._signalled = NestedSignalEvent()
    caller = threading.Thread(target=runner.on_signal, args=(signal.SIGTERM, None), daemon=True)
    caller.start()
    caller.join(5.0)
    assert not caller.is_alive(), "the nested handler deadlocked on the event's lock"
    assert runner.interrupts == 2 and runner._signalled.is_set()


def test_sigint_and_sigterm_handlers_are_installed_for_the_run_and_restored() -> None:
    runner, _ = _runner(FakeEngine(threading.current_thread()))
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    with runner.signals():
        for signum in (signal.SIGINT, signal.SIGTERM):
            assert signal.getsignal(signum) == runner.on_signal
    assert {s: signal.getsignal(s) for s in before} == before


def test_the_summary_names_both_serials_when_another_unit_answered_and_exits_5() -> None:
    snap = SimpleNamespace(
        outcome=Outcome.INTERRUPTED,
        outcome_reason="another unit answered after a reconnect (expected SIM-000001, found "
        "SIM-000002); the session cannot continue on it",
        refusals=(),
        session_id=7,
        simulated=True,
        device=SimpleNamespace(serial="SIM-000001"),
        protocol_id="test-one-zone",
        client_code="C-0042",
        steps=(),
        aftercare=(),
        course=None,
        unit_change=("SIM-000001", "SIM-000002"),
    )

    class Engine(FakeEngine):
        def snapshot(self) -> SimpleNamespace:
            return snap

    runner, out = _runner(Engine(threading.current_thread()))
    assert runner._summary() == 5
    (summary,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert summary["event"] == "summary" and summary["outcome"] == "interrupted"
    assert summary["expected_serial"] == "SIM-000001" and summary["found_serial"] == "SIM-000002"
    assert summary["exit_code"] == 5


def test_a_refused_run_creates_no_records(tmp_path: Path) -> None:
    """A database is created only when a session is about to be recorded."""
    folder = tmp_path / "records"
    options = HeadlessOptions(
        protocol=str(tmp_path / "missing.yaml"),
        client="C-1",
        checklist_confirmed=True,
        data_dir=str(folder),
    )
    out = io.StringIO()
    assert run_headless(options, out) == 2
    assert "does not exist" in out.getvalue()
    assert not folder.exists()
