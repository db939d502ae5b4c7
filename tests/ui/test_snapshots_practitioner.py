"""Snapshots of the practitioner's screens at 80×24 and 120×40: home, run (delivering) and a
high-priority alarm (its modal over the run screen).

Deterministic by construction: a fixed device (fixed serial and link counters), a record
store on a frozen clock with local time = UTC, a scripted engine with a fixed snapshot, the
alarm flash off, no header clock, and sparklines filled from fixed telemetry. Regenerate with
``pytest tests/ui/test_snapshots_practitioner.py --snapshot-update`` and look at the SVGs.
The docs' screenshots (docs/screenshots/) are copies of these.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller.records import RecordStore
from controller.session.alarms import AlarmCode
from controller.session.model import Phase
from controller.ui.screens.run import RunScreen
from controller.ui.widgets.alarm_modal import AlarmModal
from controller.ui.widgets.live_readings import LiveReadings
from tests.ui.conftest import (
    FakeEngine,
    alarm,
    live_view,
    make_app,
    snapshot,
    telemetry_batch,
    wait_for,
)

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def fixed_store(utc_tz: None, store: RecordStore) -> Iterator[RecordStore]:
    """A store with one completed and one stopped session today (frozen clock, UTC)."""
    for code, outcome in (("C-0007", "completed"), ("C-0042", "stopped")):
        store.get_or_create_client(code)
        sid = store.begin_session(
            client_code=code,
            protocol_id="aga-early-scalp",
            protocol_version=1,
            protocol_sha256="ab" * 32,
            protocol_title="Early AGA",
            serum_name="Biotin",
            serum_lot="LOT-7",
            practitioner="Dana",
            device_model="EPM-1",
            device_serial="SIM-000042",
            device_firmware="1.0.0",
            device_boot_id=1,
            device_port="sim://fixed",
            checklist={},
            planned_zones=["frontal"],
        )
        reason = "" if outcome == "completed" else "stopped by the practitioner"
        store.end_session(sid, outcome, reason)
    yield store


def fill_sparklines(screen: RunScreen, engine: FakeEngine) -> None:
    """Sixty fixed batches: output ramping up to the setpoint, current following."""
    live = screen.query_one(LiveReadings)
    snap = engine.snapshot()
    for n in range(60):
        amplitude = min(420, 100 + n * 8)
        live.show(snap.live, snap.setpoint_dv, 600, telemetry_batch(5, amplitude, n * 5))


def run_before(engine: FakeEngine, alarm_modal: bool = False) -> Any:
    async def before(pilot: Any) -> None:
        app = pilot.app
        await wait_for(pilot, lambda: app.connection == "up")
        app.attach_engine(engine, None)
        engine.device = app.device
        screen = RunScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: screen.snapshot is not None)
        fill_sparklines(screen, engine)
        if alarm_modal:
            await wait_for(pilot, lambda: isinstance(app.screen, AlarmModal))
        await wait_for(pilot, lambda: any(b.is_mounted for b in app.screen.query("SimBanner")))

    return before


async def home_ready(pilot: Any) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.connection == "up")
    await wait_for(pilot, lambda: any(b.is_mounted for b in app.screen.query("SimBanner")))
    await wait_for(
        pilot, lambda: "SIM-000042" in str(app.screen.query_one("#device-panel").render())
    )


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_home(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    app = make_app(fixed_store)
    assert snap_compare(app, terminal_size=size, run_before=home_ready)


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_delivering(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(fixed_store, engine=engine)
    assert snap_compare(app, terminal_size=size, run_before=run_before(engine))


@pytest.mark.parametrize("size", SIZES, ids=["80x24", "120x40"])
def test_run_high_alarm(snap_compare: Any, fixed_store: RecordStore, size: tuple[int, int]) -> None:
    engine = FakeEngine(
        snapshot(
            Phase.FAULT,
            alarms=(alarm(AlarmCode.DEVICE_FAULT), alarm(AlarmCode.CONTACT_MARGINAL, 2)),
            live=live_view(amplitude_dv=0, current_ua=0, faults=("OVERCURRENT",)),
            message="The device reported OVERCURRENT and turned output off. Acknowledge (a), "
            "then clear faults (c) to continue or end the session (e).",
        )
    )
    app = make_app(fixed_store, engine=engine)
    assert snap_compare(app, terminal_size=size, run_before=run_before(engine, alarm_modal=True))
