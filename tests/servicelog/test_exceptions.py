"""Every exception lands in the service log with its traceback: one no thread caught
(``threading.excepthook``), one the main thread did not catch (``sys.excepthook``), and the
code base's own ``log.exception`` calls (a device listener that raised); the hooks that were
there before still run."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from types import TracebackType

import pytest

from controller import servicelog
from controller.device import DeviceClient
from simulator import Simulator, register_url_handler
from tests.servicelog.conftest import json_lines, wait_until


def test_an_exception_in_a_thread_lands_with_its_traceback(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.thread.name))
    log = servicelog.install(data_dir, process="test")
    try:

        def worker_body() -> None:
            raise KeyError("calibration table")

        thread = threading.Thread(target=worker_body, name="epm-test-worker")
        thread.start()
        thread.join()
        assert log.flush()
    finally:
        log.close()
    assert threading.excepthook is not log._thread_hook  # put back as it was
    assert seen == ["epm-test-worker"]  # the hook before ours still ran
    (entry,) = [e for e in json_lines(log.path) if e.get("event") == "uncaught_exception"]
    assert entry["level"] == "CRITICAL" and entry["area"] == "crash"
    assert entry["thread"] == "epm-test-worker" and entry["in_thread"] == "epm-test-worker"
    assert "in worker_body" in entry["exc"] and "KeyError: 'calibration table'" in entry["exc"]


def test_an_uncaught_exception_in_the_main_thread_goes_through_sys_excepthook(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[type[BaseException]] = []

    def previous(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        seen.append(kind)

    monkeypatch.setattr(sys, "excepthook", previous)
    log = servicelog.install(data_dir, process="test")
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            sys.excepthook(*sys.exc_info())  # type: ignore[arg-type]  # Ctrl+C: no entry
        assert log.flush()
    finally:
        log.close()
    assert sys.excepthook is previous
    assert seen == [OSError, KeyboardInterrupt]
    (entry,) = [e for e in json_lines(log.path) if e.get("event") == "uncaught_exception"]
    assert entry["msg"] == "uncaught exception: OSError: [Errno 28] No space left on device"
    assert entry["exc"].startswith("Traceback") and "test_exceptions.py" in entry["exc"]


def test_a_device_listener_that_raises_is_logged_with_its_traceback(data_dir: Path) -> None:
    register_url_handler()
    log = servicelog.install(data_dir, process="test")
    try:
        with Simulator(speed=50, seed=8) as sim:
            device = DeviceClient(sim.url())

            def careless_listener(event: object) -> None:
                raise ZeroDivisionError("listener bug")

            device.add_listener(careless_listener)
            try:
                device.connect()
                assert wait_until(lambda: device.listener_errors >= 1)
            finally:
                device.close()
        assert wait_until(
            lambda: (
                log.flush()
                and any(e["msg"] == "device listener raised" for e in json_lines(log.path))
            )
        )
    finally:
        log.close()
    entry = next(e for e in json_lines(log.path) if e["msg"] == "device listener raised")
    assert entry["level"] == "ERROR" and entry["thread"] == "epm-link-dispatch"
    assert "careless_listener" in entry["exc"] and "ZeroDivisionError" in entry["exc"]
