"""What the document tests share: a real (non-``SIM-``) session written through the store API the
engine uses, settings, and the text of a PDF as pypdf extracts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pypdf import PdfReader

from controller.records import RecordStore
from controller.records.documents import ReportSettings
from controller.records.models import CourseRecord, PlannedStepRecord
from controller.wire import Telemetry
from tests.records.conftest import FakeClock, begin

SETTINGS = ReportSettings(
    clinic_name="Hairline Clinic Leeds",
    clinic_contact="0113 496 0000 · hello@hairline.example",
    station_name="Room 2",
    paper="A4",
)
AFTERCARE = ("Do not wash the hair for 48 hours.", "Avoid hair dye for a week.")
COURSE = CourseRecord(sessions=6, interval_days=14, maintenance_interval_days=90)
PLAN = (
    PlannedStepRecord(1, "manual", None, 300_000),
    PlannedStepRecord(2, "delivery", "frontal", 60_000),
    PlannedStepRecord(3, "delivery", "crown", 60_000),
)


def sample(t_ms: int, step_id: int, elapsed: int, **fields: int) -> Telemetry:
    values = {
        "dseq": t_ms & 0xFFFF,
        "boot_id": 0x2222,
        "t_ms": t_ms,
        "state": 3,
        "faults": 0,
        "step_id": step_id,
        "step_elapsed_ms": elapsed,
        "amplitude_dv": 400,
        "current_ua": 2000,
        "impedance_ohm": 1500,
        "temperature_dc": 330,
        "contact": 1,
    }
    values.update(fields)
    return Telemetry(**values)


def deliver(
    store: RecordStore,
    clock: FakeClock,
    sid: int,
    index: int,
    zone: str,
    step_id: int,
    *,
    t0: int,
    delivered_ms: int = 60_000,
    outcome: str = "completed",
    spike_at: int | None = None,
    reason: str | None = None,
    hold_ms: int = 0,
    change: tuple[int, int] | None = None,
) -> int:
    """One delivery step at 100 Hz telemetry (2.0 mA, 40 V), as the engine records it, with an
    optional intensity change and a hold (contact lost: HOLD rows, no step time) half way;
    returns the device time after it."""
    store.record_step_start(
        sid, index, kind="delivery", zone=zone, planned_ms=60_000, data={"step_id": step_id}
    )
    store.append_event(
        sid,
        "command_sent",
        {"command": "CONFIGURE_STEP", "values": {"step_id": step_id, "handpiece": 1}},
    )
    if change is not None:
        store.record_amplitude_change(
            sid, index, from_dv=change[0], to_dv=change[1], source="practitioner"
        )
    samples = []
    half = delivered_ms // 20
    for k in range(delivered_ms // 10):
        t = t0 + k * 10 + (hold_ms if k >= half else 0)
        current = 9_000 if spike_at is not None and t == spike_at else 2000
        samples.append(sample(t, step_id, (k + 1) * 10, current_ua=current))
        if hold_ms and k == half - 1:
            samples += [
                sample(t + 10 + h, step_id, (k + 1) * 10, state=5, amplitude_dv=0, current_ua=0)
                for h in range(0, hold_ms - 10, 10)
            ]
    store.add_telemetry(sid, samples)
    if hold_ms:
        store.record_hold(sid, index, held_ms=hold_ms)
    clock.advance(milliseconds=delivered_ms + hold_ms)
    data = {"step_id": step_id, **({"reason": reason} if reason else {})}
    store.record_step_end(sid, index, outcome=outcome, delivered_ms=delivered_ms, data=data)
    return t0 + delivered_ms + hold_ms


def real_session(
    store: RecordStore,
    clock: FakeClock,
    *,
    client_code: str = "C-0042",
    outcome: str = "completed",
    sha: str = "ab" * 32,
    protocol_id: str = "aga-early-scalp",
    spike_at: int | None = None,
    aftercare: tuple[str, ...] = AFTERCARE,
    course: CourseRecord | None = COURSE,
    **overrides: Any,
) -> int:
    """A session on a real device (serial EPM1-…): a manual step and two 1-minute zones."""
    extra: dict[str, Any] = {"planned_steps": PLAN, **overrides}
    if aftercare:
        extra["aftercare"] = aftercare
    if course is not None:
        extra["course"] = course
    sid = begin(
        store,
        client_code=client_code,
        protocol_sha256=sha,
        protocol_id=protocol_id,
        planned_zones=["frontal", "crown"],
        **extra,
    )
    store.record_step_start(
        sid, 1, kind="manual", zone=None, planned_ms=300_000, data={"title": "Apply the serum"}
    )
    clock.advance(minutes=5)
    store.record_step_end(sid, 1, outcome="completed", delivered_ms=None, data={})
    t = deliver(store, clock, sid, 2, "frontal", 1, t0=10_000, spike_at=spike_at, hold_ms=4_000)
    if outcome == "completed":
        deliver(store, clock, sid, 3, "crown", 2, t0=t + 5_000, change=(400, 440))
    else:
        deliver(
            store, clock, sid, 3, "crown", 2, t0=t + 5_000, delivered_ms=20_000, outcome="stopped"
        )
    clock.advance(seconds=30)
    store.end_session(sid, outcome, "" if outcome == "completed" else "client had to leave")
    return sid


def pdf_pages(path: Path) -> list[str]:
    """Each page's text, whitespace collapsed (a wrapped line reads as one)."""
    reader = PdfReader(str(path))
    return [" ".join((page.extract_text() or "").split()) for page in reader.pages]


def pdf_text(path: Path) -> str:
    return " ".join(pdf_pages(path))


def page_size_pt(path: Path) -> tuple[float, float]:
    box = PdfReader(str(path)).pages[0].mediabox
    return round(float(box.width)), round(float(box.height))
