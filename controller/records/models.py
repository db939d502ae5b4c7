"""The records as the rest of epm sees them: plain frozen dataclasses, no SQL.

Times are ISO 8601 text in UTC (``2026-03-01T09:30:00.000000+00:00``), as stored; ``local()``
turns one into the clinic's local time for display.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(moment: dt.datetime) -> str:
    """The stored form of a moment: UTC, microseconds, fixed width (so text order is time
    order)."""
    if moment.tzinfo is None:
        raise ValueError("a moment without a time zone cannot be stored; use an aware datetime")
    return moment.astimezone(dt.UTC).isoformat(timespec="microseconds")


def parse_iso(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def local(text: str | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A stored UTC time shown in local time; empty for ``None``."""
    if not text:
        return ""
    return parse_iso(text).astimezone().strftime(fmt)


@dataclass(frozen=True)
class Client:
    id: int
    code: str
    name: str | None
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class EventRow:
    """One row of the hash-chained event log."""

    id: int
    #: None for an event of the records as a whole (approval, migration, client correction).
    session_id: int | None
    seq: int
    wall_time: str
    mono_ms: int
    kind: str
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PlannedStepRecord:
    """One step of a session's plan as it started (chained in ``session_started``): every
    step it was going to run, with its planned time, whether or not it ever started."""

    index: int
    kind: str
    zone: str | None
    planned_ms: int
    #: A manual step's title (what the practitioner does), so a step that never started is
    #: still named; None for delivery steps (the zone names them) and older records.
    title: str | None = None


@dataclass(frozen=True)
class CourseRecord:
    """The protocol's course as the session started (chained in ``session_started``): how many
    sessions, the interval between them and the maintenance interval. Shaped like the protocol
    model's ``course``, so :func:`~controller.records.courses.course_progress` takes either."""

    sessions: int
    interval_days: int
    maintenance_interval_days: int | None = None


@dataclass(frozen=True)
class SessionRecord:
    """One treatment session as recorded. ``simulated`` is true on a ``SIM-`` device: such a
    session is never a real treatment, and every listing and export says so."""

    id: int
    client_code: str
    client_name: str | None
    protocol_id: str
    protocol_version: int
    protocol_sha256: str
    protocol_title: str
    serum_name: str
    serum_lot: str
    practitioner: str
    device_model: str
    device_serial: str
    device_firmware: str
    device_boot_id: int | None
    device_port: str
    simulated: bool
    checklist: dict[str, Any]
    planned_zones: list[str]
    started_at: str
    ended_at: str | None
    outcome: str
    outcome_reason: str | None
    #: The latest chained note (a closed session's notes are appended as ``note`` events).
    notes: str
    #: For an interrupted session: the last moment known to have happened, estimated from its
    #: last event and its last telemetry (None otherwise).
    last_known_at: str | None = None
    #: Corrections appended after the session closed (``amendment`` events), oldest first:
    #: each ``{"field", "value", "original", "by", "reason", "at", "event_id"}``. The fields
    #: above keep what was recorded; these are shown beside them.
    amendments: tuple[dict[str, Any], ...] = field(default=())
    #: The plan as the session started (from its chained ``session_started`` event); empty for
    #: sessions recorded before the plan was kept.
    planned_steps: tuple[PlannedStepRecord, ...] = field(default=())
    #: The protocol's aftercare advice as the session started (chained in ``session_started``),
    #: so a handout can be printed from the record alone; empty for older records.
    aftercare: tuple[str, ...] = field(default=())
    #: The protocol's course as the session started; None for older records.
    course: CourseRecord | None = None

    @property
    def planned_delivery_ms(self) -> int | None:
        """The planned delivery time of the whole session (every delivery step of its plan,
        started or not); None when the record predates the plan being kept."""
        if not self.planned_steps:
            return None
        return sum(p.planned_ms for p in self.planned_steps if p.kind == "delivery")

    def amended(self, name: str) -> dict[str, Any] | None:
        """The latest amendment of field ``name`` (None if never amended)."""
        found = [a for a in self.amendments if a.get("field") == name]
        return found[-1] if found else None

    def correction(self, name: str) -> str:
        """`` [corrected to X by NAME on DATE: reason]`` to show beside field ``name``'s
        recorded value (empty when never corrected)."""
        found = self.amended(name)
        if found is None:
            return ""
        when = local(str(found.get("at", "")), "%Y-%m-%d")
        return (
            f" [corrected to {found.get('value')} by {found.get('by')} on {when}: "
            f"{found.get('reason')}]"
        )

    @property
    def is_open(self) -> bool:
        return self.outcome == "running"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StepRecord:
    """One attempt at one protocol step (``index`` is the 1-based step number in the protocol;
    a step started again after an interruption gets the next ``attempt``)."""

    id: int
    session_id: int
    index: int
    attempt: int
    kind: str
    zone: str | None
    planned_ms: int | None
    delivered_ms: int | None
    started_at: str | None
    ended_at: str | None
    amplitude_changes: list[dict[str, Any]]
    holds: int
    hold_ms: int
    skipped: bool
    skip_reason: str | None
    outcome: str | None
    #: True when ``delivered_ms`` was estimated from the last telemetry (the session was
    #: interrupted while this step ran), not reported by the device at the step's end.
    delivered_estimated: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TelemetrySummary:
    """Extremes over a session's stored telemetry (``None`` when there is none)."""

    rows: int
    samples: int
    first_t_ms: int | None
    last_t_ms: int | None
    amplitude_max_dv: int | None
    current_max_ua: int | None
    impedance_min_ohm: int | None
    impedance_max_ohm: int | None
    temperature_max_dc: int | None
    contact_changes: int
    faults_seen: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SessionDetail:
    session: SessionRecord
    steps: list[StepRecord]
    events: list[EventRow]
    telemetry: TelemetrySummary

    def to_dict(self) -> dict[str, Any]:
        return {
            "session": self.session.to_dict(),
            "steps": [s.to_dict() for s in self.steps],
            "events": [e.to_dict() for e in self.events],
            "telemetry": self.telemetry.to_dict(),
        }
