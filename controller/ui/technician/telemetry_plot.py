"""A text plot of a session's telemetry: amplitude, current and impedance over time.

Why min/max bands: the records keep one row per 100 ms with the minimum and maximum of each
quantity, so that a one-sample current spike survives decimation. Averaging again for the
screen would hide exactly that spike; so each screen column covers a run of rows and draws the
band from the lowest minimum to the highest maximum, with eighth-block characters for the top
edge. Impedance spans 500 Ω to megohms (an open circuit), so it is drawn on a log scale.
Colours are fixed and avoid the alarm colours (red, yellow, cyan). Works at 80 columns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widget import Widget

from controller.ui.technician.records_model import fmt_ms

#: Characters filling the bottom 1/8 … 8/8 of a cell.
EIGHTHS = " ▁▂▃▄▅▆▇█"
LABEL_WIDTH = 8
PLOT_HEIGHT = 4

Bucket = tuple[float, float] | None


def bucket_minmax(lows: Sequence[float], highs: Sequence[float], width: int) -> list[Bucket]:
    """Split the samples into ``width`` consecutive runs; each run's (min of lows, max of highs).

    With fewer samples than columns each sample gets its own column and the rest stay empty.
    """
    n = len(lows)
    if width <= 0:
        return []
    if n == 0:
        return [None] * width
    buckets: list[Bucket] = []
    if n <= width:
        buckets = [(lows[i], highs[i]) for i in range(n)]
        return buckets + [None] * (width - n)
    for column in range(width):
        start = column * n // width
        end = max((column + 1) * n // width, start + 1)
        buckets.append((min(lows[start:end]), max(highs[start:end])))
    return buckets


def band_rows(buckets: Sequence[Bucket], height: int, vmin: float, vmax: float) -> list[str]:
    """The plot as ``height`` strings, top row first: each column filled from its bucket's low
    to its high (top edge in eighths, bottom edge to the half cell)."""
    span = vmax - vmin if vmax > vmin else 1.0
    levels = height * 8
    grid = [[" "] * len(buckets) for _ in range(height)]
    for x, bucket in enumerate(buckets):
        if bucket is None:
            continue
        lo, hi = bucket
        top = round((min(max(hi, vmin), vmax) - vmin) / span * levels)
        bottom = round((min(max(lo, vmin), vmax) - vmin) / span * levels)
        top = max(top, 1)  # a value at the bottom of the scale still shows
        bottom = min(bottom, top - 1)
        for row in range(height):
            cell_lo, cell_hi = row * 8, row * 8 + 8
            filled_to = min(max(top - cell_lo, 0), 8)
            if filled_to == 0 or bottom >= cell_hi:
                continue
            if bottom > cell_lo and bottom - cell_lo >= 4 and filled_to == 8:
                char = "▀"
            else:
                char = EIGHTHS[filled_to]
            grid[height - 1 - row][x] = char
    return ["".join(line) for line in grid]


@dataclass(frozen=True)
class Series:
    """One plotted quantity: its row columns, how to convert them, and how to label it."""

    title: str
    unit: str
    low_key: str
    high_key: str
    convert: Callable[[float], float]
    style: str
    log: bool = False


SERIES: tuple[Series, ...] = (
    Series("Amplitude", "V", "amplitude_min_dv", "amplitude_max_dv", lambda v: v / 10, "green"),
    Series("Current", "mA", "current_min_ua", "current_max_ua", lambda v: v / 1000, "magenta"),
    Series(
        "Impedance",
        "kΩ",
        "impedance_min_ohm",
        "impedance_max_ohm",
        lambda v: v / 1000,
        "blue",
        log=True,
    ),
)


def _fmt(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}"


def _log_axis(value: float) -> float:
    """log10 of a value in kΩ, floored at 10 Ω (anything lower is a short anyway)."""
    return math.log10(max(value, 0.01))


def plot_series(rows: Sequence[Mapping[str, Any]], series: Series, width: int) -> Text:
    """Title line and ``PLOT_HEIGHT`` plot lines of one quantity, ``width`` columns wide."""
    plot_width = max(width - LABEL_WIDTH, 1)
    lows = [series.convert(float(r[series.low_key])) for r in rows]
    highs = [series.convert(float(r[series.high_key])) for r in rows]
    text = Text()
    if not rows:
        text.append(f"{series.title} ({series.unit}): no telemetry recorded\n", style="bold")
        return text
    vmin_true, vmax_true = min(lows), max(highs)
    text.append(f"{series.title} ({series.unit})", style=f"bold {series.style}")
    text.append(
        f"  min {_fmt(vmin_true)}  max {_fmt(vmax_true)}" + ("  log scale" if series.log else "")
    )
    text.append("\n")
    if series.log:
        vmin, vmax = _log_axis(vmin_true), _log_axis(vmax_true)
        if vmax - vmin < 1:
            vmin, vmax = vmin - 0.5, vmax + 0.5
        lows, highs = [_log_axis(v) for v in lows], [_log_axis(v) for v in highs]
        top_label, bottom_label = _fmt(10**vmax), _fmt(10**vmin)
    else:
        vmin, vmax = min(0.0, vmin_true), max(vmax_true, vmin_true + 1e-9)
        top_label, bottom_label = _fmt(vmax), _fmt(vmin)
    lines = band_rows(bucket_minmax(lows, highs, plot_width), PLOT_HEIGHT, vmin, vmax)
    for i, line in enumerate(lines):
        label = top_label if i == 0 else (bottom_label if i == len(lines) - 1 else "")
        text.append(f"{label:>{LABEL_WIDTH - 2}} │", style="dim")
        text.append(line, style=series.style)
        text.append("\n")
    return text


def time_axis(rows: Sequence[Mapping[str, Any]], width: int) -> Text:
    """The line under the plots: device time at the start and the end."""
    if not rows:
        return Text("")
    first = int(rows[0]["t_first_ms"])
    last = int(rows[-1]["t_last_ms"])
    boots = len({r.get("boot_id") for r in rows})
    left = f"{'':>{LABEL_WIDTH - 2}} └ 0:00"
    right = f"{fmt_ms(last - first)} ({len(rows)} × 100 ms)"
    if boots > 1:
        right = f"device restarted {boots - 1}× · {len(rows)} × 100 ms"
    gap = max(width - len(left) - len(right), 1)
    return Text(left + " " * gap + right, style="dim")


class TelemetryPlot(Widget):
    """Amplitude, current and impedance of a session, as min/max bands over time."""

    DEFAULT_CSS = """
    TelemetryPlot {
        height: auto;
        width: 1fr;
    }
    """

    def __init__(self, rows: Sequence[Mapping[str, Any]] = (), *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: tuple[Mapping[str, Any], ...] = tuple(rows)

    def set_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        self._rows = tuple(rows)
        self.refresh(layout=True)

    def render(self) -> Text:
        width = max(self.size.width, LABEL_WIDTH + 10)
        text = Text()
        if not self._rows:
            text.append("No telemetry was recorded for this session.", style="dim")
            return text
        for series in SERIES:
            text.append_text(plot_series(self._rows, series, width))
        text.append_text(time_axis(self._rows, width))
        return text

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        if not self._rows:
            return 1
        return len(SERIES) * (PLOT_HEIGHT + 1) + 1
