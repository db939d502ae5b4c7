"""The emergency-stop key, taken off the terminal's input thread before the event loop.

Why: a key typed in a terminal reaches a Textual app in two hops. The driver's input thread
reads and parses the bytes, then queues a ``Key`` message for the app's event loop; the
binding runs when the loop gets to it. While the loop is busy (a screen refresh, a large
table, a slow widget) the key waits: measured under a 1000 Hz telemetry stream, F12 waited
up to 52 ms in the queue and 0.2 ms from the action to the ESTOP bytes. The safety rules say
the emergency stop is never queued behind other traffic, so F12 (and Ctrl+E) are acted on
where they are parsed: the driver's input thread calls the app's ``estop_from_input`` (which
sends ESTOP from that thread, never waiting on the loop) and only then posts the message that
lets the screens say so. The app's own F12 binding stays for keys that do not come through a
driver's input thread (tests' ``pilot.press``, the command palette).
"""

from __future__ import annotations

from typing import Any, Protocol

from textual import events
from textual.driver import Driver
from textual.message import Message

#: Keys that stop the device wherever the focus is.
ESTOP_KEYS = frozenset({"f12", "ctrl+e"})


class EstopTarget(Protocol):
    """What the input thread calls: ESTOP now, on the calling thread, never raising."""

    def estop_from_input(self, key: str) -> None: ...


class EstopKeyDriver(Driver):
    """Mixin for a Textual driver class: F12 / Ctrl+E stop the device on the input thread."""

    def send_message(self, message: Message) -> None:
        if isinstance(message, events.Key) and message.key in ESTOP_KEYS:
            target: Any = self._app
            hook = getattr(target, "estop_from_input", None)
            if callable(hook):
                hook(message.key)
                return
        super().send_message(message)


def with_estop_key(base: type[Driver]) -> type[Driver]:
    """``base`` (the platform's driver class) with the emergency-stop key taken first."""
    if issubclass(base, EstopKeyDriver):
        return base
    return type(f"Estop{base.__name__}", (EstopKeyDriver, base), {})
