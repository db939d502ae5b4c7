"""When things go wrong: device faults, a lost link, a restarted device, and the poll that
maps the device's state onto the session's phase.

Why apart: these paths decide what the practitioner may do after uncertainty, and they share
one rule — nothing resumes by itself. After a fault the zone's delivered time is read from the
device (STATUS) and the attempt closed; after a lost link or a restart the engine waits for the
reconnection, reads STATUS, closes the attempt with what the device says it delivered (or the
last telemetry, a lower bound, when the device restarted) and waits in RECOVERY.
"""

from __future__ import annotations

import logging

from controller.device import (
    DeviceEvent,
    DeviceEventKind,
)
from controller.session.engine_core import (
    BACK_KINDS,
    CONTACT_OK,
    DELIVERY_PHASES,
    LOST_KINDS,
    status_data,
)
from controller.session.engine_record import occurred_at
from controller.session.engine_steps import EngineSteps
from controller.session.model import (
    Outcome,
    Phase,
    StepStatus,
)
from controller.session.supervisor import fault_message
from controller.wire import Fault, State

log = logging.getLogger(__name__)


class EngineRecovery(EngineSteps):
    """Faults, link loss, restarts and the state poll."""

    def _poll(self) -> None:
        phase = self._shown.phase
        if phase in (Phase.PREFLIGHT, Phase.REFUSED, Phase.FINISHED):
            return
        if phase is Phase.LINK_LOST:
            self._check_reconnect_limit()
            return
        state = self._device.device_state
        if state is None:
            return
        if state is State.FAULT:
            if phase not in (Phase.FAULT, Phase.RECOVERY):
                self._enter_fault()
            return
        if phase is Phase.MANUAL:
            planned = self._current()
            if planned.planned_ms and self._manual_elapsed_ms(planned) >= planned.planned_ms:
                if self._auto:
                    self._complete_manual()
                elif not self._run.timer_done_shown:
                    self._run.timer_done_shown = True
                    self._set_phase(
                        Phase.MANUAL,
                        f"Step {planned.index}: {planned.title}. Timer done: confirm when done.",
                    )
            return
        if phase is Phase.PLACE:
            latest = self._in.latest
            if (
                self._run.awaiting_contact
                and latest is not None
                and latest[0].contact in CONTACT_OK
            ):
                self._start()
            return
        if phase is Phase.FAULT:
            if not self._run.fault_cleared_shown:
                self._run.fault_cleared_shown = True
                self._set_phase(Phase.FAULT, self._fault_cleared_message())
            return
        if not self._run.started or phase not in (*DELIVERY_PHASES, Phase.STOPPING):
            return
        planned = self._current()
        if state is State.RUNNING:
            if phase is Phase.HOLD:
                self._hold_ended()
            if phase is not Phase.DELIVERING:
                self._set_phase(Phase.DELIVERING, f"Delivering to the {planned.zone} zone.")
        elif state is State.HOLD:
            if phase is not Phase.HOLD:
                latest = self._in.latest
                t_ms = self._in.hold_in_t_ms  # the device's own time of the change ...
                if t_ms is None:  # ... or, if that event was lost, the newest telemetry's
                    t_ms = latest[0].t_ms if latest is not None else 0
                with self._lock:
                    self._run.hold_t_ms = t_ms
                    self._in.hold_in_t_ms = self._in.hold_out_t_ms = None
                self._rec.event("hold_start", {"index": planned.index, "t_ms": t_ms})
                self._set_phase(
                    Phase.HOLD,
                    f"No skin contact on the {planned.zone} zone: output is off and the zone's "
                    "time is frozen. Put the handpiece back on the skin (add serum if dry) or "
                    "pause.",
                )
        elif state is State.PAUSED:
            if phase is Phase.HOLD:
                self._hold_ended()
            if phase is not Phase.PAUSED:
                self._set_phase(Phase.PAUSED, self._paused_message())
        elif state is State.STOPPING:
            if phase is Phase.HOLD:
                self._hold_ended()
            if phase is not Phase.STOPPING:
                self._set_phase(Phase.STOPPING, f"Ramping down on the {planned.zone} zone.")
        elif state in (State.IDLE, State.READY):
            if phase is Phase.HOLD:
                self._hold_ended()
            self._step_ended()

    def _enter_fault(self) -> None:
        """The device latched a fault (output is off): close the attempt with what the device
        says it delivered, then wait for the practitioner (or end, if that was asked)."""
        ending = (
            self._run.after_idle
            if self._run.after_idle and self._run.after_idle.kind == "end"
            else None
        )
        status = self._read_status()
        latest = self._in.latest
        faults = int(status.faults) if status is not None else (latest[0].faults if latest else 0)
        if self._run.attempt_open:
            values = self._run.values
            if self._current().is_delivery:
                if status is not None and values is not None and status.step_id == values.step_id:
                    delivered = status.step_elapsed_ms if self._run.started else 0
                else:
                    delivered = self._live_elapsed()
                self._close_attempt(
                    "faulted",
                    delivered,
                    {"faults": Fault(faults).names(), "status": status_data(status)},
                )
            else:
                self._close_attempt("faulted", None, {"faults": Fault(faults).names()})
            with self._lock:
                planned = self._current()
                done = planned.is_delivery and planned.remaining_ms <= 0
                planned.status = StepStatus.DONE if done else StepStatus.INTERRUPTED
        self._run.fault_cleared_shown = False
        self._set_phase(
            Phase.FAULT,
            fault_message(faults)
            + " Acknowledge the alarm, clear the faults, then continue the zone, skip it or "
            "end the session.",
        )
        if ending is not None:  # the practitioner had asked to end while the zone stopped
            self._finish(self._end_outcome(), ending.reason)

    def _fault_cleared_message(self) -> str:
        planned = self._current()
        what = (
            f"continue the {planned.zone} zone ({planned.remaining_ms / 1000:.0f} s left)"
            if planned.is_delivery
            else f"continue step {planned.index}"
        )
        return (
            f"Faults cleared; output is off. {what[0].upper()}{what[1:]}, skip it or end the "
            "session."
        )

    def _handle_device_event(self, ev: DeviceEvent) -> None:
        """Record a device or link event first, then act on it.

        A link event moves the engine's epoch to the one right after it: decisions taken from
        here on are taken on that connection (see ``_command``)."""
        kind = ev.kind
        if ev.epoch is not None:
            with self._lock:
                self._link.epoch = ev.epoch
                self._link.connection = ev.connection
        if kind is DeviceEventKind.ESTOP_SENT:
            return  # ESTOPs are recorded by whoever asked for them (the link's in link_lost)
        if kind is DeviceEventKind.UNIT_CHANGED:
            self._on_unit_changed(ev)
            return
        if kind.from_device:
            self._rec.event(
                "device_event",
                {
                    "event": kind.value,
                    "arg": ev.arg,
                    "t_ms": ev.t_ms,
                    "dseq": ev.dseq,
                    "message": ev.message,
                },
            )
        elif kind in LOST_KINDS:
            self._rec.event(
                "link_lost",
                {
                    "reason": ev.message,
                    "kind": kind.value,
                    "last_phase": self._shown.phase.value,
                    "request": ev.request.name if ev.request is not None else None,
                    **self._when(ev),
                },
            )
        elif kind in BACK_KINDS:
            if self._shown.phase in (Phase.LINK_LOST,) or kind is DeviceEventKind.RECONNECTED:
                self._rec.event(
                    "reconnected",
                    {"message": ev.message, "status": status_data(ev.status), **self._when(ev)},
                )
        elif kind is DeviceEventKind.DEVICE_RESTARTED:
            self._rec.event(
                "device_restarted",
                {
                    "message": ev.message,
                    "old_boot_id": ev.old_boot_id
                    if ev.old_boot_id is not None
                    else self._link.boot_id,
                    "new_boot_id": ev.new_boot_id,
                    **self._when(ev),
                },
            )
        elif kind is DeviceEventKind.OUTCOME_UNKNOWN:
            self._rec.event(
                "outcome_unknown",
                {
                    "command": ev.request.name if ev.request is not None else None,
                    "message": ev.message,
                    **self._when(ev),
                },
            )
        else:
            self._rec.event(
                "link_event",
                {
                    "kind": kind.value,
                    "message": ev.message,
                    "status": status_data(ev.status),
                    **self._when(ev),
                },
            )
        if self._shown.phase in (Phase.PREFLIGHT, Phase.REFUSED, Phase.FINISHED):
            return
        if kind in LOST_KINDS or kind is DeviceEventKind.DEVICE_RESTARTED:
            self._on_lost(ev)
        elif kind in BACK_KINDS and self._shown.phase is Phase.LINK_LOST:
            self._on_back(ev)
        elif kind is DeviceEventKind.RECONNECT_FAILED:
            self._set_phase(
                Phase.LINK_LOST,
                "Could not reconnect to the device; its watchdog has turned output off. Check "
                "the cable and the device, then reconnect or end the session.",
            )
            with self._lock:  # after the message: a snapshot never shows one without the other
                self._link.reconnect_failed = True
        elif kind is DeviceEventKind.AMPLITUDE_LIMITED and self._run.attempt_open and ev.arg:
            planned = self._current()
            self._rec.amplitude_change(
                planned.index,
                from_dv=self._run.setpoint_dv or 0,
                to_dv=int(ev.arg),
                source="device_limited",
                data={"message": ev.message, "layer": "device"},
            )
        elif kind is DeviceEventKind.HANDPIECE_CHANGED and self._protocol is not None:
            self._emit("notice", {"message": ev.message})

    @staticmethod
    def _when(ev: DeviceEvent) -> dict[str, object]:
        """When a link event happened (not when the engine got round to recording it)."""
        return {"occurred_at": occurred_at(ev.monotonic), "epoch": ev.epoch}

    def _on_unit_changed(self, ev: DeviceEvent) -> None:
        """Another unit answered after a reconnect: the session ends as interrupted, naming
        both serials; nothing but a status read goes to that unit (the link sees to it)."""
        expected = ev.identity.serial if ev.identity is not None else "unknown"
        found = ev.other.serial if ev.other is not None else "unknown"
        self._rec.event(
            "unit_changed",
            {"expected": expected, "found": found, "message": ev.message, **self._when(ev)},
        )
        with self._lock:
            self._link.unit_change = (expected, found)
        if self._shown.phase in (Phase.PREFLIGHT, Phase.REFUSED, Phase.FINISHED):
            return
        self._finish(
            Outcome.INTERRUPTED,
            f"another unit answered after a reconnect (expected {expected}, found {found}); "
            "the session cannot continue on it",
        )

    def _on_lost(self, ev: DeviceEvent) -> None:
        restarted = ev.kind is DeviceEventKind.DEVICE_RESTARTED
        with self._lock:
            self._link.interrupted = True
            if self._shown.phase is not Phase.LINK_LOST:
                self._link.lost_at = self._clock()
            if self._shown.phase is Phase.MANUAL and self._run.attempt_open:
                planned = self._current()
                planned.manual_done_ms = self._manual_elapsed_ms(planned)
                self._run.manual_started_at = None
            self._run.awaiting_contact = False
        if restarted:
            message = (
                "The device restarted (power loss or reset): delivery stopped and its settings "
                "are gone. Reconnecting; nothing resumes by itself."
            )
        else:
            message = (
                "The connection to the device was lost; the device turns output off by itself "
                "within 0.5 s. Reconnecting; nothing resumes by itself."
            )
        self._set_phase(Phase.LINK_LOST, message)

    def _check_reconnect_limit(self) -> None:
        limit = self._reconnect_limit_s
        lost_at = self._link.lost_at
        if limit is None or lost_at is None or self._link.reconnect_failed:
            return
        if self._clock() - lost_at > limit:
            self._rec.event("link_event", {"kind": "reconnect_given_up", "limit_s": limit})
            self._set_phase(
                Phase.LINK_LOST,
                f"No connection to the device for {limit:g} s; its watchdog has turned output "
                "off. Check the cable and the device, then reconnect or end the session.",
            )
            with self._lock:
                self._link.reconnect_failed = True

    def _on_back(self, ev: DeviceEvent) -> None:
        # A stop asked before the loss or restart (the zone was ramping down to end the
        # session) still ends it, as after a fault: here, once the unit is seen again.
        after = self._run.after_idle
        ending = after if after is not None and after.kind == "end" else None
        status = ev.status or self._read_status()
        with self._lock:
            self._link.reconnect_failed = False
            self._link.lost_at = None
        if self._run.attempt_open:
            planned = self._current()
            values = self._run.values
            if planned.is_delivery:
                same_boot = status is not None and status.boot_id == self._link.boot_id
                if (
                    same_boot
                    and status is not None
                    and values is not None
                    and status.step_id == values.step_id
                ):
                    delivered = status.step_elapsed_ms if self._run.started else 0
                    source = "device STATUS after reconnecting"
                else:
                    delivered = self._live_elapsed()
                    source = "last telemetry before the loss (the device restarted): a lower bound"
                self._close_attempt(
                    "interrupted",
                    delivered,
                    {"status": status_data(status), "delivered_source": source},
                )
            else:
                self._close_attempt("interrupted", None, {})
            with self._lock:
                if planned.remaining_ms > 0 or not planned.is_delivery:
                    planned.status = StepStatus.INTERRUPTED
                else:
                    planned.status = StepStatus.DONE
        if status is not None:
            with self._lock:
                self._link.boot_id = status.boot_id
        state = status.state.name if status is not None else "unknown"
        faults = ", ".join(Fault(int(status.faults)).names()) if status is not None else ""
        fault_text = f" with fault(s) {faults}" if faults else ""
        self._set_phase(
            Phase.RECOVERY,
            f"Reconnected: the device is {state}{fault_text}. Nothing was resumed. Acknowledge "
            "the alarms, clear faults if needed, then continue, skip the step or end the session.",
        )
        if ending is not None:  # the practitioner had asked to end while the zone stopped
            self._finish(self._end_outcome(), ending.reason)
