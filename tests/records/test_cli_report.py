"""``epm records report`` (a session report, or with --handout the aftercare handout) and
``epm records course``: default file names, the configuration, never replacing a file, a
running session, records another epm keeps busy."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controller.records import RecordStore
from tests.records.conftest import FakeClock, FakeMonotonic, begin
from tests.records.report_helpers import page_size_pt, pdf_text, real_session


@pytest.fixture
def session_id(data_dir: Path) -> int:
    """One real completed session in ``data_dir`` (the store closed again, as after a day)."""
    clock = FakeClock()
    with RecordStore.open(data_dir, clock=clock, monotonic=FakeMonotonic()) as store:
        store.get_or_create_client("C-0042", "Ann Example")
        return real_session(store, clock)


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


def test_report_and_handout_default_names_and_never_replaced(
    cli: Any, data_dir: Path, session_id: int, in_tmp: Path
) -> None:
    code, out, err = cli("records", "report", str(session_id), "--data-dir", str(data_dir))
    assert code == 0, err
    report = in_tmp / f"session-{session_id}-report.pdf"
    assert report.exists() and f"wrote session-{session_id}-report.pdf (2 pages, A4)" in out
    assert "(report_written) of session" in out
    before = report.read_bytes()
    code, _, err = cli("records", "report", str(session_id), "--data-dir", str(data_dir))
    assert code == 1 and report.read_bytes() == before
    assert f"session-{session_id}-report.pdf already exists" in err and "--output" in err
    code, out, err = cli(
        "records", "report", str(session_id), "--handout", "--data-dir", str(data_dir)
    )
    assert code == 0, err
    assert (in_tmp / f"session-{session_id}-handout.pdf").exists() and "(1 page, A5)" in out
    code, _, _ = cli(
        "records", "report", str(session_id), "--output", "other.pdf", "--data-dir", str(data_dir)
    )
    assert code == 0 and (in_tmp / "other.pdf").exists()
    code, out, _ = cli("records", "verify", "--data-dir", str(data_dir))
    assert code == 0, out
    with RecordStore.open(data_dir, exclusive=False) as store:
        kinds = [e.kind for e in store.events(session_id)]
    assert kinds.count("report_written") == 2 and kinds.count("handout_given") == 1


def test_the_configuration_names_the_clinic_and_sets_the_paper(
    cli: Any, data_dir: Path, session_id: int, in_tmp: Path
) -> None:
    (data_dir / "config.yaml").write_text(
        "clinic:\n  name: Hairline Clinic Leeds\n  contact: 0113 496 0000\n"
        "station:\n  name: Room 2\nreport:\n  paper: Letter\n",
        encoding="utf-8",
    )
    code, _, err = cli("records", "report", str(session_id), "--data-dir", str(data_dir))
    assert code == 0, err
    report = in_tmp / f"session-{session_id}-report.pdf"
    assert page_size_pt(report) == (612, 792)
    text = pdf_text(report)
    assert "Hairline Clinic Leeds" in text and "Session report · Room 2" in text
    code, _, _ = cli("records", "report", str(session_id), "--handout", "--data-dir", str(data_dir))
    handout = in_tmp / f"session-{session_id}-handout.pdf"
    assert code == 0 and page_size_pt(handout) == (420, 595)
    assert "0113 496 0000" in pdf_text(handout)


def test_course_report(cli: Any, data_dir: Path, session_id: int, in_tmp: Path) -> None:
    code, out, err = cli(
        "records", "course", "C-0042", "aga-early-scalp", "--data-dir", str(data_dir)
    )
    assert code == 0, err
    path = in_tmp / "course-C-0042-aga-early-scalp.pdf"
    assert path.exists() and "wrote course-C-0042-aga-early-scalp.pdf" in out
    assert "Completed sessions that count: 1 of 6" in pdf_text(path)
    code, _, err = cli(
        "records", "course", "C-0042", "aga-early-scalp", "--data-dir", str(data_dir)
    )
    assert code == 1 and "already exists" in err
    code, _, err = cli("records", "course", "C-0042", "nothing", "--data-dir", str(data_dir))
    assert code == 1 and "has no session of protocol" in err


def test_a_running_or_unknown_session_gets_no_report(
    cli: Any, data_dir: Path, in_tmp: Path
) -> None:
    with RecordStore.open(data_dir) as store:
        sid = begin(store)
        code, _, err = cli("records", "report", str(sid), "--data-dir", str(data_dir))
        assert code == 1 and "still running" in err
        code, _, err = cli("records", "report", "99", "--data-dir", str(data_dir))
        assert code == 1 and "no session has the id 99" in err
    assert list(in_tmp.iterdir()) == []


def test_records_kept_busy_by_another_epm_are_said_so(
    cli: Any,
    data_dir: Path,
    session_id: int,
    in_tmp: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another process is in the middle of a write when the report's event is to be chained.
    holder = sqlite3.connect(data_dir / "records.sqlite3", isolation_level=None)
    record = RecordStore.record_document

    def busy_first(self: RecordStore, *args: Any) -> Any:
        self._wconn.execute("PRAGMA busy_timeout = 50")
        holder.execute("BEGIN IMMEDIATE")
        return record(self, *args)

    monkeypatch.setattr(RecordStore, "record_document", busy_first)
    try:
        code, _, err = cli("records", "report", str(session_id), "--data-dir", str(data_dir))
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.close()
    assert code == 1 and "busy" in err and "nothing was recorded" in err, err
    assert list(in_tmp.iterdir()) == []  # the report was not left behind unchained


def test_a_folder_that_cannot_be_written_is_said_so(
    cli: Any, data_dir: Path, session_id: int, in_tmp: Path
) -> None:
    code, _, err = cli(
        "records",
        "report",
        str(session_id),
        "--output",
        str(in_tmp / "missing" / "r.pdf"),
        "--data-dir",
        str(data_dir),
    )
    assert code == 1 and "could not write" in err
