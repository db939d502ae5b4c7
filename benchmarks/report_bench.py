"""Report benchmark: the session report of a 30-minute session with 1000 Hz telemetry.

Run ``python -m benchmarks report_bench`` (or ``make bench``).

A temporary record store gets a 30-minute session written through the API the session engine
uses: ``begin_session`` with the plan, aftercare and course, then five 6-minute zones, each
``record_step_start`` + ``CONFIGURE_STEP`` event + 360,000 synthetic telemetry samples at
1000 Hz through ``add_telemetry`` (decimated to 18,000 rows of 100 ms in all; one zone has a
10 s hold and a one-sample current spike) + ``record_step_end``, then ``end_session``. Timed:
``write_session_report`` end to end (the chain verified and the anchor saved, the summary and
plot computed from the 18,000 rows, the PDF laid out and written, the ``report_written`` event
chained), three times to new files; and the aftercare handout. Targets: ≤ 2 s and ≤ 1 MB.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from controller.records import RecordStore
from controller.records.documents import ReportSettings
from controller.records.handout import write_handout
from controller.records.models import CourseRecord, PlannedStepRecord
from controller.records.report import write_session_report
from controller.wire import Telemetry

ZONES = ("frontal", "temporal_left", "temporal_right", "midscalp", "crown")
ZONE_MS = 6 * 60_000
RATE_HZ = 1000
SETTINGS = ReportSettings("Benchmark Clinic", "0113 496 0000", "Room 1", "A4")


def _samples(step_id: int, t0: int, *, hold: bool, spike: bool) -> list[Telemetry]:
    out = []
    t = t0
    elapsed = 0
    step = 1000 // RATE_HZ
    while elapsed < ZONE_MS:
        holding = hold and 120_000 <= elapsed < 130_000 and t - t0 - elapsed < 10_000
        state = 5 if holding else 3
        current = 0 if holding else 2000 + (t % 97) * 5
        if spike and elapsed == 200_000:
            current = 12_000
        out.append(
            Telemetry(
                t & 0xFFFF,
                0x4242,
                t,
                state,
                0,
                step_id,
                elapsed,
                0 if holding else 400,
                current,
                1500,
                330,
                1,
            )
        )
        t += step
        if not holding:
            elapsed += step
    return out


def build(data_dir: Path) -> tuple[RecordStore, int, float]:
    """The 30-minute session's record; returns the store, the session and the set-up time."""
    started = time.perf_counter()
    store = RecordStore.open(data_dir)
    store.get_or_create_client("C-0001", "Bench Client")
    plan = [PlannedStepRecord(i + 1, "delivery", z, ZONE_MS) for i, z in enumerate(ZONES)]
    sid = store.begin_session(
        client_code="C-0001",
        protocol_id="bench-30min",
        protocol_version=1,
        protocol_sha256="ab" * 32,
        protocol_title="Report benchmark, 30 minutes",
        serum_name="Benchmark serum",
        serum_lot="LOT-1",
        practitioner="Bench Practitioner",
        device_model="EPM-1",
        device_serial="EPM1-BENCH01",
        device_firmware="1.4.2",
        device_boot_id=0x4242,
        device_port="/dev/null",
        checklist={"consultation-done": True, "pregnancy": False},
        planned_zones=list(ZONES),
        planned_steps=plan,
        aftercare=["Do not wash the hair for 48 hours."],
        course=CourseRecord(6, 14, 90),
    )
    t = 1_000
    for i, zone in enumerate(ZONES):
        step_id = i + 1
        store.record_step_start(
            sid, i + 1, kind="delivery", zone=zone, planned_ms=ZONE_MS, data={"step_id": step_id}
        )
        store.append_event(
            sid,
            "command_sent",
            {"command": "CONFIGURE_STEP", "values": {"step_id": step_id, "handpiece": 1}},
        )
        samples = _samples(step_id, t, hold=i == 2, spike=i == 3)
        for k in range(0, len(samples), 1000):  # as the engine drains its buffer
            store.add_telemetry(sid, samples[k : k + 1000])
        t = samples[-1].t_ms + 1
        if i == 2:
            store.record_hold(sid, i + 1, held_ms=10_000)
        store.record_step_end(sid, i + 1, outcome="completed", delivered_ms=ZONE_MS)
    store.end_session(sid, "completed", "every planned zone got its time")
    return store, sid, time.perf_counter() - started


def run() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store, sid, setup_s = build(folder / "epm-data")
        try:
            rows = len(store.telemetry_rows(sid))
            print(f"record: 30 min at {RATE_HZ} Hz -> {rows:,} telemetry rows ({setup_s:.1f} s)")
            times = []
            size = pages = 0
            for n in range(3):
                path = folder / f"report-{n}.pdf"
                start = time.perf_counter()
                result = write_session_report(store, sid, SETTINGS, path)
                times.append(time.perf_counter() - start)
                size, pages = path.stat().st_size, result.pages
            start = time.perf_counter()
            write_handout(store, sid, SETTINGS, folder / "handout.pdf")
            handout_s = time.perf_counter() - start
        finally:
            store.close()
    median = statistics.median(times)
    print(
        f"session report: {median:.2f} s median of 3 ({min(times):.2f}–{max(times):.2f} s), "
        f"{size / 1024:.0f} KB, {pages} pages (targets <= 2 s, <= 1 MB)"
    )
    print(f"aftercare handout: {handout_s:.2f} s")
    return {
        "telemetry_rows": rows,
        "report_s_median": median,
        "report_s_max": max(times),
        "report_bytes": size,
        "report_pages": pages,
        "handout_s": handout_s,
    }
