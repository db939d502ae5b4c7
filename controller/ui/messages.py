"""Textual messages that carry discrete events from worker threads to the UI.

Why: only *discrete* events (a session notice, the device connected, the engine's preflight
finished) travel as messages; ``App.post_message`` is thread-safe, so a link or engine thread
can post one without waiting for the UI. Continuous data (telemetry) never does: screens drain
it on a timer (see ``docs/architecture.md``, Threads).
"""

from __future__ import annotations

from textual.message import Message

from controller.device import DeviceInfo
from controller.session.model import SessionNotice


class SessionUpdate(Message):
    """The session engine published a notice (phase change, alarm, step, finished)."""

    def __init__(self, notice: SessionNotice) -> None:
        super().__init__()
        self.notice = notice


class DeviceConnected(Message):
    """The handshake with the device succeeded."""

    def __init__(self, info: DeviceInfo) -> None:
        super().__init__()
        self.info = info


class DeviceConnectFailed(Message):
    """Connecting failed; ``message`` says what is wrong and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message


class EngineStartFinished(Message):
    """``engine.start()`` returned (the preflight ran) or raised (``error`` says why)."""

    def __init__(self, error: str | None = None) -> None:
        super().__init__()
        self.error = error
