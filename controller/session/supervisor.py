"""Safety supervisor: watches the device's reports, raises alarms and asks for ESTOP.

Why: the device protects the client by itself (faults, current regulation, watchdog), but a
controller that only trusts the device cannot notice when that protection failed, nor when it
lost track of whether a command took effect. The supervisor cross-checks every telemetry frame
against what the host configured and set, turns device faults, contact, link and staleness
conditions into alarms (:mod:`controller.session.alarms`), and returns :class:`SendEstop` when
the device's output contradicts its settings.

Pure logic for the session engine: no threads, no I/O, no clock of its own. Every method takes
``now`` (monotonic seconds, host clock) and returns the actions it decided, in the order to act
on them (``SendEstop`` first). Windows over telemetry samples (over-current, short circuit,
current after output off) use the device clock ``t_ms`` of the frames, so they are exact even
when the engine drains telemetry in batches; contact loss uses ``now``, and staleness the link
reader's own measure of silence (so a busy host is never taken for a silent device).

The engine must feed device frames in arrival order, drain pending telemetry before feeding a
STATUS reply, and call :meth:`SafetySupervisor.tick` at least every 100 ms.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from controller.session.alarms import (
    ALARM_SPECS,
    AlarmChange,
    AlarmCode,
    AlarmManager,
    ChangeKind,
)
from controller.session.limits import LimitRefusal, volts
from controller.wire import Contact, Event, EventCode, Fault, State, Status, Telemetry
from controller.wire.sequence import dseq_is_newer


class Unheard:
    """Marker: :meth:`SafetySupervisor.tick` was given no reader's measure of silence."""


UNHEARD = Unheard()

# --- thresholds (the reasons are in docs/alarms.md) ----------------------------------------

#: No telemetry for more than this while the link's reader was listening → telemetry_stale.
TELEMETRY_STALE_S = 0.300
#: Contact none while RUNNING/HOLD for more than this (host clock) → contact_lost.
CONTACT_LOST_S = 10.0
#: Output amplitude may exceed the host's setpoint by this much (device rounding), 0.1 V.
AMPLITUDE_TOLERANCE_DV = 10
#: After the host lowers its setpoint, frames produced before the device applied the decrease
#: may still arrive; the previous setpoint stays acceptable for this long (host clock).
SETPOINT_GRACE_S = 1.0
#: Current at or below this is measurement noise (IEC 60601-1 BF patient leakage, normal
#: condition), µA r.m.s.
CURRENT_NOISE_UA = 100
#: TELEMETRY current is r.m.s. over the last 100 ms: after output goes off it may stay above
#: the noise level for that long. Device clock, ms.
OFF_CURRENT_SETTLE_MS = 150
#: Current above this percentage of the step's current limit counts as over-current ...
OVERCURRENT_PERCENT = 110
#: ... when it lasts more than this (device clock, ms). The device faults after 100 ms.
OVERCURRENT_WINDOW_MS = 200
#: Contact short with output on and no SHORT_CIRCUIT fault for more than this (device clock,
#: ms). The device faults within 10 ms.
SHORT_WINDOW_MS = 200
#: While an output mismatch persists, ESTOP is sent again this often (host clock).
ESTOP_RESEND_S = 1.0
#: Link health is judged over this window (host clock) ...
LINK_WINDOW_S = 5.0
#: ... degraded at this many retransmissions in the window ...
LINK_RETRANSMISSIONS_DEGRADED = 3
#: ... or this many CRC errors ...
LINK_CRC_ERRORS_DEGRADED = 3
#: ... or this fraction of telemetry frames lost; clean (alarm clears) when every counter
#: stayed still for a whole window.
LINK_TELEMETRY_LOSS_DEGRADED = 0.01

_EPS = 1e-9
ON_STATES = frozenset({State.RUNNING, State.STOPPING})
_CONTACT_WATCH_STATES = frozenset({State.RUNNING, State.HOLD})

# --- what the engine passes in (duck-typed) ------------------------------------------------


class StepValues(Protocol):
    """The CONFIGURE_STEP values in force: ``ConfigureStep`` or ``DeviceStepValues``."""

    @property
    def step_id(self) -> int: ...
    @property
    def amplitude_dv(self) -> int: ...
    @property
    def amplitude_max_dv(self) -> int: ...
    @property
    def current_limit_ua(self) -> int: ...


class LinkHealth(Protocol):
    """Cumulative link counters since the link opened (``controller.link``'s snapshot fits).

    Optional, read when present: ``timeouts`` (or ``reply_timeouts``) and ``rtt_p99_s`` (or
    ``rtt_p99_ms``); they go into the alarm's detail only.
    """

    @property
    def crc_errors(self) -> int: ...
    @property
    def retransmissions(self) -> int: ...
    @property
    def telemetry_lost(self) -> int: ...
    @property
    def telemetry_received(self) -> int: ...


def _timeouts(h: LinkHealth) -> int:
    value = getattr(h, "timeouts", None)
    if value is None:
        value = getattr(h, "reply_timeouts", 0)
    return int(value or 0)


def _rtt_p99_s(h: LinkHealth) -> float | None:
    seconds = getattr(h, "rtt_p99_s", None)
    if seconds is not None:
        return float(seconds)
    millis = getattr(h, "rtt_p99_ms", None)
    return None if millis is None else float(millis) / 1000


# --- what the supervisor returns -----------------------------------------------------------


@dataclass(frozen=True)
class RaiseAlarm:
    """A new alarm occurrence: record it, then show it."""

    change: AlarmChange


@dataclass(frozen=True)
class UpdateAlarm:
    """A shown alarm changed (acknowledged, condition gone but latched, new information)."""

    change: AlarmChange


@dataclass(frozen=True)
class ClearAlarm:
    """An alarm is no longer shown."""

    change: AlarmChange


@dataclass(frozen=True)
class SendEstop:
    """Send ESTOP now, before anything else in the same action list."""

    reason: str
    detail: LimitRefusal
    at: float


SupervisorAction = SendEstop | RaiseAlarm | UpdateAlarm | ClearAlarm


def _action(change: AlarmChange) -> SupervisorAction:
    if change.kind is ChangeKind.RAISED:
        return RaiseAlarm(change)
    if change.kind is ChangeKind.CLEARED:
        return ClearAlarm(change)
    return UpdateAlarm(change)


def _estop_first(actions: list[SupervisorAction]) -> list[SupervisorAction]:
    return sorted(actions, key=lambda a: 0 if isinstance(a, SendEstop) else 1)


# --- plain-words texts ---------------------------------------------------------------------

FAULT_ADVICE: dict[Fault, str] = {
    Fault.ESTOP: "emergency stop: output was stopped on request. Check the client, then clear "
    "faults to continue.",
    Fault.WATCHDOG: "watchdog: the device stopped hearing from this controller and turned "
    "output off. Check the cable, then clear faults.",
    Fault.OVERCURRENT: "over-current: the current exceeded the step's limit. Check the "
    "handpiece's contact and lower the intensity before clearing faults.",
    Fault.SHORT_CIRCUIT: "short circuit: the electrodes are bridged (impedance below 50 Ω). "
    "Wipe excess serum off the handpiece and skin, then clear faults.",
    Fault.OVERTEMP: "handpiece too hot (41 °C or more). Let it cool below 40 °C, then clear "
    "faults.",
    Fault.HANDPIECE_REMOVED: "handpiece removed during a step. Re-attach it, then clear faults.",
    Fault.OUTPUT_FAULT: "output fault: output was measured while it should be off, or a net "
    "DC on a biphasic waveform. Stop using the device and have it serviced.",
    Fault.SELFTEST: "self-test failed at power-on. Do not use the device; switch it off and "
    "on, and have it serviced if the fault stays.",
}


def fault_message(bits: int) -> str:
    """What each latched fault means and what to do, in one message."""
    parts = []
    for name in Fault(bits).names():
        advice = FAULT_ADVICE.get(Fault[name]) if name in Fault.__members__ else None
        parts.append(advice or f"{name}: unknown fault bit. Stop and have the device serviced.")
    return "The device reported a fault and turned output off. " + " ".join(
        p[0].upper() + p[1:] for p in parts
    )


def _state_name(state: int) -> str:
    try:
        return State(state).name
    except ValueError:
        return f"unknown state {state}"


def _ms_between(earlier: int, later: int) -> int:
    """Device-clock milliseconds from ``earlier`` to ``later``, across the 2³² wrap."""
    return (later - earlier) % (1 << 32)


def _exceeds(elapsed: float, limit: float) -> bool:
    """``elapsed > limit`` robust to float noise: 1.3 - 1.0 is not more than 0.3."""
    return elapsed - limit > _EPS


class _Counters(NamedTuple):
    crc_errors: int
    retransmissions: int
    timeouts: int
    telemetry_lost: int
    telemetry_received: int


class SafetySupervisor:
    """Alarms and host-side cross-checks of one device connection, fed by the session engine."""

    def __init__(self) -> None:
        self._alarms = AlarmManager()
        self._step: StepValues | None = None
        self._setpoint_dv: int | None = None
        self._grace_ceiling_dv: int | None = None
        self._grace_until = 0.0
        self._device_setpoint_dv: int | None = None
        # What the device last told us (dseq-ordered across TELEMETRY and EVENT).
        self._boot_id: int | None = None
        self._last_dseq: int | None = None
        self._last_tel_dseq: int | None = None
        self._state: int | None = None
        self._faults = 0
        self._contact: int | None = None
        # Windows over telemetry samples (device clock, ms).
        self._off_since_ms: int | None = None
        self._over_since_ms: int | None = None
        self._short_since_ms: int | None = None
        # Host-clock timers.
        self._link_up = True
        self._last_telemetry_at: float | None = None
        self._contact_none_since: float | None = None
        self._last_estop_at: float | None = None
        self._reconcile_pending = False
        self._mismatch_checks: tuple[str, ...] = ()
        self._health: deque[tuple[float, _Counters]] = deque()

    # --- read-only views -------------------------------------------------------------------

    @property
    def alarms(self) -> AlarmManager:
        """The alarm list for display; acknowledge through :meth:`acknowledge`."""
        return self._alarms

    @property
    def setpoint_dv(self) -> int | None:
        """The host's setpoint the amplitude cross-check uses (None before configure)."""
        return self._setpoint_dv

    @property
    def device_setpoint_dv(self) -> int | None:
        """The setpoint after the device's current regulation, when it reported one."""
        return self._device_setpoint_dv

    # --- inputs ----------------------------------------------------------------------------

    def configure(self, step_values: StepValues, now: float) -> list[SupervisorAction]:
        """A step was configured (CONFIGURE_STEP acknowledged): cross-check against it."""
        self._lower_ceiling_with_grace(now)
        self._step = step_values
        self._setpoint_dv = min(step_values.amplitude_dv, step_values.amplitude_max_dv)
        self._device_setpoint_dv = None
        self._over_since_ms = None
        return self._set(AlarmCode.AMPLITUDE_LIMITED, False, now)

    def setpoint_changed(self, amplitude_dv: int, now: float) -> list[SupervisorAction]:
        """SET_AMPLITUDE was acknowledged: the host's setpoint is now ``amplitude_dv``.

        A decrease applies at once on the device, but frames already on their way still show
        the old output, so the old setpoint stays acceptable for ``SETPOINT_GRACE_S``. An
        increase needs no grace (the device ramps up at 10 V/s, below the new setpoint).
        """
        self._lower_ceiling_with_grace(now)
        if self._step is not None:
            amplitude_dv = min(amplitude_dv, self._step.amplitude_max_dv)
        self._setpoint_dv = amplitude_dv
        self._device_setpoint_dv = None
        return self._set(AlarmCode.AMPLITUDE_LIMITED, False, now)

    def on_telemetry(self, t: Telemetry, now: float) -> list[SupervisorAction]:
        """One TELEMETRY frame. Duplicates and frames older than one already seen are only
        counted for staleness."""
        self._note_boot(t.boot_id)
        self._last_telemetry_at = now
        actions = self._set(AlarmCode.TELEMETRY_STALE, False, now)
        if not dseq_is_newer(t.dseq, self._last_tel_dseq):
            return actions
        self._last_tel_dseq = t.dseq
        if dseq_is_newer(t.dseq, self._last_dseq):
            self._last_dseq = t.dseq
            actions += self._update_state(t.state, now)
            self._contact = t.contact
            actions += self._update_faults(t.faults, now)
            actions += self._update_contact(now)
        actions += self._cross_check(t, now)
        return _estop_first(actions)

    def on_device_event(self, ev: Event, now: float) -> list[SupervisorAction]:
        """One EVENT frame: a prompt hint; TELEMETRY and STATUS stay authoritative."""
        actions: list[SupervisorAction] = []
        if ev.event == EventCode.AMPLITUDE_LIMITED:
            self._device_setpoint_dv = ev.arg
            actions += self._set(
                AlarmCode.AMPLITUDE_LIMITED,
                True,
                now,
                f"The device lowered the intensity to {volts(ev.arg)} V to keep the current "
                "within the step's limit. Delivery continues at the lower intensity; raise it "
                "only if the client is comfortable.",
                {"amplitude_dv": ev.arg, "amplitude_v": ev.arg / 10},
            )
        if not dseq_is_newer(ev.dseq, self._last_dseq):
            return actions
        self._last_dseq = ev.dseq
        if ev.event == EventCode.FAULT_RAISED:
            actions += self._update_faults(self._faults | ev.arg, now)
        elif ev.event == EventCode.FAULTS_CLEARED:
            actions += self._update_faults(self._faults & ~ev.arg, now)
        elif ev.event == EventCode.STATE_CHANGED:
            self._note_output_edge(ev)
            actions += self._update_state(ev.arg & 0xFF, now)
            actions += self._update_contact(now)
        elif ev.event == EventCode.CONTACT_CHANGED:
            self._contact = ev.arg
            actions += self._update_contact(now)
        return actions

    def on_status(self, s: Status, now: float) -> list[SupervisorAction]:
        """A STATUS reply: authoritative state and faults. After a reconnection or restart it
        is the reconciliation that resolves outcome_unknown and device_restarted."""
        self._note_boot(s.boot_id)
        actions = self._update_state(s.state, now)
        actions += self._update_faults(s.faults, now)
        actions += self._update_contact(now)
        if self._reconcile_pending and self._link_up:
            self._reconcile_pending = False
            actions += self._set(AlarmCode.OUTCOME_UNKNOWN, False, now)
            actions += self._set(AlarmCode.DEVICE_RESTARTED, False, now)
        return actions

    def on_link_health(self, h: LinkHealth, now: float) -> list[SupervisorAction]:
        """Cumulative link counters (feed about once a second); see ``LINK_*`` thresholds."""
        sample = _Counters(
            h.crc_errors, h.retransmissions, _timeouts(h), h.telemetry_lost, h.telemetry_received
        )
        if self._health and any(
            cur < old for cur, old in zip(sample, self._health[-1][1], strict=True)
        ):
            self._health.clear()  # counters restarted (new link)
        self._health.append((now, sample))
        while len(self._health) >= 2 and self._health[1][0] <= now - LINK_WINDOW_S + _EPS:
            self._health.popleft()
        base_at, base = self._health[0]
        delta = _Counters(*(cur - old for cur, old in zip(sample, base, strict=True)))
        seen = delta.telemetry_lost + delta.telemetry_received
        loss = delta.telemetry_lost / seen if seen else 0.0
        degraded = (
            delta.retransmissions >= LINK_RETRANSMISSIONS_DEGRADED
            or delta.crc_errors >= LINK_CRC_ERRORS_DEGRADED
            or (delta.telemetry_lost > 0 and loss >= LINK_TELEMETRY_LOSS_DEGRADED - _EPS)
        )
        if degraded:
            if self._alarms.is_shown(AlarmCode.LINK_DEGRADED):
                return []
            detail: dict[str, object] = {
                "window_s": LINK_WINDOW_S,
                "retransmissions": delta.retransmissions,
                "crc_errors": delta.crc_errors,
                "timeouts": delta.timeouts,
                "telemetry_lost": delta.telemetry_lost,
                "telemetry_loss_percent": round(loss * 100, 2),
                "rtt_p99_s": _rtt_p99_s(h),
            }
            return self._set(AlarmCode.LINK_DEGRADED, True, now, None, detail)
        clean = not any(delta[:4])
        if clean and not _exceeds(LINK_WINDOW_S, now - base_at):
            return self._set(AlarmCode.LINK_DEGRADED, False, now)
        return []

    def on_link_lost(self, during_delivery: bool, now: float) -> list[SupervisorAction]:
        """The link gave up (retries exhausted or port gone). The link itself sends ESTOP."""
        self._link_up = False
        self._last_telemetry_at = None
        self._contact_none_since = None
        self._reset_windows()
        actions = self._set(AlarmCode.TELEMETRY_STALE, False, now)
        actions += self._set(AlarmCode.CONTACT_LOST, False, now)
        if during_delivery:
            actions += self._set(AlarmCode.LINK_LOST, True, now)
        return actions

    def on_link_up(self, now: float) -> list[SupervisorAction]:
        """The link is back (HELLO answered). Telemetry is expected from now on."""
        self._link_up = True
        self._last_telemetry_at = now
        return self._set(AlarmCode.LINK_LOST, False, now)

    def on_device_restarted(self, now: float) -> list[SupervisorAction]:
        """boot_id changed or t_ms went back: all the host knew about the device is void."""
        self._step = None
        self._setpoint_dv = None
        self._grace_ceiling_dv = None
        self._device_setpoint_dv = None
        self._boot_id = None
        self._last_dseq = None
        self._last_tel_dseq = None
        self._state = None
        self._contact = None
        self._contact_none_since = None
        self._reset_windows()
        self._reconcile_pending = True
        actions = self._set(AlarmCode.DEVICE_RESTARTED, True, now)
        actions += self._set(AlarmCode.AMPLITUDE_LIMITED, False, now)
        return actions

    def on_unit_changed(self, expected: str, found: str, now: float) -> list[SupervisorAction]:
        """After a reconnect another unit (serial ``found``) answered instead of ``expected``."""
        message = (
            f"After the connection came back, unit {found} answered instead of {expected}, "
            "the unit this session started on. The session cannot continue on it and was "
            "ended; nothing but a status read was sent to it. Check which unit is connected."
        )
        detail: dict[str, object] = {"expected": expected, "found": found}
        return self._set(AlarmCode.UNIT_CHANGED, True, now, message, detail)

    def on_outcome_unknown(self, request_name: str, now: float) -> list[SupervisorAction]:
        """The link was lost before the reply to ``request_name`` (START, RESUME,
        SET_AMPLITUDE) arrived. Resolved by the next STATUS read with the link up."""
        self._reconcile_pending = True
        message = (
            f"{request_name} was sent but the connection failed before the device confirmed "
            "it, so it is not known whether it took effect. Nothing is re-sent automatically: "
            "check the device state shown after reconnection and decide how to continue."
        )
        return self._set(AlarmCode.OUTCOME_UNKNOWN, True, now, message, {"request": request_name})

    def tick(
        self, now: float, *, silence_s: float | Unheard | None = UNHEARD
    ) -> list[SupervisorAction]:
        """Time-based conditions: telemetry staleness and contact loss.

        ``silence_s`` is the link reader's own measure of how long it listened without hearing
        TELEMETRY (None while the link is not up). A host too busy to read (a loaded PC, a
        garbage collection) leaves frames waiting in the port and is not a silent device, so
        only the reader's silence counts. Without it (a caller with no reader) the time since
        the last frame fed here counts instead.
        """
        actions: list[SupervisorAction] = []
        if self._link_up and self._last_telemetry_at is not None:
            if isinstance(silence_s, Unheard):
                silent = now - self._last_telemetry_at
            else:
                silent = 0.0 if silence_s is None else silence_s
            if _exceeds(silent, TELEMETRY_STALE_S):
                actions += self._set(AlarmCode.TELEMETRY_STALE, True, now)
        actions += self._check_contact_lost(now)
        return actions

    def acknowledge(self, code: AlarmCode | None, now: float) -> list[SupervisorAction]:
        """The practitioner acknowledged one alarm, or all of them (``code`` None)."""
        return [_action(c) for c in self._alarms.acknowledge(code, now)]

    # --- internals -------------------------------------------------------------------------

    def _set(
        self,
        code: AlarmCode,
        active: bool,
        now: float,
        message: str | None = None,
        detail: dict[str, object] | None = None,
        *,
        renew: bool = False,
    ) -> list[SupervisorAction]:
        changes = self._alarms.set_condition(code, active, now, message, detail, renew=renew)
        return [_action(c) for c in changes]

    def _note_boot(self, boot_id: int) -> None:
        if self._boot_id is not None and boot_id != self._boot_id:
            # A new power-up restarts dseq and t_ms; the engine reports the restart itself.
            self._last_dseq = None
            self._last_tel_dseq = None
            self._reset_windows()
        self._boot_id = boot_id

    def _note_output_edge(self, ev: Event) -> None:
        """Time the output-off window from the device's own state change.

        Telemetry alone can miss a short RUNNING period (output on for less than one telemetry
        period, e.g. HOLD a few ms after START); the window would then still count from before
        START and the 100 ms r.m.s. tail would look like current while off.
        """
        old, new = (ev.arg >> 8) & 0xFF, ev.arg & 0xFF
        if new in ON_STATES:
            self._off_since_ms = None
        elif old in ON_STATES:
            self._off_since_ms = ev.t_ms

    def _reset_windows(self) -> None:
        self._off_since_ms = None
        self._over_since_ms = None
        self._short_since_ms = None

    def _ceiling(self, now: float) -> int | None:
        if self._setpoint_dv is None:
            return None
        if self._grace_ceiling_dv is not None and now <= self._grace_until + _EPS:
            return max(self._setpoint_dv, self._grace_ceiling_dv)
        return self._setpoint_dv

    def _lower_ceiling_with_grace(self, now: float) -> None:
        ceiling = self._ceiling(now)
        if ceiling is not None:
            self._grace_ceiling_dv = ceiling
            self._grace_until = now + SETPOINT_GRACE_S

    def _update_state(self, state: int, now: float) -> list[SupervisorAction]:
        self._state = state
        if state in (State.IDLE, State.READY, State.FAULT):
            return self._set(AlarmCode.AMPLITUDE_LIMITED, False, now)
        return []

    def _update_faults(self, bits: int, now: float) -> list[SupervisorAction]:
        old, self._faults = self._faults, bits
        if bits == 0:
            return self._set(AlarmCode.DEVICE_FAULT, False, now)
        detail: dict[str, object] = {"faults": Fault(bits).names(), "bits": bits}
        return self._set(
            AlarmCode.DEVICE_FAULT,
            True,
            now,
            fault_message(bits),
            detail,
            renew=bool(bits & ~old),
        )

    def _update_contact(self, now: float) -> list[SupervisorAction]:
        state, contact = self._state, self._contact
        if contact == Contact.MARGINAL and state in ON_STATES:
            actions = self._set(
                AlarmCode.CONTACT_MARGINAL,
                True,
                now,
                ALARM_SPECS[AlarmCode.CONTACT_MARGINAL].message,
                {"contact": "marginal"},
            )
        elif contact == Contact.SHORT and state is not None and state != State.FAULT:
            actions = self._set(
                AlarmCode.CONTACT_MARGINAL,
                True,
                now,
                "The electrodes are bridged (impedance below 50 Ω), usually by excess serum. "
                "The device stops output with a short-circuit fault if this lasts while "
                "delivering. Wipe the handpiece and the skin.",
                {"contact": "short"},
            )
        else:
            actions = self._set(AlarmCode.CONTACT_MARGINAL, False, now)
        if contact == Contact.NONE and state in _CONTACT_WATCH_STATES:
            if self._contact_none_since is None:
                self._contact_none_since = now
        else:
            self._contact_none_since = None
        return actions + self._check_contact_lost(now)

    def _check_contact_lost(self, now: float) -> list[SupervisorAction]:
        since = self._contact_none_since
        lost = since is not None and _exceeds(now - since, CONTACT_LOST_S)
        return self._set(AlarmCode.CONTACT_LOST, lost, now, None, {"threshold_s": CONTACT_LOST_S})

    def _cross_check(self, t: Telemetry, now: float) -> list[SupervisorAction]:
        failures = self._frame_failures(t, now)
        if not failures:
            self._mismatch_checks = ()
            return self._set(AlarmCode.OUTPUT_MISMATCH, False, now)
        checks = tuple(failures)
        was_active = self._mismatch_active()
        new_checks = not set(checks) <= set(self._mismatch_checks)
        actions: list[SupervisorAction] = []
        if (
            not was_active
            or new_checks
            or self._last_estop_at is None
            or now - self._last_estop_at >= ESTOP_RESEND_S - _EPS
        ):
            first = failures[checks[0]]
            actions.append(SendEstop(f"output_mismatch: {first.message}", first, now))
            self._last_estop_at = now
        if checks != self._mismatch_checks or not was_active:
            message = (
                " ".join(f.message for f in failures.values())
                + " "
                + ALARM_SPECS[AlarmCode.OUTPUT_MISMATCH].message
            )
            detail: dict[str, object] = {
                "checks": list(checks),
                "state": _state_name(t.state),
                "amplitude_dv": t.amplitude_dv,
                "current_ua": t.current_ua,
                "impedance_ohm": t.impedance_ohm,
                "t_ms": t.t_ms,
            }
            actions += self._set(
                AlarmCode.OUTPUT_MISMATCH, True, now, message, detail, renew=new_checks
            )
        else:
            actions += self._set(AlarmCode.OUTPUT_MISMATCH, True, now)
        self._mismatch_checks = checks
        return actions

    def _mismatch_active(self) -> bool:
        shown = self._alarms.get(AlarmCode.OUTPUT_MISMATCH)
        return shown is not None and shown.condition_active

    def _frame_failures(self, t: Telemetry, now: float) -> dict[str, LimitRefusal]:
        """The cross-checks this frame fails, by name (see docs/alarms.md)."""
        failures: dict[str, LimitRefusal] = {}
        state = _state_name(t.state)
        if t.state not in ON_STATES:
            self._over_since_ms = None
            self._short_since_ms = None
            if self._off_since_ms is None:
                self._off_since_ms = t.t_ms
            if t.amplitude_dv > 0:
                failures["output_while_off"] = LimitRefusal(
                    "controller",
                    "output_off",
                    t.amplitude_dv / 10,
                    "0",
                    "V",
                    f"The device reports {volts(t.amplitude_dv)} V of output while {state}, "
                    "when output must be off.",
                )
            if (
                t.current_ua > CURRENT_NOISE_UA
                and _ms_between(self._off_since_ms, t.t_ms) > OFF_CURRENT_SETTLE_MS
            ):
                failures["current_while_off"] = LimitRefusal(
                    "controller",
                    "output_off",
                    t.current_ua / 1000,
                    f"≤ {CURRENT_NOISE_UA / 1000:g}",
                    "mA",
                    f"The device reports {t.current_ua / 1000:.2f} mA of current while "
                    f"{state}, more than {OFF_CURRENT_SETTLE_MS} ms after output went off.",
                )
            return failures
        self._off_since_ms = None
        ceiling = self._ceiling(now)
        if ceiling is not None and t.amplitude_dv > ceiling + AMPLITUDE_TOLERANCE_DV:
            failures["amplitude_above_setpoint"] = LimitRefusal(
                "controller",
                "setpoint",
                t.amplitude_dv / 10,
                f"≤ {volts(ceiling + AMPLITUDE_TOLERANCE_DV)}",
                "V",
                f"The device outputs {volts(t.amplitude_dv)} V, above the set intensity of "
                f"{volts(ceiling)} V (tolerance {volts(AMPLITUDE_TOLERANCE_DV)} V).",
            )
        limit_ua = self._step.current_limit_ua if self._step is not None else None
        if limit_ua is not None and t.current_ua * 100 > limit_ua * OVERCURRENT_PERCENT:
            if self._over_since_ms is None:
                self._over_since_ms = t.t_ms
            elif _ms_between(self._over_since_ms, t.t_ms) > OVERCURRENT_WINDOW_MS:
                failures["current_above_limit"] = LimitRefusal(
                    "controller",
                    "current_limit_ma",
                    t.current_ua / 1000,
                    f"≤ {limit_ua * OVERCURRENT_PERCENT / 100_000:.2f}",
                    "mA",
                    f"The current has been {t.current_ua / 1000:.2f} mA, more than "
                    f"{OVERCURRENT_PERCENT - 100} % above the step's limit of "
                    f"{limit_ua / 1000:.2f} mA, for over {OVERCURRENT_WINDOW_MS} ms; the "
                    "device should have stopped it itself.",
                )
        else:
            self._over_since_ms = None
        shorted = (
            t.contact == Contact.SHORT and t.amplitude_dv > 0 and not t.faults & Fault.SHORT_CIRCUIT
        )
        if shorted:
            if self._short_since_ms is None:
                self._short_since_ms = t.t_ms
            elif _ms_between(self._short_since_ms, t.t_ms) > SHORT_WINDOW_MS:
                failures["short_with_output"] = LimitRefusal(
                    "controller",
                    "short_circuit",
                    float(t.impedance_ohm),
                    "≥ 50",
                    "Ω",
                    f"The device reports a short circuit ({t.impedance_ohm} Ω) with output on "
                    f"for over {SHORT_WINDOW_MS} ms without stopping.",
                )
        else:
            self._short_since_ms = None
        return failures
