"""The session engine: runs one treatment session on an EPM-1, independent of any UI.

Why: this is where a protocol becomes delivered electricity, so every rule that protects the
client lives here and nowhere in a widget:

* the record is written BEFORE the device acts (``command_sent``, ``step_start``,
  ``amplitude_change`` are committed first; a failed write stops output instead of acting);
* emergency stop never waits: :meth:`SessionEngine.emergency_stop` writes ESTOP from the
  caller's thread ahead of everything and the engine's thread records it right after (the one
  "act, then record" exception: a disk write may take milliseconds, output must not wait for
  it, and the caller's thread never waits for the disk);
* the engine checks in with the link at least every ``LOOP_S``: when it stops (a stalled
  thread), the link stops feeding the device's watchdog and the device turns output off;
* every epoch-bound command carries the connection epoch of the events the engine decided
  on: one decided before a loss, a reconnect, a restart or an emergency stop is never written;
* ending, failing or shutting down has one rule: the device is seen inactive, or ESTOP is
  sent and recorded;
* the safety supervisor sees every frame on the link's reader thread, so a cross-check that
  fails sends ESTOP within milliseconds, from that thread;
* after a lost link or a device restart nothing resumes by itself: the engine reads the
  device's state once reconnected and waits for the practitioner (RECOVERY);
* alarm changes are committed before listeners are told; ``allowed`` is exactly what applies.

Threads: the engine thread (``start()``) runs preflight and the steps and is the only writer of
session state and records (except the ESTOP record). The link's threads call two listeners that
feed the supervisor and queue what they saw. The UI calls :meth:`snapshot`, :meth:`request`,
:meth:`emergency_stop` and :meth:`drain_telemetry` from its own thread.

Clocks: ``clock`` (default ``time.monotonic``) is the one host clock of the engine: the
supervisor's windows (staleness, contact loss, link health), manual-step timers, the reconnect
limit and the age of readings. ``manual_speed`` runs manual timers
faster for an accelerated simulator only (refused on a real device). Device time
(``step_elapsed_ms``) is the authority for delivered time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from controller.device import DeviceClient
from controller.session import engine_view
from controller.session.actions import INTENSITY, URGENT, Context
from controller.session.engine_actions import EngineActions
from controller.session.engine_core import (
    HEALTH_S,
    LOOP_S,
    log_estop,
)
from controller.session.engine_record import RecordWriteError
from controller.session.model import (
    ACTIVE_PHASES,
    Action,
    Phase,
    Seen,
    SessionNotice,
    SessionSnapshot,
)
from controller.wire import Telemetry
from controller.wire.constants import ACTIVE_STATES

log = logging.getLogger(__name__)


class SessionEngine(EngineActions):
    """One session: preflight, then the plan's steps in order, supervised; see the module doc.

    ``SessionEngine(device, store, plan, *, clock=time.monotonic, auto_confirm=False,
    reconnect_limit_s=None, manual_speed=1.0)``: ``auto_confirm`` confirms placements and
    manual steps by itself (headless runs); ``reconnect_limit_s`` gives up waiting for a lost
    link after that long (None: never); ``manual_speed`` runs manual-step timers faster on an
    accelerated simulator (refused by preflight on a real device).
    """

    def start(self) -> None:
        """Subscribe to the device and run the session on the engine's own thread."""
        if self._thread is not None:
            raise RuntimeError("this SessionEngine was already started; create a new one")
        self._unsubscribe = [
            self._device.add_listener(self._on_device_event),
            self._device.add_telemetry_listener(self._on_device_telemetry),
        ]
        self._notifier.start()
        self._thread = threading.Thread(target=self._main, name="epm-session", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the session is finished or refused; True if it is."""
        return self._done.wait(timeout)

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    def shutdown(self, reason: str = "the controller was closed", timeout: float = 10.0) -> None:
        """End the session (a running zone is stopped with a ramp first) and stop the thread.

        If the engine does not finish within ``timeout`` s, ESTOP is sent and recorded.
        """
        if self._thread is None:
            return
        if not self._done.is_set():
            self._shutdown_reason = reason
        self._end_threads("shutdown", reason, timeout)

    def _end_threads(self, source: str, reason: str, timeout: float) -> None:
        """Wake the engine's thread to end the session (the reason is set by the caller),
        ESTOP from here if it does not finish within ``timeout`` s, then join the threads."""
        thread = self._thread
        assert thread is not None
        if not self._done.is_set():
            self._wake.set()
            if not self._done.wait(timeout):
                self._estop_now(
                    source,
                    f"{reason}: the session did not end within {timeout:g} s",
                    None,
                    record_here=True,  # the engine thread is stuck: nobody else will
                )
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._notifier.join(timeout)

    def snapshot(self) -> SessionSnapshot:
        """The session as it is now: thread-safe and cheap (the UI calls it at 15-20 Hz)."""
        with self._lock:
            return self._build_snapshot()

    def request(self, action: Action, reason: str | None = None, seen: Seen | None = None) -> None:
        """Queue a practitioner action; the engine thread decides (refusals become notices).

        The action carries what it was decided on (see :mod:`controller.session.actions`):
        ``seen`` (the :attr:`SessionSnapshot.seen` shown when the practitioner chose it: a
        window opened, a key pressed), or else the engine's state now. If that no longer holds
        when it is queued, or when the engine gets to it (another connection, step, phase or
        device state), it is dropped with a notice saying what happened meanwhile ("Zone 3
        (Crown) finished while this window was open; nothing was skipped."). PAUSE and STOP
        are never dropped: they act on what is delivering now and their notice names it.
        Intensity presses are judged on the state when they are pressed (``seen`` aside)."""
        action = Action(action)
        if action is Action.ESTOP:
            self.emergency_stop(reason or "operator")
            return
        if self._done.is_set():
            with self._lock:
                phase = self._shown.phase.value
                self._shown.notices.append(
                    f"{action.value}: the session has ended ({phase}); start a new one."
                )
            return
        now = self._context()
        context, stale = now, False
        if action in INTENSITY:  # as ever: the connection, device state and step of the press
            context = dataclasses.replace(now, phase=None)
        elif seen is not None:
            context = Context.from_seen(seen)
            stale = action not in URGENT and not context.holds(now, action)
        refused = self._in.actions.put(action, reason, context, stale=stale)
        if refused is not None:
            with self._lock:
                self._shown.notices.append(refused)
        self._wake.set()

    def open_session_id(self) -> int | None:
        """The id of this engine's session while its record is open (begun, not ended)."""
        recorder = self._rec
        if recorder.session_id is None or recorder.ended:
            return None
        return recorder.session_id

    def record_training_fault(
        self, fault: str, params: Mapping[str, Any], *, title: str = "", by: str = "trainer"
    ) -> bool:
        """Commit a fault a trainer injected into the simulator, before it is injected (the
        engine is the only writer of its session's record). False when no session is open."""
        return self._rec.training_fault(fault, params, title=title, by=by)

    def abandon(
        self, reason: str = "the practitioner quit epm with the session open", timeout: float = 5.0
    ) -> bool:
        """The practitioner quits with the session still open: make the device safe, then
        end the session's record as ``interrupted`` with ``reason`` now (not at the next
        start), and stop the engine's threads.

        The device first: if it may be delivering (an active phase or device state), ESTOP
        is written from this thread before anything else; the engine's thread then reads
        STATUS (ESTOP again unless it is seen inactive), closes the open step with what was
        delivered and records ``session_end`` (``interrupted``). Returns True when the
        record is closed (or there was none to close: no session began, or it had already
        ended). False: the engine did not finish within ``timeout`` s; ESTOP was sent and
        recorded, and the next start marks the session interrupted."""
        thread = self._thread
        if thread is None:
            return self._rec.session_id is None or self._rec.ended
        if not self._done.is_set():
            with self._lock:
                phase = self._shown.phase
            if phase in ACTIVE_PHASES or self._device.device_state in ACTIVE_STATES:
                self._estop_now("quit", f"{reason}: output stopped first", None, record_here=False)
            self._abandon_reason = reason
        self._end_threads("quit", reason, timeout)
        return self._done.is_set() and (self._rec.session_id is None or self._rec.ended)

    def emergency_stop(self, source: str = "operator") -> bool:
        """ESTOP now from this thread, before any record or lock; the engine's thread records
        it (this thread never waits for the disk). Returns whether the bytes went out: when
        they did not, the caller must tell the operator to stop the device by hand."""
        if self._done.is_set() or self._thread is None:
            written = self._device.estop()
            self._record_late_estop(source, written)
            return written
        return self._estop_now(source, "emergency stop requested", None, record_here=False)

    def _record_late_estop(self, source: str, written: bool) -> None:
        """An ESTOP after the engine ended: recorded on a short-lived thread of its own."""
        sid = self._rec.session_id
        if sid is None:
            return
        data = {
            "source": source,
            "reason": "emergency stop after the session ended",
            "bytes_written": written,
            "phase": self._shown.phase.value,
        }

        def record() -> None:
            log_estop(data, sid)  # here, not on the caller's thread
            try:
                self._store.append_event(sid, "estop", data)
            except Exception:
                log.exception("late ESTOP not recorded")

        threading.Thread(target=record, name="epm-session-estop-record", daemon=True).start()

    def drain_telemetry(self) -> list[Telemetry]:
        """Telemetry received since the last drain (the device client's bounded buffer)."""
        return self._device.drain_telemetry()

    def add_listener(self, callback: Callable[[SessionNotice], None]) -> None:
        """``callback(notice)`` runs after each change is recorded, in order, on the engine's
        notifier thread (not the engine loop itself, so a listener that blocks never stalls
        the session); it should still return quickly (post a message)."""
        self._notifier.add(callback)

    def set_notes(self, notes: str) -> None:
        """Replace the session's notes (kept until the session row exists)."""
        with self._lock:
            sid = self._rec.session_id
            if sid is None:
                self._pending_notes = notes
                return
        self._store.set_notes(sid, notes)

    @property
    def session_id(self) -> int | None:
        return self._rec.session_id

    @property
    def device(self) -> DeviceClient:
        return self._device

    def _main(self) -> None:
        try:
            self._preflight()
            while not self._ending:
                self._wake.wait(LOOP_S)
                self._wake.clear()
                self._device.checkin()
                self._service()
        except RecordWriteError as exc:
            # The record cannot be written: stop output; recording the ESTOP may fail too.
            self._estop_now("record_failure", str(exc), None, record_here=True)
            self._record_failed(str(exc))
        except Exception as exc:
            log.exception("session engine failed")
            self._estop_now("engine_failure", repr(exc), None, record_here=True)
            self._crash(exc)
        finally:
            for unsubscribe in self._unsubscribe:
                unsubscribe()
            self._flush_notices()
            self._notifier.close()
            self._done.set()

    def _service(self) -> None:
        while self._in.device_events:
            self._drain_supervisor_output()  # what the event changed is recorded first
            self._handle_device_event(self._in.device_events.popleft())
        self._drain_supervisor_output()
        quit_reason, self._abandon_reason = self._abandon_reason, None
        if quit_reason is not None and not self._ending:
            self._interrupt(quit_reason)
        reason, self._shutdown_reason = self._shutdown_reason, None
        if reason is not None and not self._ending:
            self._end(reason)
        while not self._ending:
            queued, dropped = self._in.actions.take(self._context(), self._stale_notice)
            for text in dropped:
                self._notice(text, layer="controller", stale=True)
            if queued is None:
                break
            self._handle_action(queued)
            self._drain_supervisor_output()
        self._record_telemetry()
        self._supervise()
        if not self._ending:
            self._poll()
        self._drain_supervisor_output()
        self._flush_notices()

    def _supervise(self) -> None:
        now = self._clock()
        silence = self._device.telemetry_silence_s()
        with self._sup_lock:
            actions = self._sup.tick(now, silence_s=silence)
        if now - self._last_health >= HEALTH_S:
            self._last_health = now
            health = self._device.health()
            with self._sup_lock:
                actions += self._sup.on_link_health(health, now)
        if actions:
            self._act(actions)

    def _flush_notices(self) -> None:
        """Hand this pass's notices (their changes are recorded) to the notifier thread."""
        if not self._pending_notices:
            return
        pending, self._pending_notices = self._pending_notices, []
        snapshot = self.snapshot()
        self._notifier.post([SessionNotice(kind, snapshot, detail) for kind, detail in pending])

    def _build_snapshot(self) -> SessionSnapshot:
        plan = self._plan
        protocol = self._protocol
        info = self._link.info
        latest = self._in.latest
        values = self._run.values
        now = self._clock()
        current = self._live_elapsed() if self._run.attempt_open else 0
        steps = engine_view.step_views(self._run.steps, self._run.pos, current)
        zone_planned = zone_delivered = 0
        manual_remaining: int | None = None
        if self._run.pos is not None and self._run.pos < len(self._run.steps):
            planned = self._run.steps[self._run.pos]
            if planned.is_delivery:
                zone_planned = planned.planned_ms
                zone_delivered = steps[self._run.pos].delivered_ms
            elif planned.planned_ms and self._shown.phase is Phase.MANUAL:
                manual_remaining = max(0, planned.planned_ms - self._manual_elapsed_ms(planned))
        deliveries = [s for s in steps if s.kind == "delivery"]
        link = None
        if info is not None:
            link = engine_view.link_view(self._device.health(), self._device.url)
        identity_id = getattr(plan.load_result, "id", None) or ""
        identity_version = getattr(plan.load_result, "version", None) or 0
        alarms = tuple(
            sorted(
                self._shown.alarms.values(),
                key=lambda a: (a.priority.rank, a.raised_at, a.occurrence),
            )
        )
        return SessionSnapshot(
            phase=self._shown.phase,
            simulated=bool(info.is_simulator) if info is not None else False,
            client_code=plan.client_code,
            protocol_id=protocol.id if protocol is not None else str(identity_id),
            protocol_version=protocol.version if protocol is not None else int(identity_version),
            protocol_title=protocol.title if protocol is not None else "",
            session_id=self._rec.session_id,
            step_index=None
            if self._run.pos is None or self._shown.phase in (Phase.FINISHED, Phase.REFUSED)
            else self._run.pos + 1,
            steps=steps,
            zone_planned_ms=zone_planned,
            zone_delivered_ms=zone_delivered,
            session_planned_ms=sum(s.planned_ms for s in deliveries),
            session_delivered_ms=sum(s.delivered_ms for s in deliveries),
            manual_remaining_ms=manual_remaining,
            setpoint_dv=self._current_setpoint() if values is not None else None,
            live=engine_view.live_view(
                latest[0] if latest else None,
                latest[1] if latest else None,
                self._current_setpoint() if values is not None else None,
                values.current_limit_ua if values is not None else None,
                now,
            ),
            device=engine_view.device_view(info, self._device.handpiece)
            if info is not None
            else None,
            link=link,
            alarms=alarms,
            allowed=self._allowed_locked(),
            message=self._shown.message,
            outcome=self._shown.outcome,
            outcome_reason=self._shown.outcome_reason,
            refusals=self._shown.refusals,
            warnings=self._shown.warnings,
            aftercare=self._shown.aftercare,
            notices=tuple(self._shown.notices),
            course=self._shown.course,
            reconnect_failed=self._link.reconnect_failed,
            unit_change=self._link.unit_change,
            seen=self._seen(),
        )

    def _seen(self) -> Seen:
        """What a choice made on this snapshot is decided on (caller holds the lock)."""
        context = self._context()
        state = context.device_state
        return Seen(
            connection=context.connection,
            device_state=None if state is None else int(state),
            step=context.step,
            phase=self._shown.phase,
        )
