"""``epm run --headless`` in process: JSON lines, the summary, and exit codes 0, 2, 4 and 5
(3, SIGINT and SIGKILL are in tests/integration/test_headless_signals.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.cli import main
from controller.records import RecordStore
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
    after_trouble = phases[phases.index("fault" if exit_code == 4 else "recovery") :]
    assert "delivering" not in after_trouble  # never resumed
