"""The session's step flow: preflight, manual steps, configure -> PLACE -> START, step end.

Why apart: this is the normal path a session takes, written in the order it happens, so a
reviewer can check it against the engine contract (record step start, CONFIGURE_STEP, PLACE,
record ``command_sent`` START, START, supervise, STATUS for the delivered time, record step
end) without the fault and link-loss paths in the way.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from controller.device import (
    DeviceInfo,
    LinkError,
)
from controller.link import LinkState
from controller.records import RecordsError
from controller.records.models import CourseRecord, PlannedStepRecord
from controller.session.engine_core import (
    CONTACT_OK,
    FIRST_TELEMETRY_S,
    status_data,
)
from controller.session.engine_ending import EngineEnding
from controller.session.engine_record import RecordWriteError
from controller.session.model import (
    Outcome,
    Phase,
    StepStatus,
)
from controller.session.preflight import (
    PlannedStep,
    plan_steps,
    protocol_refusals,
    run_checks,
)
from controller.session.rules import duration_text
from controller.session.supervisor import fault_message
from controller.wire import State
from protocols import DeliveryStep, to_device_step

log = logging.getLogger(__name__)

#: The reason of a session in which every planned zone got its time (and every step was done).
COMPLETED_REASON = "every planned zone got its time"


class EngineSteps(EngineEnding):
    """The normal path of a session (see the module docstring)."""

    def _preflight(self) -> None:
        plan = self._plan
        load_result = plan.load_result
        refusals = protocol_refusals(load_result)
        protocol = self._protocol if not refusals else None
        zone_refusals: list[str] = []
        if protocol is not None:
            steps, zone_refusals = plan_steps(protocol, plan.zones)
            with self._lock:
                self._run.steps = steps
            try:
                self._shown.course = self.course_progress()
            except RecordsError as exc:
                log.warning("course progress unavailable: %s", exc)
        if not plan.practitioner.strip():
            refusals.append("Practitioner: no name given; enter the practitioner's name.")
        try:
            self._store.get_or_create_client(plan.client_code, plan.client_name)
            client_ok = True
        except RecordsError as exc:
            refusals.append(f"Client: {exc}.")
            client_ok = False
        if protocol is None:  # an invalid file never runs: no need to ask the device
            self._refuse(refusals, record=False)
            return
        info = self._connect(refusals)
        status = self._read_status() if info is not None else None
        if info is not None and status is None:
            refusals.append(
                f"Device: {info.serial} did not report its status; check the cable and start again."
            )
        if info is None or status is None:
            self._refuse(refusals, record=False)
            return
        self._wait_first_telemetry()
        latest = self._in.latest
        findings = run_checks(
            load_result=load_result,
            protocol=protocol,
            steps=self._run.steps,
            zone_refusals=zone_refusals,
            answers=plan.checklist_answers,
            serum_lot=plan.serum_lot,
            info=info,
            status=status,
            contact=latest[0].contact if latest is not None else None,
            store=self._store,
            manual_speed=self._manual_speed,
        )
        refusals += findings.refusals
        with self._lock:
            self._shown.warnings = findings.warnings
            estopped = self._shown.estop_in_preflight
        if estopped:
            refusals.append(
                "Emergency stop: pressed during the checks; the device latched ESTOP. Check the "
                "client and the device, then start a new session."
            )
        if refusals:
            self._refuse(refusals, record=client_ok, findings=findings.checks)
            return
        self._begin(info, {"result": "passed", "checks": findings.checks})
        if findings.faults_to_clear:
            epoch = self._epoch_now()
            result = self._command(
                "CLEAR_FAULTS",
                lambda: self._device.clear_faults(epoch=epoch),
                reason="faults latched before this session",
                faults=findings.faults_to_clear.names(),
            )
            if result != "ack":
                reason = (
                    f"Device: fault(s) {', '.join(findings.faults_to_clear.names())} could not "
                    "be cleared; " + fault_message(int(findings.faults_to_clear))
                )
                self._finish(Outcome.REFUSED, reason, phase=Phase.REFUSED, refusals=(reason,))
                return
            self._read_status()
        self._enter_step(0)

    def _connect(self, refusals: list[str]) -> DeviceInfo | None:
        try:
            info = self._device.info
            if info is None or self._device.link_state is LinkState.CLOSED:
                info = self._device.connect()
            info = self._device.current_info()
        except (LinkError, RecordsError, OSError, ValueError) as exc:
            refusals.append(f"Device: could not connect to {self._device.url}: {exc}")
            return None
        with self._lock:
            self._link.info = info
            self._link.boot_id = info.boot_id
            self._link.epoch, self._link.connection = self._device.epoch, self._device.connection
        # A session begins by accepting the unit as it is now (a restart reported before it
        # was acknowledged with the device screen): its boot_id is the one kept from here.
        self._device.acknowledge_restart()
        return info

    def _wait_first_telemetry(self) -> None:
        self._in.first_telemetry.wait(FIRST_TELEMETRY_S)

    def _begin(self, info: DeviceInfo, preflight: dict[str, Any]) -> None:
        """Write the session row (``session_started``), then what preflight found."""
        protocol = self._protocol
        assert protocol is not None
        plan = self._plan
        self._rec.begin(
            client_code=plan.client_code,
            protocol_id=protocol.id,
            protocol_version=protocol.version,
            protocol_sha256=str(plan.load_result.sha256),
            protocol_title=protocol.title,
            serum_name=protocol.serum.name,
            serum_lot=plan.serum_lot,
            practitioner=plan.practitioner,
            device_model=info.model,
            device_serial=info.serial,
            device_firmware=info.firmware,
            device_boot_id=info.boot_id,
            device_port=self._device.url,
            checklist=dict(plan.checklist_answers),
            planned_zones=[p.zone for p in self._run.steps if p.zone is not None],
            planned_steps=[
                PlannedStepRecord(
                    p.index, p.kind, p.zone, p.planned_ms, None if p.is_delivery else p.title
                )
                for p in self._run.steps
            ],
            # Chained so a handout or course report can be written from the record alone.
            aftercare=list(protocol.aftercare),
            course=CourseRecord(
                protocol.course.sessions,
                protocol.course.interval_days,
                protocol.course.maintenance_interval_days,
            ),
        )
        self._rec.event("preflight", {**preflight, "warnings": list(self._shown.warnings)})
        for warning in self._shown.warnings:
            self._rec.event("warning", {"message": warning})
            self._emit("warning", {"message": warning})
        with self._lock:
            notes, self._pending_notes = self._pending_notes, None
        if notes is not None:
            self._rec.notes(notes)
        self._drain_supervisor_output()

    def _refuse(
        self, refusals: list[str], *, record: bool, findings: dict[str, Any] | Any = None
    ) -> None:
        """Preflight refused: record a ``refused`` session when the values allow one."""
        protocol = self._protocol
        info = self._link.info
        plan = self._plan
        recordable = (
            record
            and protocol is not None
            and info is not None
            and plan.load_result.ok
            and plan.practitioner.strip()
            and (info.is_simulator or plan.serum_lot.strip())
        )
        if recordable and info is not None:
            try:
                self._begin(
                    info, {"result": "refused", "refusals": refusals, "checks": findings or {}}
                )
            except RecordWriteError:
                if self._rec.session_id is not None:
                    raise  # the row exists but the rest failed: stop (it is recovered later)
        self._finish(
            Outcome.REFUSED,
            " ".join(refusals),
            phase=Phase.REFUSED,
            refusals=tuple(refusals),
        )

    def _enter_step(self, pos: int) -> None:
        if pos >= len(self._run.steps):
            self._finish(*self._plan_outcome())
            return
        with self._lock:
            self._run.pos = pos
        planned = self._run.steps[pos]
        if planned.is_delivery:
            self._configure(planned)
            return
        timer_left = max(0, planned.planned_ms - planned.manual_done_ms)
        attempt = self._rec.step_start(
            planned.index,
            kind="manual",
            zone=None,
            planned_ms=planned.planned_ms,
            data={"title": planned.title, "timer_left_ms": timer_left},
        )
        with self._lock:
            planned.attempts = attempt
            planned.status = StepStatus.ACTIVE
            self._run.attempt_open = True
            self._run.manual_started_at = self._clock()
        self._run.timer_done_shown = False
        timer = f" (at least {duration_text(timer_left)})" if planned.planned_ms else ""
        self._set_phase(
            Phase.MANUAL, f"Step {planned.index}: {planned.title}{timer}. Confirm when done."
        )
        self._emit("step", {"index": planned.index, "event": "started"})
        if self._auto and not planned.planned_ms:
            self._complete_manual()

    def _plan_outcome(self) -> tuple[Outcome, str]:
        """How a session that went through its last step ended, in words that match what
        happened: ``completed`` only when every planned zone got its time and every manual
        step was done; a skipped (or short) step makes it ``stopped``, naming each one."""
        steps = self._run.steps
        zones = [p for p in steps if p.is_delivery]
        full = [p for p in zones if p.status is StepStatus.DONE]
        missed = [p for p in steps if p.status is not StepStatus.DONE]
        if not missed:
            return Outcome.COMPLETED, COMPLETED_REASON
        what = []
        for p in missed:
            zone = str(p.zone).replace("_", " ").capitalize() if p.is_delivery else None
            name = zone or f"step {p.index} ({p.title})"
            fate = "skipped" if p.status is StepStatus.SKIPPED else "not done"
            if p.is_delivery:
                got = min(p.delivered_ms, p.planned_ms)
                fate = "short" if p.status is not StepStatus.SKIPPED else fate
                if got >= 500:  # what rounds to a whole second or more
                    fate += f" after {got / 1000:.0f} of {p.planned_ms / 1000:.0f} s"
            why = f" ({p.skip_reason})" if p.skip_reason else ""
            what.append(f"{name} {fate}{why}")
        return (
            Outcome.STOPPED,
            f"ended early: {len(full)} of {len(zones)} zones got their planned time; "
            + "; ".join(what),
        )

    def _complete_manual(self) -> None:
        planned = self._current()
        elapsed = self._manual_elapsed_ms(planned)
        self._rec.step_end(
            planned.index, outcome="completed", delivered_ms=None, data={"timer_ms": elapsed}
        )
        with self._lock:
            planned.manual_done_ms = elapsed
            planned.status = StepStatus.DONE
            self._run.attempt_open = False
            self._run.manual_started_at = None
        self._emit("step", {"index": planned.index, "event": "done"})
        self._enter_step(planned.pos + 1)

    def _configure(self, planned: PlannedStep) -> None:
        protocol = self._protocol
        assert protocol is not None and isinstance(planned.step, DeliveryStep)
        remaining = planned.remaining_ms
        if remaining <= 0:
            with self._lock:
                planned.status = StepStatus.DONE
            self._enter_step(planned.pos + 1)
            return
        self._run.step_id = self._run.step_id % 0xFFFF + 1
        values = to_device_step(planned.step, protocol.handpiece, self._run.step_id)
        if values.duration_ms != remaining:
            values = dataclasses.replace(values, duration_ms=remaining)
        attempt = self._rec.step_start(
            planned.index,
            kind="delivery",
            zone=planned.zone,
            planned_ms=remaining,
            data={
                "step_id": values.step_id,
                "zone_planned_ms": planned.planned_ms,
                "zone_delivered_ms": planned.delivered_ms,
            },
        )
        with self._lock:
            planned.attempts = attempt
            planned.status = StepStatus.ACTIVE
            self._run.attempt_open = True
            self._run.started = False
            self._run.values = values
            self._in.step_elapsed_seen = 0
            self._run.setpoint_dv = values.amplitude_dv
        self._emit("step", {"index": planned.index, "event": "started"})
        epoch = self._epoch_now()
        result = self._command(
            "CONFIGURE_STEP",
            lambda: self._device.configure_step(values, epoch=epoch),
            step_id=values.step_id,
            values=dataclasses.asdict(values),
        )
        if result == "ack":
            with self._sup_lock:
                actions = self._sup.configure(values, self._clock())
            if actions:
                self._act(actions)
            self._set_phase(
                Phase.PLACE,
                f"Place the handpiece on the {planned.zone} zone, then confirm to start "
                f"({duration_text(remaining)} left).",
            )
            if self._auto:
                self._confirm()
        elif result in ("nak", "refused"):
            self._close_attempt("refused", 0, {"reason": "the device refused the settings"})
            last = self._shown.notices[-1] if self._shown.notices else ""
            self._set_phase(
                Phase.RECOVERY,
                f"The zone's settings were refused ({last}). Fix the cause, then continue, skip "
                "the zone or end the session.",
            )

    def _confirm(self) -> None:
        latest = self._in.latest
        contact = latest[0].contact if latest is not None else None
        if contact in CONTACT_OK:
            self._start()
            return
        with self._lock:
            self._run.awaiting_contact = True
        planned = self._current()
        self._set_phase(
            Phase.PLACE,
            f"Waiting for skin contact on the {planned.zone} zone: place the handpiece; the zone "
            "starts as soon as contact is good.",
        )

    def _start(self) -> None:
        values = self._run.values
        assert values is not None
        planned = self._current()
        with self._lock:
            self._run.awaiting_contact = False
        epoch = self._epoch_now()
        result = self._command(
            "START", lambda: self._device.start(epoch=epoch), step_id=values.step_id
        )
        if result == "ack":
            with self._lock:
                self._run.started = True
            self._set_phase(
                Phase.DELIVERING,
                f"Delivering to the {planned.zone} zone.",
            )

    def _paused_message(self) -> str:
        planned = self._current()
        left = max(0, planned.remaining_ms - self._live_elapsed())
        return (
            f"Paused on the {planned.zone} zone ({left / 1000:.0f} s left): output is off. "
            "Resume, or stop the session."
        )

    def _hold_ended(self) -> None:
        start = self._run.hold_t_ms
        if start is None:
            return
        end = self._in.hold_out_t_ms
        if end is None:
            latest = self._in.latest
            end = latest[0].t_ms if latest is not None else start
        held = (end - start) % (1 << 32)
        planned = self._current()
        self._rec.hold(planned.index, held, {"t_ms": end})
        with self._lock:
            self._run.hold_t_ms = None
            self._in.hold_out_t_ms = None

    def _step_ended(self) -> None:
        """The device is idle after START: the zone completed or was stopped."""
        values = self._run.values
        assert values is not None
        status = self._read_status()
        if status is None:
            return  # the link is being lost; its events take over
        if status.state not in (State.IDLE, State.READY):
            return  # telemetry said idle, STATUS does not (yet): the attempt stays open
        planned = self._current()
        ours = status.step_id == values.step_id
        delivered = status.step_elapsed_ms if ours else self._live_elapsed()
        complete = ours and status.step_elapsed_ms >= status.step_duration_ms
        after = self._run.after_idle
        if complete:
            outcome = "completed"
        elif after is not None and after.kind == "skip":
            outcome = "skipped"
        else:
            outcome = "stopped"
        data: dict[str, Any] = {"step_id": values.step_id, "status": status_data(status)}
        if after is not None:
            data["reason"] = after.reason
        self._close_attempt(outcome, delivered, data)
        with self._lock:
            if complete or planned.remaining_ms <= 0:
                planned.status = StepStatus.DONE
            elif outcome == "skipped":
                planned.status = StepStatus.SKIPPED
                planned.skip_reason = after.reason if after is not None else None
            else:
                planned.status = StepStatus.STOPPED
        if after is not None and after.kind == "end":
            self._finish(after.outcome, after.reason)
        elif after is not None or complete:
            self._enter_step(planned.pos + 1)
        else:
            self._set_phase(
                Phase.RECOVERY,
                f"The {planned.zone} zone stopped before its time ({delivered / 1000:.1f} of "
                f"{planned.planned_ms / 1000:.0f} s). Continue it, skip it or end the session.",
            )
