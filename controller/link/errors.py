"""Exceptions the link raises, each with a plain message that says what to do about it.

``str(exc)`` is written for the operator or technician who has to act on it; the operating
system's or library's own words are kept in ``detail`` (and appended to ``str``) so a support
engineer still sees them. Every class derives from :class:`LinkError`.
"""

# Names say the condition the user faces (LinkLost, PortBusy, ...), as the design fixes them.
# ruff: noqa: N818

from __future__ import annotations

from controller.wire.constants import MsgType


class LinkError(Exception):
    """Something is wrong with the connection to the device."""

    def __init__(self, message: str, *, url: str = "", detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.detail = detail

    def __str__(self) -> str:
        if self.detail:
            return f"{self.message} [{self.detail}]"
        return self.message


# --- opening the port ----------------------------------------------------------------------


class PortOpenError(LinkError):
    """The port could not be opened (the classes below say why)."""


class PortNotFound(PortOpenError):
    """No port at that path: wrong name, cable unplugged or device off."""

    def __init__(
        self, message: str, *, url: str = "", detail: str = "", available: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, url=url, detail=detail)
        self.available = available


class PortPermissionDenied(PortOpenError):
    """The user may not open the device file (not in its group)."""

    def __init__(self, message: str, *, url: str = "", detail: str = "", group: str = "") -> None:
        super().__init__(message, url=url, detail=detail)
        self.group = group


class PortBusy(PortOpenError):
    """Another program holds the port (exclusive lock or device busy)."""


class UnknownUrlScheme(PortOpenError):
    """``scheme://`` that no installed pyserial handler knows."""


# --- handshake -------------------------------------------------------------------------------


class HandshakeError(LinkError):
    """The port opened but the device on it cannot be used."""


class NoHandshakeReply(HandshakeError):
    """Nothing answered HELLO: wrong port, wrong baud rate, or the device is off or busy."""

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        detail: str = "",
        attempts: int = 0,
        seconds: float = 0,
    ) -> None:
        super().__init__(message, url=url, detail=detail)
        self.attempts = attempts
        self.seconds = seconds


class UnsupportedProtocolVersion(HandshakeError):
    """The device speaks another protocol version than 1."""

    def __init__(self, message: str, *, url: str = "", detail: str = "", version: int = 0) -> None:
        super().__init__(message, url=url, detail=detail)
        self.version = version


class WrongDeviceModel(HandshakeError):
    """The device answered but is not an EPM-1."""

    def __init__(self, message: str, *, url: str = "", detail: str = "", model: str = "") -> None:
        super().__init__(message, url=url, detail=detail)
        self.model = model


class HandshakeRefused(HandshakeError):
    """The device answered HELLO with a NAK other than UNSUPPORTED_VERSION."""


# --- while running ---------------------------------------------------------------------------


class LinkLost(LinkError):
    """The request could not be completed because the link is down, lost or re-handshaking.

    ``request`` is the request concerned (``None`` if none). ``sent`` says whether any of its
    bytes went out: if not, the device certainly did not act on it.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        detail: str = "",
        request: MsgType | None = None,
        sent: bool = False,
    ) -> None:
        super().__init__(message, url=url, detail=detail)
        self.request = request
        self.sent = sent


class OutcomeUnknown(LinkLost):
    """START, RESUME or SET_AMPLITUDE was sent but the link was lost before its reply.

    The device may or may not have acted on it. The link never re-sends it on its own: read
    the device status after reconnecting and let the operator decide.
    """


class StaleCommand(LinkLost):
    """A command decided on an earlier connection (epoch): never written on this one.

    START, RESUME, SET_AMPLITUDE, CONFIGURE_STEP and CLEAR_FAULTS are bound to the connection
    they were decided on (interface §3, [1.1]). ``sent`` is always False: the device never saw
    it. Read the device's STATUS and decide again.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        request: MsgType | None = None,
        decided_epoch: int = 0,
        epoch: int = 0,
    ) -> None:
        super().__init__(message, url=url, request=request, sent=False)
        self.decided_epoch = decided_epoch
        self.epoch = epoch


class OtherUnit(LinkLost):
    """After a reconnect another unit (another model or serial) answered than the one pinned.

    It gets nothing but GET_STATUS (and ESTOP if it is active); a session never continues on
    it. ``expected`` and ``found`` are the two serial numbers.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str = "",
        request: MsgType | None = None,
        expected: str = "",
        found: str = "",
    ) -> None:
        super().__init__(message, url=url, request=request, sent=False)
        self.expected = expected
        self.found = found


class LinkClosed(LinkError):
    """The link was closed (by the program, or after reconnecting was given up)."""
