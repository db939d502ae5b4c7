"""The session plot's data: output (V) and current (mA) over the session's time, per plotted
column, from the stored telemetry rows. Pure (no drawing), so tests check what is plotted.

Each stored row (``controller.records.telemetry``) holds the minimum and maximum of its 100 ms
of device time. A plotted column takes the minimum of the minima and the maximum of the maxima
of every row that overlaps it, and the report fills the band between them: a one-sample spike,
kept by the row's maximum, reaches the top of its column however many rows share it.

Time is the device's clock (``t_first_ms``) from the first row; after a device restart (a new
``boot_id``, or the clock going back) it goes on from where the previous row ended. A row
stands until the next one when the gap is no longer than the session's usual spacing of rows
(one per 100 ms at 10 Hz and up; more on the simulator's accelerated clock or at a low
telemetry rate), with half as much again to spare and at most :data:`CARRY_MS`; a longer gap
(no telemetry: the link was lost, or the device was off) is left empty. Zones are the spans
of rows of each zone's device step while the output was active (RUNNING, PAUSED, HOLD or
STOPPING seen), holds the spans of rows that saw HOLD.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.wire.constants import State

#: A row never stands for longer than this (device ms) when the next one is late.
CARRY_MS = 10_000
#: Device time one row covers when nothing follows it closely.
ROW_MS = 100
#: Plotted columns (about 0.35 mm each across an A4 page's plot).
COLUMNS = 480
_ACTIVE_BITS = sum(1 << s for s in (State.RUNNING, State.PAUSED, State.HOLD, State.STOPPING))
_HOLD_BIT = 1 << State.HOLD


@dataclass(frozen=True)
class PlotColumn:
    """One plotted column: its time range (ms from the first row) and the band of each series."""

    t0_ms: float
    t1_ms: float
    output_min_v: float
    output_max_v: float
    current_min_ma: float
    current_max_ma: float


@dataclass(frozen=True)
class Span:
    """A marked time range (ms from the first row): a zone's delivery or a hold."""

    t0_ms: float
    t1_ms: float
    label: str


@dataclass(frozen=True)
class PlotSeries:
    duration_ms: float
    columns: tuple[PlotColumn | None, ...]
    """One per plotted column, ``None`` where no telemetry covers it."""
    zones: tuple[Span, ...]
    holds: tuple[Span, ...]
    restarts: tuple[float, ...]
    """Times at which the device's clock restarted (a new boot)."""

    @property
    def output_max_v(self) -> float:
        return max((c.output_max_v for c in self.columns if c), default=0.0)

    @property
    def current_max_ma(self) -> float:
        return max((c.current_max_ma for c in self.columns if c), default=0.0)

    @property
    def empty(self) -> bool:
        return not any(self.columns)


def _int(row: Mapping[str, Any], key: str, fallback: str | None = None) -> int:
    value = row.get(key)
    if value is None and fallback is not None:
        value = row.get(fallback)
    return int(value or 0)


def _timeline(rows: Sequence[Mapping[str, Any]]) -> tuple[list[tuple[float, float]], list[float]]:
    """Each row's (start, end) on the session's time line, and where the device restarted."""
    starts: list[float] = []
    restarts: list[float] = []
    offset = 0.0
    previous: tuple[int, int] | None = None  # (boot_id, t_last_ms)
    last_end = 0.0
    for i, row in enumerate(rows):
        boot, first, last = _int(row, "boot_id"), _int(row, "t_first_ms"), _int(row, "t_last_ms")
        if i == 0:
            offset = -first
        elif previous is not None and (boot != previous[0] or first < previous[1]):
            offset = last_end - first
            restarts.append(last_end)
        starts.append(first + offset)
        last_end = max(last, first) + offset + 1
        previous = (boot, last)
    gaps = sorted(b - a for a, b in itertools.pairwise(starts) if b > a)
    usual = gaps[len(gaps) // 2] if gaps else ROW_MS
    carry = min(CARRY_MS, max(ROW_MS, usual) * 1.5)
    spans: list[tuple[float, float]] = []
    for i, start in enumerate(starts):
        own = start + ROW_MS
        nxt = starts[i + 1] if i + 1 < len(starts) else None
        if nxt is not None and start <= nxt <= start + carry:
            end = max(nxt, start + 1)
        else:
            end = own
        spans.append((start, end))
    return spans, restarts


def _merge(spans: list[Span]) -> list[Span]:
    merged: list[Span] = []
    for span in spans:
        if merged and merged[-1].label == span.label and span.t0_ms <= merged[-1].t1_ms:
            last = merged[-1]
            merged[-1] = Span(last.t0_ms, max(last.t1_ms, span.t1_ms), last.label)
        else:
            merged.append(span)
    return merged


def plot_series(
    rows: Sequence[Mapping[str, Any]],
    zone_of_step: Mapping[int, str],
    columns: int = COLUMNS,
) -> PlotSeries:
    """The plot of ``rows`` (``store.telemetry_rows``, oldest first) in ``columns`` columns;
    ``zone_of_step`` names the zone of each device step id (from the session's summary)."""
    if not rows:
        return PlotSeries(0.0, (), (), (), ())
    spans, restarts = _timeline(rows)
    duration = max(end for _, end in spans)
    width = duration / columns
    bands: list[list[float] | None] = [None] * columns
    zones: list[Span] = []
    holds: list[Span] = []
    for row, (start, end) in zip(rows, spans, strict=True):
        v_lo = _int(row, "amplitude_min_dv", "amplitude_dv") / 10
        v_hi = _int(row, "amplitude_max_dv", "amplitude_dv") / 10
        i_lo = _int(row, "current_min_ua", "current_ua") / 1000
        i_hi = _int(row, "current_max_ua", "current_ua") / 1000
        first = min(columns - 1, int(start / width))
        last = max(first, min(columns - 1, int((end - 1e-9) / width)))
        for col in range(first, last + 1):
            band = bands[col]
            if band is None:
                bands[col] = [v_lo, v_hi, i_lo, i_hi]
            else:
                band[0], band[1] = min(band[0], v_lo), max(band[1], v_hi)
                band[2], band[3] = min(band[2], i_lo), max(band[3], i_hi)
        seen = _int(row, "states_seen") or (1 << _int(row, "state"))
        zone = zone_of_step.get(_int(row, "step_id"))
        if zone is not None and seen & _ACTIVE_BITS:
            zones.append(Span(start, end, zone))
        if seen & _HOLD_BIT:
            holds.append(Span(start, end, "hold"))
    out: list[PlotColumn | None] = []
    for col, band in enumerate(bands):
        if band is None:
            out.append(None)
        else:
            out.append(PlotColumn(col * width, (col + 1) * width, *band))
    return PlotSeries(
        duration, tuple(out), tuple(_merge(zones)), tuple(_merge(holds)), tuple(restarts)
    )


def zone_of_step(summary: Any) -> dict[int, str]:
    """Device step id → zone name, from a :class:`~controller.records.summary.SessionSummary`."""
    found: dict[int, str] = {}
    for zone in summary.zones:
        for attempt in zone.attempts:
            if attempt.step_id is not None and zone.zone:
                found[int(attempt.step_id)] = str(zone.zone)
    return found
