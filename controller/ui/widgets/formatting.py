"""Plain-text formatting of device units and session values for the screens.

Why a module of its own: every widget shows the same quantities (0.1 V, µA, Ω, ms) and a
practitioner must read them the same way everywhere. Pure functions, no widget imports, so
they are tested without a running app.
"""

from __future__ import annotations

from controller.session.model import Phase, StepStatus

#: What each phase is called on screen (short, upper case: it is a badge).
PHASE_LABELS: dict[Phase, str] = {
    Phase.PREFLIGHT: "CHECKING",
    Phase.REFUSED: "REFUSED",
    Phase.MANUAL: "MANUAL STEP",
    Phase.PLACE: "PLACE HANDPIECE",
    Phase.DELIVERING: "DELIVERING",
    Phase.HOLD: "HOLD",
    Phase.PAUSED: "PAUSED",
    Phase.STOPPING: "STOPPING",
    Phase.FAULT: "DEVICE FAULT",
    Phase.LINK_LOST: "CONNECTION LOST",
    Phase.RECOVERY: "RECONNECTED",
    Phase.FINISHED: "FINISHED",
}

#: One-character marks for a step's status in the step list.
STEP_MARKS: dict[StepStatus, str] = {
    StepStatus.PENDING: "·",
    StepStatus.ACTIVE: "▶",
    StepStatus.DONE: "✓",
    StepStatus.SKIPPED: "»",
    StepStatus.STOPPED: "■",
    StepStatus.INTERRUPTED: "✗",
}

CONTACT_LABELS: dict[str, str] = {
    "none": "NO CONTACT",
    "ok": "good",
    "marginal": "poor",
    "short": "SHORT",
}


def clock(ms: int | None) -> str:
    """``ms`` as ``m:ss`` (``h:mm:ss`` from an hour); ``--:--`` when unknown."""
    if ms is None:
        return "--:--"
    seconds = max(0, int(ms) + 999) // 1000  # a countdown shows 0:00 only when it is done
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"


def elapsed(ms: int | None) -> str:
    """A delivered time as ``m:ss`` (rounded down: never claims more than was delivered)."""
    if ms is None:
        return "--:--"
    seconds = max(0, int(ms)) // 1000
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}:{secs:02d}"


def volts(dv: int | None) -> str:
    """0.1 V units as ``40.0 V``."""
    return "--.- V" if dv is None else f"{dv / 10:.1f} V"


def milliamps(ua: int | None) -> str:
    """µA as ``2.31 mA``."""
    return "-.-- mA" if ua is None else f"{ua / 1000:.2f} mA"


def ohms(ohm: int | None) -> str:
    """Ω as ``820 Ω``, ``1.2 kΩ`` or ``> 1 MΩ`` (open circuit)."""
    if ohm is None:
        return "-- Ω"
    if ohm >= 1_000_000:
        return "> 1 MΩ"
    if ohm >= 10_000:
        return f"{ohm / 1000:.0f} kΩ"
    if ohm >= 1000:
        return f"{ohm / 1000:.1f} kΩ"
    return f"{ohm} Ω"


def celsius(dc: int | None) -> str:
    """0.1 °C as ``33.4 °C``."""
    return "--.- °C" if dc is None else f"{dc / 10:.1f} °C"


def contact(name: str | None) -> str:
    """The contact state in the practitioner's words."""
    if not name:
        return "--"
    return CONTACT_LABELS.get(name.lower(), name)


def zone(name: str | None) -> str:
    """``temporal_left`` as ``Temporal left``."""
    if not name:
        return ""
    return name.replace("_", " ").capitalize()


def percent(part: int, whole: int) -> int:
    """Whole percent of ``part`` in ``whole`` (0 when ``whole`` is 0), clamped to 0..100."""
    if whole <= 0:
        return 0
    return max(0, min(100, part * 100 // whole))


def ellipsize(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters with an ellipsis when it is longer."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    return text[: max(0, width - 1)] + "…"


class ChangeFilter:
    """Remembers what each child was last given, so unchanged text is not re-rendered.

    Why: the run screen refreshes 20 times a second; re-setting a ``Static`` to the same text
    still costs a layout pass, which adds up across a dozen widgets.
    """

    def __init__(self) -> None:
        self._last: dict[str, object] = {}

    def changed(self, key: str, value: object) -> bool:
        if self._last.get(key, _UNSET) == value:
            return False
        self._last[key] = value
        return True


_UNSET = object()
