"""The session engine's core: its components, the record helpers and the link listeners.

Why a core: the engine is split by concern (its state as owned components in
``engine_state``; the rules of what may be done in ``rules``; this core's helpers; the step
flow in ``engine_steps``; how a session ends in ``engine_ending``; faults and link loss in
``engine_recovery``; practitioner actions in ``engine_actions``; the public API and thread in
``engine``) so each part can be read alone. Everything here keeps the engine's rules: a command
is recorded (``command_sent``) before it is sent and carries the epoch it was decided on, and an
alarm change is recorded before any listener hears of it. The listeners
``_on_device_telemetry``/``_on_device_event`` run on the link's dispatch thread: they feed the
safety supervisor at once (an ESTOP it asks for goes out from that thread) and queue the rest
for the engine thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from controller.device import (
    DeviceClient,
    DeviceEvent,
    DeviceEventKind,
    DeviceProtocolError,
    DeviceRefused,
    LimitsExceeded,
    LinkError,
    OutcomeUnknown,
    StaleCommand,
    Status,
)
from controller.records import RecordStore
from controller.session.actions import Context
from controller.session.alarms import AlarmChange, ChangeKind
from controller.session.engine_notify import Notifier
from controller.session.engine_record import Recorder, json_safe
from controller.session.engine_state import (
    TELEMETRY_BACKLOG,
    EstopNote,
    Inputs,
    LinkFacts,
    Shown,
    StepRun,
)
from controller.session.limits import LimitRefusal
from controller.session.model import (
    ACTIVE_PHASES,
    Phase,
    SessionPlan,
)
from controller.session.preflight import PlannedStep
from controller.session.supervisor import (
    SafetySupervisor,
    SendEstop,
    SupervisorAction,
)
from controller.wire import Contact, Event, EventCode, Fault, State, Telemetry
from controller.wire import Status as WireStatus
from controller.wire.constants import OUTCOME_UNCERTAIN
from protocols import Protocol

log = logging.getLogger(__name__)
#: The service log's entries (docs/service-log.md): every ESTOP with its source and phase.
service = logging.getLogger("epm.session")

#: The engine loop wakes at least this often (the supervisor needs a tick every ≤ 100 ms).
LOOP_S = 0.05
#: Link health goes to the supervisor about once a second.
HEALTH_S = 1.0
#: How long preflight waits for the first telemetry frame (contact check).
FIRST_TELEMETRY_S = 0.5
DEVICE_EVENT_CODES: dict[DeviceEventKind, EventCode] = {
    DeviceEventKind.STATE_CHANGED: EventCode.STATE_CHANGED,
    DeviceEventKind.STEP_COMPLETE: EventCode.STEP_COMPLETE,
    DeviceEventKind.FAULT_RAISED: EventCode.FAULT_RAISED,
    DeviceEventKind.FAULTS_CLEARED: EventCode.FAULTS_CLEARED,
    DeviceEventKind.CONTACT_CHANGED: EventCode.CONTACT_CHANGED,
    DeviceEventKind.HANDPIECE_CHANGED: EventCode.HANDPIECE_CHANGED,
    DeviceEventKind.AMPLITUDE_LIMITED: EventCode.AMPLITUDE_LIMITED,
}
LOST_KINDS = frozenset({DeviceEventKind.LINK_LOST, DeviceEventKind.LINK_DOWN})
OUTCOME_UNCERTAIN_NAMES = frozenset(t.name for t in OUTCOME_UNCERTAIN)
BACK_KINDS = frozenset({DeviceEventKind.RECONNECTED, DeviceEventKind.LINK_UP})
DELIVERY_PHASES = frozenset({Phase.DELIVERING, Phase.HOLD, Phase.PAUSED})
CONTACT_OK = (Contact.OK, Contact.MARGINAL)


def wire_status(status: Status) -> WireStatus:
    return WireStatus(
        status.boot_id,
        int(status.state),
        int(status.faults),
        status.step_id,
        status.step_elapsed_ms,
        status.step_duration_ms,
        int(status.handpiece),
        status.amplitude_dv,
        status.rx_crc_errors,
        status.rx_frame_errors,
    )


def status_data(status: Status | None) -> dict[str, Any] | None:
    if status is None:
        return None
    return {
        "boot_id": status.boot_id,
        "state": status.state.name,
        "faults": Fault(int(status.faults)).names(),
        "step_id": status.step_id,
        "step_elapsed_ms": status.step_elapsed_ms,
        "step_duration_ms": status.step_duration_ms,
        "handpiece": status.handpiece.name,
        "amplitude_dv": status.amplitude_dv,
    }


def log_estop(data: dict[str, Any], session_id: int | None) -> None:
    """The service log's entry for an ESTOP that was sent (source, reason, bytes written,
    phase); written after the bytes went out, never on the caller's thread of an ESTOP."""
    written = bool(data.get("bytes_written"))
    reason = data.get("reason")
    if data.get("source") == "end":  # it quotes the END reason, which a practitioner typed
        reason = "ending the session: the device was not seen inactive"
    service.log(
        logging.WARNING if written else logging.ERROR,
        "ESTOP %s by %s in %s: %s",
        "sent" if written else "NOT SENT (no port)",
        data.get("source"),
        data.get("phase"),
        reason,
        extra={
            "event": "estop",
            "session": session_id,
            "source": data.get("source"),
            "bytes_written": written,
            "phase": data.get("phase"),
            "reason": reason,
        },
    )


class EngineCore:
    """State and shared helpers of :class:`~controller.session.engine.SessionEngine`."""

    def __init__(
        self,
        device: DeviceClient,
        store: RecordStore,
        plan: SessionPlan,
        *,
        clock: Callable[[], float] = time.monotonic,
        auto_confirm: bool = False,
        reconnect_limit_s: float | None = None,
        manual_speed: float = 1.0,
    ) -> None:
        if manual_speed <= 0:
            raise ValueError(f"manual_speed {manual_speed} must be positive")
        self._device = device
        self._store = store
        self._plan = plan
        self._clock = clock
        self._auto = auto_confirm
        self._reconnect_limit_s = reconnect_limit_s
        self._manual_speed = float(manual_speed)
        self._rec = Recorder(store)
        self._sup = SafetySupervisor()
        self._sup_lock = threading.Lock()
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = threading.Event()
        self._ending = False
        """Set by ``_finish``: the loop stops; ``_done`` follows once listeners were told."""
        self._unsubscribe: list[Callable[[], None]] = []
        self._notifier = Notifier()
        # The state, by who writes it (see engine_state.py).
        self._in = Inputs()
        self._link = LinkFacts()
        self._run = StepRun()
        self._shown = Shown()
        protocol = plan.load_result.protocol if plan.load_result is not None else None
        self._protocol: Protocol | None = protocol
        self._pending_notes: str | None = None
        self._pending_notices: list[tuple[str, dict[str, Any]]] = []
        self._last_health = 0.0
        self._shutdown_reason: str | None = None
        self._abandon_reason: str | None = None
        """Set by ``abandon``: the practitioner quit; the session ends interrupted at once."""

    def _estop_now(
        self, source: str, reason: str, detail: LimitRefusal | None, *, record_here: bool
    ) -> bool:
        """ESTOP first, then note it; ``record_here`` only on the engine's own thread (any
        other caller's thread must never wait for a disk write). Returns whether its bytes
        went out."""
        written = self._device.estop()  # first, before anything else
        sent_at = self._clock()
        data = {
            "source": source,
            "reason": reason,
            "bytes_written": written,
            "phase": self._shown.phase.value,
            "mono": sent_at,
            "detail": None if detail is None else json_safe(dataclasses.asdict(detail)),
        }
        with self._lock:
            self._shown.estop_sources.append(source)
            if source != "supervisor":
                self._shown.operator_estop = True
            if self._shown.phase is Phase.PREFLIGHT:
                self._shown.estop_in_preflight = True
            sid = self._rec.session_id
        recorded = False
        if record_here and sid is not None:
            try:
                self._store.append_event(sid, "estop", json_safe(data))
                recorded = True
            except Exception:  # ESTOP must never raise; the engine thread retries the record
                log.exception("ESTOP sent but not recorded yet")
        if record_here:  # this thread may write (the engine's, or one rescuing a stuck engine)
            log_estop(data, sid)
        # Any other caller's thread (F12, a signal, the link's dispatch thread) leaves the
        # service log to the engine thread too: nothing but the bytes on that thread.
        self._in.supervisor_out.append(EstopNote(data, recorded, logged=record_here))
        self._wake.set()
        return written

    @property
    def telemetry_dropped(self) -> int:
        """Telemetry frames dropped from the record's backlog (the engine fell behind)."""
        return self._in.telemetry_dropped

    def _on_device_telemetry(self, t: Telemetry) -> None:
        # One arrival time for the frame: the screen's "latest" and the supervisor's windows
        # (contact lost for 10 s...) must not disagree about when it came.
        now = self._clock()
        self._in.latest = (t, now)
        self._in.first_telemetry.set()
        if len(self._in.telemetry) == TELEMETRY_BACKLOG:
            self._in.telemetry_dropped += 1  # the engine fell 20 s behind: the oldest goes, counted
        self._in.telemetry.append(t)
        values = self._run.values
        if values is not None and t.step_id == values.step_id and t.boot_id == self._link.boot_id:
            self._in.step_elapsed_seen = t.step_elapsed_ms  # survives a restart's new frames
        with self._sup_lock:
            actions = self._sup.on_telemetry(t, now)
        if actions:
            self._act(actions)
        key = (t.state, t.contact)
        if key != self._in.last_state_contact:
            self._in.last_state_contact = key
            self._wake.set()

    def _on_device_event(self, ev: DeviceEvent) -> None:
        now = self._clock()
        if ev.kind is DeviceEventKind.STATE_CHANGED and ev.t_ms is not None:
            if ev.new_state is State.HOLD:
                self._in.hold_in_t_ms = ev.t_ms
            elif ev.old_state is State.HOLD:
                self._in.hold_out_t_ms = ev.t_ms
        actions: list[SupervisorAction] = []
        with self._sup_lock:
            code = DEVICE_EVENT_CODES.get(ev.kind)
            if code is not None and ev.dseq is not None:
                wire = Event(ev.dseq, ev.t_ms or 0, int(code), ev.arg or 0)
                actions += self._sup.on_device_event(wire, now)
            elif ev.kind in LOST_KINDS:
                during = self._shown.phase in ACTIVE_PHASES or self._run.sensitive_pending
                actions += self._sup.on_link_lost(during, now)
            elif ev.kind is DeviceEventKind.OUTCOME_UNKNOWN and ev.request is not None:
                actions += self._sup.on_outcome_unknown(ev.request.name, now)
            elif ev.kind is DeviceEventKind.DEVICE_RESTARTED:
                actions += self._sup.on_device_restarted(now)
            elif ev.kind is DeviceEventKind.UNIT_CHANGED and ev.identity and ev.other:
                actions += self._sup.on_unit_changed(ev.identity.serial, ev.other.serial, now)
            if ev.kind in BACK_KINDS:
                actions += self._sup.on_link_up(now)
            if ev.status is not None and ev.kind in (
                *BACK_KINDS,
                DeviceEventKind.STATUS_REFRESHED,
            ):
                actions += self._sup.on_status(wire_status(ev.status), now)
        if actions:
            self._act(actions)  # queued before the event: the engine records them first
        self._in.device_events.append(ev)
        self._wake.set()

    def _act(self, actions: list[SupervisorAction]) -> None:
        """SendEstop at once (from this thread); alarm changes go to the engine to record."""
        for action in actions:
            if isinstance(action, SendEstop):
                self._estop_now("supervisor", action.reason, action.detail, record_here=False)
            else:
                self._in.supervisor_out.append(action.change)
        self._wake.set()

    def _drain_supervisor_output(self) -> None:
        while self._in.supervisor_out:
            item = self._in.supervisor_out.popleft()
            if isinstance(item, EstopNote):
                if not item.recorded:
                    self._rec.event("estop", item.data)
                if not item.logged:  # after the record: the record comes first
                    log_estop(item.data, self._rec.session_id)
                with self._lock:
                    self._shown.notices.append(
                        f"Emergency stop sent ({item.data['source']}: {item.data['reason']})."
                    )
                self._emit("notice", {"estop": item.data})
                continue
            self._publish_alarm(item)

    def _publish_alarm(self, change: AlarmChange, by: str | None = None) -> None:
        self._rec.alarm(change, by)
        with self._lock:
            if change.kind is ChangeKind.CLEARED:
                self._shown.alarms.pop(change.code, None)
            else:
                self._shown.alarms[change.code] = change.alarm
        self._emit(
            "alarm",
            {
                "code": change.code.value,
                "change": change.kind.value,
                "priority": change.alarm.priority.value,
                "message": change.alarm.message,
                "reason": change.reason,
            },
        )

    def _record_telemetry(self) -> None:
        batch: list[Telemetry] = []
        while self._in.telemetry:
            batch.append(self._in.telemetry.popleft())
        self._rec.telemetry(batch)

    def _emit(self, kind: str, detail: dict[str, Any] | None = None) -> None:
        self._pending_notices.append((kind, detail or {}))

    def _notice(self, message: str, **data: Any) -> None:
        """A refusal or clamp of a practitioner action: recorded, then shown and pushed."""
        self._rec.event("notice", {"message": message, **data})
        with self._lock:
            self._shown.notices.append(message)
        self._emit("notice", {"message": message, **data})

    def _set_phase(self, phase: Phase, message: str, *, record: bool = True) -> None:
        with self._lock:
            old = self._shown.phase
            if old is phase and self._shown.message == message:
                return
            self._shown.phase = phase
            self._shown.message = message
        if old is not phase and record:
            self._rec.event(
                "state",
                {"old": old.value, "new": phase.value, "step": self._index(), "message": message},
            )
        self._emit(
            "phase",
            {"old": old.value, "new": phase.value, "message": message, "step": self._index()},
        )

    def _index(self) -> int | None:
        return None if self._run.pos is None else self._run.steps[self._run.pos].index

    def _epoch_now(self) -> int:
        """The epoch the engine's view comes from (it connected before any command)."""
        assert self._link.epoch is not None
        return self._link.epoch

    def _context(self) -> Context:
        """What an action decided now is decided on (see :mod:`controller.session.actions`):
        the connection, the device's state, the plan position and the phase."""
        with self._lock:
            return Context(
                self._link.connection,
                self._device.device_state,
                self._run.pos,
                self._shown.phase,
            )

    def _command(self, command: str, call: Callable[[], object], **data: Any) -> str:
        """Record ``command_sent``, send, record the result. Returns ack, nak, refused,
        stale, unknown or lost; a NAK, a controller refusal or a stale command becomes a
        notice. Epoch-bound commands carry ``self._link.epoch`` (the connection the engine's view
        comes from): the link refuses one decided before a loss, a reconnect, a restart or an
        emergency stop that the engine has not yet seen."""
        self._device.checkin()
        self._rec.event(
            "command_sent",
            {"command": command, "step": self._index(), "epoch": self._link.epoch, **data},
        )
        outcome_sensitive = command in OUTCOME_UNCERTAIN_NAMES
        if outcome_sensitive:
            self._run.sensitive_pending = True
        try:
            call()
        except DeviceRefused as exc:
            self._rec.event(
                "command_result",
                {
                    "command": command,
                    "result": "nak",
                    "code": exc.code_name,
                    "detail": exc.detail,
                    "message": exc.message,
                    "layer": "device",
                },
            )
            self._notice(f"The device refused {command}: {exc.message}", layer="device")
            return "nak"
        except LimitsExceeded as exc:
            self._rec.event(
                "command_result",
                {
                    "command": command,
                    "result": "refused",
                    "message": str(exc),
                    "layer": "controller",
                },
            )
            self._notice(f"Not sent ({command}): {exc}", layer="controller")
            return "refused"
        except StaleCommand as exc:
            self._rec.event(
                "command_result",
                {
                    "command": command,
                    "result": "stale",
                    "message": str(exc),
                    "decided_epoch": exc.decided_epoch,
                    "epoch": exc.epoch,
                    "layer": "link",
                },
            )
            self._notice(
                f"{command} was not sent: the connection changed before it could go (a loss, "
                "a reconnect, a restart or an emergency stop). Nothing happened on the device; "
                "its state is read again before anything else is decided.",
                layer="link",
            )
            return "stale"
        except OutcomeUnknown as exc:
            self._rec.event(
                "command_result",
                {"command": command, "result": "outcome_unknown", "message": str(exc)},
            )
            return "unknown"
        except LinkError as exc:
            self._rec.event(
                "command_result", {"command": command, "result": "lost", "message": str(exc)}
            )
            return "lost"
        finally:
            if outcome_sensitive:
                self._run.sensitive_pending = False
        self._rec.event("command_result", {"command": command, "result": "ack"})
        return "ack"

    def _read_status(self) -> Status | None:
        try:
            status = self._device.status()
        except (LinkError, DeviceRefused, DeviceProtocolError) as exc:
            log.info("status not read: %s", exc)
            return None
        with self._sup_lock:
            actions = self._sup.on_status(wire_status(status), self._clock())
        if actions:
            self._act(actions)
        return status

    def _current(self) -> PlannedStep:
        assert self._run.pos is not None
        return self._run.steps[self._run.pos]

    def _manual_elapsed_ms(self, planned: PlannedStep) -> int:
        started = self._run.manual_started_at
        run = 0 if started is None else (self._clock() - started) * 1000 * self._manual_speed
        return planned.manual_done_ms + int(run)

    def _close_attempt(self, outcome: str, delivered: int | None, data: dict[str, Any]) -> None:
        """Record the end of the current attempt with what the device delivered."""
        if not self._run.attempt_open or self._run.pos is None:
            return
        planned = self._current()
        if planned.is_delivery:
            self._rec.step_end(planned.index, outcome=outcome, delivered_ms=delivered, data=data)
            with self._lock:
                planned.delivered_ms += delivered or 0
        else:
            elapsed = self._manual_elapsed_ms(planned)
            self._rec.step_end(
                planned.index,
                outcome=outcome,
                delivered_ms=None,
                data={**data, "timer_ms": elapsed},
            )
            with self._lock:
                planned.manual_done_ms = elapsed
                self._run.manual_started_at = None
        with self._lock:
            self._run.attempt_open = False
            self._run.started = False
            self._run.after_idle = None
            self._run.awaiting_contact = False
            if self._run.hold_t_ms is not None:
                self._run.hold_t_ms = None
        self._emit("step", {"index": planned.index, "event": outcome, "delivered_ms": delivered})

    def _live_elapsed(self) -> int:
        """The device's elapsed time of the configured step, from the newest telemetry of
        that step on this boot (after a restart: the last one before it, a lower bound)."""
        if self._run.values is None or not self._run.started:
            return 0
        return self._in.step_elapsed_seen

    def _current_setpoint(self) -> int:
        host = self._run.setpoint_dv or 0
        device = self._sup.device_setpoint_dv
        return min(host, device) if device is not None and host else host
