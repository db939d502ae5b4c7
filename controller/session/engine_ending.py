"""How a session ends: the outcome, the summary, and the one rule that leaves the device safe.

Why apart: every way out of a session — completed, stopped, refused, faulted, interrupted, a
record that cannot be written, a crash — goes through here, so the rule "the device is seen
inactive (STATUS), or ESTOP is sent and recorded" is applied in one place.
"""

from __future__ import annotations

import logging
from typing import Any

from controller.link import LinkState
from controller.records import RecordsError
from controller.records.courses import CourseProgress, course_progress
from controller.session.engine_core import EngineCore, status_data
from controller.session.model import Outcome, Phase, StepStatus
from controller.wire.constants import ACTIVE_STATES

log = logging.getLogger(__name__)


class EngineEnding(EngineCore):
    """Ending a session (see the module docstring)."""

    def _end_outcome(self) -> Outcome:
        phase = self._shown.phase
        if phase is Phase.FAULT:
            return Outcome.ABORTED if self._shown.operator_estop else Outcome.FAULTED
        if phase in (Phase.LINK_LOST, Phase.RECOVERY) and self._link.interrupted:
            return Outcome.INTERRUPTED
        return Outcome.STOPPED

    def _summary(self) -> dict[str, Any]:
        zones = [
            {
                "index": p.index,
                "zone": p.zone,
                "planned_ms": p.planned_ms,
                "delivered_ms": p.delivered_ms,
                "status": p.status.value,
            }
            for p in self._run.steps
            if p.is_delivery
        ]
        return {
            "zones": zones,
            "planned_ms": sum(z["planned_ms"] for z in zones),
            "delivered_ms": sum(z["delivered_ms"] for z in zones),
            "estops": list(self._shown.estop_sources),
            "telemetry_dropped": self._in.telemetry_dropped,
            "simulated": self._link.info.is_simulator if self._link.info is not None else None,
        }

    def _finish(
        self,
        outcome: Outcome,
        reason: str,
        *,
        phase: Phase = Phase.FINISHED,
        refusals: tuple[str, ...] = (),
    ) -> None:
        self._make_safe(reason)
        if self._run.attempt_open:
            planned = self._current()
            delivered = self._live_elapsed() if planned.is_delivery else None
            self._close_attempt(
                outcome.value,
                delivered,
                {"reason": reason, "delivered_source": "last telemetry"},
            )
            with self._lock:
                if planned.is_delivery and planned.remaining_ms <= 0:
                    planned.status = StepStatus.DONE
                elif outcome is Outcome.STOPPED:
                    planned.status = StepStatus.STOPPED
                else:
                    planned.status = StepStatus.INTERRUPTED
        summary = self._summary()
        if phase is not self._shown.phase:
            self._rec.event(
                "state", {"old": self._shown.phase.value, "new": phase.value, "step": self._index()}
            )
        self._rec.end(outcome.value, reason, summary)
        protocol = self._protocol
        with self._lock:
            self._shown.outcome = outcome
            self._shown.outcome_reason = reason
            self._shown.refusals = refusals or self._shown.refusals
            self._run.awaiting_contact = False
            if protocol is not None and phase is Phase.FINISHED:
                self._shown.aftercare = tuple(protocol.aftercare)
        if protocol is not None:
            try:
                course = self.course_progress()
            except RecordsError:
                course = None
            with self._lock:
                self._shown.course = course
        if phase is Phase.FINISHED:
            message = f"Session {outcome.value}: {reason}."
        else:
            message = "The session was refused: " + " ".join(refusals)
        self._set_phase(phase, message, record=False)
        self._emit("finished", {"outcome": outcome.value, "reason": reason, "summary": summary})
        self._ending = True

    def _make_safe(self, reason: str) -> None:
        """The one rule for ending, failing or shutting down: the device is seen inactive
        (STATUS), or ESTOP is sent and recorded. A session that never reached the device has
        nothing to make safe; another unit on the port is the link's to stop (it sends ESTOP
        to it only if its STATUS shows it active), ours is unreachable and its watchdog has
        turned output off."""
        if self._link.info is None:
            return
        if self._device.link_state is LinkState.OTHER_UNIT:
            self._rec.event(
                "end_check",
                {"result": "other_unit", "message": "another unit is on the port; not ours"},
            )
            return
        status = self._read_status()
        if status is not None and status.state not in ACTIVE_STATES:
            self._rec.event("end_check", {"result": "inactive", "status": status_data(status)})
            return
        seen = f"was {status.state.name}" if status is not None else "could not be read"
        self._estop_now(
            "end",
            f"ending the session ({reason}): the device {seen}",
            None,
            record_here=True,
        )
        self._drain_supervisor_output()

    def _interrupt(self, reason: str) -> None:
        """The practitioner quit with the session open (``abandon``): end it ``interrupted``
        now, whatever was under way (a ramp-down to end or skip included). ``_finish`` makes
        the device safe first (STATUS, or ESTOP)."""
        with self._lock:
            self._run.after_idle = None
        self._finish(Outcome.INTERRUPTED, reason)

    def _record_failed(self, reason: str) -> None:
        """The record cannot be written: output was stopped; show why and stop the engine."""
        with self._lock:
            self._shown.phase = Phase.FINISHED
            self._shown.outcome = Outcome.FAULTED  # a controller fault; the row is recovered later
            self._shown.outcome_reason = reason
            self._shown.message = reason
            self._shown.notices.append(reason)
            self._ending = True
        self._emit("finished", {"outcome": Outcome.FAULTED.value, "reason": reason})

    def _crash(self, exc: BaseException) -> None:
        reason = (
            f"The controller failed ({type(exc).__name__}: {exc}); output was stopped with an "
            "emergency stop. Report this with the session record."
        )
        try:
            self._rec.event("engine_error", {"error": repr(exc)})
            self._rec.end(Outcome.FAULTED.value, reason, self._summary())
        except Exception:
            log.exception("could not record the engine failure")
        with self._lock:
            self._shown.phase = Phase.FINISHED
            self._shown.outcome = Outcome.FAULTED
            self._shown.outcome_reason = reason
            self._shown.message = reason
            self._ending = True
        self._emit("finished", {"outcome": Outcome.FAULTED.value, "reason": reason})

    def course_progress(self) -> CourseProgress | None:
        """The client's course in this protocol now (read from the records)."""
        if self._protocol is None:
            return None
        return course_progress(self._store, self._plan.client_code, self._protocol)
