"""Running slow work (loading a library, checking a protocol, exporting) off the UI thread.

Why: the emergency stop is a key handled on the UI thread, so nothing may block that thread
for long — and loading a folder of protocols with ruamel.yaml takes ~40 ms a file, an export of
a long session a second or more. The work runs in a daemon thread (it cannot be cancelled and
quitting must never wait for it); its result is handed to ``done`` on the UI thread with
``call_from_thread`` (from this thread — never from the serial reader). ``done`` must check that
its screen is still shown. ``work`` returns its outcome (errors included) instead of raising:
an exception in it is turned into :class:`Failed`, never a lost traceback.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from textual.app import App

T = TypeVar("T")


@dataclass(frozen=True)
class Failed:
    """The work raised: ``message`` says what went wrong."""

    message: str


def run_in_background(
    app: App[Any], name: str, work: Callable[[], T], done: Callable[[T | Failed], None]
) -> threading.Thread:
    """Run ``work()`` in a daemon thread called ``name``; then ``done(result)`` on the UI
    thread (skipped when the app has quit meanwhile)."""

    def run() -> None:
        try:
            result: T | Failed = work()
        except Exception as exc:
            result = Failed(f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(RuntimeError):  # the app is no longer running
            app.call_from_thread(done, result)

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
