"""Command-line conventions of ``epm records export`` and ``epm approve``: an export never
overwrites a file or writes through a symlink without ``--force`` and never leaves half a file;
CSV cells cannot start a spreadsheet formula; ``--by`` must name someone and is compared with
the file's ``approved_by``."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import stat
from pathlib import Path
from typing import Any, TextIO

import pytest

from controller.records import RecordStore
from controller.records import export as export_module
from controller.records.approvals import approvals_for
from tests.records.conftest import begin, protocol_text


@pytest.fixture
def session_id(data_dir: Path) -> int:
    with RecordStore.open(data_dir) as store:
        sid = begin(store)
        store.end_session(sid, "completed", "all steps delivered")
    return sid


def _export(cli: Any, data_dir: Path, target: Path, *extra: str) -> tuple[int, str, str]:
    code, out, err = cli(
        "records", "export", "--all", "--output", str(target), "--data-dir", str(data_dir), *extra
    )
    return code, out, err


def _leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# -- export: existing files, symlinks, --force -------------------------------------------------


def test_export_refuses_to_overwrite_an_existing_file(
    cli: Any, data_dir: Path, session_id: int, tmp_path: Path
) -> None:
    target = tmp_path / "out" / "all.json"
    target.parent.mkdir()
    target.write_text("an earlier export\n")
    code, out, err = _export(cli, data_dir, target)
    assert code == 1 and out == ""
    assert f"{target} already exists" in err
    assert "--force" in err and "another name" in err
    assert target.read_text() == "an earlier export\n"
    assert _leftovers(target.parent, {"all.json"}) == []


def test_export_refuses_a_symlink_and_leaves_its_target_alone(
    cli: Any, data_dir: Path, session_id: int, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    os.chmod(victim, 0o644)
    link = tmp_path / "link.json"
    link.symlink_to(victim)
    code, _, err = _export(cli, data_dir, link)
    assert code == 1 and f"{link} already exists" in err and "--force" in err
    assert link.is_symlink() and victim.read_text() == "not yours\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644
    # A dangling symlink is refused too: nothing is created where it points.
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "nowhere.json")
    code, _, err = _export(cli, data_dir, dangling)
    assert code == 1 and "already exists" in err
    assert not (tmp_path / "nowhere.json").exists() and dangling.is_symlink()


def test_force_replaces_the_file_and_a_symlink_itself_never_its_target(
    cli: Any, data_dir: Path, session_id: int, tmp_path: Path
) -> None:
    target = tmp_path / "all.json"
    target.write_text("an earlier export\n")
    os.chmod(target, 0o644)
    code, _, err = _export(cli, data_dir, target, "--force")
    assert code == 0 and f"wrote {target}" in err
    assert json.loads(target.read_text())["format"] == "epm-records-export/1"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    victim = tmp_path / "victim.txt"
    victim.write_text("not yours\n")
    link = tmp_path / "link.csv"
    link.symlink_to(victim)
    code, _, _ = _export(cli, data_dir, link, "--format", "csv", "--force")
    assert code == 0
    assert not link.is_symlink() and link.is_file()
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    assert [r["id"] for r in csv.DictReader(link.open())] == [str(session_id)]
    assert victim.read_text() == "not yours\n"
    assert _leftovers(tmp_path, {"all.json", "victim.txt", "link.csv", "epm-data"}) == []


def test_a_new_export_file_is_created_0600_whatever_the_umask(
    cli: Any, data_dir: Path, session_id: int, tmp_path: Path
) -> None:
    old = os.umask(0o000)
    try:
        target = tmp_path / "all.csv"
        code, _, err = _export(cli, data_dir, target, "--format", "csv")
    finally:
        os.umask(old)
    assert code == 0 and f"wrote {target}" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [r["id"] for r in csv.DictReader(target.open())] == [str(session_id)]
    assert _leftovers(tmp_path, {"all.csv", "epm-data"}) == []


def test_one_session_csv_refuses_when_any_of_its_four_files_exists(
    cli: Any, data_dir: Path, session_id: int, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "s-events.csv").write_text("kept\n")
    argv = ("records", "export", str(session_id), "--format", "csv", "--output", str(out / "s.csv"))
    code, _, err = cli(*argv, "--data-dir", str(data_dir))
    assert code == 1 and f"{out / 's-events.csv'} already exists" in err and "--force" in err
    assert _leftovers(out, set()) == ["s-events.csv"]  # none of the other three was written
    assert (out / "s-events.csv").read_text() == "kept\n"
    code, _, err = cli(*argv, "--force", "--data-dir", str(data_dir))
    assert code == 0
    assert _leftovers(out, set()) == [
        f"s-{t}.csv" for t in ("events", "session", "steps", "telemetry")
    ]
    assert (out / "s-events.csv").read_text().startswith("simulated,session_id,id,seq")


def test_a_failed_export_leaves_no_half_file_and_keeps_the_old_one(
    cli: Any, data_dir: Path, session_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(sessions: Any, out: TextIO) -> None:
        out.write("id,simulated\n1,")
        out.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export_module, "write_sessions_csv", disk_full)
    target = tmp_path / "all.csv"
    code, _, err = _export(cli, data_dir, target, "--format", "csv")
    assert code == 1 and "No space left on device" in err and str(target) in err
    assert not target.exists()
    target.write_text("an earlier export\n")
    code, _, _ = _export(cli, data_dir, target, "--format", "csv", "--force")
    assert code == 1 and target.read_text() == "an earlier export\n"
    assert _leftovers(tmp_path, {"all.csv", "epm-data"}) == []


def test_export_into_a_missing_folder_is_an_error_not_a_traceback(
    cli: Any, data_dir: Path, session_id: int, tmp_path: Path
) -> None:
    code, _, err = _export(cli, data_dir, tmp_path / "nope" / "all.json")
    assert code == 1 and "epm records: error:" in err and "nope" in err


# -- CSV formula neutralising ----------------------------------------------------------------------


FORMULAS = {
    "client_name": '=HYPERLINK("http://evil.example","click")',
    "practitioner": "+cmd|' /C calc'!A0",
    "serum_lot": "-2+3",
    "notes": "@SUM(1+1)",
    "outcome_reason": "=1+1",
}


@pytest.fixture
def formulas(data_dir: Path) -> int:
    with RecordStore.open(data_dir) as store:
        store.get_or_create_client("-C1", FORMULAS["client_name"])
        sid = begin(
            store,
            client_code="-C1",
            practitioner=FORMULAS["practitioner"],
            serum_lot=FORMULAS["serum_lot"],
            device_boot_id=-5,
        )
        store.record_skip(sid, 1, "=cmd()", kind="delivery", zone="frontal")
        store.set_notes(sid, FORMULAS["notes"])
        store.end_session(sid, "stopped", FORMULAS["outcome_reason"])
    return sid


def test_csv_cells_that_would_start_a_formula_get_a_leading_quote(
    cli: Any, data_dir: Path, formulas: int
) -> None:
    code, out, _ = cli("records", "export", "--all", "--format", "csv", "--data-dir", str(data_dir))
    assert code == 0
    (row,) = list(csv.DictReader(io.StringIO(out)))
    for column, value in FORMULAS.items():
        assert row[column] == "'" + value, column
    assert row["client_code"] == "'-C1"
    assert row["device_boot_id"] == "-5"  # a number stays a number
    assert row["protocol_version"] == "3" and row["simulated"] == "false"
    assert row["checklist"].startswith("{")  # JSON cells are unchanged


def test_one_session_csv_tables_are_neutralised_too(
    cli: Any, data_dir: Path, formulas: int, tmp_path: Path
) -> None:
    target = tmp_path / "s.csv"
    argv = ("records", "export", str(formulas), "--format", "csv", "--output", str(target))
    code, _, _ = cli(*argv, "--data-dir", str(data_dir))
    assert code == 0
    (step,) = list(csv.DictReader((tmp_path / "s-steps.csv").open()))
    assert step["skip_reason"] == "'=cmd()"
    (session,) = list(csv.DictReader((tmp_path / "s-session.csv").open()))
    assert session["practitioner"] == "'" + FORMULAS["practitioner"]
    # JSON keeps the values as recorded: only CSV is read by spreadsheets.
    code, out, _ = cli("records", "export", str(formulas), "--data-dir", str(data_dir))
    assert json.loads(out)["sessions"][0]["session"]["practitioner"] == FORMULAS["practitioner"]


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        ("=A1", "'=A1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        (-3, -3),
        (-2.5, -2.5),
        (0, 0),
        (True, "true"),
        (None, ""),
        (["-a"], '["-a"]'),
    ],
)
def test_cell_rules(value: Any, cell: Any) -> None:
    assert export_module._cell(value) == cell


# -- epm approve --by --------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["", "   ", "\t"])
def test_approve_with_an_empty_by_is_a_usage_error_before_any_database(
    cli: Any, data_dir: Path, write_protocol: Any, by: str
) -> None:
    path = write_protocol("aga.yaml", protocol_text())
    code, out, err = cli("approve", str(path), "--by", by, "--data-dir", str(data_dir))
    assert code == 2 and out == ""
    assert "--by needs the approver's name" in err
    assert not data_dir.exists()


def test_approve_with_an_empty_by_through_epm_exits_2(
    data_dir: Path, write_protocol: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller.cli import main

    path = write_protocol("aga.yaml", protocol_text())
    with pytest.raises(SystemExit) as exc:
        main(["approve", str(path), "--by", " ", "--data-dir", str(data_dir)])
    assert exc.value.code == 2
    assert "--by needs the approver's name" in capsys.readouterr().err
    assert not data_dir.exists()


def test_approve_warns_when_by_differs_from_the_files_approved_by(
    cli: Any, data_dir: Path, write_protocol: Any
) -> None:
    path = write_protocol("aga.yaml", protocol_text())  # approved_by: Head technician
    code, out, err = cli("approve", str(path), "--by", "Dana Other", "--data-dir", str(data_dir))
    assert code == 0 and out.startswith("approved: aga-test version 1")
    assert (
        "warning: --by 'Dana Other' differs from the file's approved_by 'Head technician'; "
        "recorded approver is Dana Other"
    ) in err
    assert "by      Dana Other" in out
    with RecordStore.open(data_dir, exclusive=False) as store:
        assert [a.approved_by for a in approvals_for(store, "aga-test")] == ["Dana Other"]


def test_approve_by_matching_the_file_up_to_case_and_spaces_does_not_warn(
    cli: Any, data_dir: Path, write_protocol: Any
) -> None:
    path = write_protocol("aga.yaml", protocol_text())
    code, out, err = cli(
        "approve", str(path), "--by", "  head   TECHNICIAN ", "--data-dir", str(data_dir)
    )
    assert code == 0 and out.startswith("approved:")
    assert "differs" not in err and "warning" not in err


def test_a_refused_approval_creates_no_database(cli: Any, tmp_path: Path) -> None:
    import os

    pipe = tmp_path / "pipe.yaml"
    os.mkfifo(pipe)
    folder = tmp_path / "records"
    code, _, err = cli("approve", str(pipe), "--by", "Head technician", "--data-dir", str(folder))
    assert code == 1
    assert "not a regular file (a named pipe)" in err
    assert not folder.exists()


def test_data_dir_before_the_command_is_kept(tmp_path: Path, capsys: Any) -> None:
    """``epm --data-dir X records list`` used to drop X (the command's own --data-dir default
    overwrote it) and read the default folder instead."""
    from controller.cli import main

    data = tmp_path / "clinic"
    with RecordStore.open(data) as store:
        store.get_or_create_client("C-0001")
    assert main(["--data-dir", str(data), "records", "list"]) == 0
    assert main(["--data-dir", str(data), "config", "set", "clinic.name", "North"]) == 0
    assert (data / "config.yaml").exists()
    assert main(["records", "list", "--data-dir", str(data)]) == 0  # after, as documented
    capsys.readouterr()
    missing = tmp_path / "nowhere"
    assert main(["--data-dir", str(missing), "records", "list"]) == 1, "X is used, not ignored"


def test_records_kept_busy_by_another_writer_are_called_busy_not_tampered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening the records takes the write lock for a moment (the schema check). When another
    program holds it longer than the busy timeout, the message said the database "cannot be
    upgraded ... changed outside epm": a busy folder was reported as tampered evidence."""
    import sqlite3

    from controller.records import StoreLockedError
    from controller.records import db as db_module
    from controller.records.paths import database_path

    data = tmp_path / "clinic"
    RecordStore.open(data).close()
    monkeypatch.setattr(db_module, "BUSY_TIMEOUT_MS", 50)
    holder = sqlite3.connect(database_path(data), isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreLockedError) as caught:
            RecordStore.open(data, exclusive=False, create=False)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    message = str(caught.value)
    assert "busy" in message and "outside epm" not in message
    with RecordStore.open(data, exclusive=False, create=False):  # free again: opens
        pass
