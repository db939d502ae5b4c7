"""Typed client for the EPM-1 over the link: requests, capability checks, telemetry, events."""

from controller.device.client import DeviceClient, EventListener, TelemetryListener
from controller.device.errors import (
    DeviceError,
    DeviceRefused,
    LimitsExceeded,
    LinkClosed,
    LinkError,
    LinkLost,
    NotConnected,
    OtherUnit,
    OutcomeUnknown,
    StaleCommand,
    TelemetryRateTooHigh,
)
from controller.device.events import DeviceEvent, DeviceEventKind
from controller.device.info import Capabilities, DeviceInfo, DeviceProtocolError, Status
from controller.device.limits import (
    LimitRefusal,
    StepValues,
    check_step,
    refusal_message,
    to_wire,
)
from controller.device.telemetry import TelemetryBuffer
from controller.link.timing import max_telemetry_rate, pick_telemetry_rate

__all__ = [
    "Capabilities",
    "DeviceClient",
    "DeviceError",
    "DeviceEvent",
    "DeviceEventKind",
    "DeviceInfo",
    "DeviceProtocolError",
    "DeviceRefused",
    "EventListener",
    "LimitRefusal",
    "LimitsExceeded",
    "LinkClosed",
    "LinkError",
    "LinkLost",
    "NotConnected",
    "OtherUnit",
    "OutcomeUnknown",
    "StaleCommand",
    "Status",
    "StepValues",
    "TelemetryBuffer",
    "TelemetryListener",
    "TelemetryRateTooHigh",
    "check_step",
    "max_telemetry_rate",
    "pick_telemetry_rate",
    "refusal_message",
    "to_wire",
]
