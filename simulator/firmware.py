"""The EPM-1 firmware as the host sees it on the wire: interface document §2–§7, pure logic.

Nothing here reads a clock or starts a thread. Two clocks are passed in from outside:

* link time (``link_ms``, float): the host's timers run on it, so the device's do too — the
  500 ms watchdog and the telemetry rate. Callers set it on every call that takes it.
* simulated time: advanced one fixed tick at a time by :meth:`Firmware.tick`; step time, ramps,
  physics, the 300 ms return from HOLD and ``t_ms`` run on it (a ``--speed`` run accelerates it).

Everything the device sends goes to :attr:`Firmware.outbox` as encoded frames, in wire order: a
request's reply before any event it caused, events in the order they happened.
"""

from __future__ import annotations

import math
import random
import time

from controller.wire import (
    Ack,
    ConfigureStep,
    Contact,
    DecodedFrame,
    Event,
    EventCode,
    Fault,
    FrameDecoder,
    Handpiece,
    Hello,
    Message,
    MsgType,
    Nak,
    NakCode,
    SetAmplitude,
    SetTelemetry,
    State,
    Status,
    Telemetry,
    Waveform,
    body_length_ok,
    decode_message,
    encode_frame,
)
from controller.wire.constants import ACTIVE_STATES, DEFAULT_TELEMETRY_HZ, PROTO_VERSION
from simulator.capabilities import EPM1, Capabilities
from simulator.physics import Drive, Plant, classify_contact
from simulator.pulses import (
    RMS_WINDOW_MS,
    burst_on_time,
    worst_window_on_fraction,
)
from simulator.stepcheck import check_configure_step
from simulator.timing import OutputTransition

#: States in which the output stage is on (§5).
ON_STATES = frozenset({State.RUNNING, State.STOPPING})
WATCHDOG_MS = 500
HOLD_RETURN_MS = 300
#: SET_AMPLITUDE increases in RUNNING ramp at 10 V/s = 0.1 dV per ms (§5).
INCREASE_DV_PER_MS = 0.1
#: Regulation lowers the setpoint to this share of the limit, so that small impedance drifts do
#: not produce an AMPLITUDE_LIMITED event every tick (our choice).
REGULATION_HEADROOM = 0.98
OVERCURRENT_RATIO = 1.10
OVERCURRENT_MS = 100
OVERTEMP_RAISE_DC = 410
OVERTEMP_PERSIST_DC = 400

_TYPES: dict[int, MsgType] = {t.value: t for t in MsgType}
_ALL_STATES = frozenset(State)
#: Requests a FAULT state accepts (§4 check 3).
_ALLOWED_IN_FAULT = frozenset(
    {
        MsgType.HELLO,
        MsgType.GET_STATUS,
        MsgType.HEARTBEAT,
        MsgType.SET_TELEMETRY,
        MsgType.ESTOP,
        MsgType.CLEAR_FAULTS,
    }
)
#: §5 table: states in which each request is not BAD_STATE (the FAULT column is check 3).
_ALLOWED: dict[MsgType, frozenset[State]] = {
    MsgType.HELLO: _ALL_STATES,
    MsgType.GET_STATUS: _ALL_STATES,
    MsgType.HEARTBEAT: _ALL_STATES,
    MsgType.SET_TELEMETRY: _ALL_STATES,
    MsgType.CONFIGURE_STEP: frozenset({State.IDLE, State.READY}),
    MsgType.START: frozenset({State.READY}),
    MsgType.PAUSE: frozenset({State.RUNNING, State.PAUSED, State.HOLD}),
    MsgType.RESUME: frozenset({State.RUNNING, State.PAUSED}),
    MsgType.STOP: _ALL_STATES - {State.FAULT},
    MsgType.SET_AMPLITUDE: frozenset({State.READY, State.RUNNING, State.PAUSED, State.HOLD}),
    MsgType.ESTOP: _ALL_STATES,
    MsgType.CLEAR_FAULTS: _ALL_STATES,
}
#: What stuck output looks like when no step was ever configured (our choice).
_STUCK_PULSES = (100, 1000, 1)


def _u16(value: int) -> int:
    return min(max(value, 0), 0xFFFF)


class Firmware:
    """One EPM-1 unit from power-up: state machine, faults, regulation, telemetry and events."""

    def __init__(
        self,
        plant: Plant,
        *,
        serial: str,
        boot_rng: random.Random,
        noise_rng: random.Random,
        caps: Capabilities = EPM1,
        tick_ms: int = 1,
        link_ms: float = 0.0,
        selftest_failed: bool = False,
    ) -> None:
        self.plant = plant
        self.caps = caps
        self.serial = serial
        self.tick_ms = tick_ms
        self._boot_rng = boot_rng
        self._noise_rng = noise_rng
        self._window_len = max(1, RMS_WINDOW_MS // tick_ms)
        self.sim_ms = 0
        self.link_ms = link_ms
        self.outbox: list[bytes] = []
        self.transitions: list[OutputTransition] = []
        self.state = State.IDLE
        self._power_up(selftest_failed)

    # --- power ----------------------------------------------------------------------------

    def power_cycle(self, link_ms: float, *, selftest_failed: bool = False) -> None:
        """Restart: new boot_id, IDLE, dseq and t_ms from 0, faults cleared except SELFTEST."""
        self.link_ms = link_ms
        if self.state in ON_STATES:
            self._switch_output(on=False, cause="power cycle")
        self._power_up(selftest_failed, previous_boot_id=self.boot_id)

    def _power_up(self, selftest_failed: bool, previous_boot_id: int | None = None) -> None:
        boot_id = self._boot_rng.getrandbits(16)
        while boot_id == previous_boot_id:  # a restart is always recognisable (§3)
            boot_id = self._boot_rng.getrandbits(16)
        self.boot_id = boot_id
        self.boot_sim_ms = self.sim_ms
        self.dseq = 0
        self.state = State.IDLE
        self.faults = 0
        self.selftest_failed = selftest_failed
        self.decoder = FrameDecoder()
        self.rx_malformed = 0
        self.telemetry_hz = DEFAULT_TELEMETRY_HZ
        self.next_telemetry_ms = self.link_ms + 1000.0 / self.telemetry_hz
        self.last_valid_ms = self.link_ms
        self._last_reply: tuple[int, bytes] | None = None
        self.step: ConfigureStep | None = None
        self.step_id = 0
        self.step_elapsed_ms = 0
        self.step_duration_ms = 0
        self.setpoint_dv = 0
        self.out_dv = 0.0
        self.measured_dv = 0.0
        self._ramping_up = False
        self._ramp_up_rate = math.inf
        self._ramp_down_from = 0.0
        self._ramp_down_left = 0
        self._completing = False
        self._burst_clock_ms = 0
        self._last_step: ConfigureStep | None = None
        self._window = [0.0] * self._window_len
        self._window_pos = 0
        self._window_sum = 0.0
        self._over_ms = 0
        self._events: list[tuple[EventCode, int]] = []
        self.impedance_ohm = 0
        self.contact = Contact.NONE
        self._contact_good_since: int | None = None
        self._classify(initial=True)
        if selftest_failed:
            self._raise(Fault.SELFTEST, "self-test")
        self._flush_events()

    # --- derived values -------------------------------------------------------------------

    @property
    def t_ms(self) -> int:
        """The device clock: simulated ms since power-up, wrapping at 2³²."""
        return (self.sim_ms - self.boot_sim_ms) & 0xFFFFFFFF

    @property
    def output_on(self) -> bool:
        return self.state in ON_STATES

    @property
    def rx_crc_errors(self) -> int:
        return self.decoder.counters.crc

    @property
    def rx_frame_errors(self) -> int:
        """COBS failures, short payloads, over-long runs and wrong body lengths (§2)."""
        c = self.decoder.counters
        return c.cobs + c.too_short + c.overlong + self.rx_malformed

    @property
    def rms_current_ua(self) -> float:
        return math.sqrt(max(self._window_sum, 0.0) / self._window_len) * 1e6

    @property
    def temperature_dc(self) -> int:
        return round(self.plant.thermal.temperature_c * 10)

    def status(self) -> Status:
        return Status(
            boot_id=self.boot_id,
            state=self.state,
            faults=self.faults,
            step_id=self.step_id,
            step_elapsed_ms=self.step_elapsed_ms,
            step_duration_ms=self.step_duration_ms,
            handpiece=self.plant.handpiece,
            amplitude_dv=_u16(self.setpoint_dv),
            rx_crc_errors=_u16(self.rx_crc_errors),
            rx_frame_errors=_u16(self.rx_frame_errors),
        )

    def telemetry(self) -> Telemetry:
        rms = self.rms_current_ua
        if rms > 0.0:
            rms *= 1.0 + self._noise_rng.gauss(0.0, 0.005)
        return Telemetry(
            dseq=self.dseq,
            boot_id=self.boot_id,
            t_ms=self.t_ms,
            state=self.state,
            faults=self.faults,
            step_id=self.step_id,
            step_elapsed_ms=self.step_elapsed_ms,
            amplitude_dv=_u16(round(self.measured_dv)),
            current_ua=_u16(round(rms)),
            impedance_ohm=min(self.impedance_ohm, 0xFFFFFFFF),
            temperature_dc=min(max(self.temperature_dc, -32768), 32767),
            contact=self.contact,
        )

    # --- output frames --------------------------------------------------------------------

    def take_outbox(self) -> list[bytes]:
        out, self.outbox = self.outbox, []
        return out

    def _send_device_frame(self, msg: Telemetry | Event) -> None:
        self.outbox.append(encode_frame(0, msg))
        self.dseq = (self.dseq + 1) & 0xFFFF

    def _event(self, code: EventCode, arg: int) -> None:
        self._events.append((code, arg))

    def _flush_events(self) -> None:
        events, self._events = self._events, []
        for code, arg in events:
            self._send_device_frame(Event(self.dseq, self.t_ms, code, arg))

    # --- state, output, faults ------------------------------------------------------------

    def _switch_output(self, *, on: bool, cause: str) -> None:
        self.transitions.append(
            OutputTransition(time.perf_counter(), self.link_ms, self.sim_ms, on, cause)
        )
        if not on:
            self.out_dv = 0.0
            self._ramping_up = False
            self.measured_dv = float(self.plant.stuck_dv)

    def _set_state(self, new: State, cause: str) -> None:
        old = self.state
        if new == old:
            return
        self.state = new
        if old in ON_STATES and new not in ON_STATES:
            self._switch_output(on=False, cause=cause)
        elif new in ON_STATES and old not in ON_STATES:
            self._switch_output(on=True, cause=cause)
        self._event(EventCode.STATE_CHANGED, (old << 8) | new)

    def _raise(self, bits: int, cause: str) -> None:
        """Latch fault bits; new bits turn output off and move to FAULT (§5, §6).

        Output goes off at once; the events (FAULT_RAISED, then STATE_CHANGED) are queued and
        go out after the reply of the request that caused them, if any.
        """
        new = bits & ~self.faults
        if not new:
            return
        self.faults |= new
        self._event(EventCode.FAULT_RAISED, new)
        if self.state != State.FAULT:
            self._set_state(State.FAULT, cause)
            self.step = None
            self._completing = False

    def _persisting(self) -> int:
        """Latched faults whose condition still holds (§6 table, last column)."""
        bits = 0
        if self.faults & Fault.OVERTEMP and self.temperature_dc >= OVERTEMP_PERSIST_DC:
            bits |= Fault.OVERTEMP
        if self.faults & Fault.HANDPIECE_REMOVED and self.plant.handpiece == Handpiece.NONE:
            bits |= Fault.HANDPIECE_REMOVED
        if self.faults & Fault.OUTPUT_FAULT and self.plant.stuck_dv > 0:
            bits |= Fault.OUTPUT_FAULT
        if self.faults & Fault.SELFTEST:
            bits |= Fault.SELFTEST
        return bits

    def _start_running(self, cause: str) -> None:
        """Output on, ramping from 0 to the setpoint over ``ramp_up_ms``."""
        assert self.step is not None
        self.out_dv = 0.0
        ramp = self.step.ramp_up_ms
        self._ramp_up_rate = self.setpoint_dv / ramp if ramp > 0 else math.inf
        self._set_state(State.RUNNING, cause)
        self._ramping_up = True

    def _begin_stopping(self, *, completing: bool, cause: str) -> None:
        assert self.step is not None
        self._completing = completing
        ramp = self.step.ramp_down_ms
        self._ramp_down_from = self.out_dv
        self._ramp_down_left = ramp
        self._ramping_up = False
        self._set_state(State.STOPPING, cause)
        if self.out_dv <= 0.0 or ramp == 0:
            self._finish_stopping()

    def _finish_stopping(self) -> None:
        self.out_dv = 0.0
        if self._completing:
            self._event(EventCode.STEP_COMPLETE, self.step_id)
        self._completing = False
        self.step = None
        self._set_state(State.IDLE, "ramp-down end")

    # --- requests -------------------------------------------------------------------------

    def decode(self, data: bytes) -> list[DecodedFrame]:
        """Split host bytes into frames; drops are counted in the rx error counters (§2)."""
        return self.decoder.feed(data)

    def receive_frame(self, frame: DecodedFrame, link_ms: float) -> None:
        """Handle one host frame that passed COBS and CRC, in the order of §4 checks 0–6."""
        self.link_ms = link_ms
        mtype = _TYPES.get(frame.type)
        known = mtype is not None and mtype.is_request
        if frame.type == MsgType.ESTOP or (
            known and mtype is not None and body_length_ok(mtype, len(frame.body))
        ):
            self.last_valid_ms = link_ms
        elif known:
            self.rx_malformed += 1
        # Check 0: ESTOP whatever its body; then de-duplication (HELLO always executes).
        if frame.type == MsgType.ESTOP:
            self._raise(Fault.ESTOP, "ESTOP")
            self.outbox.append(encode_frame(frame.seq, Ack(MsgType.ESTOP)))
            self._flush_events()
            return
        if (
            frame.type != MsgType.HELLO
            and self._last_reply is not None
            and frame.seq == self._last_reply[0]
        ):
            self.outbox.append(self._last_reply[1])
            return
        reply = encode_frame(frame.seq, self._dispatch(frame, mtype if known else None))
        self.outbox.append(reply)
        self._last_reply = None if frame.type == MsgType.HELLO else (frame.seq, reply)
        self._flush_events()

    def _dispatch(self, frame: DecodedFrame, mtype: MsgType | None) -> Message:
        if frame.type == MsgType.HELLO and self.state in ACTIVE_STATES:
            # §3: a host that re-handshakes has lost track; output off, WATCHDOG, then reply.
            self._raise(Fault.WATCHDOG, "HELLO while active")
        if mtype is None:
            return Nak(frame.type, NakCode.UNKNOWN_TYPE)
        if not body_length_ok(mtype, len(frame.body)):
            return Nak(mtype, NakCode.MALFORMED)
        if self.state == State.FAULT and mtype not in _ALLOWED_IN_FAULT:
            return Nak(mtype, NakCode.FAULT_LATCHED)
        if self.state not in _ALLOWED[mtype]:
            return Nak(mtype, NakCode.BAD_STATE)
        msg = decode_message(frame)
        handler = getattr(self, f"_do_{mtype.name.lower()}")
        result: Message = handler(msg)
        return result

    def _do_hello(self, msg: Hello) -> Message:
        if msg.proto_version != PROTO_VERSION:
            return Nak(MsgType.HELLO, NakCode.UNSUPPORTED_VERSION)
        self._set_telemetry_rate(DEFAULT_TELEMETRY_HZ)
        return self.caps.hello_reply(self.serial, self.boot_id, self.plant.handpiece)

    def _do_get_status(self, msg: Message) -> Message:
        return self.status()

    def _do_heartbeat(self, msg: Message) -> Message:
        return Ack(MsgType.HEARTBEAT)

    def _do_set_telemetry(self, msg: SetTelemetry) -> Message:
        if not 1 <= msg.rate_hz <= self.caps.max_telemetry_hz:
            return Nak(MsgType.SET_TELEMETRY, NakCode.OUT_OF_RANGE, 1)
        self._set_telemetry_rate(msg.rate_hz)
        return Ack(MsgType.SET_TELEMETRY)

    def _do_configure_step(self, msg: ConfigureStep) -> Message:
        detail = check_configure_step(msg, self.caps)
        if detail:
            return Nak(MsgType.CONFIGURE_STEP, NakCode.OUT_OF_RANGE, detail)
        if msg.handpiece != self.plant.handpiece:
            return Nak(MsgType.CONFIGURE_STEP, NakCode.WRONG_HANDPIECE)
        self.step = msg
        self._last_step = msg
        self.step_id = msg.step_id
        self.step_elapsed_ms = 0
        self.step_duration_ms = msg.duration_ms
        self.setpoint_dv = msg.amplitude_dv
        self._set_state(State.READY, "CONFIGURE_STEP")
        return Ack(MsgType.CONFIGURE_STEP)

    def _do_start(self, msg: Message) -> Message:
        self._burst_clock_ms = 0
        self._start_running("START")
        return Ack(MsgType.START)

    def _do_pause(self, msg: Message) -> Message:
        if self.state != State.PAUSED:
            self._set_state(State.PAUSED, "PAUSE")
        return Ack(MsgType.PAUSE)

    def _do_resume(self, msg: Message) -> Message:
        if self.state == State.PAUSED:
            self._start_running("RESUME")
        return Ack(MsgType.RESUME)

    def _do_stop(self, msg: Message) -> Message:
        if self.state == State.RUNNING:
            self._begin_stopping(completing=False, cause="STOP")
        elif self.state in (State.READY, State.PAUSED, State.HOLD):
            self.step = None
            self._set_state(State.IDLE, "STOP")
        return Ack(MsgType.STOP)

    def _do_set_amplitude(self, msg: SetAmplitude) -> Message:
        assert self.step is not None
        if not 1 <= msg.amplitude_dv <= self.step.amplitude_max_dv:
            return Nak(MsgType.SET_AMPLITUDE, NakCode.OUT_OF_RANGE, 1)
        self.setpoint_dv = msg.amplitude_dv
        if self.state == State.RUNNING:
            self.out_dv = min(self.out_dv, float(msg.amplitude_dv))
        return Ack(MsgType.SET_AMPLITUDE)

    def _do_clear_faults(self, msg: Message) -> Message:
        if self.state != State.FAULT:
            return Ack(MsgType.CLEAR_FAULTS)
        if self._persisting():
            return Nak(MsgType.CLEAR_FAULTS, NakCode.FAULT_PERSISTS)
        cleared, self.faults = self.faults, 0
        self._event(EventCode.FAULTS_CLEARED, cleared)
        self._set_state(State.IDLE, "CLEAR_FAULTS")
        return Ack(MsgType.CLEAR_FAULTS)

    def _set_telemetry_rate(self, rate_hz: int) -> None:
        self.telemetry_hz = rate_hz
        self.next_telemetry_ms = self.link_ms + 1000.0 / rate_hz

    # --- link time ------------------------------------------------------------------------

    def service(self, link_ms: float) -> None:
        """Watchdog and telemetry on link time; call at least every millisecond or so."""
        self.link_ms = link_ms
        if self.state in ACTIVE_STATES and link_ms - self.last_valid_ms >= WATCHDOG_MS:
            self._raise(Fault.WATCHDOG, "watchdog")
            self._flush_events()
        if link_ms >= self.next_telemetry_ms:
            self._send_device_frame(self.telemetry())
            period = 1000.0 / self.telemetry_hz
            self.next_telemetry_ms += period
            if self.next_telemetry_ms <= link_ms:
                # The caller fell behind: skip ahead rather than send a burst.
                self.next_telemetry_ms = link_ms + period

    def next_deadline(self) -> float:
        """The next link time at which :meth:`service` has something to do."""
        deadline = self.next_telemetry_ms
        if self.state in ACTIVE_STATES:
            deadline = min(deadline, self.last_valid_ms + WATCHDOG_MS)
        return deadline

    # --- simulated time -------------------------------------------------------------------

    def tick(self) -> None:
        """Advance simulated time by one tick: output, physics, monitors, transitions."""
        dt = self.tick_ms
        self.sim_ms += dt
        step = self.step
        if self.state == State.RUNNING and step is not None:
            self._regulate(step)
            self._ramp_running(dt)
            self.step_elapsed_ms = min(self.step_elapsed_ms + dt, self.step_duration_ms)
        elif self.state == State.STOPPING and step is not None:
            # Linear from the output at the start of the ramp-down to 0 over ramp_down_ms.
            self._ramp_down_left = max(0, self._ramp_down_left - dt)
            self.out_dv = self._ramp_down_from * self._ramp_down_left / step.ramp_down_ms
        drive: Drive | None = None
        if self.output_on and step is not None:
            drive = self._drive(step, self.out_dv, dt)
            self._burst_clock_ms += dt
            self.measured_dv = self.out_dv
        elif self.plant.stuck_dv > 0:
            drive = self._stuck_drive()
            self.measured_dv = float(self.plant.stuck_dv)
        else:
            self.measured_dv = 0.0
        mean_square = self.plant.advance(drive)
        reference = step or self._last_step
        if (
            self.plant.overcurrent_factor > 0.0
            and reference is not None
            and drive is not None
            and self.measured_dv > 0
        ):
            forced = self.plant.overcurrent_factor * reference.current_limit_ua * 1e-6
            mean_square = max(mean_square, forced * forced)
        self._window_push(mean_square)
        self._classify(measured=self.plant.last_impedance)
        self._monitor(step)
        self._automatic(step)
        self._flush_events()

    def _window_push(self, value: float) -> None:
        pos = self._window_pos
        self._window_sum += value - self._window[pos]
        self._window[pos] = value
        pos += 1
        if pos == self._window_len:
            pos = 0
            self._window_sum = math.fsum(self._window)
        self._window_pos = pos

    def _drive(self, step: ConfigureStep, dv: float, dt: int) -> Drive:
        start = self._burst_clock_ms
        on = burst_on_time(start, start + dt, step.burst_on_ms, step.burst_off_ms) / dt
        phases = 2 if step.waveform == Waveform.BI_SQUARE else 1
        return Drive(dv / 10.0, step.pulse_width_us, step.frequency_hz, phases, on)

    def _stuck_drive(self) -> Drive:
        last = self._last_step
        if last is None:
            width, freq, phases = _STUCK_PULSES
        else:
            width, freq = last.pulse_width_us, last.frequency_hz
            phases = 2 if last.waveform == Waveform.BI_SQUARE else 1
        return Drive(self.plant.stuck_dv / 10.0, width, freq, phases, 1.0)

    def _ramp_running(self, dt: int) -> None:
        target = float(self.setpoint_dv)
        self.out_dv = min(self.out_dv, target)
        if self._ramping_up:
            self.out_dv = min(target, self.out_dv + self._ramp_up_rate * dt)
            if self.out_dv >= target:
                self._ramping_up = False
        elif self.out_dv < target:
            self.out_dv = min(target, self.out_dv + INCREASE_DV_PER_MS * dt)

    def predicted_rms_ua(self, step: ConfigureStep, amplitude_dv: float) -> float:
        """Worst 100 ms r.m.s. current if ``amplitude_dv`` were delivered (skin porated by it)."""
        phases = 2 if step.waveform == Waveform.BI_SQUARE else 1
        per_v2 = self.plant.mean_square_per_v2(
            step.pulse_width_us, step.frequency_hz, phases, amplitude_dv / 10.0
        )
        share = worst_window_on_fraction(step.burst_on_ms, step.burst_off_ms)
        return amplitude_dv / 10.0 * math.sqrt(per_v2 * share) * 1e6

    def _regulate(self, step: ConfigureStep) -> None:
        """§5 current regulation: lower the setpoint before the r.m.s. would pass the limit."""
        if self.setpoint_dv <= 0:
            return
        predicted = self.predicted_rms_ua(step, self.setpoint_dv)
        limit = step.current_limit_ua
        if predicted <= limit:
            return
        # The current grows faster than linearly once the skin porates: bisect for the
        # highest setpoint whose predicted r.m.s. stays within the limit (with headroom).
        target = limit * REGULATION_HEADROOM
        low, high = 0, self.setpoint_dv - 1
        while low < high:
            mid = (low + high + 1) // 2
            if self.predicted_rms_ua(step, mid) <= target:
                low = mid
            else:
                high = mid - 1
        lowered = low
        self.setpoint_dv = lowered
        self.out_dv = min(self.out_dv, float(lowered))
        self._event(EventCode.AMPLITUDE_LIMITED, lowered)

    def _classify(self, *, initial: bool = False, measured: float | None = None) -> None:
        z = self.plant.impedance() if measured is None else measured
        self.impedance_ohm = min(round(z), 0xFFFFFFFF)
        contact = classify_contact(self.impedance_ohm)
        if contact != self.contact and not initial:
            self._event(EventCode.CONTACT_CHANGED, contact)
        self.contact = contact
        if contact in (Contact.OK, Contact.MARGINAL):
            if self._contact_good_since is None:
                self._contact_good_since = self.sim_ms
        else:
            self._contact_good_since = None

    def _monitor(self, step: ConfigureStep | None) -> None:
        """§6 fault conditions, checked every tick (so within one tick of happening)."""
        if self.output_on and self.impedance_ohm < 50:
            self._raise(Fault.SHORT_CIRCUIT, "short circuit")
        if self.measured_dv > 0 and self._last_step is not None:
            limit = self._last_step.current_limit_ua
            if self.rms_current_ua > limit * OVERCURRENT_RATIO:
                self._over_ms += self.tick_ms
                if self._over_ms >= OVERCURRENT_MS:
                    self._raise(Fault.OVERCURRENT, "overcurrent")
            else:
                self._over_ms = 0
        else:
            self._over_ms = 0
        if self.temperature_dc >= OVERTEMP_RAISE_DC:
            self._raise(Fault.OVERTEMP, "overtemperature")
        if not self.output_on and self.plant.stuck_dv > 0:
            self._raise(Fault.OUTPUT_FAULT, "output while off")
        if (
            self.output_on
            and step is not None
            and self.plant.net_dc
            and step.waveform == Waveform.BI_SQUARE
            and self.out_dv > 0
        ):
            self._raise(Fault.OUTPUT_FAULT, "net DC on BI_SQUARE")

    def _automatic(self, step: ConfigureStep | None) -> None:
        """§5 transitions without requests."""
        if self.state == State.RUNNING and step is not None:
            if self.step_elapsed_ms >= self.step_duration_ms:
                self._begin_stopping(completing=True, cause="step end")
            elif self.contact == Contact.NONE:
                self._set_state(State.HOLD, "HOLD")
        elif self.state == State.HOLD:
            since = self._contact_good_since
            if since is not None and self.sim_ms - since >= HOLD_RETURN_MS:
                self._start_running("contact back")
        elif self.state == State.STOPPING and self.out_dv <= 0.0:
            self._finish_stopping()

    # --- hardware changes -----------------------------------------------------------------

    def handpiece_changed(self) -> None:
        """The plant's handpiece was attached or removed (§4 EVENT 6, §6 HANDPIECE_REMOVED)."""
        self._event(EventCode.HANDPIECE_CHANGED, self.plant.handpiece)
        if self.plant.handpiece == Handpiece.NONE and self.state != State.IDLE:
            self._raise(Fault.HANDPIECE_REMOVED, "handpiece removed")
        self._classify()
        self._flush_events()

    def remeasure(self) -> None:
        """Re-read impedance and contact now (after a change injected between ticks)."""
        self._classify()
        self._monitor(self.step)
        self._flush_events()
