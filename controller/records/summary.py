"""What a session delivered, zone by zone, computed from its record alone.

Why: the session report, the FHIR export and the course report all need the same figures
(planned and delivered time per zone, holds, skips, intensity changes, the delivered dose,
peaks, alarms), and a clinic must get the same numbers from each. They are computed here once,
from what the record holds (the plan chained at the start, the step rows, the events and the
decimated telemetry), never from the running engine, so a report written a year later says
what the record says.

The delivered dose is the current-time product in mA·min, the unit iontophoresis practice
uses (docs/records.md, "Dose"). Each stored telemetry row (``controller.records.telemetry``)
carries the r.m.s. current the device measured over its last 100 ms and the step's delivery
time so far (``step_elapsed_ms``: the device advances it in RUNNING, ramp-up included, and not
in HOLD, PAUSED or the final ramp-down, STOPPING; device interface, CONFIGURE_STEP
``duration_ms``). A row counts for the delivery time since the previous row of the same
attempt, so the times add up to what the device reported delivered, whatever the telemetry
rate or a lost frame. Only rows of the zone's own device step (``step_id`` from its
``step_start`` event) count. The final ramp-down's current is left out (its time is not
delivery time): a small underestimate. On the simulator's accelerated clock one row stands for
several seconds of delivery, so its dose is a coarse estimate; at real speed (50 Hz and up)
each row stands for at most 100 ms.

Per cm² divides by the handpiece's electrode area (the device interface's figures), the
handpiece being the one the device was configured with (CONFIGURE_STEP's ``handpiece`` in the
chained ``command_sent`` event).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from controller.records.models import EventRow, SessionRecord, StepRecord

#: Device handpiece codes (CONFIGURE_STEP ``handpiece``) → name and electrode area in cm².
#: The same figures as ``protocols.HANDPIECE_AREA_CM2`` (device interface §8); kept here so the
#: records layer depends on nothing above it.
HANDPIECES: Mapping[int, tuple[str, float]] = {
    1: ("scalp_roller", 4.0),
    2: ("flat_probe", 2.0),
    3: ("comb", 6.0),
}


@dataclass(frozen=True)
class Attempt:
    """One attempt at a delivery step, as recorded."""

    attempt: int
    step_id: int | None
    planned_ms: int | None
    delivered_ms: int | None
    outcome: str | None
    delivered_estimated: bool


@dataclass(frozen=True)
class ZoneSummary:
    """One step of the plan (delivery or manual) and what happened to it."""

    index: int
    kind: str
    zone: str | None
    planned_ms: int
    delivered_ms: int
    """Delivery time over all attempts (device ``step_elapsed_ms``); 0 for manual steps."""
    status: str
    """``completed``, ``done`` (manual), ``skipped``, ``stopped``, ``faulted``,
    ``interrupted``, ``refused`` or ``not started``."""
    attempts: tuple[Attempt, ...]
    skip_reason: str | None
    holds: int
    hold_ms: int
    amplitude_changes: tuple[Mapping[str, Any], ...]
    dose_ma_min: float
    peak_output_v: float | None
    peak_current_ma: float | None
    handpiece: str | None
    electrode_area_cm2: float | None

    @property
    def dose_ma_min_per_cm2(self) -> float | None:
        return per_area(self.dose_ma_min, self.electrode_area_cm2)

    @property
    def is_delivery(self) -> bool:
        return self.kind == "delivery"


@dataclass(frozen=True)
class AlarmLine:
    """One alarm occurrence: raised, acknowledged (by whom), resolved, cleared."""

    code: str
    priority: str
    title: str
    message: str
    raised_at: str
    acknowledged_at: str | None = None
    acknowledged_by: str | None = None
    resolved_at: str | None = None
    cleared_at: str | None = None


@dataclass(frozen=True)
class SessionSummary:
    session: SessionRecord
    zones: tuple[ZoneSummary, ...]
    alarms: tuple[AlarmLine, ...]
    planned_ms: int
    """Planned delivery time of the whole plan (every delivery step, started or not)."""
    delivered_ms: int
    dose_ma_min: float
    electrode_area_cm2: float | None
    handpiece: str | None
    estops: tuple[Mapping[str, Any], ...] = field(default=())
    training_faults: tuple[Mapping[str, Any], ...] = field(default=())

    @property
    def dose_ma_min_per_cm2(self) -> float | None:
        return per_area(self.dose_ma_min, self.electrode_area_cm2)

    @property
    def deliveries(self) -> tuple[ZoneSummary, ...]:
        return tuple(z for z in self.zones if z.is_delivery)

    @property
    def nothing_delivered(self) -> bool:
        return self.delivered_ms == 0


def per_area(dose_ma_min: float, area_cm2: float | None) -> float | None:
    """The dose per cm² of electrode (None when the area is not known)."""
    return dose_ma_min / area_cm2 if area_cm2 else None


def summarize(
    session: SessionRecord,
    steps: Sequence[StepRecord],
    events: Sequence[EventRow],
    telemetry: Sequence[Mapping[str, Any]],
) -> SessionSummary:
    """The session's figures from its record (``store.get_session``, ``store.steps``,
    ``store.events``, ``store.telemetry_rows``)."""
    step_ids = _step_ids(events)
    skip_reasons = _skip_reasons(events)
    configured = _configured(events)
    rows_by_step = _rows_by_step(telemetry)
    plan = [(p.index, p.kind, p.zone, p.planned_ms) for p in session.planned_steps]
    if not plan:  # a record from before the plan was kept: the steps that started
        seen: dict[int, tuple[int, str, str | None, int]] = {}
        for s in steps:
            seen.setdefault(s.index, (s.index, s.kind, s.zone, s.planned_ms or 0))
        plan = sorted(seen.values())
    zones = []
    for index, kind, zone, planned_ms in plan:
        mine = [s for s in steps if s.index == index]
        zone_summary = _zone(
            index, kind, zone, planned_ms, mine, step_ids, configured, rows_by_step
        )
        if zone_summary.skip_reason is None and zone_summary.status == "skipped":
            last = max(mine, key=lambda s: s.attempt)
            reason = skip_reasons.get((index, last.attempt))
            zone_summary = replace(zone_summary, skip_reason=reason)
        zones.append(zone_summary)
    deliveries = [z for z in zones if z.is_delivery]
    areas = {z.electrode_area_cm2 for z in deliveries if z.electrode_area_cm2}
    names = {z.handpiece for z in deliveries if z.handpiece}
    return SessionSummary(
        session=session,
        zones=tuple(zones),
        alarms=tuple(alarm_lines(events)),
        planned_ms=sum(z.planned_ms for z in deliveries),
        delivered_ms=sum(z.delivered_ms for z in deliveries),
        dose_ma_min=sum(z.dose_ma_min for z in deliveries),
        electrode_area_cm2=areas.pop() if len(areas) == 1 else None,
        handpiece=names.pop() if len(names) == 1 else None,
        estops=tuple(e.data for e in events if e.kind == "estop"),
        training_faults=tuple(e.data for e in events if e.kind == "training_fault"),
    )


def summarize_store(store: Any, session_id: int) -> SessionSummary:
    """:func:`summarize` reading everything from ``store`` (a ``RecordStore``)."""
    return summarize(
        store.get_session(session_id),
        store.steps(session_id),
        store.events(session_id),
        store.telemetry_rows(session_id),
    )


def alarm_lines(events: Iterable[EventRow]) -> list[AlarmLine]:
    """One line per alarm occurrence, in the order they were raised."""
    lines: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        if not event.kind.startswith("alarm_"):
            continue
        data = event.data
        key = (str(data.get("alarm", "")), int(data.get("occurrence") or 0))
        line = lines.get(key)
        if event.kind == "alarm_raised" or line is None:
            line = lines.setdefault(
                key,
                {
                    "code": key[0],
                    "priority": str(data.get("priority", "")),
                    "title": str(data.get("title") or key[0]),
                    "message": str(data.get("message", "")),
                    "raised_at": event.wall_time,
                },
            )
        if event.kind == "alarm_acknowledged":
            line["acknowledged_at"] = event.wall_time
            line["acknowledged_by"] = data.get("by")
        elif event.kind == "alarm_resolved":
            line["resolved_at"] = event.wall_time
        elif event.kind == "alarm_cleared":
            line["cleared_at"] = event.wall_time
            if data.get("by") and "acknowledged_by" not in line:
                line["acknowledged_at"] = event.wall_time
                line["acknowledged_by"] = data.get("by")
    return [AlarmLine(**line) for line in lines.values()]


def _zone(  # noqa: PLR0917 - one call site, all positional by design
    index: int,
    kind: str,
    zone: str | None,
    planned_ms: int,
    mine: Sequence[StepRecord],
    step_ids: Mapping[tuple[int, int], int],
    configured: Mapping[int, Mapping[str, Any]],
    rows_by_step: Mapping[int, list[Mapping[str, Any]]],
) -> ZoneSummary:
    attempts = tuple(
        Attempt(
            s.attempt,
            step_ids.get((index, s.attempt)),
            s.planned_ms,
            s.delivered_ms,
            s.outcome,
            s.delivered_estimated,
        )
        for s in sorted(mine, key=lambda s: s.attempt)
    )
    delivered = sum(s.delivered_ms or 0 for s in mine) if kind == "delivery" else 0
    dose = 0.0
    peak_dv: int | None = None
    peak_ua: int | None = None
    handpiece: str | None = None
    area: float | None = None
    for attempt in attempts:
        if attempt.step_id is None:
            continue
        rows = rows_by_step.get(attempt.step_id, [])
        dose += _dose_ma_min(rows)
        for row in rows:
            peak_dv = _max(peak_dv, row.get("amplitude_max_dv"))
            peak_ua = _max(peak_ua, row.get("current_max_ua"))
        values = configured.get(attempt.step_id)
        if values is not None:
            known = HANDPIECES.get(int(values.get("handpiece") or 0))
            if known is not None:
                handpiece, area = known
    changes = tuple(c for s in mine for c in s.amplitude_changes)
    skipped = [s for s in mine if s.skipped]
    return ZoneSummary(
        index=index,
        kind=kind,
        zone=zone,
        planned_ms=planned_ms,
        delivered_ms=min(delivered, planned_ms) if planned_ms else delivered,
        status=_status(kind, mine),
        attempts=attempts,
        skip_reason=skipped[-1].skip_reason if skipped else None,
        holds=sum(s.holds for s in mine),
        hold_ms=sum(s.hold_ms for s in mine),
        amplitude_changes=changes,
        dose_ma_min=dose,
        peak_output_v=None if peak_dv is None else peak_dv / 10,
        peak_current_ma=None if peak_ua is None else peak_ua / 1000,
        handpiece=handpiece,
        electrode_area_cm2=area,
    )


def _status(kind: str, mine: Sequence[StepRecord]) -> str:
    if not mine:
        return "not started"
    last = max(mine, key=lambda s: s.attempt)
    if last.skipped:
        return "skipped"
    outcome = last.outcome or "interrupted"
    if kind == "manual" and outcome == "completed":
        return "done"
    return outcome


def _dose_ma_min(rows: Sequence[Mapping[str, Any]]) -> float:
    """Σ current × delivery time over one attempt's rows; see the module docstring."""
    total_ua_ms = 0.0
    previous = 0
    for row in rows:
        elapsed = int(row.get("step_elapsed_ms") or 0)
        span = elapsed - previous if elapsed >= previous else elapsed  # a restart: from 0
        previous = elapsed
        total_ua_ms += int(row.get("current_ua") or 0) * span
    return total_ua_ms / 1000 / 60_000  # µA·ms → mA·min


def _step_ids(events: Iterable[EventRow]) -> dict[tuple[int, int], int]:
    found: dict[tuple[int, int], int] = {}
    for event in events:
        if event.kind != "step_start":
            continue
        data = event.data
        step_id = data.get("step_id")
        if isinstance(step_id, int) and isinstance(data.get("index"), int):
            found[(int(data["index"]), int(data.get("attempt") or 1))] = step_id
    return found


def _skip_reasons(events: Iterable[EventRow]) -> dict[tuple[int, int], str]:
    """The practitioner's reason for each attempt skipped while it delivered: the step's
    ``step_end`` (outcome ``skipped``) carries it; a step skipped before it started has it in
    its row (``skip_reason``)."""
    found: dict[tuple[int, int], str] = {}
    for event in events:
        data = event.data
        if event.kind != "step_end" or data.get("outcome") != "skipped" or not data.get("reason"):
            continue
        if isinstance(data.get("index"), int):
            found[(int(data["index"]), int(data.get("attempt") or 1))] = str(data["reason"])
    return found


def _configured(events: Iterable[EventRow]) -> dict[int, Mapping[str, Any]]:
    """CONFIGURE_STEP values by device step id (the last sent for each id)."""
    found: dict[int, Mapping[str, Any]] = {}
    for event in events:
        if event.kind != "command_sent" or event.data.get("command") != "CONFIGURE_STEP":
            continue
        values = event.data.get("values")
        if isinstance(values, dict) and isinstance(values.get("step_id"), int):
            found[int(values["step_id"])] = values
    return found


def _rows_by_step(telemetry: Iterable[Mapping[str, Any]]) -> dict[int, list[Mapping[str, Any]]]:
    found: dict[int, list[Mapping[str, Any]]] = {}
    for row in telemetry:
        found.setdefault(int(row.get("step_id") or 0), []).append(row)
    return found  # in the order stored (``telemetry_rows`` is oldest first)


def _max(current: int | None, value: object) -> int | None:
    if not isinstance(value, int):
        return current
    return value if current is None else max(current, value)
