"""The device screen shows the service log's last entries, refreshed; at 80×24 they take the
place of the unit's identity and capabilities (``l`` switches), taller terminals show all."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.widgets import Static

from controller import servicelog
from controller.records import RecordStore
from controller.ui.practitioner.device import LOG_ENTRIES, DeviceScreen
from tests.ui.conftest import NOON_UTC, make_app, press, wait_for


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with RecordStore.open(tmp_path / "epm-data", clock=lambda: NOON_UTC) as opened:
        yield opened


def _shown(screen: DeviceScreen) -> str:
    return str(screen.query_one("#dev-log", Static).render())


async def test_the_device_screen_shows_the_last_entries_and_new_ones(store: RecordStore) -> None:
    log = servicelog.install(store.data_dir, process="test")
    try:
        for n in range(12):
            logging.getLogger("epm.link").info("entry number %02d", n)
        logging.getLogger("epm.device").error("device fault: OVERCURRENT")
        assert log.flush()
        app = make_app(store, poll_interval_s=0.05)
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_for(pilot, lambda: app.connection == "up", what="connected")
            screen = DeviceScreen()
            await app.push_screen(screen)
            await wait_for(pilot, lambda: "OVERCURRENT" in _shown(screen), what="the log")
            shown = _shown(screen).splitlines()
            assert len(shown) == LOG_ENTRIES
            assert "entry number 04" not in _shown(screen)  # older than the last eight
            assert "entry number 05" in shown[0]
            assert "entry number 11" in shown[-2] and "ERROR device" in shown[-1]
            assert all(len(line) <= 78 for line in shown)
            # At 80×24 the log takes the identity's place; l switches.
            assert screen.has_class("-short")
            assert not screen.query_one("#dev-unit-row").display
            await press(pilot, "l")
            assert screen.query_one("#dev-unit-row").display
            assert not screen.query_one("#dev-log-box").display
            await press(pilot, "l")
            assert screen.query_one("#dev-log-box").display
            # A new entry shows on the next refresh.
            logging.getLogger("epm.session").warning("ESTOP sent by operator in delivering")
            assert log.flush()
            await wait_for(pilot, lambda: "ESTOP sent" in _shown(screen), what="new entry")
    finally:
        log.close()


async def test_a_tall_terminal_shows_identity_log_and_counters_together(
    store: RecordStore,
) -> None:
    app = make_app(store)
    async with app.run_test(size=(100, 40)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="connected")
        screen = DeviceScreen()
        await app.push_screen(screen)
        await wait_for(pilot, lambda: bool(_shown(screen)), what="the log box")
        assert screen.has_class("-tall")
        assert screen.query_one("#dev-unit-row").display
        assert screen.query_one("#dev-log-box").display
        assert "No entries yet" in _shown(screen)  # this folder has no log
        assert screen.check_action("toggle_log", ()) is False  # nothing to switch
