"""Reports and handouts from the screens (issue 12, "where people reach them"): F5 / F6 on the
end screen, w / h in the records browser; into the data folder's reports/, path shown, never
overwriting, each written document recorded in the session's chain."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from controller.config import set_value
from controller.records import RecordStore
from controller.ui.shared.documents import free_name
from tests.ui.conftest import FakeEngine, make_app, press, wait_for
from tests.ui.test_truthful_text import (
    finished_snapshot,
    recorded_session,
    show_end,
    stepping_store,
)

__all__ = ["stepping_store"]


def chained(store: RecordStore, sid: int, kind: str) -> list[dict[str, Any]]:
    return [e.data for e in store.events(sid) if e.kind == kind]


async def test_f5_writes_the_report_into_reports_never_over_a_copy(
    stepping_store: RecordStore,
) -> None:
    store = stepping_store
    set_value(store.data_dir, "clinic.name", "Hairline Clinic Leeds")
    sid = recorded_session(store)
    engine = FakeEngine(finished_snapshot(sid))
    engine.store = store
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        end = await show_end(app, pilot, engine)
        await press(pilot, *"Client tolerated it well.")
        await press(pilot, "f5")
        await wait_for(pilot, lambda: len(end.written) == 1, what="the report", timeout=30)
        await press(pilot, "f5")
        await wait_for(pilot, lambda: len(end.written) == 2, what="a second copy", timeout=30)
        status = str(end.query_one("#end-notes-status").render())
    first, second = (w.result for w in end.written)
    assert first is not None and second is not None, [w.message for w in end.written]
    folder = Path(store.data_dir) / "reports"
    assert first.path == folder / f"session-{sid}-report.pdf"
    assert second.path == folder / f"session-{sid}-report-2.pdf", "never over the first"
    assert str(second.path) in status and "recorded in the session" in status
    events = chained(store, sid, "report_written")
    assert [e["sha256"] for e in events] == [first.sha256, second.sha256]
    assert hashlib.sha256(first.path.read_bytes()).hexdigest() == first.sha256
    assert first.path.stat().st_mode & 0o777 == 0o600
    assert store.get_session(sid).notes == "Client tolerated it well.", "notes saved first"


async def test_f6_says_why_a_handout_cannot_be_written(stepping_store: RecordStore) -> None:
    """This hand-made record holds no aftercare text (records made before it was kept): the
    screen says so instead of writing an empty handout."""
    sid = recorded_session(stepping_store)
    engine = FakeEngine(finished_snapshot(sid))
    app = make_app(stepping_store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        end = await show_end(app, pilot, engine)
        await press(pilot, "f6")
        await wait_for(pilot, lambda: len(end.written) == 1, what="the answer", timeout=30)
        status = str(end.query_one("#end-notes-status").render())
    (written,) = end.written
    assert written.result is None and "NOT written" in status
    assert "aftercare" in written.error.lower()
    assert chained(stepping_store, sid, "handout_given") == []
    assert not list((Path(stepping_store.data_dir) / "reports").glob("*handout*"))


async def test_the_records_browser_writes_the_selected_sessions_report(
    stepping_store: RecordStore,
) -> None:
    from controller.ui.technician.records import RecordsScreen

    sid = recorded_session(stepping_store)
    app = make_app(stepping_store)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        screen = RecordsScreen(stepping_store)
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.selected is not None, what="a session listed")
        await press(pilot, "w")
        await wait_for(pilot, lambda: len(screen.written) == 1, what="the report", timeout=30)
    (written,) = screen.written
    assert written.result is not None, written.message
    assert written.result.path.name == f"session-{sid}-report.pdf"
    assert [e["sha256"] for e in chained(stepping_store, sid, "report_written")] == [
        written.result.sha256
    ]


def test_free_names_count_up_past_anything_there(tmp_path: Path) -> None:
    (tmp_path / "session-7-report.pdf").write_bytes(b"x")
    (tmp_path / "session-7-report-2.pdf").symlink_to(tmp_path / "nowhere")  # dangling: taken
    assert free_name(tmp_path, 7, "report") == tmp_path / "session-7-report-3.pdf"
    assert free_name(tmp_path, 8, "report") == tmp_path / "session-8-report.pdf"
