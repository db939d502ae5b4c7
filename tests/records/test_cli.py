"""``epm records`` and ``epm approve``: output, simulated markers and exit codes."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest

from controller.records import RecordStore
from controller.wire import Telemetry
from tests.records.conftest import begin, protocol_text


@pytest.fixture
def recorded(data_dir: Path) -> dict[str, int]:
    """A real completed session with a step and telemetry, and a simulated stopped one."""
    with RecordStore.open(data_dir) as store:
        store.get_or_create_client("C-0042", "Ann Example")
        real = begin(store)
        store.record_step_start(real, 1, kind="delivery", zone="frontal", planned_ms=600_000)
        store.add_telemetry(
            real, [Telemetry(t, 9, t, 3, 0, 1, t, 400, 2100, 1500, 330, 1) for t in range(250)]
        )
        store.record_step_end(real, 1, outcome="completed", delivered_ms=600_000)
        store.end_session(real, "completed", "all steps delivered")
        sim = begin(store, client_code="C-0077", device_serial="SIM-0001", serum_lot="")
        store.end_session(sim, "stopped", "demo")
    return {"real": real, "sim": sim}


def test_list_table_marks_simulated_sessions(cli: Any, data_dir: Path, recorded: Any) -> None:
    code, out, _ = cli("records", "list", "--data-dir", str(data_dir))
    assert code == 0
    header, first, second, summary = out.strip().splitlines()
    assert header.split()[:3] == ["ID", "SIM", "STARTED"]
    assert first.split()[0] == str(recorded["sim"]) and first.split()[1] == "SIM"
    assert second.split()[0] == str(recorded["real"]) and "SIM" not in second.split()[1]
    assert "1 marked SIM ran on the simulator and are not real treatments" in summary


def test_list_json_and_client_filter(cli: Any, data_dir: Path, recorded: Any) -> None:
    code, out, _ = cli("records", "list", "--format", "json", "--data-dir", str(data_dir))
    assert code == 0
    sessions = json.loads(out)
    assert {(s["id"], s["simulated"]) for s in sessions} == {
        (recorded["real"], False),
        (recorded["sim"], True),
    }
    code, out, _ = cli(
        "records", "list", "--client", "C-0077", "--format", "json", "--data-dir", str(data_dir)
    )
    assert [s["id"] for s in json.loads(out)] == [recorded["sim"]]


def test_list_since_and_a_bad_date(cli: Any, data_dir: Path, recorded: Any) -> None:
    code, out, _ = cli("records", "list", "--since", "2999-01-01", "--data-dir", str(data_dir))
    assert code == 0 and "no sessions recorded" in out
    code, _, err = cli("records", "list", "--since", "01/03/2026", "--data-dir", str(data_dir))
    assert code == 2 and "write it as YYYY-MM-DD" in err


def test_epm_home_is_used_when_no_data_dir_is_given(
    cli: Any, data_dir: Path, recorded: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("EPM_HOME", str(data_dir))
    code, out, _ = cli("records", "list", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 2


@pytest.mark.parametrize(
    "command",
    [["list"], ["show", "1"], ["verify"], ["export", "--all"], ["verify", "--format", "json"]],
)
def test_a_folder_with_no_records_is_said_so_and_never_created(
    cli: Any, tmp_path: Path, command: list[str]
) -> None:
    mistyped = tmp_path / "epm-dta"
    code, out, err = cli("records", *command, "--data-dir", str(mistyped))
    assert code == 1 and out == ""
    assert "no records here" in err and "does not exist" in err
    assert "verified" not in err
    assert not mistyped.exists()


def test_show_text(cli: Any, data_dir: Path, recorded: Any) -> None:
    code, out, _ = cli("records", "show", str(recorded["real"]), "--data-dir", str(data_dir))
    assert code == 0
    assert f"Session {recorded['real']}: completed (all steps delivered)" in out
    assert "client        C-0042 (Ann Example)" in out
    assert "simulated     no" in out
    assert "1.1 delivery frontal: completed, 600000 ms delivered of 600000 ms planned" in out
    assert "session_started" in out and "session_end" in out
    assert "Telemetry: 250 samples in 3 rows" in out
    assert "SIMULATED" not in out
    code, out, _ = cli("records", "show", str(recorded["sim"]), "--data-dir", str(data_dir))
    assert out.startswith("*** SIMULATED SESSION")
    assert "lot (not recorded)" in out


def test_show_json_and_unknown_id(cli: Any, data_dir: Path, recorded: Any) -> None:
    code, out, _ = cli(
        "records", "show", str(recorded["sim"]), "--format", "json", "--data-dir", str(data_dir)
    )
    data = json.loads(out)
    assert code == 0 and data["simulated"] is True and data["session"]["outcome"] == "stopped"
    code, _, err = cli("records", "show", "999", "--data-dir", str(data_dir))
    assert code == 1 and "no session has the id 999" in err
    code, _, err = cli("records", "show", "abc", "--data-dir", str(data_dir))
    assert code == 2 and "is not a session id" in err


def test_export_all_json_to_a_private_file(
    cli: Any, data_dir: Path, recorded: Any, tmp_path: Path
) -> None:
    target = tmp_path / "all.json"
    code, _, err = cli(
        "records", "export", "--all", "--output", str(target), "--data-dir", str(data_dir)
    )
    assert code == 0 and f"wrote {target}" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    doc = json.loads(target.read_text())
    assert doc["format"] == "epm-records-export/1"
    assert doc["chain"]["ok"] is True
    assert [(s["session"]["id"], s["simulated"]) for s in doc["sessions"]] == [
        (recorded["real"], False),
        (recorded["sim"], True),
    ]
    real = doc["sessions"][0]
    assert sum(r["n"] for r in real["telemetry_rows"]) == 250
    # The simulated session ended last: its session_end is the chain's head.
    assert doc["sessions"][1]["events"][-1]["hash"] == doc["chain"]["head_hash"]


def test_export_all_csv_has_one_row_per_session(cli: Any, data_dir: Path, recorded: Any) -> None:
    code, out, _ = cli("records", "export", "--all", "--format", "csv", "--data-dir", str(data_dir))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(int(r["id"]), r["simulated"]) for r in rows] == [
        (recorded["real"], "false"),
        (recorded["sim"], "true"),
    ]
    assert rows[0]["serum_lot"] == "LOT-2026-117"


def test_export_one_session_csv_to_four_files(
    cli: Any, data_dir: Path, recorded: Any, tmp_path: Path
) -> None:
    code, _, err = cli(
        "records", "export", str(recorded["real"]), "--format", "csv",
        "--output", str(tmp_path / "s.csv"), "--data-dir", str(data_dir),
    )  # fmt: skip
    assert code == 0
    tables = {}
    for name in ("session", "steps", "events", "telemetry"):
        path = tmp_path / f"s-{name}.csv"
        assert f"wrote {path}" in err
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        tables[name] = list(csv.DictReader(path.open()))
    assert len(tables["session"]) == 1 and tables["session"][0]["outcome"] == "completed"
    assert [r["zone"] for r in tables["steps"]] == ["frontal"]
    assert tables["events"][0]["kind"] == "session_started"
    assert sum(int(r["n"]) for r in tables["telemetry"]) == 250
    assert all(r["simulated"] == "false" for t in tables.values() for r in t)


def test_export_one_session_csv_to_stdout_in_sections(
    cli: Any, data_dir: Path, recorded: Any
) -> None:
    code, out, _ = cli(
        "records", "export", str(recorded["sim"]), "--format", "csv", "--data-dir", str(data_dir)
    )
    assert code == 0
    sections = [line for line in out.splitlines() if line.startswith("# ")]
    assert sections == ["# session", "# steps", "# events", "# telemetry", "# chain"]
    session_block = out.split("# steps")[0].splitlines()[1:]
    (row,) = list(csv.DictReader(io.StringIO("\n".join(session_block))))
    assert row["simulated"] == "true"


def test_export_needs_an_id_or_all(cli: Any, data_dir: Path, recorded: Any) -> None:
    code, _, err = cli("records", "export", "--data-dir", str(data_dir))
    assert code == 2 and "one of the arguments" in err
    code, _, err = cli("records", "export", "42", "--format", "csv", "--data-dir", str(data_dir))
    assert code == 1 and "no session has the id 42" in err


def test_verify_exit_codes(cli: Any, data_dir: Path, recorded: Any) -> None:
    code, out, _ = cli("records", "verify", "--data-dir", str(data_dir))
    assert code == 0 and "event log intact" in out
    raw = sqlite3.connect(data_dir / "records.sqlite3", isolation_level=None)
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("UPDATE events SET data = '{}' WHERE id = 3")
    raw.close()
    code, out, _ = cli("records", "verify", "--data-dir", str(data_dir))
    assert code == 1
    assert "TAMPERED at event 3" in out and "hash mismatch" in out
    code, out, _ = cli("records", "verify", "--format", "json", "--data-dir", str(data_dir))
    assert code == 1 and json.loads(out)["bad_event_id"] == 3


def test_records_on_a_newer_database_fail_clearly(cli: Any, data_dir: Path, recorded: Any) -> None:
    raw = sqlite3.connect(data_dir / "records.sqlite3")
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    code, _, err = cli("records", "list", "--data-dir", str(data_dir))
    assert code == 1 and "written by a newer epm" in err


# -- epm approve -----------------------------------------------------------------------------------


def test_approve_cli(cli: Any, data_dir: Path, write_protocol: Any) -> None:
    path = write_protocol("aga.yaml", protocol_text())
    code, out, _ = cli("approve", str(path), "--by", "Head Technician", "--data-dir", str(data_dir))
    assert code == 0
    assert out.startswith(f"approved: aga-test version 1 ({path})")
    assert "by      Head Technician" in out
    code, out, _ = cli("approve", str(path), "--by", "Head Technician", "--data-dir", str(data_dir))
    assert code == 0 and out.startswith("already approved")


def test_approve_shows_warnings_and_approves(cli: Any, data_dir: Path, write_protocol: Any) -> None:
    path = write_protocol("abrupt.yaml", protocol_text(ramp_up_s=1))
    code, out, err = cli("approve", str(path), "--by", "Tech", "--data-dir", str(data_dir))
    assert code == 0
    assert "warning:" in err and "ramp_up_s" in err
    assert "with 1 warning(s), shown above" in out


def test_approve_refuses_an_invalid_file(cli: Any, data_dir: Path, write_protocol: Any) -> None:
    path = write_protocol(
        "bad.yaml", protocol_text().replace("frequency_hz: 50", "frequency_hz: 0", 1)
    )
    code, out, err = cli("approve", str(path), "--by", "Tech", "--data-dir", str(data_dir))
    assert code == 1 and out == ""
    assert f"refused: {path} was not approved" in err
    assert "only a valid protocol file can be approved" in err
    assert "frequency_hz" in err


def test_approve_refuses_retired_and_draft_and_missing(
    cli: Any, data_dir: Path, write_protocol: Any, tmp_path: Path
) -> None:
    retired = write_protocol("retired.yaml", protocol_text("retired"))
    code, _, err = cli("approve", str(retired), "--by", "Tech", "--data-dir", str(data_dir))
    assert code == 1 and "retired protocol is never approved" in err
    draft = write_protocol("draft.yaml", protocol_text("draft"))
    code, _, err = cli("approve", str(draft), "--by", "Tech", "--data-dir", str(data_dir))
    assert code == 1 and "says `status: draft`" in err
    code, _, err = cli(
        "approve", str(tmp_path / "nope.yaml"), "--by", "T", "--data-dir", str(data_dir)
    )
    assert code == 1 and "no such file" in err
    code, _, err = cli("approve", str(retired), "--data-dir", str(data_dir))
    assert code == 2 and "--by" in err


def test_commands_are_registered_in_epm() -> None:
    from controller.cli import COMMANDS

    assert "approve" in COMMANDS and "records" in COMMANDS
