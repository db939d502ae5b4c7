"""The app's background sync and the home screen's clinic-server line, against a real
PostgreSQL; and the line's wording (no server needed)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import psycopg
from textual.widgets import Static

from controller.records import RecordStore
from controller.records.sync_state import SyncState, read_state
from controller.server.schema import init_server
from controller.server.worker import SyncWorker
from controller.ui.app import create_app
from controller.ui.practitioner.sync_line import sync_line
from tests.records.conftest import begin
from tests.server.conftest import Run
from tests.ui.conftest import wait_for

NOW = dt.datetime(2026, 12, 4, 15, 30, tzinfo=dt.UTC)


def state(**changes: Any) -> SyncState:
    base = SyncState("clinic", 10, "x", (NOW - dt.timedelta(minutes=2)).isoformat(), 0, None, "")
    return SyncState(**{**base.__dict__, **changes})


def test_the_line_in_plain_words() -> None:
    assert sync_line(state(), NOW, None) == ""
    assert sync_line(state(), NOW, 7) == "Clinic server: synced 2 min ago."
    waiting = sync_line(state(waiting_sessions=3, waiting_events=40), NOW, 7)
    assert waiting == "Clinic server: synced 2 min ago; 3 sessions waiting to be sent."
    down = sync_line(
        state(
            failing_since=(NOW - dt.timedelta(minutes=50)).isoformat(),
            last_error="cannot connect to the clinic server: connection refused",
            waiting_sessions=1,
            waiting_events=9,
        ),
        NOW,
        7,
    )
    local = (NOW - dt.timedelta(minutes=50)).astimezone().strftime("%H:%M")
    assert down.startswith(f"Clinic server unreachable since {local} (cannot connect to")
    assert "this room keeps working — 1 session waiting to be sent, sent when it is back" in down
    never = sync_line(state(last_pull_at=None), NOW, 7)
    assert never.startswith("Clinic server: not synced yet.")
    assert "once it has synced" in never
    old = sync_line(state(last_pull_at=(NOW - dt.timedelta(days=8)).isoformat()), NOW, 7)
    assert "synced 8 days ago" in old and "Not synced for 8 days" in old and "refused" in old


def home_line(app: Any) -> str:
    return str(app.screen.query_one("#home-sync", Static).render())


async def test_the_app_syncs_in_the_background_and_the_home_screen_says_so(
    pg_url: str, tmp_path: Path, epm: Run
) -> None:
    init_server(pg_url)
    data = tmp_path / "room"
    assert epm("config", "set", "server.url", pg_url, "--data-dir", str(data))[0] == 0
    with RecordStore.open(data) as earlier:
        session_id = begin(earlier, device_serial="SIM-0001", serum_lot="")
        earlier.end_session(session_id, "completed")
    app = create_app(data_dir=data, connect_on_start=False)
    assert app.sync_worker is not None and app.store.offline_days == 7
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(
            pilot, lambda: home_line(app).startswith("Clinic server: synced"), what="a sync"
        )
        assert "Clinic server: synced just now." in home_line(app)
        assert read_state(app.store).waiting_events == 0
        station = app.store.station_id
    assert not app.sync_worker.running  # stopped with the app, before the records closed
    with psycopg.connect(pg_url) as conn:
        (held,) = conn.execute(
            "SELECT count(*) FROM events WHERE station_id = %s", (station,)
        ).fetchone()
    with RecordStore.open(data) as store:
        assert held == read_state(store).local_position


async def test_an_unreachable_server_is_named_and_the_room_keeps_working(
    tmp_path: Path, epm: Run
) -> None:
    data = tmp_path / "room"
    gone = f"postgresql://postgres@/nowhere?host={tmp_path}"
    assert epm("config", "set", "server.url", gone, "--data-dir", str(data))[0] == 0
    app = create_app(data_dir=data, connect_on_start=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "unreachable" in home_line(app), what="the failure")
        assert "this room keeps working" in home_line(app)
        assert app.screen.query_one("#btn-new").display  # nothing else changed


def test_the_worker_stops_promptly_and_retries_with_a_growing_wait(tmp_path: Path) -> None:
    with RecordStore.open(tmp_path / "room") as store:
        worker = SyncWorker(store, f"postgresql://postgres@/x?host={tmp_path}", every_s=0.01)
        worker.start()
        deadline = dt.datetime.now() + dt.timedelta(seconds=10)
        while worker.rounds < 2 and dt.datetime.now() < deadline:
            pass
        worker.stop()
        assert not worker.running and worker.rounds >= 2
        assert "cannot connect" in worker.last_error
        assert read_state(store).failing_since is not None
