"""Errors of the device client: refusals by the device (NAK) and refusals before sending.

Link trouble surfaces as the link's own :class:`~controller.link.LinkLost` and
:class:`~controller.link.OutcomeUnknown`, re-exported here so callers import one place.
"""

# ruff: noqa: N818 - names state the condition (DeviceRefused, LimitsExceeded), as designed.

from __future__ import annotations

from controller.device.limits import LimitRefusal
from controller.link.errors import (
    LinkClosed,
    LinkError,
    LinkLost,
    OtherUnit,
    OutcomeUnknown,
    StaleCommand,
)
from controller.wire.constants import MsgType, NakCode

__all__ = [
    "DeviceError",
    "DeviceRefused",
    "LimitsExceeded",
    "LinkClosed",
    "LinkError",
    "LinkLost",
    "NotConnected",
    "OtherUnit",
    "OutcomeUnknown",
    "StaleCommand",
    "TelemetryRateTooHigh",
]


class DeviceError(Exception):
    """Base of the device client's own errors; ``str()`` is a plain sentence."""


class DeviceRefused(DeviceError):
    """The device answered NAK. ``code_name`` is the NakCode name; ``detail`` the field number."""

    def __init__(self, cmd: MsgType, code: int, detail: int, message: str) -> None:
        super().__init__(message)
        self.cmd = cmd
        self.code = code
        self.detail = detail
        self.message = message

    @property
    def code_name(self) -> str:
        try:
            return NakCode(self.code).name
        except ValueError:
            return f"NAK_{self.code}"


class LimitsExceeded(DeviceError):
    """Refused before sending: the values break the device's limits (nothing was sent)."""

    def __init__(self, cmd: MsgType, refusals: list[LimitRefusal]) -> None:
        reasons = "; ".join(r.message for r in refusals)
        super().__init__(f"{cmd.name} not sent: {reasons}.")
        self.cmd = cmd
        self.refusals = refusals


class TelemetryRateTooHigh(DeviceError, ValueError):
    """The asked telemetry rate is more than the link or the device can carry."""


class NotConnected(DeviceError):
    """The client has not completed a handshake yet (call ``connect()``)."""
