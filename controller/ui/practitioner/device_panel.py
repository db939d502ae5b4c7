"""The device and its link, as the home screen shows them: connecting, connected, or why not.

Why: before a session the practitioner checks that the right unit and handpiece are attached
and that the link is healthy; when connecting failed they need the reason and what to do, never
a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from controller.device import DeviceInfo
from controller.device.views import HealthView as LinkHealth
from controller.ui.practitioner.link_health import link_text


@dataclass(frozen=True)
class DeviceStatusView:
    """What the panel shows; built by the app from its connection state."""

    state: str
    """``connecting``, ``up`` or ``failed``."""
    port: str
    info: DeviceInfo | None = None
    handpiece: str | None = None
    health: LinkHealth | None = None
    error: str = ""


def device_text(view: DeviceStatusView, retry_key: str = "c") -> Text:
    text = Text()
    if view.state == "connecting":
        text.append("Device: ", style="bold")
        text.append(f"connecting… ({view.port})")
        return text
    if view.state == "failed" or view.info is None:
        text.append("Device: NOT CONNECTED", style="bold reverse")
        text.append(f" ({view.port})\n")
        text.append(view.error or "The device did not answer.")
        text.append(f"\nPress {retry_key} to try again.", style="bold")
        return text
    info = view.info
    text.append("Device: ", style="bold")
    text.append(f"{info.model} serial {info.serial} firmware {info.firmware}")
    text.append("\nHandpiece: ", style="bold")
    text.append((view.handpiece or info.handpiece.name).replace("_", " ").lower())
    text.append("\n")
    text.append_text(link_text(view.health, view.port))
    return text


class DevicePanel(Static):
    """Call :meth:`show` with a :class:`DeviceStatusView`."""

    DEFAULT_CSS = """
    DevicePanel {
        width: 100%;
        height: auto;
        /* Tall enough for connecting, connected and most failures: the buttons below do not
           move under the mouse while the device connects. */
        min-height: 6;
        padding: 0 1;
        border: round $primary;
    }
    DevicePanel.-failed {
        border: round $accent;
    }
    """

    def show(self, view: DeviceStatusView) -> None:
        self.set_class(view.state == "failed", "-failed")
        text = device_text(view)
        if text != getattr(self, "_last_text", None):
            self._last_text = text
            self.update(text)
