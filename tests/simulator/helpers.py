"""A minimal host for driving a virtual-clock simulator in tests, and shared step values."""

from __future__ import annotations

from controller.wire import (
    ConfigureStep,
    Estop,
    Event,
    GetStatus,
    Message,
    Pause,
    Start,
    State,
    Status,
    Stop,
    Telemetry,
    encode_frame,
)
from controller.wire.codec import encode_raw
from simulator import Simulator

#: A step well inside every limit: 30 V BI_SQUARE, 200 µs at 100 Hz, continuous, no ramp-up.
STEP = ConfigureStep(
    step_id=1,
    waveform=2,
    polarity=0,
    amplitude_dv=300,
    amplitude_max_dv=600,
    pulse_width_us=200,
    frequency_hz=100,
    burst_on_ms=0,
    burst_off_ms=0,
    ramp_up_ms=0,
    ramp_down_ms=1000,
    current_limit_ua=10_000,
    duration_ms=60_000,
    handpiece=1,
)


class Host:
    """Sends requests to a virtual simulator and sorts what comes back."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.seq = 0
        self.telemetry: list[Telemetry] = []
        self.events: list[Event] = []
        self.frames: list[tuple[int, Message]] = []

    def next_seq(self) -> int:
        self.seq = self.seq % 255 + 1
        return self.seq

    def collect(self) -> list[tuple[int, Message]]:
        got = self.sim.read_messages()
        self.frames += got
        for _, msg in got:
            if isinstance(msg, Telemetry):
                self.telemetry.append(msg)
            elif isinstance(msg, Event):
                self.events.append(msg)
        return got

    def send_raw(self, wire: bytes) -> list[tuple[int, Message]]:
        """Write bytes; the replies (seq != 0) that came back at once."""
        self.sim.host_write(wire)
        return [(s, m) for s, m in self.collect() if s != 0]

    def send(self, msg: Message, seq: int | None = None) -> list[tuple[int, Message]]:
        return self.send_raw(encode_frame(self.next_seq() if seq is None else seq, msg))

    def request(self, msg: Message, seq: int | None = None) -> Message:
        """Send one request; exactly one reply with its seq must come back at once."""
        seq = self.next_seq() if seq is None else seq
        replies = self.send_raw(encode_frame(seq, msg))
        assert len(replies) == 1, replies
        assert replies[0][0] == seq
        return replies[0][1]

    def raw_request(self, seq: int, mtype: int, body: bytes) -> Message:
        replies = self.send_raw(encode_raw(seq, mtype, body))
        assert len(replies) == 1, replies
        return replies[0][1]

    def advance(self, ms: int) -> None:
        self.sim.advance(ms)
        self.collect()

    def status(self) -> Status:
        reply = self.request(GetStatus())
        assert isinstance(reply, Status)
        return reply

    def events_of(self, code: int) -> list[Event]:
        return [e for e in self.events if e.event == code]

    def clear_log(self) -> None:
        self.telemetry.clear()
        self.events.clear()
        self.frames.clear()


def into_state(host: Host, state: State, step: ConfigureStep = STEP) -> None:
    """Drive a fresh unit into ``state`` the way a host or the world would."""
    if state == State.IDLE:
        return
    if state == State.FAULT:
        host.request(Estop())
        return
    host.request(step)
    if state == State.READY:
        return
    host.request(Start())
    host.advance(5)
    if state == State.PAUSED:
        host.request(Pause())
    elif state == State.HOLD:
        host.sim.inject("contact_lost")
        host.advance(2)
    elif state == State.STOPPING:
        host.request(Stop())
    assert host.sim.state == state
