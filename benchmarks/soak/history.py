"""A station's earlier days: the records a clinic's station already holds when the day starts.

Why: a station that has run for a while has a records database far larger than SQLite's page
caches (2 MiB per connection by default; the store keeps a writing and a reading connection),
so those caches are full from its first session on. A soak station that started from an empty
folder would instead watch its resident memory rise for its first hundred accelerated sessions
(an accelerated session writes ~60 KB, a real 30-minute one ~2 MB) while the caches fill, which
is growth that stops, not a leak. So each station first writes a few real-sized sessions through
its own :class:`~controller.records.RecordStore` (the same API the engine uses: begin, steps,
telemetry at 10 rows per second of device time, events, end), as the records of earlier days.
"""

from __future__ import annotations

import random
from typing import Any

from controller.records import RecordStore
from controller.records.models import CourseRecord, PlannedStepRecord
from controller.wire import Telemetry

ZONES = ("frontal", "midscalp", "crown", "temporal_left", "temporal_right")
#: Telemetry samples per second of device time (the store keeps one row per 100 ms).
SAMPLES_PER_S = 10


def write_history(store: RecordStore, *, sessions: int, minutes: int, seed: int) -> int:
    """Write ``sessions`` completed sessions of ``minutes`` of delivery each; returns the
    telemetry rows written."""
    rng = random.Random(seed)
    rows_before = _telemetry_rows(store)
    zone_ms = minutes * 60_000 // len(ZONES)
    for n in range(sessions):
        client = f"HIST-{n % 7 + 1:03d}"
        store.get_or_create_client(client)
        sid = store.begin_session(
            client_code=client,
            protocol_id="history",
            protocol_version=1,
            protocol_sha256="0" * 64,
            protocol_title="Earlier days",
            serum_name="Serum",
            serum_lot="LOT-HIST",
            practitioner="Earlier Practitioner",
            device_model="EPM-1",
            device_serial="SIM-000000",
            device_firmware="1.0.0",
            device_boot_id=n + 1,
            device_port="history",
            checklist={},
            planned_zones=list(ZONES),
            planned_steps=[
                PlannedStepRecord(i + 1, "delivery", z, zone_ms, None) for i, z in enumerate(ZONES)
            ],
            aftercare=["Do not wash the hair for 48 hours."],
            course=CourseRecord(6, 14, None),
        )
        t_ms = 0
        for i, zone in enumerate(ZONES, 1):
            store.record_step_start(sid, i, kind="delivery", zone=zone, planned_ms=zone_ms)
            store.append_event(sid, "command_sent", {"command": "START", "step": i})
            samples: list[Any] = []
            for k in range(zone_ms * SAMPLES_PER_S // 1000):
                t_ms += 1000 // SAMPLES_PER_S
                samples.append(
                    Telemetry(
                        dseq=k & 0xFFFF,
                        boot_id=n + 1,
                        t_ms=t_ms,
                        state=2,
                        faults=0,
                        step_id=i,
                        step_elapsed_ms=k * 1000 // SAMPLES_PER_S,
                        amplitude_dv=400 + rng.randint(-5, 5),
                        current_ua=3000 + rng.randint(-200, 200),
                        impedance_ohm=4200 + rng.randint(-300, 300),
                        temperature_dc=330 + rng.randint(-3, 3),
                        contact=1,
                    )
                )
                if len(samples) == 2000:
                    store.add_telemetry(sid, samples)
                    samples = []
            store.add_telemetry(sid, samples)
            store.record_step_end(sid, i, outcome="completed", delivered_ms=zone_ms)
        store.end_session(sid, "completed", "every planned zone got its time")
    return _telemetry_rows(store) - rows_before


def _telemetry_rows(store: RecordStore) -> int:
    with store.read_connection() as conn:
        return int(conn.execute("SELECT count(*) FROM telemetry").fetchone()[0])
