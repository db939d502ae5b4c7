"""Practitioner actions: what applies now (``allowed``), and carrying each one out.

Why apart: every refusal or clamp of an action must say which limit and why, and ``allowed``
must be exactly what the handlers accept; keeping both in one module keeps them in step.
"""

from __future__ import annotations

import dataclasses
import logging

from controller.device import (
    DeviceEvent,
    DeviceEventKind,
    LinkError,
)
from controller.session.actions import INTENSITY, Context, Queued, stale_notice
from controller.session.alarms import AlarmCode
from controller.session.engine_core import DELIVERY_PHASES
from controller.session.engine_recovery import EngineRecovery
from controller.session.engine_state import AfterIdle
from controller.session.engine_view import state_name
from controller.session.limits import Direction, intensity_range, intensity_step
from controller.session.model import (
    Action,
    Outcome,
    Phase,
    StepStatus,
)
from controller.session.rules import Refusal, Situation, allowed, decide, refusal_text
from controller.session.supervisor import SendEstop
from controller.wire import State

log = logging.getLogger(__name__)

#: What a SKIP, END, CONTINUE or CONFIRM would have done, for "nothing was ..." notices.
NOT_DONE: dict[Action, str] = {
    Action.SKIP: "skipped",
    Action.END: "ended",
    Action.CONTINUE: "continued",
    Action.CONFIRM: "started",
}
#: Actions chosen in a window (the reason is asked) rather than with one key.
CHOSEN_IN_A_WINDOW = frozenset({Action.SKIP, Action.END})
#: What a step did when the session is found in this phase on the same step.
PHASE_CHANGE: dict[Phase, str] = {
    Phase.DELIVERING: "started delivering",
    Phase.HOLD: "went on hold (no skin contact)",
    Phase.PAUSED: "was paused",
    Phase.STOPPING: "began ramping down",
    Phase.FAULT: "stopped on a device fault",
    Phase.LINK_LOST: "lost its link to the device",
    Phase.RECOVERY: "stopped and waits for a decision",
    Phase.PLACE: "was set up again (place the handpiece)",
    Phase.MANUAL: "started",
    Phase.FINISHED: "ended with the session",
}
#: What happened to a step that is no longer the current one, by its status.
STEP_FATE: dict[StepStatus, str] = {
    StepStatus.SKIPPED: "was skipped",
    StepStatus.STOPPED: "was stopped",
    StepStatus.INTERRUPTED: "was interrupted",
}


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


class EngineActions(EngineRecovery):
    """Practitioner actions and what applies now."""

    def _situation(self) -> Situation:
        """What :mod:`controller.session.rules` looks at (caller holds ``self._lock``)."""
        values = self._run.values
        can_raise = can_lower = False
        if values is not None:
            low, high = intensity_range(values.amplitude_max_dv)
            current = self._current_setpoint()
            can_raise, can_lower = current < high, current > low
        fault = self._shown.alarms.get(AlarmCode.DEVICE_FAULT)
        manual_min = manual_left = 0
        pos = self._run.pos
        if self._shown.phase is Phase.MANUAL and pos is not None and pos < len(self._run.steps):
            planned = self._run.steps[pos]
            if not planned.is_delivery and planned.planned_ms:
                manual_min = planned.planned_ms
                manual_left = max(0, planned.planned_ms - self._manual_elapsed_ms(planned))
        return Situation(
            phase=self._shown.phase,
            device_state=self._device.device_state,
            stop_under_way=self._run.after_idle is not None,
            waiting_for_contact=self._run.awaiting_contact,
            unacknowledged_alarm=any(not a.acknowledged for a in self._shown.alarms.values()),
            fault_alarm_unacknowledged=fault is not None and not fault.acknowledged,
            has_step=self._run.pos is not None,
            reconnect_failed=self._link.reconnect_failed,
            can_raise=can_raise and values is not None,
            can_lower=can_lower and values is not None,
            manual_min_ms=manual_min,
            manual_left_ms=manual_left,
        )

    def _handle_action(self, queued: Queued) -> None:
        action, reason = queued.action, queued.reason
        with self._lock:
            situation = self._situation()
        decision = decide(action, situation)
        if not decision.allowed:
            if decision.refusal is Refusal.AT_LIMIT and action in INTENSITY:
                # At either end of the range the press is not offered; if it comes anyway,
                # the limit's own words say which limit stopped it.
                self._intensity(queued.presses)
                return
            self._notice(
                refusal_text(decision, situation),
                action=action.value,
                refusal=decision.refusal.value if decision.refusal else None,
                layer="controller",
            )
            return
        if action in (Action.SKIP, Action.END) and not (reason and reason.strip()):
            self._notice(
                f"{action.value.capitalize()} needs a reason (it is recorded); give one and try "
                "again.",
                action=action.value,
                layer="controller",
            )
            return
        reason = (reason or "").strip()
        if action not in INTENSITY and action is not Action.ACKNOWLEDGE:
            # The practitioner's decision, recorded before it is carried out: a zone that
            # starts again after a lost link or a restart follows its request in the chain.
            # (Acknowledgements and intensity changes have events of their own, naming who.)
            self._rec.event(
                "request",
                {
                    "action": action.value,
                    "reason": reason or None,
                    "by": self._plan.practitioner or "practitioner",
                    "phase": self._shown.phase.value,
                    "step": self._index(),
                },
            )
        if action in INTENSITY:
            self._intensity(queued.presses)
        elif action is Action.ACKNOWLEDGE:
            with self._sup_lock:
                changes = self._sup.acknowledge(None, self._clock())
            self._drain_supervisor_output()
            for change in changes:
                if not isinstance(change, SendEstop):
                    self._publish_alarm(change.change, by=self._plan.practitioner or "practitioner")
                    if change.change.code is AlarmCode.DEVICE_RESTARTED:
                        self._device.acknowledge_restart()  # its new boot_id is kept now
        elif action is Action.CONFIRM:
            if self._shown.phase is Phase.MANUAL:
                self._complete_manual()
            else:
                self._confirm()
        elif action is Action.PAUSE:
            text = self._acted_text(queued)
            if self._command("PAUSE", self._device.pause) == "ack":
                self._set_phase(Phase.PAUSED, self._paused_message())
                self._notice(text, action="pause", step=self._index(), layer="controller")
        elif action is Action.RESUME:
            epoch = self._epoch_now()
            if self._command("RESUME", lambda: self._device.resume(epoch=epoch)) == "ack":
                self._set_phase(Phase.DELIVERING, f"Delivering to the {self._current().zone} zone.")
        elif action is Action.STOP:
            self._notice(
                self._acted_text(queued), action="stop", step=self._index(), layer="controller"
            )
            self._end(reason or "stopped by the practitioner", outcome=Outcome.STOPPED)
        elif action is Action.END:
            self._end(reason)
        elif action is Action.SKIP:
            self._skip(reason)
        elif action is Action.CLEAR_FAULTS:
            self._clear_faults()
        elif action is Action.CONTINUE:
            self._continue()
        elif action is Action.RECONNECT:
            self._reconnect()

    def _intensity(self, presses: int) -> None:
        """``presses`` merged presses (positive up): one SET_AMPLITUDE to where they lead."""
        values = self._run.values
        planned = self._current()
        assert values is not None
        current = self._current_setpoint()
        direction = Direction.UP if presses > 0 else Direction.DOWN
        decision = intensity_step(current, direction, values)
        for _ in range(abs(presses) - 1):
            further = intensity_step(decision.value_dv, direction, values)
            if not further.changed:
                decision = dataclasses.replace(further, current_dv=current)
                break
            decision = dataclasses.replace(further, current_dv=current)
        if decision.limit is not None:
            self._notice(
                decision.limit.message,
                action="intensity",
                layer=decision.limit.layer,
                limit=decision.limit.limit,
                value=decision.limit.value,
                allowed=decision.limit.allowed,
            )
        if not decision.changed:
            return
        self._rec.amplitude_change(
            planned.index,
            from_dv=current,
            to_dv=decision.value_dv,
            source="practitioner",
            data={"clamped_by": decision.limit.limit if decision.limit else None},
        )
        epoch = self._epoch_now()
        result = self._command(
            "SET_AMPLITUDE",
            lambda: self._device.set_amplitude(decision.value_dv, epoch=epoch),
            amplitude_dv=decision.value_dv,
        )
        if result == "ack":
            with self._lock:
                self._run.setpoint_dv = decision.value_dv
            with self._sup_lock:
                actions = self._sup.setpoint_changed(decision.value_dv, self._clock())
            if actions:
                self._act(actions)
            self._emit("notice", {"message": decision.message})

    def _end(self, reason: str, *, outcome: Outcome | None = None) -> None:
        """End the session early: a running zone is stopped with a ramp first, and the
        session ends once the device is idle (see ``_step_ended``)."""
        outcome = outcome or self._end_outcome()
        phase = self._shown.phase
        if self._run.after_idle is not None:
            with self._lock:  # already stopping: end rather than skip once idle
                self._run.after_idle = AfterIdle("end", outcome, reason)
            return
        if phase in DELIVERY_PHASES and self._run.started:
            with self._lock:
                self._run.after_idle = AfterIdle("end", outcome, reason)
            result = self._command("STOP", self._device.stop, reason=reason)
            if result == "ack":
                self._set_phase(Phase.STOPPING, f"Ramping down to end the session: {reason}.")
                return
            with self._lock:
                self._run.after_idle = None
            if result == "nak":  # FAULT_LATCHED: the device is in FAULT and its output is off
                self._enter_fault()
                self._finish(self._end_outcome(), reason)
            elif result in ("lost", "unknown"):
                # The link sent ESTOP as it gave up and the device's watchdog stops output.
                self._finish(Outcome.INTERRUPTED, reason)
            return
        if phase is Phase.STOPPING and self._run.started:
            with self._lock:  # the zone is ramping down at its end: end once idle
                self._run.after_idle = AfterIdle("end", outcome, reason)
            return
        if phase is Phase.PLACE:
            self._command(
                "STOP", self._device.stop, reason=f"discard the configured step: {reason}"
            )
        self._finish(outcome, reason)

    def _skip(self, reason: str) -> None:
        planned = self._current()
        phase = self._shown.phase
        if phase in DELIVERY_PHASES and self._run.started:
            with self._lock:
                self._run.after_idle = AfterIdle("skip", Outcome.STOPPED, reason)
            if self._command("STOP", self._device.stop, reason=f"skip: {reason}") == "ack":
                self._set_phase(Phase.STOPPING, f"Ramping down to skip the {planned.zone} zone.")
            else:
                with self._lock:
                    self._run.after_idle = None
            return
        if phase is Phase.PLACE:
            self._command(
                "STOP", self._device.stop, reason=f"discard the configured step: skip: {reason}"
            )
        if self._run.attempt_open:
            self._rec.skip(planned.index, reason, kind=planned.kind, zone=planned.zone)
            with self._lock:
                self._run.attempt_open = False
                self._run.started = False
                self._run.manual_started_at = None
                self._run.awaiting_contact = False
        else:
            self._rec.skip(planned.index, reason, kind=planned.kind, zone=planned.zone)
        with self._lock:
            planned.status = StepStatus.SKIPPED
            planned.skip_reason = reason
        self._emit("step", {"index": planned.index, "event": "skipped", "reason": reason})
        self._enter_step(planned.pos + 1)

    def _clear_faults(self) -> None:
        epoch = self._epoch_now()
        if self._command("CLEAR_FAULTS", lambda: self._device.clear_faults(epoch=epoch)) == "ack":
            self._read_status()
            if self._shown.phase is Phase.FAULT and self._device.device_state is not State.FAULT:
                self._run.fault_cleared_shown = True
                self._set_phase(Phase.FAULT, self._fault_cleared_message())

    def _continue(self) -> None:
        planned = self._current()
        with self._lock:
            self._link.interrupted = False
            self._shown.operator_estop = False
        self._emit("step", {"index": planned.index, "event": "continued"})
        self._enter_step(planned.pos)

    def _reconnect(self) -> None:
        try:
            info = self._device.connect()  # a new link: the pinned unit, epoch and seq carry on
        except LinkError as exc:
            more = (
                " epm keeps trying in the background; the session shows RECONNECTED as soon "
                "as the unit answers."
                if self._device.reconnecting
                else ""
            )
            self._notice(f"Reconnecting failed: {exc}{more}", action="reconnect", layer="link")
            return
        with self._lock:
            self._link.info = info
            self._link.epoch, self._link.connection = self._device.epoch, self._device.connection
        status = self._read_status()
        self._on_back(
            DeviceEvent(
                DeviceEventKind.RECONNECTED, "reconnected by the practitioner", status=status
            )
        )

    def _allowed_locked(self) -> frozenset[Action]:
        return allowed(self._situation())

    # --- what an action was decided on, in words -----------------------------------------

    def _stale_notice(self, queued: Queued, now: Context) -> str:
        """The notice for an action dropped because what it was decided on no longer holds:
        what happened meanwhile, and that nothing was done (called by the action queue on the
        engine's thread)."""
        action, seen = queued.action, queued.context
        if queued.presses:
            return stale_notice(queued, now)
        happened = self._what_happened(seen, now)
        verb = NOT_DONE.get(action)
        if verb is None:
            name = action.value.replace("_", " ").capitalize()
            return (
                f"{name} was not carried out: {happened[:1].lower()}{happened[1:]} before it "
                "could be; press again if it still applies."
            )
        if action is Action.CONFIRM and now.phase is not Phase.PLACE:
            verb = "confirmed"  # only in PLACE would it have started a zone
        when = (
            "while this window was open"
            if action in CHOSEN_IN_A_WINDOW
            else "before this choice was carried out"
        )
        return f"{happened} {when}; nothing was {verb}."

    def _what_happened(self, seen: Context, now: Context) -> str:
        """What changed between ``seen`` and ``now``, naming the step (a sentence's start)."""
        if seen.connection != now.connection:
            return "The connection to the device changed (a loss, a reconnect or a restart)"
        if seen.step != now.step:
            if seen.step is None or not 0 <= seen.step < len(self._run.steps):
                return "The session moved to another step"
            return self._fate(seen.step)
        pos = now.step
        steps = self._run.steps
        name = _cap(steps[pos].name) if pos is not None and pos < len(steps) else "The session"
        if seen.phase is not None and now.phase is not None and seen.phase is not now.phase:
            change = PHASE_CHANGE.get(
                now.phase, f"went from {seen.phase.value} to {now.phase.value}"
            )
            return f"{name} {change}"
        return (
            f"The device's state changed ({state_name(seen.device_state)} to "
            f"{state_name(now.device_state)})"
        )

    def _fate(self, pos: int) -> str:
        """What happened to the step at ``pos``, which is no longer the current one."""
        planned = self._run.steps[pos]
        if planned.status is StepStatus.DONE:
            done = "finished" if planned.is_delivery else "was confirmed done"
        else:
            done = STEP_FATE.get(planned.status, "is no longer the current step")
        return f"{_cap(planned.name)} {done}"

    def _acted_text(self, queued: Queued) -> str:
        """The notice of a PAUSE or STOP carried out: the step it acts on (what is delivering
        now), and, when the practitioner chose it on another step, what happened to that."""
        pos = self._run.pos
        steps = self._run.steps
        planned = steps[pos] if pos is not None and pos < len(steps) else None
        name = planned.name if planned is not None else "the session"
        phase = self._shown.phase
        if queued.action is Action.PAUSE:
            text = f"Paused {name}: output is off and the zone's time is frozen."
        elif phase in DELIVERY_PHASES and self._run.started:
            text = f"Stopped {name}: output ramps down and the session ends."
        elif phase is Phase.PLACE:
            text = f"Stopped before {name} started: the session ends."
        else:
            text = f"Stopped at {name}: the session ends."
        seen = queued.context
        moved = seen.phase is not None and seen.step is not None and seen.step != pos
        if moved and seen.step is not None and 0 <= seen.step < len(steps):
            text += (
                f" {self._fate(seen.step)} while this was being chosen; "
                f"{queued.action.value} acts on what is delivering now."
            )
        return text
