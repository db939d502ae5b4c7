"""The command palette's epm commands (Ctrl+P): every main action by name.

Why: a palette lets a technician reach anything by typing a few letters of it, from any
screen, without learning each screen's keys; every entry calls the same app action or pushes
the same screen the keys do, so the palette never behaves differently from the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from controller.ui.theme import THEMES


@dataclass(frozen=True)
class PaletteCommand:
    name: str
    help: str
    run: Callable[[], object]


class EpmCommands(Provider):
    """New session, library, records, device, help, emergency stop, theme, verify, reload."""

    def commands(self) -> list[PaletteCommand]:
        """The entries, in the order the empty palette lists them."""
        return [
            PaletteCommand("New session", "Start a treatment session", self._new_session),
            PaletteCommand("Protocol library", "Protocol files, validity, approval", self._library),
            PaletteCommand("Session records", "Sessions by client and date; export", self._records),
            PaletteCommand("Device", "Device details, link health, clear faults", self._device),
            PaletteCommand("Help", "Every key of every screen (F1)", self._help),
            PaletteCommand(
                "Emergency stop", "Output off now — F12 works everywhere", self._emergency_stop
            ),
            PaletteCommand("Toggle theme", "Switch between the dark and light theme", self._theme),
            PaletteCommand(
                "Verify records", "Check the event log's hash chain (tampering)", self._verify
            ),
            PaletteCommand("Reload library", "Load the protocol files again", self._reload_library),
        ]

    async def discover(self) -> Hits:
        for command in self.commands():
            yield DiscoveryHit(command.name, command.run, help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self.commands():
            score = matcher.match(command.name)
            if score > 0:
                yield Hit(score, matcher.highlight(command.name), command.run, help=command.help)

    # -- what each entry does ----------------------------------------------------------------

    @property
    def _epm(self) -> Any:
        return self.app

    def _call_app(self, action: str, fallback: Callable[[], object] | None = None) -> None:
        method = getattr(self.app, f"action_{action}", None)
        if callable(method):
            method()
        elif fallback is not None:
            fallback()

    def _new_session(self) -> None:
        self._call_app("new_session")

    def _library(self) -> None:
        from controller.ui.technician.library import LibraryScreen

        self.app.push_screen(LibraryScreen(Path(self._epm.library_path), self._epm.store))

    def _records(self) -> None:
        from controller.ui.technician.records import RecordsScreen

        self.app.push_screen(RecordsScreen(self._epm.store))

    def _device(self) -> None:
        from controller.ui.practitioner.device import DeviceScreen

        self.app.push_screen(DeviceScreen())

    def _help(self) -> None:
        from controller.ui.shared.help import HelpScreen

        self._call_app("help", partial(self.app.push_screen, HelpScreen()))

    def _emergency_stop(self) -> None:
        self.app.action_emergency_stop()  # type: ignore[attr-defined]

    def _theme(self) -> None:
        names = [theme.name for theme in THEMES]
        current = self.app.theme
        self.app.theme = (
            names[(names.index(current) + 1) % len(names)] if current in names else names[0]
        )
        self.app.notify(f"Theme: {self.app.theme}")

    def _verify(self) -> None:
        from controller.ui.technician.records_actions import start_verify

        screen = self.app.screen
        start_verify(screen, self._epm.store, lambda _report: None, lambda _message, _ok: None)

    def _reload_library(self) -> None:
        from controller.ui.technician.library import LibraryScreen

        screen = self.app.screen
        if isinstance(screen, LibraryScreen):
            screen.action_reload()
        else:
            self._library()
