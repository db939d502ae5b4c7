"""Helpers for the technician-screen tests (no tests here): a small host app, a protocol
library in tmp_path, a record store on a fixed clock with seeded sessions, and waiting for a
condition with a generous timeout instead of sleeping.

The host app mirrors what the real app gives these screens (``store``, ``library_path``,
``simulated``, the F12 emergency-stop priority binding, F1 help, the command palette), so the
screens can be tested on their own; ``test_*_app.py`` files also drive them through
``create_app``.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import CommandPalette
from textual.pilot import Pilot
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen

from controller.records import RecordStore
from controller.ui.commands import EpmCommands
from controller.ui.shared.sim_banner import SimBanner
from controller.ui.theme import THEMES
from controller.wire import Telemetry

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"
VALID = DATA / "valid" / "base.yaml"
INVALID = DATA / "bad" / "amplitude-above-max.yaml"
WARNING = DATA / "bad" / "amplitude-high.yaml"

#: Noon, 2 March 2026, UTC (tests that show local times set TZ=UTC).
NOON = dt.datetime(2026, 3, 2, 12, 0, tzinfo=dt.UTC)


class FixedClock:
    """An aware UTC clock that moves only when a test says so."""

    def __init__(self, start: dt.datetime = NOON) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


class TechApp(App[None]):
    """A minimal host for the technician screens, with the shared key design."""

    TITLE = "EPM-1 session controller"
    COMMANDS = App.COMMANDS | {EpmCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f12", "emergency_stop", "E-STOP", key_display="F12", priority=True),
        Binding("ctrl+e", "emergency_stop", "E-STOP", show=False, priority=True),
        Binding("f1", "help", "Help", key_display="F1"),
    ]

    simulated: reactive[bool] = reactive(False)
    device_serial: reactive[str] = reactive("")

    def __init__(
        self,
        store: RecordStore | None,
        library_path: Path,
        *,
        start: Callable[[TechApp], Screen[Any]] | None = None,
        simulated: bool = False,
    ) -> None:
        super().__init__()
        self.store = store
        self.library_path = library_path
        self.set_reactive(TechApp.simulated, simulated)
        self.engine = None
        self.device = None
        self.device_info = None
        self.practitioner = "Test Practitioner"
        self.estops = 0
        self.new_sessions = 0
        #: Every notification's message, in order (toasts are hidden in tests).
        self.notices: list[str] = []
        self._start = start
        for theme in THEMES:
            self.register_theme(theme)
        self.theme = THEMES[0].name

    def notify(self, message: str, *args: Any, **kwargs: Any) -> None:
        self.notices.append(message)
        super().notify(message, *args, **kwargs)

    def on_mount(self) -> None:
        # Like the real app: the SIMULATOR banner on every screen that is shown.
        self.screen_change_signal.subscribe(self, self._screen_changed)
        if self._start is not None:
            self.push_screen(self._start(self))

    def _screen_changed(self, screen: Screen[Any]) -> None:
        screen.call_later(self._ensure_banner, screen)

    def _ensure_banner(self, screen: Screen[Any]) -> None:
        if isinstance(screen, CommandPalette) or not screen.is_attached or screen.query(SimBanner):
            return
        if isinstance(screen, ModalScreen):
            screen.mount(SimBanner(docked=True))
            return
        first = next((c for c in screen.children if c.styles.dock in ("", "none")), None)
        screen.mount(SimBanner(), before=first) if first is not None else screen.mount(SimBanner())

    def action_emergency_stop(self) -> None:
        self.estops += 1

    def action_new_session(self) -> None:
        self.new_sessions += 1

    def action_help(self) -> None:
        from controller.ui.shared.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())


async def wait_for(
    pilot: Pilot[Any], condition: Callable[[], object], timeout: float = 15.0
) -> None:
    """Let the app run until ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await pilot.pause(0.05)


def copy_protocol(source: Path, target: Path, protocol_id: str) -> Path:
    """Copy a protocol file under another id (a library refuses one id with two contents)."""
    text = source.read_text(encoding="utf-8")
    assert "\nid: aga-early-scalp\n" in text
    target.write_text(text.replace("\nid: aga-early-scalp\n", f"\nid: {protocol_id}\n"))
    return target


def make_library(folder: Path) -> Path:
    """A library of three files: ``aga-base.yaml`` valid and approved in the file,
    ``bad-amplitude.yaml`` with an error, ``high-amplitude.yaml`` valid with a warning."""
    folder.mkdir(parents=True, exist_ok=True)
    copy_protocol(VALID, folder / "aga-base.yaml", "aga-base")
    copy_protocol(INVALID, folder / "bad-amplitude.yaml", "bad-amplitude")
    copy_protocol(WARNING, folder / "high-amplitude.yaml", "high-amplitude")
    return folder


def open_store(data_dir: Path, clock: FixedClock | None = None) -> RecordStore:
    return RecordStore.open(data_dir, exclusive=True, clock=clock or FixedClock())


def _samples(boot_id: int, start_ms: int, count: int, step_id: int) -> list[Telemetry]:
    samples = []
    for i in range(count):
        t = start_ms + i * 10
        ramp = min(i, 200) / 200
        spike = 4000 if i == count // 2 else 0
        samples.append(
            Telemetry(
                dseq=i,
                boot_id=boot_id,
                t_ms=t,
                state=3,
                faults=0,
                step_id=step_id,
                step_elapsed_ms=i * 10,
                amplitude_dv=int(400 * ramp),
                current_ua=int(3000 * ramp) + spike,
                impedance_ohm=2000 + (i % 50) * 20 if i < count - 50 else 60000,
                temperature_dc=330,
                contact=0 if i < count - 50 else 2,
            )
        )
    return samples


def seed_sessions(store: RecordStore, clock: FixedClock) -> dict[str, int]:
    """Three sessions: a completed one with telemetry, holds and an alarm (client C-0042), a
    stopped simulated one with a skipped step (C-0042, a day later), and a completed one for
    another client (C-0107, a week later). Returns their ids by name."""
    ids: dict[str, int] = {}
    common: dict[str, Any] = {
        "protocol_id": "aga-early-scalp",
        "protocol_version": 3,
        "protocol_sha256": "ab" * 32,
        "protocol_title": "Early androgenetic alopecia, scalp",
        "serum_name": "Biotin and panthenol cocktail",
        "serum_lot": "LOT-2026-117",
        "practitioner": "Dana Practitioner",
        "device_model": "EPM-1",
        "device_firmware": "1.4.2",
        "device_boot_id": 0x5A5A,
        "device_port": "/dev/serial/by-id/usb-EPM-1",
        "checklist": {"scalp-infection-or-wound": False, "consultation-done": True},
        "planned_zones": ["frontal", "crown"],
    }

    store.get_or_create_client("C-0042", "Alex Example")
    sid = store.begin_session(client_code="C-0042", device_serial="EPM1-000123", **common)
    store.record_step_start(sid, 1, kind="manual", planned_ms=120_000)
    clock.advance(minutes=2)
    store.record_step_end(sid, 1, outcome="done", delivered_ms=120_000)
    store.record_step_start(sid, 2, kind="delivery", zone="frontal", planned_ms=300_000)
    store.add_telemetry(sid, _samples(0x5A5A, 1_000, 600, 2))
    store.append_event(
        sid,
        "alarm_raised",
        {"alarm": "contact_lost", "priority": "medium", "message": "No skin contact"},
    )
    store.record_hold(sid, 2, held_ms=12_000)
    store.append_event(sid, "alarm_cleared", {"alarm": "contact_lost"})
    clock.advance(minutes=5)
    store.record_step_end(sid, 2, outcome="completed", delivered_ms=300_000)
    store.end_session(sid, "completed")
    store.set_notes(sid, "Client comfortable at 45 V.")
    ids["completed"] = sid

    clock.advance(days=1)
    sid = store.begin_session(client_code="C-0042", device_serial="SIM-000001", **common)
    store.record_step_start(sid, 1, kind="manual", planned_ms=120_000)
    store.record_step_end(sid, 1, outcome="done", delivered_ms=120_000)
    store.record_skip(sid, 2, "client asked to skip the frontal zone", kind="delivery")
    store.record_step_start(sid, 3, kind="delivery", zone="crown", planned_ms=300_000)
    clock.advance(minutes=1)
    store.record_step_end(sid, 3, outcome="stopped", delivered_ms=61_000)
    store.end_session(sid, "stopped", reason="practitioner stopped: client uncomfortable")
    ids["simulated"] = sid

    clock.advance(days=6)
    store.get_or_create_client("C-0107")
    sid = store.begin_session(client_code="C-0107", device_serial="EPM1-000123", **common)
    store.record_step_start(sid, 2, kind="delivery", zone="frontal", planned_ms=300_000)
    clock.advance(minutes=5)
    store.record_step_end(sid, 2, outcome="completed", delivered_ms=300_000)
    store.end_session(sid, "completed")
    ids["other"] = sid
    return ids
