"""The records screens: list, filter, details, export, verify."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.content import Content
from textual.widgets import DataTable, Input, Label, Static, TabbedContent

from controller.records import RecordStore
from controller.ui.technician.choice_dialog import ChoiceDialog
from controller.ui.technician.record_detail import RecordDetailScreen
from controller.ui.technician.records import RecordsScreen
from controller.ui.technician.telemetry_plot import TelemetryPlot
from tests.ui.test_library_harness import FixedClock, TechApp, open_store, seed_sessions, wait_for


def text_of(widget: Static) -> str:
    content = widget.content
    return content.plain if isinstance(content, Content) else str(content)


def table_rows(table: DataTable[Any]) -> list[list[str]]:
    return [
        [getattr(c, "plain", str(c)) for c in table.get_row_at(i)] for i in range(table.row_count)
    ]


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC, so the shown times are the same on every machine."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


@pytest.fixture
def seeded(tmp_path: Path, utc: None) -> Iterator[tuple[RecordStore, dict[str, int]]]:
    clock = FixedClock()
    with open_store(tmp_path / "data", clock) as store:
        yield store, seed_sessions(store, clock)


def records_app(store: RecordStore) -> TechApp:
    return TechApp(store, Path("."), start=lambda app: RecordsScreen(store))


async def open_records(pilot: Any) -> RecordsScreen:
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, RecordsScreen))
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.loads >= 1)
    return screen


async def test_lists_sessions_newest_first_with_sim_marker(
    seeded: tuple[RecordStore, dict[str, int]],
) -> None:
    store, _ = seeded
    async with records_app(store).run_test(size=(80, 24)) as pilot:
        screen = await open_records(pilot)
        rows = table_rows(screen.query_one("#records-table", DataTable))
        assert rows == [
            ["2026-03-09 12:08", "C-0107", "aga-early-scalp v3", "completed", "5:00/5:00", ""],
            ["2026-03-03 12:07", "C-0042", "aga-early-scalp v3", "stopped", "1:01/5:00", " SIM "],
            ["2026-03-02 12:00", "C-0042", "aga-early-scalp v3", "completed", "5:00/5:00", ""],
        ]
        count = text_of(screen.query_one("#records-count", Label))
        assert count.startswith("3 session(s); 1 marked SIM ran on the simulator")


async def test_filter_by_client_and_date_range(
    seeded: tuple[RecordStore, dict[str, int]],
) -> None:
    store, _ = seeded
    async with records_app(store).run_test(size=(80, 24)) as pilot:
        screen = await open_records(pilot)
        table = screen.query_one("#records-table", DataTable)
        await pilot.press("f")
        assert screen.query_one("#filter-client", Input).has_focus
        await pilot.press(*"0107", "enter")
        await wait_for(pilot, lambda: [r[1] for r in table_rows(table)] == ["C-0107"])
        assert table.has_focus

        screen.query_one("#filter-client", Input).value = "c-00"  # part of a code, any case
        screen.query_one("#filter-since", Input).value = "2026-03-03"
        screen.query_one("#filter-until", Input).value = "2026-03-03"
        screen.apply_filter()
        await wait_for(pilot, lambda: [r[0] for r in table_rows(table)] == ["2026-03-03 12:07"])

        screen.query_one("#filter-client", Input).value = "nobody"
        screen.apply_filter()
        await wait_for(pilot, lambda: table.row_count == 0)
        assert text_of(screen.query_one("#records-count", Label)) == "No sessions match."
        assert screen.check_action("open", ()) is None
        assert screen.check_action("export", ()) is None

        # A mistyped date is explained and ignored; the valid end of the range still applies.
        screen.query_one("#filter-client", Input).value = ""
        screen.query_one("#filter-since", Input).value = "2026-13-01"
        screen.query_one("#filter-until", Input).value = "2026-03-02"
        screen.apply_filter()
        problem = screen.query_one("#records-filter-problem", Static)
        await wait_for(pilot, lambda: "not a date" in text_of(problem))
        assert "From '2026-13-01' is not a date: write it as YYYY-MM-DD" in text_of(problem)
        assert problem.display
        await wait_for(pilot, lambda: [r[0] for r in table_rows(table)] == ["2026-03-02 12:00"])
        screen.query_one("#filter-since", Input).value = "2026-03-05"
        screen.query_one("#filter-until", Input).value = ""
        screen.apply_filter()
        await wait_for(pilot, lambda: [r[1] for r in table_rows(table)] == ["C-0107"])
        assert not problem.display


async def test_details_show_fields_steps_events_and_telemetry(
    seeded: tuple[RecordStore, dict[str, int]],
) -> None:
    store, ids = seeded
    async with records_app(store).run_test(size=(80, 24)) as pilot:
        screen = await open_records(pilot)
        table = screen.query_one("#records-table", DataTable)
        table.move_cursor(row=2)  # the oldest: completed, with telemetry
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, RecordDetailScreen))
        detail = pilot.app.screen
        assert detail.session_id == ids["completed"]
        summary = text_of(detail.query_one("#detail-fields", Static))
        for expected in (
            "Client:           C-0042 (Alex Example)",
            "aga-early-scalp v3 — Early androgenetic alopecia, scalp",
            "LOT-2026-117",
            "Outcome:          completed",
            "yes  Consultation done and scalp examined?",
            "no   Active scalp infection or open wounds in the treatment area?",
            "Client comfortable at 45 V.",
            "1 hold(s), 1 alarm(s)",
        ):
            assert expected in summary
        assert not detail.query("#detail-sim")

        # Every tab's content is there (tabs 2 and 3 read without switching to them).
        steps = table_rows(detail.query_one("#detail-steps", DataTable))
        assert steps == [
            ["1", "manual", "—", "2:00", "2:00", "—", "done"],
            ["2", "delivery", "frontal", "5:00", "5:00", "1 (0:12)", "completed"],
        ]
        events = table_rows(detail.query_one("#detail-events", DataTable))
        assert [e[1] for e in events][:3] == ["session_started", "step_start", "step_end"]
        assert ["12:02:00", "alarm_raised", "medium contact_lost: No skin contact"] in events
        assert events[-1][1:] == ["note", "Client comfortable at 45 V."]
        # 4 shows the telemetry, plotted, with what it shows focused.
        await pilot.press("4")
        await wait_for(pilot, lambda: detail.query_one(TabbedContent).active == "telemetry")
        assert detail.query_one("#detail-telemetry").has_focus
        plot = detail.query_one(TelemetryPlot)
        rendered = plot.render().plain
        assert "Amplitude (V)  min 0.0  max 40.0" in rendered
        assert "Current (mA)  min 0.0  max 7.0" in rendered  # the one-sample spike survives
        assert "Impedance (kΩ)  min 2.0  max 60.0  log scale" in rendered
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen)


async def choose_export(pilot: Any, screen: Any, choice: str) -> list[Path]:
    before = list(screen.last_export)
    await pilot.press("x")
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChoiceDialog))
    await pilot.press(choice)
    await wait_for(pilot, lambda: screen.last_export != before)
    return [Path(p) for p in screen.last_export]


async def test_simulated_session_detail_exports_verifies_and_unknown_ids_are_explained(
    seeded: tuple[RecordStore, dict[str, int]],
) -> None:
    store, ids = seeded
    app = TechApp(store, Path("."), start=lambda a: RecordDetailScreen(store, ids["simulated"]))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RecordDetailScreen))
        detail = app.screen
        sim = detail.query_one("#detail-sim", Label)
        assert text_of(sim) == "*** SIMULATED SESSION (device SIM-000001): not a real treatment ***"
        steps = table_rows(detail.query_one("#detail-steps", DataTable))
        assert steps[1][0] == "2"
        assert steps[1][-1] == "skipped: client asked to skip the frontal zone"
        assert steps[2][-1] == "stopped"
        assert "No telemetry" in detail.query_one(TelemetryPlot).render().plain

        paths = await choose_export(pilot, detail, "2")
        assert len(paths) == 4 and all(p.exists() for p in paths)
        with next(p for p in paths if p.name.endswith("-session.csv")).open() as f:
            (row,) = list(csv.DictReader(f))
        assert row["simulated"] == "true" and row["outcome"] == "stopped"
        await pilot.press("v")
        await wait_for(pilot, lambda: detail.verify_report is not None)
        assert detail.verify_report.ok

        unknown = RecordDetailScreen(store, 999)
        app.push_screen(unknown)
        await wait_for(pilot, lambda: unknown.query("#detail-error"))
        message = text_of(unknown.query_one("#detail-error", Static))
        assert "Session 999 cannot be shown" in message and "epm records list" in message
        assert unknown.check_action("export", ()) is None


async def test_export_json_and_csv_to_the_exports_folder(
    seeded: tuple[RecordStore, dict[str, int]],
) -> None:
    store, ids = seeded
    exports = Path(store.data_dir) / "exports"
    async with records_app(store).run_test(size=(80, 24)) as pilot:
        screen = await open_records(pilot)
        # Cancelling writes nothing.
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, ChoiceDialog))
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.screen is screen)
        assert "cancelled" in text_of(screen.query_one("#records-status", Static))
        assert not exports.exists() or not any(exports.iterdir())

        screen.query_one("#records-table", DataTable).move_cursor(row=1)  # the simulated one
        (json_path,) = await choose_export(pilot, screen, "1")
        assert json_path.parent == exports
        stamp = store.now()[:19].replace("-", "").replace(":", "").replace("T", "-")
        assert json_path.name == f"session-{ids['simulated']}-{stamp}.json"
        document = json.loads(json_path.read_text())
        assert document["format"] == "epm-records-export/1"
        assert [s["session"]["id"] for s in document["sessions"]] == [ids["simulated"]]
        assert document["sessions"][0]["simulated"] is True
        assert stat.S_IMODE(json_path.stat().st_mode) == 0o600
        status = text_of(screen.query_one("#records-status", Static))
        chain = document["chain"]
        assert status == (
            f"Exported to {json_path}; chain head {chain['head_hash']}, {chain['events']} events "
            "(verified)"
        )
        anchor = json.loads((json_path.parent.parent / "chain-anchor.json").read_text())
        assert (anchor["head"], anchor["events"]) == (chain["head_hash"], chain["events"])

        # The same export again does not overwrite the first one.
        before = screen.last_export
        screen.export([ids["simulated"]], "json")
        await wait_for(pilot, lambda: screen.last_export != before)
        (again,) = [Path(p) for p in screen.last_export]
        assert again != json_path and again.name.endswith("-2.json") and json_path.exists()

        before = screen.last_export
        screen.export([ids["simulated"]], "csv")
        await wait_for(pilot, lambda: screen.last_export != before)
        tables = [Path(p) for p in screen.last_export]
        assert sorted(p.name.rsplit("-", 1)[1] for p in tables) == [
            "events.csv",
            "session.csv",
            "steps.csv",
            "telemetry.csv",
        ]
        assert f"Exported 4 files to {exports}" in text_of(
            screen.query_one("#records-status", Static)
        )

        (all_csv,) = await choose_export(pilot, screen, "4")
        with all_csv.open() as f:
            rows = list(csv.DictReader(f))
        assert [int(r["id"]) for r in rows] == sorted(ids.values())  # oldest first
        assert [r["simulated"] for r in rows] == ["false", "true", "false"]


async def test_verify_reports_intact_then_tampered(
    seeded: tuple[RecordStore, dict[str, int]],
) -> None:
    store, ids = seeded
    async with records_app(store).run_test(size=(80, 24)) as pilot:
        screen = await open_records(pilot)
        await pilot.press("v")
        await wait_for(pilot, lambda: screen.verify_report is not None)
        assert screen.verify_report is not None and screen.verify_report.ok
        assert text_of(screen.query_one("#records-status", Static)).startswith("event log intact")

        conn = sqlite3.connect(store.path, isolation_level=None)
        try:
            conn.execute("DROP TRIGGER events_no_update")
            conn.execute("UPDATE events SET data = '{\"notes\": \"edited\"}' WHERE kind = 'note'")
        finally:
            conn.close()
        screen.verify_report = None
        await pilot.press("v")
        await wait_for(pilot, lambda: screen.verify_report is not None)
        assert not screen.verify_report.ok
        status = text_of(screen.query_one("#records-status", Static))
        assert status.startswith("event log TAMPERED at event")
        assert f"(session {ids['completed']})" in status and "hash mismatch" in status
