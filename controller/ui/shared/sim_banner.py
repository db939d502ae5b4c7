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
    /* On a modal: over the screen's own banner (row 1, under the header), not a second one. */
    SimBanner.-docked {{
        dock: top;
        margin-top: 1;
    }}
    """

    def __init__(
        self, *, docked: bool = False, shown: bool = False, serial: str = "", id: str | None = None
    ) -> None:
        # Shown (and worded) from the start when the app already knows it is a simulator: the
        # marker is there as soon as the screen is laid out, not one refresh later.
        classes = " ".join(c for c in ("-docked" if docked else "", "-shown" if shown else "") if c)
        super().__init__(banner_text(serial) if shown else "", id=id, classes=classes)

    def on_mount(self) -> None:
        if hasattr(self.app, "simulated"):
            self.watch(self.app, "simulated", self._follow, init=True)
        if hasattr(self.app, "device_serial"):
            self.watch(self.app, "device_serial", self._follow, init=False)

    def _follow(self, _value: object = None) -> None:
        self.set_class(bool(getattr(self.app, "simulated", False)), "-shown")
        serial = str(getattr(self.app, "device_serial", "") or "")
        self.update(banner_text(serial))


def banner_text(serial: str) -> str:
    return f"▶ {SIM_TEXT}" + (f" · device {serial}" if serial else "") + " ◀"
