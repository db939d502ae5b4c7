"""The serial link to an EPM-1: port opening with clear errors, request/reply by seq with
retransmission, ESTOP that jumps every queue, heartbeat, dseq-gap and restart detection,
reconnect, and link health. See ``docs/wire-protocol.md`` for the behaviour in full.
"""

import logging

from controller.link.core import EXPECTED_MODEL, HEARTBEAT_IDLE_S, SUPERVISION_WINDOW_S
from controller.link.errors import (
    HandshakeError,
    HandshakeRefused,
    LinkClosed,
    LinkError,
    LinkLost,
    NoHandshakeReply,
    OtherUnit,
    OutcomeUnknown,
    PortBusy,
    PortNotFound,
    PortOpenError,
    PortPermissionDenied,
    StaleCommand,
    UnknownUrlScheme,
    UnsupportedProtocolVersion,
    WrongDeviceModel,
)
from controller.link.events import LinkEvent, LinkEventKind, LinkListener, NullListener
from controller.link.health import LinkHealth
from controller.link.identity import Continuity, DeviceIdentity
from controller.link.link import Handshake, Link
from controller.link.port import available_ports, classify_open_error, open_port
from controller.link.states import LinkState
from controller.link.timing import (
    DEFAULT_BAUD,
    frame_wire_bytes,
    max_telemetry_rate,
    pick_telemetry_rate,
    t_reply,
    wire_time,
)

__all__ = [
    "DEFAULT_BAUD",
    "EXPECTED_MODEL",
    "HEARTBEAT_IDLE_S",
    "SUPERVISION_WINDOW_S",
    "Continuity",
    "DeviceIdentity",
    "Handshake",
    "HandshakeError",
    "HandshakeRefused",
    "Link",
    "LinkClosed",
    "LinkError",
    "LinkEvent",
    "LinkEventKind",
    "LinkHealth",
    "LinkListener",
    "LinkLost",
    "LinkState",
    "NoHandshakeReply",
    "NullListener",
    "OtherUnit",
    "OutcomeUnknown",
    "PortBusy",
    "PortNotFound",
    "PortOpenError",
    "PortPermissionDenied",
    "StaleCommand",
    "UnknownUrlScheme",
    "UnsupportedProtocolVersion",
    "WrongDeviceModel",
    "available_ports",
    "classify_open_error",
    "frame_wire_bytes",
    "max_telemetry_rate",
    "open_port",
    "pick_telemetry_rate",
    "t_reply",
    "wire_time",
]

# The service log's loggers (``epm.<area>``, from this layer up) write nowhere until a program
# installs the log (controller.servicelog, docs/service-log.md). Without a handler of their own,
# logging's last resort would print their warnings on standard error: over a benchmark's output,
# over a caller's terminal, and from the link's own threads.
logging.getLogger("epm").addHandler(logging.NullHandler())
