"""Opening ports: every failure becomes a clear, actionable error with the OS detail."""

from __future__ import annotations

import errno
import grp
import os
from pathlib import Path

import pytest
import serial

from controller.link import (
    PortBusy,
    PortNotFound,
    PortPermissionDenied,
    UnknownUrlScheme,
    classify_open_error,
    open_port,
)
from controller.link.port import device_path, error_number
from tests.wire_fakes.fake_device import PtyPair


def test_no_such_port_lists_ports_and_recommends_by_id(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    with pytest.raises(PortNotFound) as caught:
        open_port(missing)
    text = str(caught.value)
    assert missing in text
    assert "Ports this computer sees now" in text
    assert "/dev/serial/by-id/" in text
    assert "No such file" in caught.value.detail


def test_two_exclusive_opens_of_one_pty_report_busy() -> None:
    pty = PtyPair()
    first = open_port(pty.path)
    try:
        with pytest.raises(PortBusy) as caught:
            open_port(pty.path)
        assert "another program has it open" in str(caught.value)
        assert f"fuser {pty.path}" in str(caught.value)
        assert "[Errno 11]" in caught.value.detail
    finally:
        first.close()
        pty.close()


def test_permission_denied_names_the_owning_group(tmp_path: Path) -> None:
    device = tmp_path / "ttyACM0"
    device.write_text("")
    group = grp.getgrgid(os.stat(device).st_gid).gr_name
    exc = serial.SerialException(
        errno.EACCES, f"could not open port {device}: [Errno 13] Permission denied: '{device}'"
    )
    error = classify_open_error(str(device), exc)
    assert isinstance(error, PortPermissionDenied)
    assert error.group == group
    assert f"'{group}' group" in str(error)
    assert "log out" in str(error)
    assert "Permission denied" in error.detail


def test_permission_denied_without_a_file_suggests_dialout() -> None:
    error = classify_open_error("/nonexistent/tty", OSError(errno.EACCES, "Permission denied"))
    assert isinstance(error, PortPermissionDenied)
    assert error.group == "dialout"


def test_errno_is_found_in_pyserial_text_when_not_set() -> None:
    exc = serial.SerialException("could not open port x: [Errno 16] Device or resource busy")
    assert error_number(exc) == errno.EBUSY
    assert isinstance(classify_open_error("x", exc), PortBusy)


def test_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(UnknownUrlScheme) as caught:
        open_port("bogus://device")
    text = str(caught.value)
    assert "'bogus://'" in text
    assert "socket://" in text and "spy://" in text


def test_device_path_of_urls() -> None:
    assert device_path("/dev/ttyUSB0") == "/dev/ttyUSB0"
    assert device_path("spy:///dev/ttyUSB0?file=x.txt") == "/dev/ttyUSB0"
    assert device_path("socket://localhost:7000") is None


def test_spy_url_opens_a_pty_and_captures_traffic(tmp_path: Path) -> None:
    pty = PtyPair()
    capture = tmp_path / "cap.txt"
    port = open_port(f"spy://{pty.path}?file={capture}")
    try:
        port.write(b"\x01\x02\x00")
        assert os.read(pty.master, 16) == b"\x01\x02\x00"
    finally:
        port.close()
        pty.close()
    assert "TX" in capture.read_text()
