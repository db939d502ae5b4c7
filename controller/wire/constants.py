"""Numbers fixed by the EPM-1 interface document (wire protocol v1)."""

from __future__ import annotations

from enum import IntEnum, IntFlag

PROTO_VERSION = 1
MAX_BODY = 250
#: seq + type + crc around the body.
PAYLOAD_OVERHEAD = 4
#: A COBS-encoded frame of the longest payload (254 bytes) takes 256 bytes; more than this many
#: bytes without a delimiter is an over-long run and is discarded up to the next 0x00.
MAX_WIRE_RUN = 256
#: TELEMETRY on the wire: COBS(1 + 1 + 28 + 2) + delimiter.
TELEMETRY_WIRE_BYTES = 34
DEFAULT_TELEMETRY_HZ = 50
RETRIES = 3
HEARTBEAT_PERIOD_S = 0.100
WATCHDOG_S = 0.500
REPLY_BOUND_S = 0.020
BAUD_RATES = (115200, 230400, 460800, 921600)
#: A serial number that begins with this identifies a simulator (interface §4); real units never
#: use it. Defined once here; everything that labels a session as simulated asks this module.
SIM_SERIAL_PREFIX = "SIM-"


def is_simulator_serial(serial: str) -> bool:
    """Whether ``serial`` names a simulator (``SIM-...``): its sessions are never treatments."""
    return serial.startswith(SIM_SERIAL_PREFIX)


class MsgType(IntEnum):
    HELLO = 0x01
    GET_STATUS = 0x02
    HEARTBEAT = 0x03
    SET_TELEMETRY = 0x04
    CONFIGURE_STEP = 0x10
    START = 0x11
    PAUSE = 0x12
    RESUME = 0x13
    STOP = 0x14
    ESTOP = 0x15
    CLEAR_FAULTS = 0x16
    SET_AMPLITUDE = 0x17
    ACK = 0x80
    NAK = 0x81
    HELLO_REPLY = 0x82
    STATUS = 0x83
    TELEMETRY = 0xC0
    EVENT = 0xC1

    @property
    def is_request(self) -> bool:
        return 0x01 <= self.value <= 0x3F


#: Requests whose outcome is unknown when the link is lost before their reply (interface §3):
#: never re-issued with a new seq by the host; the operator decides after reading STATUS.
OUTCOME_UNCERTAIN: frozenset[MsgType]
#: Requests bound to the connection they were decided on (interface §3, [1.1]): one decided
#: before a link loss, a reconnect or a re-handshake (a device restart included) is never written
#: after it. PAUSE and STOP are not among them: they act on whatever is delivering now.
EPOCH_BOUND: frozenset[MsgType]


class NakCode(IntEnum):
    MALFORMED = 1
    UNKNOWN_TYPE = 2
    BAD_STATE = 3
    OUT_OF_RANGE = 4
    FAULT_LATCHED = 5
    WRONG_HANDPIECE = 6
    FAULT_PERSISTS = 7
    UNSUPPORTED_VERSION = 8


class State(IntEnum):
    IDLE = 1
    READY = 2
    RUNNING = 3
    PAUSED = 4
    HOLD = 5
    STOPPING = 6
    FAULT = 7

    @property
    def is_active(self) -> bool:
        """States in which the host watchdog runs and the host must send every 100 ms."""
        return self in ACTIVE_STATES

    @property
    def output_may_be_on(self) -> bool:
        return self in (State.RUNNING, State.STOPPING)


ACTIVE_STATES = frozenset({State.RUNNING, State.PAUSED, State.HOLD, State.STOPPING})

OUTCOME_UNCERTAIN = frozenset({MsgType.START, MsgType.RESUME, MsgType.SET_AMPLITUDE})
EPOCH_BOUND = OUTCOME_UNCERTAIN | {MsgType.CONFIGURE_STEP, MsgType.CLEAR_FAULTS}


class Fault(IntFlag):
    NONE = 0
    ESTOP = 1 << 0
    WATCHDOG = 1 << 1
    OVERCURRENT = 1 << 2
    SHORT_CIRCUIT = 1 << 3
    OVERTEMP = 1 << 4
    HANDPIECE_REMOVED = 1 << 5
    OUTPUT_FAULT = 1 << 6
    SELFTEST = 1 << 7

    def names(self) -> list[str]:
        """Names of the set bits, lowest first (unknown bits as ``BIT<n>``)."""
        out: list[str] = []
        for bit in range(16):
            if int(self) & (1 << bit):
                try:
                    name = Fault(1 << bit).name
                except ValueError:  # pragma: no cover - IntFlag accepts unknown bits
                    name = None
                out.append(name or f"BIT{bit}")
        return out


class EventCode(IntEnum):
    STATE_CHANGED = 1
    STEP_COMPLETE = 2
    FAULT_RAISED = 3
    FAULTS_CLEARED = 4
    CONTACT_CHANGED = 5
    HANDPIECE_CHANGED = 6
    AMPLITUDE_LIMITED = 7


class Contact(IntEnum):
    NONE = 0
    OK = 1
    MARGINAL = 2
    SHORT = 3


class Handpiece(IntEnum):
    NONE = 0
    SCALP_ROLLER = 1
    FLAT_PROBE = 2
    COMB = 3


#: Effective electrode area in cm² by handpiece (interface §8).
HANDPIECE_AREA_CM2: dict[Handpiece, float] = {
    Handpiece.SCALP_ROLLER: 4.0,
    Handpiece.FLAT_PROBE: 2.0,
    Handpiece.COMB: 6.0,
}


class Waveform(IntEnum):
    MONO_SQUARE = 1
    BI_SQUARE = 2


class Polarity(IntEnum):
    POSITIVE = 0
    NEGATIVE = 1
    ALTERNATE_PULSE = 2
    ALTERNATE_BURST = 3
