"""Shared set-up for the service-log tests: a service log in the test's own data folder, and a
check that no test leaves logging state behind (handlers, logger levels, exception hooks,
protected values) for the tests after it in the same worker."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controller import servicelog
from controller.servicelog import LOGGER_NAMES, ServiceLog

__all__ = ["json_lines", "wait_until"]


def _state() -> tuple[object, ...]:
    loggers = [logging.getLogger(name) for name in LOGGER_NAMES]
    return (
        tuple(tuple(logger.handlers) for logger in loggers),
        tuple(logger.level for logger in loggers),
        sys.excepthook,
        threading.excepthook,
    )


@pytest.fixture(autouse=True)
def no_leaks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test keeps to its own data folder (never the developer's) and leaves the logging
    machinery as it found it."""
    monkeypatch.setenv("EPM_HOME", str(tmp_path / "epm-home"))
    monkeypatch.delenv("EPM_PORT", raising=False)
    before = _state()
    try:
        yield
    finally:
        leaked = servicelog.current()
        if leaked is not None:
            leaked.close()
        servicelog.forget_protected()
        monkeypatch.undo()  # the test's own patches (a hook it replaced) go first
        assert leaked is None, "a test left its service log installed"
        assert _state() == before, "a test left logging handlers, levels or hooks behind"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.fixture
def service_log(data_dir: Path) -> Iterator[ServiceLog]:
    """The service log of ``data_dir``, installed for the test."""
    log = servicelog.install(data_dir, process="test")
    assert log.active, log.error
    try:
        yield log
    finally:
        log.close()


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the log's files (oldest first), each parsed as JSON."""
    lines: list[dict[str, Any]] = []
    for file in servicelog.log_files(path):
        lines += [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
    return lines


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            return False
        tick.wait(0.01)
    return True
