"""Live output, current, impedance and contact, with a sparkline of the last seconds of each.

Why: the practitioner raises intensity to the client's sensation and watches the output follow;
current and impedance show how the skin takes it. The screen drains telemetry in batches (20 Hz)
and hands each batch here once: one sparkline point per batch and per quantity (the batch's
peak, so a short spike is never averaged away), whatever the telemetry rate.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from controller.session.model import LiveView
from controller.ui.widgets import formatting as fmt
from controller.wire import Contact, Telemetry

#: Sparkline points kept: 10 s of batches at 20 Hz.
HISTORY = 200
#: Impedance above this is drawn as this (open circuit would flatten everything else), kΩ.
IMPEDANCE_CEILING_KOHM = 30.0
#: Telemetry older than this is shown as stale (the supervisor's threshold).
STALE_AFTER_S = 0.3


def _contact_name(code: int) -> str:
    try:
        return Contact(code).name.lower()
    except ValueError:
        return "unknown"


class LiveReadings(Widget):
    """Four rows: output, current, impedance + contact, handpiece temperature."""

    DEFAULT_CSS = """
    LiveReadings {
        height: auto;
        width: 100%;
        padding: 0 1;
    }
    LiveReadings > Horizontal {
        height: 1;
        width: 100%;
    }
    LiveReadings .reading {
        width: 48;
        height: 1;
        text-wrap: nowrap;
    }
    LiveReadings Sparkline {
        width: 1fr;
        height: 1;
        margin-right: 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._amplitude: deque[float] = deque(maxlen=HISTORY)
        self._current: deque[float] = deque(maxlen=HISTORY)
        self._impedance: deque[float] = deque(maxlen=HISTORY)
        self.frames_seen = 0
        self.batches_seen = 0
        self._shown = fmt.ChangeFilter()

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Static(id="out-text", classes="reading")
            yield Sparkline([], id="out-spark")
        with Horizontal():
            yield Static(id="cur-text", classes="reading")
            yield Sparkline([], id="cur-spark")
        with Horizontal():
            yield Static(id="imp-text", classes="reading")
            yield Sparkline([], id="imp-spark")
        with Horizontal():
            yield Static(id="temp-text", classes="reading")

    def on_mount(self) -> None:
        self.show(None, None, None, [])

    def show(
        self,
        live: LiveView | None,
        setpoint_dv: int | None,
        max_dv: int | None,
        batch: Sequence[Telemetry],
    ) -> None:
        """Update every row once for this batch of telemetry and the engine's latest view."""
        if batch:
            self.frames_seen += len(batch)
            self.batches_seen += 1
            self._amplitude.append(max(t.amplitude_dv for t in batch) / 10)
            self._current.append(max(t.current_ua for t in batch) / 1000)
            self._impedance.append(
                min(IMPEDANCE_CEILING_KOHM, min(t.impedance_ohm for t in batch) / 1000)
            )
            self.query_one("#out-spark", Sparkline).data = list(self._amplitude)
            self.query_one("#cur-spark", Sparkline).data = list(self._current)
            self.query_one("#imp-spark", Sparkline).data = list(self._impedance)
        latest = batch[-1] if batch else None
        amplitude = live.amplitude_dv if live else (latest.amplitude_dv if latest else None)
        current = live.current_ua if live else (latest.current_ua if latest else None)
        impedance = live.impedance_ohm if live else (latest.impedance_ohm if latest else None)
        temperature = live.temperature_dc if live else (latest.temperature_dc if latest else None)
        contact = live.contact if live else (_contact_name(latest.contact) if latest else None)
        limit = live.current_limit_ua if live else None
        stale = live is not None and live.age_s > STALE_AFTER_S

        out = Text()
        out.append("Output    ", style="bold")
        out.append(f"{fmt.volts(amplitude):>8}", style="bold")
        setpoint = live.setpoint_dv if live and setpoint_dv is None else setpoint_dv
        out.append(f"  set {fmt.volts(setpoint)}")
        if max_dv is not None:
            out.append(f" / max {fmt.volts(max_dv)}")
        if self._shown.changed("out", out):
            # Fixed size (one line, fixed width): no layout pass needed.
            self.query_one("#out-text", Static).update(out, layout=False)

        cur = Text()
        cur.append("Current   ", style="bold")
        cur.append(f"{fmt.milliamps(current):>8}", style="bold")
        if limit:
            cur.append(f"  limit {fmt.milliamps(limit)}")
        if self._shown.changed("cur", cur):
            # Fixed size (one line, fixed width): no layout pass needed.
            self.query_one("#cur-text", Static).update(cur, layout=False)

        imp = Text()
        imp.append("Impedance ", style="bold")
        imp.append(f"{fmt.ohms(impedance):>8}", style="bold")
        imp.append("  contact ")
        word = fmt.contact(contact)
        imp.append(word, style="bold reverse" if word.isupper() else "bold")
        if self._shown.changed("imp", imp):
            # Fixed size (one line, fixed width): no layout pass needed.
            self.query_one("#imp-text", Static).update(imp, layout=False)

        temp = Text()
        temp.append("Handpiece ", style="bold")
        temp.append(f"{fmt.celsius(temperature):>8}")
        if live is not None and live.faults:
            temp.append(f"  faults: {', '.join(live.faults)}", style="bold")
        if live is not None and stale:
            temp.append(f"  measurements {live.age_s:.1f} s old", style="bold reverse")
        if self._shown.changed("temp", temp):
            # Fixed size (one line, fixed width): no layout pass needed.
            self.query_one("#temp-text", Static).update(temp, layout=False)
