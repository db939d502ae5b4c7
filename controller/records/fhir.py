"""One session as a FHIR R4 transaction Bundle, for a clinic's EHR or practice-management system.

Why: a clinic must be able to take a session into its own system without custom mapping. The
Bundle holds the client (Patient), the unit (Device), the session (Procedure), one Observation
per delivery zone with its figures, and the serum (Medication, given by a
MedicationAdministration). The mapping, the code systems and the URIs are documented in
docs/records.md ("FHIR export"); no published FHIR profile covers this kind of procedure.

Every figure comes from :func:`controller.records.summary.summarize_store`, so the FHIR export
says what the session report and the end screen say. Every resource is built and validated
with the ``fhir.resources`` R4B models (R4B is R4-compatible for the elements used here; the
package's default models are R5 and it has no plain R4 ones, see docs/dependencies.md).

Identifiers are stable: each resource ``id`` is a UUID5 of a fixed namespace, the station key
(:func:`station_key`: the hash of the records database's first chained event, made with the
database and never changed), the resource's role and its key (the session id, the zone's step
number, the client code, the device serial). Each entry is a ``PUT`` on ``ResourceType/id``,
so exporting the same session again updates what the clinic system holds instead of
duplicating it, and the same session always gives the same bytes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from controller.records.errors import RecordsError
from controller.records.models import SessionRecord, StepRecord
from controller.records.summary import SessionSummary, ZoneSummary, summarize_store

if TYPE_CHECKING:
    from controller.records.store import RecordStore

# -- code systems and URIs (docs/records.md, "FHIR export") ---------------------------------------

#: The clinic's own client number (``clients.code``) as Patient.identifier.system.
CLIENT_CODE_SYSTEM = "urn:epm:client-code"
#: Procedure.identifier.system; the value is ``<station key>/<session id>``.
SESSION_SYSTEM = "urn:epm:session"
#: Device.identifier.system; the value is the unit's serial number.
DEVICE_SERIAL_SYSTEM = "urn:epm:device-serial"
#: Procedure.code: code = protocol id, version = protocol version, display = its title.
PROTOCOL_SYSTEM = "urn:epm:protocol"
#: Procedure.extension: the SHA-256 of the exact protocol file that ran (valueString, hex).
PROTOCOL_SHA256_EXTENSION = "urn:epm:fhir:extension:protocol-sha256"
#: The session's recorded outcome (completed, stopped, aborted, faulted, interrupted, refused)
#: in Procedure.statusReason and MedicationAdministration.statusReason.
OUTCOME_SYSTEM = "urn:epm:outcome"
#: Observation.code and the components' codes.
OBSERVATION_SYSTEM = "urn:epm:observation"
#: The protocol format's zone names (frontal, midscalp, crown, ..., patch) in bodySite.
ZONE_SYSTEM = "urn:epm:zone"
#: A zone's status as the session summary says it (completed, skipped, not-started, ...).
ZONE_STATUS_SYSTEM = "urn:epm:zone-status"
#: meta.tag of every resource of a simulated session: code ``simulated``.
TAG_SYSTEM = "urn:epm:tags"
SIMULATED_TAG = {
    "system": TAG_SYSTEM,
    "code": "simulated",
    "display": "Simulated session: not a real treatment",
}

SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
DATA_ABSENT_REASON = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

#: SNOMED CT 41695006 |Scalp structure (body structure)|: every EPM-1 zone is on the scalp.
#: The zones themselves (midscalp, crown ...) are the practice's names, with no SNOMED CT code
#: we could vouch for: they are carried in ``ZONE_SYSTEM`` and the text, never as a guessed
#: SNOMED CT code.
SCALP = {"system": SNOMED, "code": "41695006", "display": "Scalp structure"}
ZONE_NAMES: Mapping[str, str] = {
    "frontal": "frontal scalp",
    "midscalp": "midscalp",
    "crown": "crown (vertex)",
    "temporal_left": "left temporal scalp",
    "temporal_right": "right temporal scalp",
    "occipital": "occipital scalp",
    "patch": "test patch on the scalp",
}

#: uuid5(NAMESPACE_URL, "urn:epm:fhir"): the namespace of every resource id.
ID_NAMESPACE = uuid.UUID("53f65412-b9ce-55fa-a5b1-fa772511e8ff")

#: Outcomes that end a session early: Procedure ``stopped`` (``not-done`` if nothing was
#: delivered), with the outcome and its reason in statusReason.
STOPPED_OUTCOMES = ("stopped", "aborted", "faulted", "interrupted")

#: Dose figures are rounded to this many decimals (10⁻⁶ mA·min is 0.06 µA·s).
DOSE_DECIMALS = 6


class FhirExportError(RecordsError):
    """The session cannot be exported as FHIR; the message says why and what to do."""


class SessionRunningError(FhirExportError):
    """The session has not ended yet."""


class SimulatedSessionError(FhirExportError):
    """A simulated session, asked for without ``include_simulated``."""


def station_key(store: RecordStore) -> str:
    """The station's id (a UUID4 made with its records database and never changed,
    ``RecordStore.station_id``): the same station the clinic server knows its chain by. A copy
    of the data folder keeps it; a new database gets another."""
    return store.station_id


def resource_id(station: str, role: str, key: object) -> str:
    """The stable id of one resource: UUID5 of :data:`ID_NAMESPACE` and
    ``<station>|<role>|<key>``."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{station}|{role}|{key}"))


def procedure_status(outcome: str, *, nothing_delivered: bool) -> str:
    """Procedure.status (and MedicationAdministration.status) for a session outcome."""
    if outcome == "completed":
        return "completed"
    if outcome == "refused":
        return "not-done"
    if outcome in STOPPED_OUTCOMES:
        return "not-done" if nothing_delivered else "stopped"
    if outcome == "running":
        raise SessionRunningError("a running session has no FHIR status yet")
    raise FhirExportError(f"session outcome {outcome!r} has no FHIR status")


def session_bundle(
    store: RecordStore,
    session_id: int,
    *,
    include_simulated: bool = False,
    client_code_system: str = CLIENT_CODE_SYSTEM,
) -> dict[str, Any]:
    """The session as a FHIR R4 ``transaction`` Bundle (a JSON-ready dict), validated with the
    R4B models. Raises :class:`SessionRunningError` for a session still running,
    :class:`SimulatedSessionError` for a simulated one unless ``include_simulated`` (then every
    resource is tagged ``simulated``), ``UnknownSessionError`` for an unknown id."""
    session = store.get_session(session_id)
    if session.is_open:
        raise SessionRunningError(
            f"session {session_id} is still running: export it to FHIR once it has ended"
        )
    if session.simulated and not include_simulated:
        raise SimulatedSessionError(
            f"session {session_id} ran on the simulator (device {session.device_serial}): it "
            "is not a real treatment and is not exported to a clinical system; add "
            "--include-simulated to export it anyway, every resource tagged 'simulated'"
        )
    summary = summarize_store(store, session_id)
    builder = _Builder(station_key(store), session, summary, store.steps(session_id))
    return _validated_bundle(builder.resources(client_code_system), simulated=session.simulated)


def bundle_json(
    store: RecordStore,
    session_id: int,
    *,
    include_simulated: bool = False,
    client_code_system: str = CLIENT_CODE_SYSTEM,
) -> str:
    """:func:`session_bundle` as JSON text: FHIR's element order (as the R4B models emit it),
    two-space indent, UTF-8 characters kept, a final newline. The same session always gives
    the same text."""
    bundle = session_bundle(
        store,
        session_id,
        include_simulated=include_simulated,
        client_code_system=client_code_system,
    )
    return json.dumps(bundle, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


# -- building --------------------------------------------------------------------------------------


def _ref(resource: Mapping[str, Any]) -> dict[str, str]:
    return {"reference": f"urn:uuid:{resource['id']}"}


def _period(start: str | None, end: str | None) -> dict[str, str]:
    period = {}
    if start:
        period["start"] = start
    if end:
        period["end"] = end
    return period


def _quantity(value: float, code: str, unit: str) -> dict[str, Any]:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _absent(code: str) -> dict[str, Any]:
    return {"coding": [{"system": DATA_ABSENT_REASON, "code": code}]}


def body_site(zone: str | None) -> dict[str, Any]:
    """bodySite for a zone: SNOMED CT scalp, the zone in :data:`ZONE_SYSTEM`, its name as
    text. A zone epm does not know gets its name as text only."""
    if zone is None:
        return {"text": "zone not recorded"}
    name = ZONE_NAMES.get(zone)
    if name is None:
        return {"text": zone}
    return {
        "coding": [dict(SCALP), {"system": ZONE_SYSTEM, "code": zone, "display": name}],
        "text": name,
    }


def _corrected(session: SessionRecord, field: str) -> str:
    """The field's latest correction (``epm records amend``), else the recorded value: the
    clinic system gets the value the clinic stands by."""
    found = session.amended(field)
    return str(found.get("value")) if found is not None else str(getattr(session, field))


def _correction_notes(session: SessionRecord, fields: Sequence[str]) -> list[dict[str, str]]:
    notes = []
    for a in session.amendments:
        if a.get("field") in fields:
            notes.append(
                {
                    "time": str(a.get("at")),
                    "text": f"{str(a.get('field')).replace('_', ' ')} corrected from "
                    f"{a.get('original')!r} to {a.get('value')!r} by {a.get('by')}: "
                    f"{a.get('reason')}",
                }
            )
    return notes


class _Builder:
    """The resources of one session (plain dicts, validated afterwards)."""

    def __init__(
        self,
        station: str,
        session: SessionRecord,
        summary: SessionSummary,
        steps: Sequence[StepRecord],
    ) -> None:
        self.station = station
        self.session = session
        self.summary = summary
        self.steps = steps
        self.status = procedure_status(session.outcome, nothing_delivered=summary.nothing_delivered)
        # A simulated session's shared resources (Patient, Device) never take the id of a
        # real one's: re-exporting a rehearsal must not tag a real client as simulated.
        self.scope = "simulated" if session.simulated else "real"

    def _id(self, role: str, key: object) -> str:
        return resource_id(self.station, role, key)

    def _base(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        resource: dict[str, Any] = {"resourceType": resource_type, "id": resource_id}
        if self.session.simulated:
            resource["meta"] = {"tag": [dict(SIMULATED_TAG)]}
        return resource

    @property
    def period(self) -> dict[str, str]:
        # An interrupted session's end is the last moment known to have happened (estimated),
        # not when the next start-up closed its record.
        s = self.session
        return _period(s.started_at, s.last_known_at or s.ended_at)

    def _status_reason(self) -> dict[str, Any] | None:
        s = self.session
        if s.outcome == "completed":
            return None
        text = s.outcome + (f": {s.outcome_reason}" if s.outcome_reason else "")
        if self.summary.nothing_delivered and s.outcome != "refused":
            text += " (nothing was delivered)"
        return {"coding": [{"system": OUTCOME_SYSTEM, "code": s.outcome}], "text": text}

    def resources(self, client_code_system: str) -> list[dict[str, Any]]:
        patient = self.patient(client_code_system)
        device = self.device()
        medication = self.medication()
        procedure = self.procedure(patient, device, medication)
        observations = [
            self.observation(zone, patient, device, procedure) for zone in self.summary.deliveries
        ]
        administration = self.administration(patient, device, medication, procedure)
        return [patient, device, medication, procedure, *observations, administration]

    def patient(self, system: str) -> dict[str, Any]:
        s = self.session
        patient = self._base("Patient", self._id(f"Patient/{self.scope}", s.client_code))
        patient["identifier"] = [{"system": system, "value": s.client_code}]
        if s.client_name:
            patient["name"] = [{"text": s.client_name}]
        return patient

    def device(self) -> dict[str, Any]:
        s = self.session
        key = f"{s.device_serial}|{s.device_firmware}"
        device = self._base("Device", self._id(f"Device/{self.scope}", key))
        device["identifier"] = [{"system": DEVICE_SERIAL_SYSTEM, "value": s.device_serial}]
        device["status"] = "active"
        device["serialNumber"] = s.device_serial
        names = [{"name": s.device_model, "type": "model-name"}]
        if s.simulated:
            names.append({"name": f"{s.device_model} simulator", "type": "user-friendly-name"})
        device["deviceName"] = names
        device["modelNumber"] = s.device_model
        device["type"] = {
            "text": f"{s.device_model} simulator (not a treatment device)"
            if s.simulated
            else "needle-free electroporation unit"
        }
        if s.device_firmware:
            device["version"] = [{"type": {"text": "firmware"}, "value": s.device_firmware}]
        if s.simulated:
            device["note"] = [
                {
                    "text": "A simulator: epm's built-in simulated EPM-1. Nothing was delivered "
                    "to anyone; the session was a rehearsal or a test."
                }
            ]
        return device

    def medication(self) -> dict[str, Any]:
        medication = self._base("Medication", self._id("Medication", self.session.id))
        medication["code"] = {"text": _corrected(self.session, "serum_name")}
        lot = _corrected(self.session, "serum_lot")
        if lot:
            medication["batch"] = {"lotNumber": lot}
        return medication

    def procedure(
        self,
        patient: Mapping[str, Any],
        device: Mapping[str, Any],
        medication: Mapping[str, Any],
    ) -> dict[str, Any]:
        s = self.session
        procedure = self._base("Procedure", self._id("Procedure", s.id))
        procedure["extension"] = [
            {"url": PROTOCOL_SHA256_EXTENSION, "valueString": s.protocol_sha256}
        ]
        procedure["identifier"] = [{"system": SESSION_SYSTEM, "value": f"{self.station}/{s.id}"}]
        procedure["status"] = self.status
        reason = self._status_reason()
        if reason is not None:
            procedure["statusReason"] = reason
        procedure["code"] = {
            "coding": [
                {
                    "system": PROTOCOL_SYSTEM,
                    "version": str(s.protocol_version),
                    "code": s.protocol_id,
                    "display": s.protocol_title,
                }
            ],
            "text": s.protocol_title,
        }
        procedure["subject"] = _ref(patient)
        procedure["performedPeriod"] = self.period
        practitioner = _corrected(s, "practitioner")
        if practitioner:
            procedure["performer"] = [{"actor": {"display": practitioner}}]
        sites = self._treated_zones()
        if sites:
            procedure["bodySite"] = [body_site(z) for z in sites]
        notes = self._procedure_notes()
        if notes:
            procedure["note"] = notes
        procedure["usedReference"] = [_ref(device), _ref(medication)]
        return procedure

    def _treated_zones(self) -> list[str | None]:
        """The zones something was delivered to, in plan order; when nothing was, the zones
        the session was going to treat."""
        deliveries = self.summary.deliveries
        treated = [z.zone for z in deliveries if z.delivered_ms > 0] or [z.zone for z in deliveries]
        return list(dict.fromkeys(treated))

    def _procedure_notes(self) -> list[dict[str, str]]:
        s = self.session
        notes: list[dict[str, str]] = []
        if s.last_known_at:
            notes.append(
                {
                    "text": "The session was interrupted (epm stopped without closing it); its "
                    "end is the last moment known from the record, estimated."
                }
            )
        for alarm in self.summary.alarms:
            text = f"Alarm {alarm.title} ({alarm.priority})"
            if alarm.message:
                text += f": {alarm.message}"
            notes.append({"time": alarm.raised_at, "text": text})
        notes += _correction_notes(s, ("practitioner",))
        if s.notes:
            notes.append({"text": s.notes})
        return notes

    def observation(
        self,
        zone: ZoneSummary,
        patient: Mapping[str, Any],
        device: Mapping[str, Any],
        procedure: Mapping[str, Any],
    ) -> dict[str, Any]:
        s = self.session
        observation = self._base("Observation", self._id("Observation", f"{s.id}/{zone.index}"))
        observation["partOf"] = [_ref(procedure)]
        observation["status"] = "final"
        observation["category"] = [
            {"coding": [{"system": OBSERVATION_CATEGORY, "code": "procedure"}]}
        ]
        observation["code"] = {
            "coding": [
                {
                    "system": OBSERVATION_SYSTEM,
                    "code": "zone-delivery",
                    "display": "Electroporation delivery on one scalp zone",
                }
            ],
            "text": f"Step {zone.index}: delivery on {body_site(zone.zone)['text']}",
        }
        observation["subject"] = _ref(patient)
        period = self._step_period(zone.index)
        if period:
            observation["effectivePeriod"] = period
        notes = self._zone_notes(zone)
        if notes:
            observation["note"] = notes
        observation["bodySite"] = body_site(zone.zone)
        observation["device"] = _ref(device)
        observation["component"] = self._components(zone)
        return observation

    def _step_period(self, index: int) -> dict[str, str]:
        mine = [st for st in self.steps if st.index == index]
        starts = [st.started_at for st in mine if st.started_at]
        ends = [st.ended_at for st in mine if st.ended_at]
        return _period(min(starts) if starts else None, max(ends) if ends else None)

    @staticmethod
    def _zone_notes(zone: ZoneSummary) -> list[dict[str, str]]:
        notes = []
        if zone.skip_reason:
            notes.append({"text": f"Skipped: {zone.skip_reason}"})
        if any(a.delivered_estimated for a in zone.attempts):
            notes.append(
                {
                    "text": "The delivered time is estimated from the last telemetry of an "
                    "interrupted session, not reported by the device."
                }
            )
        return notes

    @staticmethod
    def _components(zone: ZoneSummary) -> list[dict[str, Any]]:
        missing = "unknown" if zone.attempts else "not-performed"

        def component(code: str, display: str, value: dict[str, Any] | None) -> dict[str, Any]:
            part: dict[str, Any] = {
                "code": {"coding": [{"system": OBSERVATION_SYSTEM, "code": code}], "text": display}
            }
            if value is None:
                part["dataAbsentReason"] = _absent(missing)
            else:
                part["valueQuantity"] = value
            return part

        per_cm2 = zone.dose_ma_min_per_cm2
        status = zone.status.replace(" ", "-")
        return [
            component(
                "delivered-time",
                "Delivered time (the device's delivery time)",
                _quantity(zone.delivered_ms / 1000, "s", "s"),
            ),
            component("planned-time", "Planned time", _quantity(zone.planned_ms / 1000, "s", "s")),
            component(
                "dose",
                "Delivered dose (current × delivery time)",
                _quantity(round(zone.dose_ma_min, DOSE_DECIMALS), "mA.min", "mA·min"),
            ),
            component(
                "dose-per-area",
                "Delivered dose per cm² of electrode",
                None
                if per_cm2 is None
                else _quantity(round(per_cm2, DOSE_DECIMALS), "mA.min/cm2", "mA·min/cm²"),
            ),
            component(
                "peak-output-voltage",
                "Peak output voltage",
                None if zone.peak_output_v is None else _quantity(zone.peak_output_v, "V", "V"),
            ),
            component(
                "peak-current",
                "Peak current",
                None
                if zone.peak_current_ma is None
                else _quantity(zone.peak_current_ma, "mA", "mA"),
            ),
            {
                "code": {
                    "coding": [{"system": OBSERVATION_SYSTEM, "code": "zone-status"}],
                    "text": "Zone status",
                },
                "valueCodeableConcept": {
                    "coding": [{"system": ZONE_STATUS_SYSTEM, "code": status}],
                    "text": zone.status,
                },
            },
        ]

    def administration(
        self,
        patient: Mapping[str, Any],
        device: Mapping[str, Any],
        medication: Mapping[str, Any],
        procedure: Mapping[str, Any],
    ) -> dict[str, Any]:
        s = self.session
        given = self._base("MedicationAdministration", self._id("MedicationAdministration", s.id))
        given["partOf"] = [_ref(procedure)]
        given["status"] = self.status
        reason = self._status_reason()
        if reason is not None:
            given["statusReason"] = [reason]
        given["medicationReference"] = _ref(medication)
        given["subject"] = _ref(patient)
        given["effectivePeriod"] = self.period
        practitioner = _corrected(s, "practitioner")
        if practitioner:
            given["performer"] = [{"actor": {"display": practitioner}}]
        given["device"] = [_ref(device)]
        notes = _correction_notes(s, ("serum_name", "serum_lot"))
        if notes:
            given["note"] = notes
        given["dosage"] = {
            "text": "Applied to the scalp and driven in by needle-free electroporation "
            f"({s.device_model}, protocol {s.protocol_id} version {s.protocol_version})",
        }
        return given


# -- validation ------------------------------------------------------------------------------------


def _models() -> dict[str, Any]:
    from fhir.resources.R4B.device import Device
    from fhir.resources.R4B.medication import Medication
    from fhir.resources.R4B.medicationadministration import MedicationAdministration
    from fhir.resources.R4B.observation import Observation
    from fhir.resources.R4B.patient import Patient
    from fhir.resources.R4B.procedure import Procedure

    return {
        m.get_resource_type(): m
        for m in (Patient, Device, Medication, Procedure, Observation, MedicationAdministration)
    }


def _validated_bundle(resources: Sequence[Mapping[str, Any]], *, simulated: bool) -> dict[str, Any]:
    """Each resource through its R4B model, then the Bundle through the Bundle model; the
    models' JSON form is what is returned."""
    from fhir.resources.R4B.bundle import Bundle
    from pydantic import ValidationError

    models = _models()
    entries = []
    try:
        for resource in resources:
            kind = str(resource["resourceType"])
            checked = models[kind].model_validate(resource).model_dump(mode="json")
            entries.append(
                {
                    "fullUrl": f"urn:uuid:{resource['id']}",
                    "resource": checked,
                    "request": {"method": "PUT", "url": f"{kind}/{resource['id']}"},
                }
            )
        bundle: dict[str, Any] = {"resourceType": "Bundle"}
        if simulated:  # the Bundle is tagged too
            bundle["meta"] = {"tag": [dict(SIMULATED_TAG)]}
        bundle["type"] = "transaction"
        bundle["entry"] = entries
        result: dict[str, Any] = Bundle.model_validate(bundle).model_dump(mode="json")
    except ValidationError as exc:  # a mapping bug: say so rather than write a bad bundle
        raise FhirExportError(
            f"the FHIR bundle did not validate against the R4B models (a bug in epm; nothing "
            f"was written): {exc}"
        ) from exc
    return result
