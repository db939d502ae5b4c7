"""The permanent SIMULATOR marker.

Why: a session on the simulator is training, never a treatment; nobody may mistake one for
the other. The app mounts one banner on every screen (``EpmApp`` does it for every screen that
is shown, also the other engineer's screens and modals) and the banner follows the app's
``simulated`` state, so it appears as soon as the device says its serial begins with ``SIM-``.
"""

from __future__ import annotations

from textual.widgets import Static

from controller.ui.theme import SIM_BANNER_BACKGROUND, SIM_BANNER_FOREGROUND

SIM_TEXT = "SIMULATOR — not a treatment"


class SimBanner(Static):
    """One bright line: ``SIMULATOR — not a treatment · device SIM-…``; hidden on real units."""

    DEFAULT_CSS = f"""
    SimBanner {{
        width: 100%;
        height: 1;
        background: {SIM_BANNER_BACKGROUND};
        color: {SIM_BANNER_FOREGROUND};
        text-style: bold;
        content-align: center middle;
        display: none;
    }}
    SimBanner.-shown {{
        display: block;
    }}
    SimBanner.-docked {{
        dock: top;
    }}
    """

    def __init__(self, *, docked: bool = False, id: str | None = None) -> None:
        super().__init__("", id=id, classes="-docked" if docked else "")

    def on_mount(self) -> None:
        if hasattr(self.app, "simulated"):
            self.watch(self.app, "simulated", self._follow, init=True)
        if hasattr(self.app, "device_serial"):
            self.watch(self.app, "device_serial", self._follow, init=False)

    def _follow(self, _value: object = None) -> None:
        self.set_class(bool(getattr(self.app, "simulated", False)), "-shown")
        serial = str(getattr(self.app, "device_serial", "") or "")
        self.update(f"▶ {SIM_TEXT}" + (f" · device {serial}" if serial else "") + " ◀")
