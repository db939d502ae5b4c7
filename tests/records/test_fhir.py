"""The FHIR R4 export of one session (controller/records/fhir.py): a transaction Bundle that
validates with the R4B models, stable ids, the outcome mapping, the summary's figures, the
simulated tag, and ``epm records export ID --format fhir``."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from controller.records import RecordStore, UnknownSessionError
from controller.records.fhir import (
    CLIENT_CODE_SYSTEM,
    OUTCOME_SYSTEM,
    PROTOCOL_SHA256_EXTENSION,
    PROTOCOL_SYSTEM,
    SIMULATED_TAG,
    SNOMED,
    TAG_SYSTEM,
    UCUM,
    ZONE_SYSTEM,
    SessionRunningError,
    SimulatedSessionError,
    bundle_json,
    session_bundle,
    station_key,
)
from controller.records.models import PlannedStepRecord
from controller.records.summary import ZoneSummary, summarize_store
from controller.session.headless import checklist_answers
from controller.session.model import Action, Outcome, Phase
from controller.wire import Telemetry
from protocols import load_protocol
from tests.integration.helpers import EngineEnv, engine_env, protocol_path
from tests.records.conftest import FakeClock, begin

__all__ = ["engine_env"]

PLAN = (
    PlannedStepRecord(1, "manual", None, 60_000),
    PlannedStepRecord(2, "delivery", "frontal", 600_000),
    PlannedStepRecord(3, "delivery", "crown", 600_000),
)


# -- independent checks ----------------------------------------------------------------------------


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def check_bundle(bundle: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """A JSON-level check that owes nothing to the library: a transaction Bundle whose entries
    are each a PUT on their own id, with every reference resolving inside the Bundle. Returns
    the resources by type."""
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    full_urls: dict[str, str] = {}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        kind, rid = resource["resourceType"], resource["id"]
        assert entry["fullUrl"] == f"urn:uuid:{rid}"
        assert entry["request"] == {"method": "PUT", "url": f"{kind}/{rid}"}
        assert entry["fullUrl"] not in full_urls, "two entries share an id"
        full_urls[entry["fullUrl"]] = kind
        by_type.setdefault(kind, []).append(resource)
    expected = {
        ("Procedure", "subject"): "Patient",
        ("Observation", "subject"): "Patient",
        ("Observation", "device"): "Device",
        ("MedicationAdministration", "subject"): "Patient",
        ("MedicationAdministration", "medicationReference"): "Medication",
    }
    for entry in bundle["entry"]:
        resource = entry["resource"]
        for reference in _references(resource):
            assert reference in full_urls, f"{reference} does not resolve within the bundle"
        for (kind, field), target in expected.items():
            if resource["resourceType"] == kind:
                assert full_urls[resource[field]["reference"]] == target
        for part_of in resource.get("partOf", []):
            assert full_urls[part_of["reference"]] == "Procedure"
    return by_type


def parse_r4b(bundle: dict[str, Any]) -> None:
    """Parse the Bundle back with the R4B models, and each resource with its own model."""
    parsed = Bundle.model_validate(bundle)
    assert parsed.type == "transaction"
    assert parsed.entry is not None and len(parsed.entry) == len(bundle["entry"])
    for entry in bundle["entry"]:
        resource = entry["resource"]
        model = get_fhir_model_class(resource["resourceType"])
        assert model.model_validate(resource).id == resource["id"]


def one(by_type: dict[str, list[dict[str, Any]]], kind: str) -> dict[str, Any]:
    (resource,) = by_type[kind]
    return resource


def components(observation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["code"]["coding"][0]["code"]: c for c in observation["component"]}


def assert_matches_summary(observation: dict[str, Any], zone: ZoneSummary) -> None:
    parts = components(observation)

    def quantity(code: str) -> tuple[float, str]:
        q = parts[code]["valueQuantity"]
        assert q["system"] == UCUM
        return q["value"], q["code"]

    assert quantity("delivered-time") == (zone.delivered_ms / 1000, "s")
    assert quantity("planned-time") == (zone.planned_ms / 1000, "s")
    assert quantity("dose") == (round(zone.dose_ma_min, 6), "mA.min")
    per_cm2 = zone.dose_ma_min_per_cm2
    assert per_cm2 is not None
    assert quantity("dose-per-area") == (round(per_cm2, 6), "mA.min/cm2")
    assert quantity("peak-output-voltage") == (zone.peak_output_v, "V")
    assert quantity("peak-current") == (zone.peak_current_ma, "mA")
    status = parts["zone-status"]["valueCodeableConcept"]
    assert status["text"] == zone.status
    assert observation["bodySite"]["coding"][1] == {
        "system": ZONE_SYSTEM,
        "code": zone.zone,
        "display": observation["bodySite"]["text"],
    }


def tags(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return list(resource.get("meta", {}).get("tag", []))


# -- a real (non-simulated) session written straight to the store ----------------------------------


def real_session(
    store: RecordStore,
    clock: FakeClock,
    *,
    outcome: str = "completed",
    reason: str = "",
    delivered: tuple[int | None, int | None] = (600_000, 600_000),
    **overrides: Any,
) -> int:
    """A session on a unit with a real serial: the plan, each zone's step with telemetry and
    its handpiece, then the outcome. ``delivered`` per zone, None: never started."""
    sid = begin(store, planned_steps=PLAN, **overrides)
    for (index, zone), ms in zip(((2, "frontal"), (3, "crown")), delivered, strict=True):
        if ms is None:
            continue
        store.append_event(
            sid,
            "command_sent",
            {"command": "CONFIGURE_STEP", "values": {"step_id": index, "handpiece": 1}},
        )
        store.record_step_start(
            sid, index, kind="delivery", zone=zone, planned_ms=600_000, data={"step_id": index}
        )
        base = index * 1_000_000
        samples = [
            Telemetry(
                t, 9, base + t, 3, 0, index, t * ms // 2_000, 400 + t // 10, 2100, 1500, 330, 1
            )
            for t in range(0, 2_000, 10)
        ]
        store.add_telemetry(sid, samples)
        clock.advance(seconds=600)
        store.record_step_end(
            sid, index, outcome="completed" if ms == 600_000 else outcome, delivered_ms=ms
        )
    store.end_session(sid, outcome, reason)
    return sid


def test_a_real_session_maps_every_resource(store: RecordStore, clock: FakeClock) -> None:
    sid = real_session(store, clock)
    bundle = session_bundle(store, sid)
    parse_r4b(bundle)
    by_type = check_bundle(bundle)
    assert sorted(by_type) == [
        "Device",
        "Medication",
        "MedicationAdministration",
        "Observation",
        "Patient",
        "Procedure",
    ]
    assert "meta" not in bundle and not any(tags(e["resource"]) for e in bundle["entry"])
    session = store.get_session(sid)

    patient = one(by_type, "Patient")
    assert patient["identifier"] == [{"system": CLIENT_CODE_SYSTEM, "value": "C-0042"}]
    assert "name" not in patient  # none recorded

    device = one(by_type, "Device")
    assert device["serialNumber"] == "EPM1-000123"
    assert device["modelNumber"] == "EPM-1"
    assert device["version"] == [{"type": {"text": "firmware"}, "value": "1.4.2"}]
    assert "simulator" not in json.dumps(device)

    procedure = one(by_type, "Procedure")
    assert procedure["status"] == "completed" and "statusReason" not in procedure
    assert procedure["code"]["coding"] == [
        {
            "system": PROTOCOL_SYSTEM,
            "version": "3",
            "code": "aga-early-scalp",
            "display": "Early androgenetic alopecia, scalp",
        }
    ]
    assert procedure["extension"] == [
        {"url": PROTOCOL_SHA256_EXTENSION, "valueString": session.protocol_sha256}
    ]
    assert procedure["performer"] == [{"actor": {"display": "Dana Practitioner"}}]
    assert procedure["performedPeriod"]["start"].startswith(session.started_at[:19])
    assert procedure["performedPeriod"]["end"].startswith(str(session.ended_at)[:19])
    assert [s["text"] for s in procedure["bodySite"]] == ["frontal scalp", "crown (vertex)"]
    assert all(s["coding"][0]["system"] == SNOMED for s in procedure["bodySite"])
    used = {r["reference"] for r in procedure["usedReference"]}
    assert used == {f"urn:uuid:{device['id']}", f"urn:uuid:{one(by_type, 'Medication')['id']}"}

    medication = one(by_type, "Medication")
    assert medication["batch"] == {"lotNumber": "LOT-2026-117"}
    assert medication["code"] == {"text": "Biotin and panthenol cocktail"}

    given = one(by_type, "MedicationAdministration")
    assert given["status"] == "completed"
    assert given["partOf"] == [{"reference": f"urn:uuid:{procedure['id']}"}]
    assert given["effectivePeriod"] == procedure["performedPeriod"]

    summary = summarize_store(store, sid)
    observations = by_type["Observation"]
    assert len(observations) == len(summary.deliveries) == 2
    for observation, zone in zip(observations, summary.deliveries, strict=True):
        assert observation["status"] == "final"
        assert zone.dose_ma_min > 0 and zone.peak_output_v is not None
        assert_matches_summary(observation, zone)


def test_a_recorded_client_name_is_the_patients_name(store: RecordStore, clock: FakeClock) -> None:
    store.get_or_create_client("C-0042", "Ann Example")
    bundle = session_bundle(store, real_session(store, clock))
    assert one(check_bundle(bundle), "Patient")["name"] == [{"text": "Ann Example"}]


def test_a_corrected_lot_is_the_batchs_lot(store: RecordStore, clock: FakeClock) -> None:
    sid = real_session(store, clock)
    store.amend_session(sid, "serum_lot", "LOT-2026-118", by="Head nurse", reason="typo")
    by_type = check_bundle(session_bundle(store, sid))
    assert one(by_type, "Medication")["batch"]["lotNumber"] == "LOT-2026-118"
    (note,) = one(by_type, "MedicationAdministration")["note"]
    assert "'LOT-2026-117' to 'LOT-2026-118' by Head nurse" in note["text"]


@pytest.mark.parametrize(
    ("outcome", "delivered", "status"),
    [
        ("completed", (600_000, 600_000), "completed"),
        ("stopped", (200_000, None), "stopped"),
        ("aborted", (200_000, None), "stopped"),
        ("faulted", (200_000, None), "stopped"),
        ("interrupted", (200_000, None), "stopped"),
        ("stopped", (None, None), "not-done"),
        ("faulted", (0, None), "not-done"),
        ("interrupted", (None, None), "not-done"),
        ("refused", (None, None), "not-done"),
    ],
)
def test_each_outcome_maps_to_a_procedure_status(
    store: RecordStore,
    clock: FakeClock,
    outcome: str,
    delivered: tuple[int | None, int | None],
    status: str,
) -> None:
    reason = "" if outcome == "completed" else f"why it was {outcome}"
    sid = real_session(store, clock, outcome=outcome, reason=reason, delivered=delivered)
    bundle = session_bundle(store, sid)
    parse_r4b(bundle)
    by_type = check_bundle(bundle)
    procedure = one(by_type, "Procedure")
    assert procedure["status"] == status
    assert one(by_type, "MedicationAdministration")["status"] == status
    if outcome == "completed":
        assert "statusReason" not in procedure
    else:
        reason_cc = procedure["statusReason"]
        assert reason_cc["coding"] == [{"system": OUTCOME_SYSTEM, "code": outcome}]
        assert reason_cc["text"].startswith(f"{outcome}: why it was {outcome}")
        assert one(by_type, "MedicationAdministration")["statusReason"] == [reason_cc]
    # bodySite: the zones something was delivered to; when nothing was, the planned ones.
    sites = [s["text"] for s in procedure["bodySite"]]
    if status == "stopped":
        assert sites == ["frontal scalp"]
    else:
        assert sites == ["frontal scalp", "crown (vertex)"]


def test_a_zone_never_started_has_no_measured_peaks(store: RecordStore, clock: FakeClock) -> None:
    sid = real_session(store, clock, outcome="stopped", delivered=(200_000, None))
    observations = check_bundle(session_bundle(store, sid))["Observation"]
    crown = components(observations[1])
    assert crown["delivered-time"]["valueQuantity"]["value"] == 0
    assert crown["zone-status"]["valueCodeableConcept"]["coding"][0]["code"] == "not-started"
    for code in ("peak-output-voltage", "peak-current", "dose-per-area"):
        assert "valueQuantity" not in crown[code]
        assert crown[code]["dataAbsentReason"]["coding"][0]["code"] == "not-performed"
    assert "effectivePeriod" not in observations[1]


def test_ids_are_stable_and_differ_between_sessions(store: RecordStore, clock: FakeClock) -> None:
    first = real_session(store, clock)
    second = real_session(store, clock, outcome="stopped", delivered=(100_000, None))
    text = bundle_json(store, first)
    assert bundle_json(store, first) == text  # byte for byte
    assert json.loads(text) == session_bundle(store, first)

    def ids(sid: int) -> dict[str, set[str]]:
        found: dict[str, set[str]] = {}
        for entry in session_bundle(store, sid)["entry"]:
            found.setdefault(entry["resource"]["resourceType"], set()).add(entry["fullUrl"])
        return found

    a, b = ids(first), ids(second)
    for kind in ("Procedure", "Observation", "Medication", "MedicationAdministration"):
        assert a[kind].isdisjoint(b[kind]), kind
    # One client and one unit: one Patient and one Device, updated by every session's export.
    assert a["Patient"] == b["Patient"] and a["Device"] == b["Device"]


def test_the_station_key_is_the_station_id(store: RecordStore, clock: FakeClock) -> None:
    sid = real_session(store, clock)
    key = station_key(store)
    assert key == store.station_id and len(key) == 36  # the id the clinic server knows
    real_session(store, clock)
    assert station_key(store) == key  # later events do not change it
    procedure = one(check_bundle(session_bundle(store, sid)), "Procedure")
    assert procedure["identifier"][0]["value"] == f"{key}/{sid}"


def test_another_station_gives_other_ids(tmp_path: Path) -> None:
    found = []
    for name in ("room-1", "room-2"):
        clock = FakeClock()
        with RecordStore.open(tmp_path / name, clock=clock) as store:
            sid = real_session(store, clock)
            found.append({e["fullUrl"] for e in session_bundle(store, sid)["entry"]})
    assert found[0].isdisjoint(found[1])


def test_unknown_and_running_sessions_are_refused(store: RecordStore) -> None:
    with pytest.raises(UnknownSessionError, match="no session has the id 99"):
        session_bundle(store, 99)
    sid = begin(store, planned_steps=PLAN)
    with pytest.raises(SessionRunningError, match=f"session {sid} is still running"):
        session_bundle(store, sid)


# -- sessions run by the engine on the simulator ---------------------------------------------------


def test_a_simulated_session_is_refused_unless_asked_and_then_tagged(
    engine_env: EngineEnv,
) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, manual_speed=1000)
    assert s.watch.finished().outcome is Outcome.COMPLETED
    sid = s.engine.session_id
    assert sid is not None
    with pytest.raises(SimulatedSessionError, match="--include-simulated"):
        session_bundle(s.store, sid)
    bundle = session_bundle(s.store, sid, include_simulated=True)
    parse_r4b(bundle)
    by_type = check_bundle(bundle)
    assert tags(bundle) == [SIMULATED_TAG]
    for entry in bundle["entry"]:
        assert [t["code"] for t in tags(entry["resource"]) if t["system"] == TAG_SYSTEM] == [
            "simulated"
        ]
    device = one(by_type, "Device")
    assert device["serialNumber"].startswith("SIM-")
    assert {"name": "EPM-1 simulator", "type": "user-friendly-name"} in device["deviceName"]
    assert "simulator" in device["type"]["text"]

    procedure = one(by_type, "Procedure")
    assert procedure["status"] == "completed"
    summary = summarize_store(s.store, sid)
    observations = by_type["Observation"]
    assert [o["bodySite"]["coding"][1]["code"] for o in observations] == ["frontal", "crown"]
    for observation, zone in zip(observations, summary.deliveries, strict=True):
        assert_matches_summary(observation, zone)
        assert observation["partOf"] == [{"reference": f"urn:uuid:{procedure['id']}"}]
    assert one(by_type, "Medication")["batch"]["lotNumber"] == "LOT-42"
    assert bundle_json(s.store, sid, include_simulated=True) == bundle_json(
        s.store, sid, include_simulated=True
    )


def test_a_simulated_patient_never_takes_a_real_ones_id(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, manual_speed=1000, client_code="C-0042")
    s.watch.finished()
    sim_id = s.engine.session_id
    real = real_session(engine_env.store, FakeClock())
    sim_patient = one(
        check_bundle(session_bundle(s.store, sim_id, include_simulated=True)), "Patient"
    )
    real_patient = one(check_bundle(session_bundle(s.store, real)), "Patient")
    assert sim_patient["identifier"] == real_patient["identifier"]
    assert sim_patient["id"] != real_patient["id"] and not tags(real_patient)


def test_an_engine_stop_is_stopped_with_its_reason(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=50, manual_speed=1000)
    s.watch.until(lambda x: x.phase is Phase.DELIVERING and x.zone_delivered_ms > 2_000)
    s.engine.request(Action.STOP)
    assert s.watch.finished().outcome is Outcome.STOPPED
    sid = s.engine.session_id
    bundle = session_bundle(s.store, sid, include_simulated=True)
    parse_r4b(bundle)
    by_type = check_bundle(bundle)
    procedure = one(by_type, "Procedure")
    assert procedure["status"] == "stopped"
    assert procedure["statusReason"]["coding"][0]["code"] == "stopped"
    assert [site["coding"][1]["code"] for site in procedure["bodySite"]] == ["frontal"]
    assert one(by_type, "MedicationAdministration")["status"] == "stopped"
    summary = summarize_store(s.store, sid)
    parts = [components(o) for o in by_type["Observation"]]
    assert [p["delivered-time"]["valueQuantity"]["value"] for p in parts] == [
        z.delivered_ms / 1000 for z in summary.deliveries
    ]


def test_a_stop_before_any_delivery_is_not_done(engine_env: EngineEnv) -> None:
    s = engine_env.session("two-zones.yaml", speed=300, manual_speed=1.0)
    s.watch.phase(Phase.MANUAL)
    s.engine.request(Action.STOP)
    snap = s.watch.finished()
    assert snap.outcome in (Outcome.STOPPED, Outcome.ABORTED)
    by_type = check_bundle(session_bundle(s.store, s.engine.session_id, include_simulated=True))
    assert one(by_type, "Procedure")["status"] == "not-done"
    assert "nothing was delivered" in one(by_type, "Procedure")["statusReason"]["text"]
    assert one(by_type, "MedicationAdministration")["status"] == "not-done"


def test_a_fault_is_stopped_with_the_alarm_noted(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=50)
    s.watch.delivering()
    s.sim.inject("handpiece_removed")
    s.watch.phase(Phase.FAULT)
    s.engine.request(Action.END, "handpiece cable broke")
    assert s.watch.finished().outcome is Outcome.FAULTED
    bundle = session_bundle(s.store, s.engine.session_id, include_simulated=True)
    parse_r4b(bundle)
    procedure = one(check_bundle(bundle), "Procedure")
    assert procedure["status"] == "stopped"
    assert procedure["statusReason"]["coding"][0]["code"] == "faulted"
    assert "handpiece cable broke" in procedure["statusReason"]["text"]
    assert any(n["text"].startswith("Alarm ") for n in procedure["note"])


def test_a_refused_session_is_not_done(engine_env: EngineEnv) -> None:
    load_result = load_protocol(protocol_path("two-zones.yaml"))
    assert load_result.protocol is not None
    answers = checklist_answers(load_result.protocol)
    answers["serum-allergy"] = True  # a contraindication present: the preflight refuses
    s = engine_env.session("two-zones.yaml", answers=answers)
    assert s.watch.finished().outcome is Outcome.REFUSED
    bundle = session_bundle(s.store, s.engine.session_id, include_simulated=True)
    parse_r4b(bundle)
    by_type = check_bundle(bundle)
    assert one(by_type, "Procedure")["status"] == "not-done"
    assert one(by_type, "Procedure")["statusReason"]["coding"][0]["code"] == "refused"
    assert one(by_type, "MedicationAdministration")["status"] == "not-done"


def test_a_running_engine_session_is_refused(engine_env: EngineEnv) -> None:
    s = engine_env.session("one-zone.yaml", speed=50)
    s.watch.delivering()
    with pytest.raises(SessionRunningError, match="once it has ended"):
        session_bundle(s.store, s.engine.session_id, include_simulated=True)
    s.engine.request(Action.STOP)
    s.watch.finished()


# -- epm records export --format fhir --------------------------------------------------------------


@pytest.fixture
def recorded(data_dir: Path) -> dict[str, int]:
    clock = FakeClock()
    with RecordStore.open(data_dir, clock=clock) as store:
        real = real_session(store, clock)
        sim = begin(store, client_code="C-0077", device_serial="SIM-0001", serum_lot="")
        store.end_session(sim, "stopped", "demo")
        running = begin(store, client_code="C-0078")
    return {"real": real, "sim": sim, "running": running}


def test_cli_writes_the_bundle_to_stdout(cli: Any, data_dir: Path, recorded: Any) -> None:
    code, out, err = cli(
        "records", "export", str(recorded["real"]), "--format", "fhir", "--data-dir", str(data_dir)
    )
    assert code == 0, err
    bundle = json.loads(out)
    parse_r4b(bundle)
    check_bundle(bundle)
    assert "chain head" in err
    with RecordStore.open(data_dir, exclusive=False) as store:
        assert out == bundle_json(store, recorded["real"])


def test_cli_writes_a_private_file_and_never_overwrites(
    cli: Any, data_dir: Path, recorded: Any, tmp_path: Path
) -> None:
    target = tmp_path / "session.fhir.json"
    argv = ["records", "export", str(recorded["real"]), "--format", "fhir"]
    argv += ["--output", str(target), "--data-dir", str(data_dir)]
    code, out, err = cli(*argv)
    assert code == 0 and out == "" and f"wrote {target}" in err
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    first = target.read_text(encoding="utf-8")
    check_bundle(json.loads(first))
    code, _, err = cli(*argv)
    assert code == 1 and "already exists" in err and "--force" in err
    code, _, _ = cli(*argv, "--force")
    assert code == 0 and target.read_text(encoding="utf-8") == first


def test_cli_refusals(cli: Any, data_dir: Path, recorded: Any, tmp_path: Path) -> None:
    base = ["--format", "fhir", "--data-dir", str(data_dir)]
    code, out, err = cli("records", "export", "--all", *base)
    assert code == 2 and out == "" and "one session at a time" in err
    code, out, err = cli("records", "export", "42", *base)
    assert code == 1 and out == "" and "no session has the id 42" in err
    code, out, err = cli("records", "export", str(recorded["running"]), *base)
    assert code == 1 and out == "" and "still running" in err
    target = tmp_path / "sim.json"
    code, out, err = cli("records", "export", str(recorded["sim"]), *base, "--output", str(target))
    assert code == 1 and "ran on the simulator" in err and "--include-simulated" in err
    assert not target.exists()
    code, out, err = cli("records", "export", str(recorded["sim"]), *base, "--include-simulated")
    assert code == 0, err
    bundle = json.loads(out)
    check_bundle(bundle)
    assert tags(bundle) == [SIMULATED_TAG]
    # The serum lot of this rehearsal was never recorded: the batch is left out, not empty.
    assert "batch" not in one(check_bundle(bundle), "Medication")
