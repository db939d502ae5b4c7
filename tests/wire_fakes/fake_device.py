"""A scriptable fake EPM-1 that serves the master side of a pty in a thread.

It speaks the real codec and follows the interface document's request handling order and
state table (§4, §5): de-duplication by seq, ESTOP always executed, NAK rules, watchdog,
step time, telemetry with ``dseq``, events after the reply that caused them. Tests script
misbehaviour (drop, duplicate, delay or hold replies, stray replies, garbage, dseq skips,
restarts, silence, unplug) and read what it received, with receive timestamps and the exact
bytes, to assert on the link's behaviour from the device's side of the wire.

It is deliberately simpler than the simulator: no physics, instant ramps unless a ramp-down
time is configured, fixed impedance and contact.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from cobs import cobs

from controller.wire.codec import DecodeError, decode_payload, encode_frame, encode_raw
from controller.wire.constants import ACTIVE_STATES, EventCode, Fault, MsgType, NakCode, State
from controller.wire.messages import (
    Ack,
    ConfigureStep,
    Event,
    Hello,
    HelloReply,
    Message,
    Nak,
    SetAmplitude,
    SetTelemetry,
    Status,
    Telemetry,
    body_length_ok,
    decode_body,
    message_type,
)

_ALLOWED_IN_FAULT = {
    MsgType.HELLO,
    MsgType.GET_STATUS,
    MsgType.HEARTBEAT,
    MsgType.SET_TELEMETRY,
    MsgType.ESTOP,
    MsgType.CLEAR_FAULTS,
}

_S = State
#: §5 table: request -> states in which it is allowed (others: NAK BAD_STATE).
_ALLOWED: dict[MsgType, set[State]] = {
    MsgType.CONFIGURE_STEP: {_S.IDLE, _S.READY},
    MsgType.START: {_S.READY},
    MsgType.PAUSE: {_S.RUNNING, _S.PAUSED, _S.HOLD},
    MsgType.RESUME: {_S.RUNNING, _S.PAUSED},
    MsgType.SET_AMPLITUDE: {_S.READY, _S.RUNNING, _S.PAUSED, _S.HOLD},
}


@dataclass
class FakeConfig:
    """What the fake reports about itself and how it behaves by default."""

    model: str = "EPM-1"
    serial: str = "FAKE-0001"
    proto_version: int = 1
    firmware: tuple[int, int, int] = (1, 2, 3)
    boot_id: int = 0x1234
    max_amplitude_dv: int = 1200
    max_current_ua: int = 10000
    pulse_width_min_us: int = 50
    pulse_width_max_us: int = 2000
    frequency_min_hz: int = 1
    frequency_max_hz: int = 5000
    max_step_ms: int = 1_200_000
    waveforms: int = 0b11
    max_telemetry_hz: int = 1000
    handpiece: int = 1
    #: Telemetry rate at power-up and after HELLO (the document says 50 Hz; 0 keeps tests quiet).
    telemetry_hz: int = 50
    #: Answer HELLO with this NAK code instead of HELLO_REPLY (e.g. UNSUPPORTED_VERSION).
    nak_hello: int | None = None
    watchdog: bool = True
    #: CLEAR_FAULTS answers FAULT_PERSISTS while this is set.
    fault_persists: bool = False
    #: Start of the device clock in ms (to test the 2³² wrap).
    t_offset_ms: int = 0
    #: Pace writes as if the wire ran at this baud rate (None: as fast as the pty takes them).
    pace_baud: int | None = None


class RxRecord(NamedTuple):
    """A valid frame the fake received: when, seq, type, body and the exact wire bytes."""

    t: float
    seq: int
    mtype: int
    body: bytes
    raw: bytes


class TxRecord(NamedTuple):
    t: float
    seq: int
    mtype: int
    raw: bytes


class _Step(NamedTuple):
    values: ConfigureStep


class FakeDevice:
    """A fake EPM-1 on a pty master fd. Call :meth:`start`, then script and observe it."""

    def __init__(self, fd: int, config: FakeConfig | None = None) -> None:
        self.fd = fd
        self.config = config or FakeConfig()
        os.set_blocking(fd, False)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.unplugged = False
        # observation
        self.received: list[RxRecord] = []
        self.sent: list[TxRecord] = []
        self.rx_crc_errors = 0
        self.rx_frame_errors = 0
        self.tx_dropped = 0
        # scripting
        self._drop = 0
        self._duplicate = 0
        self._stray = 0
        self._delay = 0.0
        self._hold: set[int] = set()
        self._held: list[list[tuple[int, Message]]] = []
        self._scheduled: list[tuple[float, list[tuple[int, Message]]]] = []
        self._silent = False
        self._silent_telemetry = False
        self._skip = 0
        self._forced: dict[int, tuple[int, int]] = {}
        self._power_up(self.config.boot_id, t_offset_ms=self.config.t_offset_ms)

    # --- lifecycle -----------------------------------------------------------------------

    def _power_up(self, boot_id: int, *, keep_clock: bool = False, t_offset_ms: int = 0) -> None:
        now = time.monotonic()
        self.boot_id = boot_id
        self.state = State.IDLE
        self.faults = 0
        self.handpiece = self.config.handpiece
        self._dseq = 0
        if not keep_clock:
            self._t0 = now - t_offset_ms / 1000
        self._last_seq: int | None = None
        self._last_reply: Message | None = None
        self._step: ConfigureStep | None = None
        self._elapsed_ms = 0.0
        self._amplitude = 0
        self._stopping_until: float | None = None
        self._stopping_completes = False
        self._last_valid_rx = now
        self._last_tick = now
        self._rate = self.config.telemetry_hz
        self._next_telemetry = now

    def start(self) -> FakeDevice:
        self._thread = threading.Thread(target=self._run, name="fake-epm1", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def unplug(self) -> None:
        """Stop and close the master side: the link sees what a USB unplug looks like."""
        self.stop()
        if not self.unplugged:
            self.unplugged = True
            os.close(self.fd)

    # --- scripting (thread-safe) ---------------------------------------------------------

    def drop_replies(self, n: int) -> None:
        """Execute the next ``n`` requests but lose their replies on the wire."""
        with self._cond:
            self._drop = n

    def duplicate_replies(self, n: int) -> None:
        with self._cond:
            self._duplicate = n

    def stray_before_replies(self, n: int) -> None:
        """Precede the next ``n`` replies with a reply carrying another seq."""
        with self._cond:
            self._stray = n

    def delay_replies(self, seconds: float) -> None:
        with self._cond:
            self._delay = seconds

    def hold_replies(self, *types: MsgType) -> None:
        """Keep replies (and the events they caused) to these request types until released."""
        with self._cond:
            self._hold = {int(t) for t in types}

    def release_held(self) -> None:
        with self._cond:
            self._hold = set()
            held, self._held = self._held, []
            for bundle in held:
                self._send_bundle(bundle)

    def silence(self, on: bool = True, *, telemetry: bool = True) -> None:
        """Stop answering requests (and, by default, stop telemetry too)."""
        with self._cond:
            self._silent = on
            self._silent_telemetry = on and telemetry

    def skip_dseq(self, n: int) -> None:
        """The next device frame's dseq jumps by ``n`` (as if ``n`` frames were lost)."""
        with self._cond:
            self._skip += n

    def nak_next(self, mtype: MsgType, code: NakCode, detail: int = 0) -> None:
        with self._cond:
            self._forced[int(mtype)] = (int(code), detail)

    def restart(self, boot_id: int | None = None, *, keep_clock: bool = False) -> None:
        """Power-cycle: IDLE, no step, dseq 0, clock from 0 ms (unless ``keep_clock``)."""
        with self._cond:
            new = boot_id if boot_id is not None else (self.boot_id + 1) & 0xFFFF
            self._power_up(new, keep_clock=keep_clock)

    def set_telemetry_rate(self, hz: int) -> None:
        with self._cond:
            self._rate = hz
            self._next_telemetry = time.monotonic()

    def set_handpiece(self, handpiece: int) -> None:
        with self._cond:
            self.handpiece = handpiece
            self._send_event(EventCode.HANDPIECE_CHANGED, handpiece)

    def raise_fault(self, fault: Fault) -> None:
        with self._cond:
            self._fault(int(fault))

    def send_raw(self, data: bytes) -> None:
        with self._cond:
            self._write(data)

    def send_reply(self, seq: int, msg: Message) -> None:
        with self._cond:
            self._send(seq, msg)

    def send_raw_frame(self, seq: int, mtype: int, body: bytes) -> None:
        with self._cond:
            self._write(encode_raw(seq, mtype, body))

    # --- observation ---------------------------------------------------------------------

    def rx(self, *types: MsgType) -> list[RxRecord]:
        with self._cond:
            return [r for r in self.received if not types or r.mtype in types]

    def tx(self, *types: MsgType) -> list[TxRecord]:
        with self._cond:
            return [r for r in self.sent if not types or r.mtype in types]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def wait_rx(self, mtype: MsgType, count: int = 1, timeout: float = 5.0) -> bool:
        return self.wait_for(
            lambda: sum(1 for r in self.received if r.mtype == mtype) >= count, timeout
        )

    # --- the thread ----------------------------------------------------------------------

    def _run(self) -> None:
        buf = bytearray()
        while not self._stop.is_set():
            with self._cond:
                timeout = self._tick(time.monotonic())
            try:
                ready, _, _ = select.select([self.fd], [], [], timeout)
            except (OSError, ValueError):
                return
            if not ready:
                continue
            try:
                data = os.read(self.fd, 4096)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # no slave side open right now
                    self._stop.wait(0.005)
                    continue
                return
            if not data:
                self._stop.wait(0.005)
                continue
            buf += data
            with self._cond:
                self._ingest(buf)

    def _ingest(self, buf: bytearray) -> None:
        while True:
            idx = buf.find(0)
            if idx < 0:
                if len(buf) > 256:
                    buf.clear()
                    self.rx_frame_errors += 1
                return
            chunk = bytes(buf[:idx])
            del buf[: idx + 1]
            if not chunk:
                continue
            try:
                frame = decode_payload(cobs.decode(chunk))
            except cobs.DecodeError:
                self.rx_frame_errors += 1
                continue
            except DecodeError as exc:
                if exc.kind == "crc":
                    self.rx_crc_errors += 1
                else:
                    self.rx_frame_errors += 1
                continue
            now = time.monotonic()
            self.received.append(RxRecord(now, frame.seq, frame.type, frame.body, chunk + b"\0"))
            self._cond.notify_all()
            self._last_valid_rx = now
            if not self._silent:
                self._handle(frame.seq, frame.type, frame.body)

    def _handle(self, seq: int, mtype: int, body: bytes) -> None:
        if mtype == MsgType.ESTOP:
            self._fault(int(Fault.ESTOP))
            self._emit_reply(mtype, seq, Ack(MsgType.ESTOP), [])
            return
        if mtype != MsgType.HELLO and seq == self._last_seq and self._last_reply is not None:
            self._emit_reply(mtype, seq, self._last_reply, [])
            return
        events: list[tuple[EventCode, int]] = []
        reply = self._execute(mtype, body, events)
        if mtype == MsgType.HELLO:
            self._last_seq, self._last_reply = None, None
        else:
            self._last_seq, self._last_reply = seq, reply
        self._emit_reply(mtype, seq, reply, events)

    def _execute(self, mtype: int, body: bytes, events: list[tuple[EventCode, int]]) -> Message:
        try:
            t = MsgType(mtype)
        except ValueError:
            return Nak(mtype, NakCode.UNKNOWN_TYPE, 0)
        if not t.is_request:
            return Nak(mtype, NakCode.UNKNOWN_TYPE, 0)
        if not body_length_ok(t, len(body)):
            return Nak(mtype, NakCode.MALFORMED, 0)
        msg = decode_body(t, body)
        forced = self._forced.pop(mtype, None)
        if forced is not None:
            return Nak(mtype, forced[0], forced[1])
        if self.state is State.FAULT and t not in _ALLOWED_IN_FAULT:
            return Nak(mtype, NakCode.FAULT_LATCHED, 0)
        allowed = _ALLOWED.get(t)
        if allowed is not None and self.state not in allowed:
            return Nak(mtype, NakCode.BAD_STATE, 0)
        if t is MsgType.STOP and self.state is State.FAULT:  # pragma: no cover - F above
            return Nak(mtype, NakCode.FAULT_LATCHED, 0)
        return self._apply(t, msg, events)

    def _apply(self, t: MsgType, msg: Message, events: list[tuple[EventCode, int]]) -> Message:
        cfg = self.config
        ack = Ack(t)
        if isinstance(msg, Hello):
            if cfg.nak_hello is not None:
                return Nak(t, cfg.nak_hello, 0)
            if msg.proto_version != 1:
                return Nak(t, NakCode.UNSUPPORTED_VERSION, 0)
            if self.state in ACTIVE_STATES:
                self._fault(int(Fault.WATCHDOG), events)
            self._rate = cfg.telemetry_hz
            return HelloReply(
                cfg.proto_version,
                cfg.model,
                cfg.serial,
                *cfg.firmware,
                self.boot_id,
                cfg.max_amplitude_dv,
                cfg.max_current_ua,
                cfg.pulse_width_min_us,
                cfg.pulse_width_max_us,
                cfg.frequency_min_hz,
                cfg.frequency_max_hz,
                cfg.max_step_ms,
                cfg.waveforms,
                cfg.max_telemetry_hz,
                self.handpiece,
            )
        if t is MsgType.GET_STATUS:
            return self._status()
        if t is MsgType.HEARTBEAT:
            return ack
        if isinstance(msg, SetTelemetry):
            if not 1 <= msg.rate_hz <= cfg.max_telemetry_hz:
                return Nak(t, NakCode.OUT_OF_RANGE, 1)
            self._rate = msg.rate_hz
            self._next_telemetry = time.monotonic()
            return ack
        if isinstance(msg, ConfigureStep):
            bad = self._bad_field(msg)
            if bad:
                return Nak(t, NakCode.OUT_OF_RANGE, bad)
            if msg.handpiece != self.handpiece:
                return Nak(t, NakCode.WRONG_HANDPIECE, 0)
            self._step = msg
            self._amplitude = msg.amplitude_dv
            self._elapsed_ms = 0.0
            self._set_state(State.READY, events)
            return ack
        if t is MsgType.START:
            self._elapsed_ms = 0.0
            self._set_state(State.RUNNING, events)
            return ack
        if t is MsgType.PAUSE:
            self._set_state(State.PAUSED, events)
            return ack
        if t is MsgType.RESUME:
            self._set_state(State.RUNNING, events)
            return ack
        if t is MsgType.STOP:
            if self.state is State.READY:
                self._step = None
                self._set_state(State.IDLE, events)
            elif self.state is State.RUNNING:
                self._begin_stopping(completes=False, events=events)
            elif self.state in (State.PAUSED, State.HOLD):
                self._set_state(State.IDLE, events)
            return ack
        if isinstance(msg, SetAmplitude):
            ceiling = self._step.amplitude_max_dv if self._step else 0
            if not 1 <= msg.amplitude_dv <= ceiling:
                return Nak(t, NakCode.OUT_OF_RANGE, 1)
            self._amplitude = msg.amplitude_dv
            return ack
        if t is MsgType.CLEAR_FAULTS:
            if self.state is State.FAULT:
                if cfg.fault_persists:
                    return Nak(t, NakCode.FAULT_PERSISTS, 0)
                cleared, self.faults = self.faults, 0
                events.append((EventCode.FAULTS_CLEARED, cleared))
                self._set_state(State.IDLE, events)
            return ack
        return Nak(t, NakCode.UNKNOWN_TYPE, 0)  # pragma: no cover

    def _bad_field(self, s: ConfigureStep) -> int:
        """First field out of its own range (NAK detail), or 0. Cross-field rules: the first two."""
        cfg = self.config
        checks = [
            (2, s.waveform in (1, 2) and bool(cfg.waveforms & (1 << (s.waveform - 1)))),
            (3, 0 <= s.polarity <= 3),
            (4, 1 <= s.amplitude_dv <= cfg.max_amplitude_dv),
            (5, 1 <= s.amplitude_max_dv <= cfg.max_amplitude_dv),
            (6, cfg.pulse_width_min_us <= s.pulse_width_us <= cfg.pulse_width_max_us),
            (7, cfg.frequency_min_hz <= s.frequency_hz <= cfg.frequency_max_hz),
            (8, s.burst_on_ms == 0 or 10 <= s.burst_on_ms <= 2000),
            (9, s.burst_off_ms == 0 or 10 <= s.burst_off_ms <= 5000),
            (10, s.ramp_up_ms <= 60000),
            (11, s.ramp_down_ms <= 10000),
            (12, 500 <= s.current_limit_ua <= cfg.max_current_ua),
            (13, 1 <= s.duration_ms <= cfg.max_step_ms),
            (14, 1 <= s.handpiece <= 3),
            (4, s.amplitude_dv <= s.amplitude_max_dv),
            (3, s.waveform != 2 or s.polarity == 0),
        ]
        for field_no, ok in checks:
            if not ok:
                return field_no
        return 0

    # --- state, events, output -----------------------------------------------------------

    def _status(self) -> Status:
        step = self._step
        return Status(
            self.boot_id,
            int(self.state),
            self.faults,
            step.step_id if step else 0,
            int(self._elapsed_ms),
            step.duration_ms if step else 0,
            self.handpiece,
            self._amplitude,
            self.rx_crc_errors & 0xFFFF,
            self.rx_frame_errors & 0xFFFF,
        )

    def _set_state(self, new: State, events: list[tuple[EventCode, int]] | None = None) -> None:
        old = self.state
        if new is old:
            return
        self.state = new
        item = (EventCode.STATE_CHANGED, (int(old) << 8) | int(new))
        if events is None:
            self._send_event(*item)
        else:
            events.append(item)

    def _fault(self, bits: int, events: list[tuple[EventCode, int]] | None = None) -> None:
        new_bits = bits & ~self.faults
        self.faults |= bits
        self._stopping_until = None
        if new_bits:
            item = (EventCode.FAULT_RAISED, new_bits)
            if events is None:
                self._send_event(*item)
            else:
                events.append(item)
        self._set_state(State.FAULT, events)

    def _begin_stopping(
        self, *, completes: bool, events: list[tuple[EventCode, int]] | None
    ) -> None:
        ramp = (self._step.ramp_down_ms if self._step else 0) / 1000
        self._stopping_until = time.monotonic() + ramp
        self._stopping_completes = completes
        self._set_state(State.STOPPING, events)

    def _tick(self, now: float) -> float:
        """Advance time: scheduled replies, step time, watchdog, telemetry. Returns a timeout."""
        dt = now - self._last_tick
        self._last_tick = now
        due = [b for at, b in self._scheduled if at <= now]
        self._scheduled = [(at, b) for at, b in self._scheduled if at > now]
        for bundle in due:
            self._send_bundle(bundle)
        if self.state is State.RUNNING and self._step is not None:
            self._elapsed_ms += dt * 1000
            if self._elapsed_ms >= self._step.duration_ms:
                self._elapsed_ms = float(self._step.duration_ms)
                self._begin_stopping(completes=True, events=None)
        until = self._stopping_until
        if self.state is State.STOPPING and until is not None and now >= until:
            completes = self._stopping_completes
            self._stopping_until = None
            self._set_state(State.IDLE)
            if completes and self._step is not None:
                self._send_event(EventCode.STEP_COMPLETE, self._step.step_id)
        if self.config.watchdog and self.state in ACTIVE_STATES and now - self._last_valid_rx > 0.5:
            self._fault(int(Fault.WATCHDOG))
        timeout = 0.01
        if self._rate > 0 and not self._silent_telemetry:
            if now >= self._next_telemetry:
                self._send_telemetry(now)
                self._next_telemetry = max(self._next_telemetry + 1 / self._rate, now - 0.05)
            timeout = min(timeout, max(0.0, self._next_telemetry - now))
        for at, _ in self._scheduled:
            timeout = min(timeout, max(0.0, at - now))
        return timeout

    def _t_ms(self, now: float | None = None) -> int:
        return int(((now or time.monotonic()) - self._t0) * 1000) & 0xFFFFFFFF

    def _take_dseq(self) -> int:
        self._dseq = (self._dseq + self._skip) & 0xFFFF
        self._skip = 0
        value = self._dseq
        self._dseq = (self._dseq + 1) & 0xFFFF
        return value

    def _send_telemetry(self, now: float) -> None:
        step = self._step
        on = self.state in (State.RUNNING, State.STOPPING)
        self._send(
            0,
            Telemetry(
                self._take_dseq(),
                self.boot_id,
                self._t_ms(now),
                int(self.state),
                self.faults,
                step.step_id if step else 0,
                int(self._elapsed_ms),
                self._amplitude if on else 0,
                2000 if on else 0,
                1000,
                330,
                1,
            ),
        )

    def _send_event(self, code: EventCode, arg: int) -> None:
        self._send(0, Event(self._take_dseq(), self._t_ms(), int(code), arg))

    def _emit_reply(
        self, mtype: int, seq: int, reply: Message, events: Iterable[tuple[EventCode, int]]
    ) -> None:
        bundle: list[tuple[int, Message]] = [(seq, reply)]
        bundle += [(0, Event(0, 0, int(code), arg)) for code, arg in events]
        if self._drop > 0:
            self._drop -= 1
            bundle = bundle[1:]
        if mtype in self._hold:
            self._held.append(bundle)
        elif self._delay > 0:
            self._scheduled.append((time.monotonic() + self._delay, bundle))
        else:
            self._send_bundle(bundle)

    def _send_bundle(self, bundle: list[tuple[int, Message]]) -> None:
        for seq, msg in bundle:
            if isinstance(msg, Event):
                self._send_event(EventCode(msg.event), msg.arg)
                continue
            if self._stray > 0:
                self._stray -= 1
                self._send((seq + 100) % 255 + 1, msg)
            self._send(seq, msg)
            if self._duplicate > 0:
                self._duplicate -= 1
                self._send(seq, msg)

    def _send(self, seq: int, msg: Message) -> None:
        frame = encode_frame(seq, msg)
        if self._write(frame):
            mtype = frame_type(msg)
            self.sent.append(TxRecord(time.monotonic(), seq, mtype, frame))
            self._cond.notify_all()

    def _write(self, data: bytes) -> bool:
        if self.unplugged:
            return False
        try:
            written = os.write(self.fd, data)
        except (BlockingIOError, OSError):
            self.tx_dropped += 1
            return False
        if written < len(data):
            self.tx_dropped += 1
        if self.config.pace_baud:
            time.sleep(len(data) * 10 / self.config.pace_baud)
        return True


def frame_type(msg: Message) -> int:
    return int(message_type(msg))


class PtyPair:
    """A pty pair in raw mode: ``master`` for the fake, ``path`` (the slave) for the link.

    A slave descriptor stays open so the master never reads EIO while the link has the port
    closed (between reconnects); :meth:`close` closes what is still open.
    """

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._slave_open = True

    def close(self, fake: FakeDevice | None = None) -> None:
        if fake is None or not fake.unplugged:
            os.close(self.master)
        if self._slave_open:
            self._slave_open = False
            os.close(self.slave)


class FakeOnPty:
    """A running fake on a fresh pty pair; a context manager that cleans both up."""

    def __init__(self, config: FakeConfig | None = None) -> None:
        self.pty = PtyPair()
        self.device = FakeDevice(self.pty.master, config).start()
        self.path = self.pty.path

    def close(self) -> None:
        self.device.stop()
        self.pty.close(self.device)

    def __enter__(self) -> FakeOnPty:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
