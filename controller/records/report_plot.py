"""Drawing the session plot (:mod:`~controller.records.plotdata`) as PDF vector graphics.

Two panels share the time axis: output (V) above, current (mA) below. Each plotted column is a
filled band from its minimum to its maximum (at least a hairline high, so a flat line shows);
runs of identical columns are drawn as one rectangle. Zones are shaded behind the bands and
named above the top panel; holds are amber behind the bands with a bar under each panel;
device restarts are dashed lines.
"""

from __future__ import annotations

import math
from typing import Any

from controller.records.documents import FONT, FONT_BOLD, zone_words
from controller.records.plotdata import PlotColumn, PlotSeries

OUTPUT_COLOUR = "#1f5fa8"
CURRENT_COLOUR = "#b35900"
ZONE_COLOURS = ("#e6edf7", "#eaf3e3")
HOLD_COLOUR = "#f5b942"
GRID_COLOUR = "#d0d0d0"
#: Smallest band height drawn (points): a constant value is still a visible line.
MIN_BAND_PT = 0.7


def nice_step(span: float, max_ticks: int) -> float:
    """A round tick step (1, 2, 2.5 or 5 × 10ⁿ) giving at most ``max_ticks`` ticks."""
    if span <= 0:
        return 1.0
    raw = span / max_ticks
    magnitude: float = 10.0 ** math.floor(math.log10(raw))
    for mult in (1, 2, 2.5, 5, 10):
        if mult * magnitude >= raw:
            return mult * magnitude
    return 10 * magnitude


def _ceiling(value: float, floor: float) -> float:
    """The top of a value axis: ``value`` rounded up to a tick, at least ``floor``."""
    top = max(value, floor)
    step = nice_step(top, 4)
    return math.ceil(top / step - 1e-9) * step


def _label(value: float) -> str:
    return f"{value:g}"


def _runs(
    columns: tuple[PlotColumn | None, ...], lo: str, hi: str
) -> list[tuple[int, int, float, float]]:
    """(first, last, min, max) for each run of neighbouring columns with the same band."""
    runs: list[tuple[int, int, float, float]] = []
    for i, col in enumerate(columns):
        if col is None:
            continue
        band = (float(getattr(col, lo)), float(getattr(col, hi)))
        if runs and runs[-1][1] == i - 1 and runs[-1][2:] == band:
            runs[-1] = (runs[-1][0], i, *band)
        else:
            runs.append((i, i, *band))
    return runs


def plot_drawing(series: PlotSeries, width: float, height: float) -> Any:
    """The plot as a ReportLab ``Drawing`` of ``width`` × ``height`` points."""
    from reportlab.graphics.shapes import Drawing, Line, Rect, String
    from reportlab.lib import colors

    drawing = Drawing(width, height)
    left, right, top, bottom, gap = 38.0, 6.0, 16.0, 24.0, 12.0
    plot_w = width - left - right
    panel_h = (height - top - bottom - gap) / 2
    duration = max(series.duration_ms, 1.0)
    n = max(len(series.columns), 1)

    def x_of(t_ms: float) -> float:
        return left + plot_w * t_ms / duration

    panels = (
        ("Output (V)", "output_min_v", "output_max_v", series.output_max_v, 10.0, OUTPUT_COLOUR),
        (
            "Current (mA)",
            "current_min_ma",
            "current_max_ma",
            series.current_max_ma,
            1.0,
            CURRENT_COLOUR,
        ),
    )
    for p, (name, lo, hi, peak, floor, colour) in enumerate(panels):
        y0 = bottom + (1 - p) * (panel_h + gap)
        y_top = _ceiling(peak, floor)

        def y_of(value: float, y0: float = y0, y_top: float = y_top) -> float:
            return y0 + panel_h * max(0.0, min(value, y_top)) / y_top

        for z, span in enumerate(series.zones):
            drawing.add(
                Rect(
                    x_of(span.t0_ms),
                    y0,
                    max(x_of(span.t1_ms) - x_of(span.t0_ms), 0.5),
                    panel_h,
                    fillColor=colors.HexColor(ZONE_COLOURS[z % 2]),
                    strokeColor=None,
                )
            )
        for span in series.holds:
            x0 = x_of(span.t0_ms)
            w = max(x_of(span.t1_ms) - x0, 0.8)
            hold = colors.HexColor(HOLD_COLOUR)
            drawing.add(
                Rect(
                    x0,
                    y0,
                    w,
                    panel_h,
                    fillColor=colors.Color(hold.red, hold.green, hold.blue, alpha=0.35),
                    strokeColor=None,
                )
            )
            drawing.add(Rect(x0, y0 - 3.5, w, 3, fillColor=hold, strokeColor=None))
        step = nice_step(y_top, 4)
        tick = 0.0
        while tick <= y_top + 1e-9:
            y = y_of(tick)
            drawing.add(
                Line(
                    left,
                    y,
                    left + plot_w,
                    y,
                    strokeColor=colors.HexColor(GRID_COLOUR),
                    strokeWidth=0.3,
                )
            )
            drawing.add(
                String(
                    left - 3,
                    y - 2.5,
                    _label(round(tick, 6)),
                    fontName=FONT,
                    fontSize=6.5,
                    textAnchor="end",
                )
            )
            tick += step
        fill = colors.HexColor(colour)
        col_w = plot_w / n
        for first, last, vlo, vhi in _runs(series.columns, lo, hi):
            ya, yb = y_of(vlo), y_of(vhi)
            h = max(yb - ya, MIN_BAND_PT)
            y = ya if yb - ya >= MIN_BAND_PT else max(y0, (ya + yb - h) / 2)
            drawing.add(
                Rect(
                    left + first * col_w,
                    y,
                    (last - first + 1) * col_w,
                    h,
                    fillColor=fill,
                    strokeColor=None,
                )
            )
        drawing.add(Line(left, y0, left, y0 + panel_h, strokeWidth=0.6))
        drawing.add(Line(left, y0, left + plot_w, y0, strokeWidth=0.6))
        drawing.add(
            String(left + 3, y0 + panel_h - 8, name, fontName=FONT_BOLD, fontSize=7, fillColor=fill)
        )
        for t in series.restarts:
            drawing.add(
                Line(
                    x_of(t),
                    y0,
                    x_of(t),
                    y0 + panel_h,
                    strokeColor=colors.red,
                    strokeWidth=0.6,
                    strokeDashArray=[2, 2],
                )
            )
    top_panel = bottom + panel_h + gap + panel_h
    for span in series.zones:
        x0, x1 = x_of(span.t0_ms), x_of(span.t1_ms)
        if x1 - x0 >= 14:
            drawing.add(
                String(
                    (x0 + x1) / 2,
                    top_panel + 4,
                    zone_words(span.label),
                    fontName=FONT,
                    fontSize=6.5,
                    textAnchor="middle",
                )
            )
    for t in series.restarts:
        drawing.add(
            String(
                x_of(t) + 2,
                top_panel + 4,
                "device restart",
                fontName=FONT,
                fontSize=6,
                fillColor=colors.red,
            )
        )
    minutes = duration / 60_000
    step = nice_step(minutes, 10)
    tick = 0.0
    while tick <= minutes + 1e-9:
        x = x_of(tick * 60_000)
        drawing.add(Line(x, bottom, x, bottom - 2.5, strokeWidth=0.5))
        drawing.add(
            String(
                x,
                bottom - 10,
                _label(round(tick, 6)),
                fontName=FONT,
                fontSize=6.5,
                textAnchor="middle",
            )
        )
        tick += step
    drawing.add(
        String(
            left + plot_w,
            2,
            "session time, minutes (device clock)",
            fontName=FONT,
            fontSize=6.5,
            textAnchor="end",
        )
    )
    return drawing
