"""The smaller readings under the big figures: output trend, current, impedance and contact,
handpiece temperature, each with a sparkline of the last seconds.

Why: the practitioner raises intensity to the client's sensation and watches the output
follow; current and impedance show how the skin takes it. The screen drains telemetry in
batches (20 Hz) and hands each batch here once: one sparkline point per batch and per quantity
(the batch's peak, so a short spike is never averaged away), whatever the telemetry rate.

Readings that are not current are never shown as current: older than 0.3 s (or received
before the link went down) they are dimmed and their age is said; older than 2 s they are
replaced by "—".
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from controller.device.views import TelemetrySample as Telemetry
from controller.ui.practitioner.run_text import NO_VALUE, Freshness, Readings, fault_words
from controller.ui.shared import formatting as fmt

#: Sparkline points kept: 10 s of batches at 20 Hz.
HISTORY = 200
#: Impedance above this is drawn as this (open circuit would flatten everything else), kΩ.
IMPEDANCE_CEILING_KOHM = 30.0


class LiveReadings(Widget):
    """Four rows: output trend (or how old the readings are), current, impedance + contact,
    handpiece temperature + faults."""

    DEFAULT_CSS = """
    LiveReadings {
        height: auto;
        width: 100%;
    }
    LiveReadings > Horizontal {
        height: 1;
        width: 100%;
    }
    LiveReadings .reading {
        width: 34;
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    LiveReadings Sparkline {
        width: 1fr;
        height: 100%;
        margin-right: 1;
    }
    LiveReadings.-stale .reading, LiveReadings.-stale Sparkline {
        text-style: dim;
    }
    LiveReadings.-gone Sparkline {
        text-style: dim;
    }
    LiveReadings #temp-text {
        width: 1fr;
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
        with Horizontal(classes="spark-row"):
            yield Static(id="out-text", classes="reading")
            yield Sparkline([], id="out-spark")
        with Horizontal(classes="spark-row"):
            yield Static(id="cur-text", classes="reading")
            yield Sparkline([], id="cur-spark")
        with Horizontal(classes="spark-row"):
            yield Static(id="imp-text", classes="reading")
            yield Sparkline([], id="imp-spark")
        with Horizontal():
            yield Static(id="temp-text", classes="reading")

    def add_batch(self, batch: Sequence[Telemetry]) -> None:
        """One sparkline point per quantity for this batch (its peak)."""
        if not batch:
            return
        self.frames_seen += len(batch)
        self.batches_seen += 1
        self._amplitude.append(max(t.amplitude_dv for t in batch) / 10)
        self._current.append(max(t.current_ua for t in batch) / 1000)
        self._impedance.append(
            min(IMPEDANCE_CEILING_KOHM, min(t.impedance_ohm for t in batch) / 1000)
        )
        if len(self._amplitude) < 2:
            return  # one point would be drawn as a full block: wait for a second one
        # Reassigned, not mutated: that is what makes a Sparkline redraw.
        self.query_one("#out-spark", Sparkline).data = list(self._amplitude)
        self.query_one("#cur-spark", Sparkline).data = list(self._current)
        self.query_one("#imp-spark", Sparkline).data = list(self._impedance)

    def show(self, now: Readings, batch: Sequence[Telemetry] = ()) -> None:
        """Update every row once for this batch of telemetry and the latest readings."""
        self.add_batch(batch)
        self.set_class(now.freshness is Freshness.STALE, "-stale")
        self.set_class(now.freshness is Freshness.GONE, "-gone")
        shown = now.shown

        note = now.age_note()
        out = Text()
        if note:  # the readings below are not current: say how old they are
            out.append("Readings  ", style="bold")
            out.append(note, style="bold reverse")
        else:
            out.append("Output    ", style="bold")
            out.append("the last 10 s")
        self._put("out", "#out-text", out)

        cur = Text()
        cur.append("Current   ", style="bold")
        cur.append(f"{fmt.milliamps(now.current_ua) if shown else NO_VALUE:>8}", style="bold")
        if now.current_limit_ua:
            cur.append(f"  limit {fmt.milliamps(now.current_limit_ua)}")
        self._put("cur", "#cur-text", cur)

        imp = Text()
        imp.append("Impedance ", style="bold")
        imp.append(f"{fmt.ohms(now.impedance_ohm) if shown else NO_VALUE:>8}", style="bold")
        word = fmt.contact(now.contact) if shown else NO_VALUE
        if word.isupper():  # NO CONTACT, SHORT: the word says it all, in reverse
            imp.append("  ")
            imp.append(word, style="bold reverse")
        else:
            imp.append(f"  contact {word}", style="bold")
        self._put("imp", "#imp-text", imp)

        temp = Text()
        temp.append("Handpiece ", style="bold")
        temp.append(f"{fmt.celsius(now.temperature_dc) if shown else NO_VALUE:>8}")
        if shown and now.faults:
            temp.append(f"  fault: {fault_words(now.faults)}", style="bold")
        self._put("temp", "#temp-text", temp)

    def _put(self, key: str, selector: str, text: Text) -> None:
        if self._shown.changed(key, text):
            # Fixed size (one line, fixed width): no layout pass needed.
            self.query_one(selector, Static).update(text, layout=False)
