"""Opening a serial port by pyserial URL, turning every failure into a clear error.

All ports open through ``serial.serial_for_url`` so a device path, ``socket://``, ``spy://``
(traffic capture), ``loop://`` and the simulator's in-process ``sim://`` behave alike. Ports
are opened with ``exclusive=True``: on POSIX device paths that takes an advisory ``flock`` so
a second controller cannot share the device (other URL handlers accept and ignore it), and
with finite read and write timeouts so no thread can hang on the port.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import re
import urllib.parse
from pathlib import Path

import serial
import serial.tools.list_ports

from controller.link.errors import (
    PortBusy,
    PortNotFound,
    PortOpenError,
    PortPermissionDenied,
    UnknownUrlScheme,
)
from controller.link.timing import DEFAULT_BAUD

#: Read timeout of the reader thread: short, so it notices a close request quickly.
READ_TIMEOUT_S = 0.02
#: A single frame's write never takes this long on a working port (a 256-byte frame needs
#: 22 ms at 115200 baud); longer means the port is wedged and is treated like an unplug.
WRITE_TIMEOUT_S = 0.5

_NOT_FOUND = {errno.ENOENT, errno.ENODEV, errno.ENXIO}
_DENIED = {errno.EACCES, errno.EPERM}
_BUSY = {errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY}
_ERRNO_IN_TEXT = re.compile(r"\[Errno (\d+)\]")
_BY_ID = Path("/dev/serial/by-id")


def open_port(
    url: str,
    baud: int = DEFAULT_BAUD,
    *,
    read_timeout: float = READ_TIMEOUT_S,
    write_timeout: float = WRITE_TIMEOUT_S,
    exclusive: bool = True,
) -> serial.SerialBase:
    """Open ``url`` at ``baud`` (8N1, no flow control); raise a :class:`PortOpenError` subclass."""
    try:
        port: serial.SerialBase = serial.serial_for_url(
            url,
            baudrate=baud,
            timeout=read_timeout,
            write_timeout=write_timeout,
            exclusive=exclusive,
        )
    except ValueError as exc:
        text = str(exc)
        if "not known" in text and "protocol" in text:
            raise unknown_scheme_error(url, text) from exc
        raise PortOpenError(
            f"Cannot open {url}: invalid setting ({text}). Check the URL and the baud rate.",
            url=url,
            detail=text,
        ) from exc
    except (serial.SerialException, OSError) as exc:
        raise classify_open_error(url, exc) from exc
    return port


def error_number(exc: BaseException) -> int | None:
    """The OS error number behind ``exc`` (pyserial sometimes only has it in the text)."""
    number = getattr(exc, "errno", None)
    if isinstance(number, int):
        return number
    found = _ERRNO_IN_TEXT.search(str(exc))
    return int(found.group(1)) if found else None


def device_path(url: str) -> str | None:
    """The file-system path behind ``url`` (a plain path or ``spy://PATH``), else ``None``."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() == "spy":
        inner = parts.netloc + parts.path
        return inner if "://" not in inner else None
    return None


def classify_open_error(url: str, exc: BaseException) -> PortOpenError:
    """Map a failure to open ``url`` to the error class and message the user needs."""
    number = error_number(exc)
    detail = str(exc)
    path = device_path(url)
    shown = path or url
    if number in _NOT_FOUND:
        ports = available_ports()
        listing = ", ".join(ports) if ports else "none"
        return PortNotFound(
            f"No serial port at {shown}. Ports this computer sees now: {listing}. Check that the "
            f"device is switched on and its USB cable is plugged in, then use the right name - "
            f"preferably a /dev/serial/by-id/... path, which stays the same when the adapter is "
            f"re-plugged (ttyUSB0 may come back as ttyUSB1).",
            url=url,
            detail=detail,
            available=tuple(ports),
        )
    if number in _DENIED:
        group = owning_group(path) if path else None
        group_name = group or "dialout"
        return PortPermissionDenied(
            f"Permission denied opening {shown}: this user may not use the port. Add the user "
            f"to the '{group_name}' group (sudo usermod -aG {group_name} $USER), then log out "
            f"and log in again so the new group takes effect.",
            url=url,
            detail=detail,
            group=group_name,
        )
    if number in _BUSY:
        who = f" (`fuser {path}` shows which process)" if path else ""
        return PortBusy(
            f"{shown} is busy: another program has it open{who} - perhaps another epm, a "
            f"terminal program, or ModemManager. Close that program and try again. To watch "
            f"traffic while epm runs, give epm a spy:// URL instead of opening the port twice.",
            url=url,
            detail=detail,
        )
    return PortOpenError(
        f"Cannot open {shown}: {detail}. Check the port name, the cable and the device's power.",
        url=url,
        detail=detail,
    )


def unknown_scheme_error(url: str, detail: str = "") -> UnknownUrlScheme:
    scheme = url.split("://", 1)[0]
    known = ", ".join(f"{name}://" for name in known_schemes())
    return UnknownUrlScheme(
        f"Unknown port URL scheme '{scheme}://' in {url}. Known schemes: {known}, or a device "
        f"path such as /dev/ttyUSB0. For the built-in simulator (sim://) the simulator package "
        f"must be installed and registered.",
        url=url,
        detail=detail or f"protocol {scheme!r} not known",
    )


def known_schemes() -> list[str]:
    """URL schemes the registered pyserial handler packages provide."""
    import importlib
    import pkgutil

    names: set[str] = set()
    for package_name in serial.protocol_handler_packages:
        try:
            package = importlib.import_module(package_name)
        except ImportError:
            continue
        for info in pkgutil.iter_modules(getattr(package, "__path__", [])):
            if info.name.startswith("protocol_"):
                names.add(info.name.removeprefix("protocol_"))
    return sorted(names)


def available_ports() -> list[str]:
    """Serial ports the system lists, stable ``/dev/serial/by-id`` names first."""
    found: list[str] = []
    with contextlib.suppress(OSError):
        if _BY_ID.is_dir():
            found.extend(str(p) for p in sorted(_BY_ID.iterdir()))
    with contextlib.suppress(OSError):
        found.extend(info.device for info in serial.tools.list_ports.comports())
    return found


def owning_group(path: str) -> str | None:
    """Name of the group that owns ``path`` (the group the user must join), if known."""
    try:
        gid = os.stat(path).st_gid
    except OSError:
        return None
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
