"""Preflight: every check a session must pass before anything is sent to the device.

Why: a session that cannot be run safely must be refused before the device acts, with reasons
a practitioner can act on. The checks follow the limit layers of docs/alarms.md — the protocol
file (validated by :mod:`protocols`), the controller's checks against the connected device's
stated capabilities and handpiece, the clinic's approval rules and the pre-session checklist —
and each refusal starts with the layer that refused and says how to fix it.

Pure functions over what the engine has already read from the device; nothing here does I/O
except :func:`controller.records.approvals.check_runnable` reading the approvals table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.device import DeviceInfo, Status, check_step
from controller.records import RecordStore
from controller.records.approvals import check_runnable
from controller.session.model import StepStatus
from controller.wire import Contact, Fault, Handpiece, State
from protocols import (
    DeliveryStep,
    ManualStep,
    Protocol,
    build_checklist,
    evaluate_checklist,
    to_device_step,
)
from protocols.device_units import HANDPIECE_CODE
from protocols.units import to_units

#: Faults a session start never clears: the device must be serviced or power-cycled.
SERVICE_FAULTS = Fault.SELFTEST | Fault.OUTPUT_FAULT


@dataclass
class PlannedStep:
    """One step the session will run (manual steps always, delivery steps of chosen zones).

    Mutable and owned by the engine thread; the snapshot copies it into a ``StepView``.
    """

    pos: int
    """0-based position in the session's list of steps."""
    index: int
    """1-based step number in the protocol file."""
    step: DeliveryStep | ManualStep
    planned_ms: int
    delivered_ms: int = 0
    """Delivery time of the attempts that ended (the device's ``step_elapsed_ms``)."""
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    manual_done_ms: int = 0
    """Manual steps: timer time already run in earlier attempts (practitioner's clock)."""
    skip_reason: str | None = None
    """Why it was skipped (the practitioner's reason), once it was."""

    @property
    def kind(self) -> str:
        return self.step.kind

    @property
    def is_delivery(self) -> bool:
        return isinstance(self.step, DeliveryStep)

    @property
    def zone(self) -> str | None:
        return str(self.step.zone) if isinstance(self.step, DeliveryStep) else None

    @property
    def title(self) -> str:
        if isinstance(self.step, ManualStep):
            return self.step.title
        return f"Zone {str(self.step.zone).replace('_', ' ')}"

    @property
    def name(self) -> str:
        """How notices name it: ``zone 3 (Crown)`` or ``step 1 (Apply the serum)``."""
        if isinstance(self.step, DeliveryStep):
            zone = str(self.step.zone).replace("_", " ")
            return f"zone {self.index} ({zone[:1].upper()}{zone[1:]})"
        return f"step {self.index} ({self.step.title})"

    @property
    def instructions(self) -> str | None:
        return self.step.instructions if isinstance(self.step, ManualStep) else None

    @property
    def amplitude_max_dv(self) -> int | None:
        if isinstance(self.step, DeliveryStep):
            return to_units(self.step.amplitude_max_v, 10)
        return None

    @property
    def remaining_ms(self) -> int:
        return max(0, self.planned_ms - self.delivered_ms)


def plan_steps(
    protocol: Protocol, zones: Sequence[str] | None
) -> tuple[list[PlannedStep], list[str]]:
    """The steps to run for the chosen ``zones`` (None: all), and refusals for bad choices."""
    refusals: list[str] = []
    known = [str(z) for z in protocol.zones]
    if zones is not None:
        unknown = [z for z in zones if z not in known]
        if unknown:
            refusals.append(
                f"Zones: {', '.join(unknown)} not in protocol {protocol.id} (its zones are "
                f"{', '.join(known)}); choose among those."
            )
        if not [z for z in zones if z in known]:
            refusals.append(
                "Zones: no zone of the protocol was chosen, so nothing would be delivered; "
                f"choose at least one of {', '.join(known)}."
            )
    chosen = set(known if zones is None else zones)
    steps: list[PlannedStep] = []
    for number, step in enumerate(protocol.steps, start=1):
        if isinstance(step, DeliveryStep):
            if str(step.zone) not in chosen:
                continue
            planned = to_units(step.duration_s, 1000)
        else:
            planned = to_units(step.duration_s, 1000) if step.duration_s is not None else 0
        steps.append(PlannedStep(len(steps), number, step, planned))
    return steps, refusals


@dataclass(frozen=True)
class Findings:
    """What preflight found: refusals (the session may not run), warnings, faults to clear."""

    refusals: tuple[str, ...]
    warnings: tuple[str, ...]
    faults_to_clear: Fault = Fault.NONE
    checks: Mapping[str, Any] = field(default_factory=dict)
    """What was checked, for the record (JSON-friendly)."""


def protocol_refusals(load_result: Any) -> list[str]:
    """Layer 1: an invalid protocol file never runs."""
    if load_result.ok and load_result.protocol is not None:
        return []
    errors = list(getattr(load_result, "errors", ()) or ())
    shown = [e.format() for e in errors[:5]]
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    path = getattr(load_result, "path", "the protocol file")
    return [
        f"Protocol file: {path} is not valid ({len(errors)} error(s){more}); fix it "
        f"(`epm validate {path}` lists every problem): " + "; ".join(shown)
    ]


def capability_refusals(
    steps: Sequence[PlannedStep], protocol: Protocol, info: DeviceInfo
) -> list[str]:
    """Layer 2: every delivery step against the connected device's stated capabilities."""
    refusals: list[str] = []
    for planned in steps:
        if not isinstance(planned.step, DeliveryStep):
            continue
        values = to_device_step(planned.step, protocol.handpiece, 1)
        for refusal in check_step(values, info):
            if refusal.field == "handpiece":
                continue  # reported once by handpiece_refusals
            refusals.append(
                f"Device capabilities (controller check, limit {refusal.limit}): step "
                f"{planned.index} ({planned.zone}): {refusal.message}; this protocol cannot run "
                f"on this {info.model} {info.serial} — choose a protocol made for it."
            )
    return refusals


def handpiece_refusals(protocol: Protocol, attached: Handpiece | None) -> list[str]:
    """The handpiece attached now must be the protocol's."""
    wanted = Handpiece(HANDPIECE_CODE[protocol.handpiece])
    if attached == wanted:
        return []
    have = "no handpiece" if attached in (None, Handpiece.NONE) else f"the {attached.name}"
    return [
        f"Handpiece (controller check): protocol {protocol.id} is for the {wanted.name} but the "
        f"device has {have} attached; attach the {wanted.name} and start again."
    ]


def approval_refusals(load_result: Any, info: DeviceInfo, store: RecordStore) -> list[str]:
    """The clinic's approval rules (docs/records.md): drafts only on a simulator, approved
    files on a real device only with an approval record of their exact bytes."""
    return [
        f"Approval: {reason}" for reason in check_runnable(load_result, info.is_simulator, store)
    ]


def checklist_refusals(protocol: Protocol, answers: Mapping[str, bool]) -> list[str]:
    """Every contraindication answered no and every confirmation yes."""
    try:
        reasons = evaluate_checklist(build_checklist(protocol), dict(answers))
    except ValueError as exc:
        return [f"Checklist: {exc}; answer the items of this protocol's checklist."]
    return [f"Checklist: {r}" for r in reasons]


def device_state_findings(status: Status) -> tuple[list[str], Fault]:
    """Refusals for the device's state now, and latched faults to clear at the start."""
    refusals: list[str] = []
    faults = Fault(int(status.faults))
    service = faults & SERVICE_FAULTS
    if service:
        refusals.append(
            f"Device: fault(s) {', '.join(Fault(service).names())} latched — the device must "
            "not be used: switch it off and on; if the fault stays, have it serviced."
        )
    if status.state not in (State.IDLE, State.READY, State.FAULT):
        refusals.append(
            f"Device: it is in state {status.state.name}, not idle; end what it is doing "
            "(or switch it off and on) and start again."
        )
    return refusals, (faults & ~SERVICE_FAULTS) if not service else Fault.NONE


def run_checks(
    *,
    load_result: Any,
    protocol: Protocol,
    steps: Sequence[PlannedStep],
    zone_refusals: Sequence[str],
    answers: Mapping[str, bool],
    serum_lot: str,
    info: DeviceInfo,
    status: Status,
    contact: int | None,
    store: RecordStore,
    manual_speed: float,
) -> Findings:
    """All preflight checks at once, so the practitioner sees every problem in one go."""
    refusals: list[str] = list(zone_refusals)
    refusals += capability_refusals(steps, protocol, info)
    refusals += handpiece_refusals(protocol, status.handpiece)
    refusals += approval_refusals(load_result, info, store)
    refusals += checklist_refusals(protocol, answers)
    state_refusals, to_clear = device_state_findings(status)
    refusals += state_refusals
    if not info.is_simulator and not serum_lot.strip():
        refusals.append(
            "Serum: the serum lot number is required on a real device; enter the lot printed "
            "on the serum's label."
        )
    if manual_speed != 1.0 and not info.is_simulator:
        refusals.append(
            f"Clock: manual-step timers {manual_speed:g}× faster are for the simulator only; "
            f"{info.serial} is a real device — run without --sim-speed."
        )
    warnings = [f"Protocol: {w.format()}" for w in getattr(load_result, "warnings", ())]
    if to_clear:
        warnings.append(
            f"Device: fault(s) {', '.join(to_clear.names())} were latched before this session; "
            "they will be cleared at the start (the record shows it)."
        )
    if contact is None:
        warnings.append(
            "Contact: no measurement from the device yet; each zone starts only once the "
            "handpiece has skin contact."
        )
    elif contact not in (Contact.OK, Contact.MARGINAL):
        warnings.append(
            f"Contact: {Contact(contact).name.lower()} now; each zone starts only once the "
            "handpiece is on the skin with good contact."
        )
    checks = {
        "zones": [p.zone for p in steps if p.zone is not None],
        "steps": [p.index for p in steps],
        "device_serial": info.serial,
        "simulated": info.is_simulator,
        "handpiece": status.handpiece.name,
        "device_state": status.state.name,
        "faults": Fault(int(status.faults)).names(),
        "contact": None if contact is None else Contact(contact).name,
        "manual_speed": manual_speed,
    }
    return Findings(tuple(refusals), tuple(warnings), to_clear, checks)
