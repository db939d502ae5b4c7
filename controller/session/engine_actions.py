"""Practitioner actions: what applies now (``allowed``), and carrying each one out.

Why apart: every refusal or clamp of an action must say which limit and why, and ``allowed``
must be exactly what the handlers accept; keeping both in one module keeps them in step.
"""

from __future__ import annotations

import logging

from controller.device import (
    DeviceEvent,
    DeviceEventKind,
    LinkError,
)
from controller.session.alarms import AlarmCode
from controller.session.engine_core import (
    DELIVERY_PHASES,
    AfterIdle,
)
from controller.session.engine_recovery import EngineRecovery
from controller.session.limits import Direction, intensity_range, intensity_step
from controller.session.model import (
    Action,
    Outcome,
    Phase,
    StepStatus,
)
from controller.session.supervisor import SendEstop
from controller.wire import State

log = logging.getLogger(__name__)


class EngineActions(EngineRecovery):
    """Practitioner actions and what applies now."""

    def _handle_action(self, action: Action, reason: str | None) -> None:
        with self._lock:
            allowed = self._allowed_locked()
        if action in (Action.INTENSITY_UP, Action.INTENSITY_DOWN) and self._intensity_applies():
            # At either end of the range the press is not offered; if it comes anyway, the
            # limit's own words say which limit stopped it.
            self._intensity(Direction.UP if action is Action.INTENSITY_UP else Direction.DOWN)
            return
        if action not in allowed:
            self._notice(self._why_not(action, allowed), action=action.value, layer="controller")
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
        if action is Action.ACKNOWLEDGE:
            with self._sup_lock:
                changes = self._sup.acknowledge(None, self._clock())
            self._drain_supervisor_output()
            for change in changes:
                if not isinstance(change, SendEstop):
                    self._publish_alarm(change.change, by=self._plan.practitioner or "practitioner")
        elif action is Action.CONFIRM:
            if self._phase is Phase.MANUAL:
                self._complete_manual()
            else:
                self._confirm()
        elif action is Action.PAUSE:
            if self._command("PAUSE", self._device.pause) == "ack":
                self._set_phase(Phase.PAUSED, self._paused_message())
        elif action is Action.RESUME:
            if self._command("RESUME", self._device.resume) == "ack":
                self._set_phase(Phase.DELIVERING, f"Delivering to the {self._current().zone} zone.")
        elif action is Action.STOP:
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

    def _why_not(self, action: Action, allowed: frozenset[Action]) -> str:
        phase = self._phase
        hints = {
            Action.CLEAR_FAULTS: "acknowledge the alarm first; faults are cleared only while "
            "the device reports them",
            Action.CONTINUE: "clear the device's faults first"
            if phase in (Phase.FAULT, Phase.RECOVERY)
            else "there is nothing to continue",
            Action.INTENSITY_UP: "intensity is set while a zone is placed or running",
            Action.INTENSITY_DOWN: "intensity is set while a zone is placed or running",
            Action.RECONNECT: "the link is reconnecting by itself",
        }
        why = hints.get(action, f"it does not apply while the session is {phase.value}")
        can = ", ".join(sorted(a.value for a in allowed)) or "nothing"
        name = action.value.replace("_", " ").capitalize()
        return f"{name} is not possible now: {why}. Possible now: {can}."

    def _intensity(self, direction: Direction) -> None:
        values = self._values
        planned = self._current()
        assert values is not None
        current = self._current_setpoint()
        decision = intensity_step(current, direction, values)
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
        result = self._command(
            "SET_AMPLITUDE",
            lambda: self._device.set_amplitude(decision.value_dv),
            amplitude_dv=decision.value_dv,
        )
        if result == "ack":
            with self._lock:
                self._setpoint_dv = decision.value_dv
            with self._sup_lock:
                actions = self._sup.setpoint_changed(decision.value_dv, self._clock())
            if actions:
                self._act(actions)
            self._emit("notice", {"message": decision.message})

    def _end(self, reason: str, *, outcome: Outcome | None = None) -> None:
        """End the session early: a running zone is stopped with a ramp first, and the
        session ends once the device is idle (see ``_step_ended``)."""
        outcome = outcome or self._end_outcome()
        phase = self._phase
        if self._after_idle is not None:
            with self._lock:  # already stopping: end rather than skip once idle
                self._after_idle = AfterIdle("end", outcome, reason)
            return
        if phase in DELIVERY_PHASES and self._started:
            with self._lock:
                self._after_idle = AfterIdle("end", outcome, reason)
            result = self._command("STOP", self._device.stop, reason=reason)
            if result == "ack":
                self._set_phase(Phase.STOPPING, f"Ramping down to end the session: {reason}.")
                return
            with self._lock:
                self._after_idle = None
            if result == "nak":  # FAULT_LATCHED: the device is in FAULT and its output is off
                self._enter_fault()
                self._finish(self._end_outcome(), reason)
            elif result in ("lost", "unknown"):
                # The link sent ESTOP as it gave up and the device's watchdog stops output.
                self._finish(Outcome.INTERRUPTED, reason)
            return
        if phase is Phase.STOPPING and self._started:
            with self._lock:  # the zone is ramping down at its end: end once idle
                self._after_idle = AfterIdle("end", outcome, reason)
            return
        if phase is Phase.PLACE:
            self._command(
                "STOP", self._device.stop, reason=f"discard the configured step: {reason}"
            )
        self._finish(outcome, reason)

    def _skip(self, reason: str) -> None:
        planned = self._current()
        phase = self._phase
        if phase in DELIVERY_PHASES and self._started:
            with self._lock:
                self._after_idle = AfterIdle("skip", Outcome.STOPPED, reason)
            if self._command("STOP", self._device.stop, reason=f"skip: {reason}") == "ack":
                self._set_phase(Phase.STOPPING, f"Ramping down to skip the {planned.zone} zone.")
            else:
                with self._lock:
                    self._after_idle = None
            return
        if phase is Phase.PLACE:
            self._command(
                "STOP", self._device.stop, reason=f"discard the configured step: skip: {reason}"
            )
        if self._attempt_open:
            self._rec.skip(planned.index, reason, kind=planned.kind, zone=planned.zone)
            with self._lock:
                self._attempt_open = False
                self._started = False
                self._manual_started_at = None
                self._awaiting_contact = False
        else:
            self._rec.skip(planned.index, reason, kind=planned.kind, zone=planned.zone)
        with self._lock:
            planned.status = StepStatus.SKIPPED
        self._emit("step", {"index": planned.index, "event": "skipped", "reason": reason})
        self._enter_step(planned.pos + 1)

    def _clear_faults(self) -> None:
        if self._command("CLEAR_FAULTS", self._device.clear_faults) == "ack":
            self._read_status()
            if self._phase is Phase.FAULT and self._device.device_state is not State.FAULT:
                self._fault_cleared_shown = True
                self._set_phase(Phase.FAULT, self._fault_cleared_message())

    def _continue(self) -> None:
        planned = self._current()
        with self._lock:
            self._interrupted = False
            self._operator_estop = False
        self._emit("step", {"index": planned.index, "event": "continued"})
        self._enter_step(planned.pos)

    def _reconnect(self) -> None:
        try:
            info = self._device.connect()
        except LinkError as exc:
            self._notice(f"Reconnecting failed: {exc}", action="reconnect", layer="link")
            return
        with self._lock:
            self._info = info
        status = self._read_status()
        self._on_back(
            DeviceEvent(
                DeviceEventKind.RECONNECTED, "reconnected by the practitioner", status=status
            )
        )

    def _allowed_locked(self) -> frozenset[Action]:
        allowed = {Action.ESTOP}
        phase = self._phase
        if any(not a.acknowledged for a in self._alarms.values()):
            allowed.add(Action.ACKNOWLEDGE)
        if phase in (Phase.PREFLIGHT, Phase.REFUSED, Phase.FINISHED, Phase.STOPPING):
            return frozenset(allowed)
        if self._after_idle is not None:
            return frozenset(allowed)
        device_state = self._device.device_state
        if phase is Phase.MANUAL:
            allowed |= {Action.CONFIRM, Action.SKIP, Action.END, Action.STOP}
        elif phase is Phase.PLACE:
            allowed |= {Action.SKIP, Action.END, Action.STOP}
            if not self._awaiting_contact:
                allowed.add(Action.CONFIRM)
            allowed |= self._intensity_allowed()
        elif phase in DELIVERY_PHASES:
            allowed |= {Action.STOP, Action.SKIP, Action.END}
            allowed.add(Action.RESUME if phase is Phase.PAUSED else Action.PAUSE)
            allowed |= self._intensity_allowed()
        elif phase in (Phase.FAULT, Phase.RECOVERY):
            allowed.add(Action.END)
            device_fault = self._alarms.get(AlarmCode.DEVICE_FAULT)
            if device_state is State.FAULT:
                if device_fault is None or device_fault.acknowledged:
                    allowed.add(Action.CLEAR_FAULTS)
            elif device_state in (State.IDLE, State.READY) and self._pos is not None:
                allowed |= {Action.CONTINUE, Action.SKIP}
        elif phase is Phase.LINK_LOST:
            allowed.add(Action.END)
            if self._reconnect_failed:
                allowed.add(Action.RECONNECT)
        return frozenset(allowed)

    def _intensity_applies(self) -> bool:
        return (
            self._values is not None
            and self._after_idle is None
            and self._phase in (Phase.PLACE, Phase.DELIVERING, Phase.HOLD, Phase.PAUSED)
        )

    def _intensity_allowed(self) -> set[Action]:
        values = self._values
        if values is None:
            return set()
        low, high = intensity_range(values.amplitude_max_dv)
        current = self._current_setpoint()
        out: set[Action] = set()
        if current < high:
            out.add(Action.INTENSITY_UP)
        if current > low:
            out.add(Action.INTENSITY_DOWN)
        return out
