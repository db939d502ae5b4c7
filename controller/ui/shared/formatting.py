"""Plain-text formatting of device units and session values for the screens.

Why a module of its own: every widget shows the same quantities (0.1 V, µA, Ω, ms) and a
practitioner must read them the same way everywhere. Pure functions, no widget imports, so
they are tested without a running app.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from controller.records.words import duration_words
from controller.session.alarms import AlarmCode
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


def duration(ms: int | None, *, round_up: bool = False, unknown: str = "not known") -> str:
    """A duration in words, for sentences, lists and records: ``16 min 0 s``, ``45 s``,
    ``1 h 2 min 5 s``. Rounded down to the second (never claims more than there was), or up
    with ``round_up`` (a time still to wait never says less than is left); ``unknown`` when
    unknown. Countdowns keep :func:`clock` (``m:ss``). The one formatter is
    :func:`controller.records.words.duration_words` (the printed documents use it too)."""
    return duration_words(ms, round_up=round_up, unknown=unknown)


def seconds(value: float | None) -> str:
    """A duration given in seconds (protocol files count in seconds), in words."""
    return duration(None if value is None else round(value * 1000))


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


# --- faults, alarms and the device's state in plain words ------------------------------------

#: Each fault bit the device can latch, by its name (``Fault.names()``), in plain words.
FAULT_WORDS: dict[str, str] = {
    "ESTOP": "emergency stop",
    "WATCHDOG": "watchdog (the device stopped hearing from this computer)",
    "OVERCURRENT": "over-current",
    "SHORT_CIRCUIT": "short circuit",
    "OVERTEMP": "handpiece too hot",
    "HANDPIECE_REMOVED": "handpiece removed",
    "OUTPUT_FAULT": "output fault",
    "SELFTEST": "self-test failed",
}

#: Fault bits by number, for texts that carry the raw bit mask.
_FAULT_BITS = (
    "ESTOP",
    "WATCHDOG",
    "OVERCURRENT",
    "SHORT_CIRCUIT",
    "OVERTEMP",
    "HANDPIECE_REMOVED",
    "OUTPUT_FAULT",
    "SELFTEST",
)

#: The device's own states (``State`` names) in plain words.
DEVICE_STATE_WORDS: dict[str, str] = {
    "IDLE": "idle",
    "READY": "step set up, waiting to start",
    "RUNNING": "delivering",
    "PAUSED": "paused (output off)",
    "HOLD": "on hold (no skin contact)",
    "STOPPING": "ramping down",
    "FAULT": "stopped by a fault (output off)",
}

#: Waveforms (``Waveform`` names) and handpieces in plain words.
WAVEFORM_WORDS: dict[str, str] = {"MONO_SQUARE": "monophasic", "BI_SQUARE": "biphasic"}
POLARITY_WORDS: dict[str, str] = {
    "positive": "positive",
    "negative": "negative",
    "alternate_pulse": "alternating every pulse",
    "alternate_burst": "alternating every burst",
}


def words(name: str | None) -> str:
    """An identifier (``scalp_roller``, ``SCALP_ROLLER``) as words: ``scalp roller``."""
    return (name or "").replace("_", " ").lower()


def fault_names_of_bits(bits: int) -> list[str]:
    """The fault names of a raw bit mask (unknown bits as ``bit N``)."""
    names = []
    for bit in range(16):
        if bits & (1 << bit):
            names.append(_FAULT_BITS[bit] if bit < len(_FAULT_BITS) else f"bit {bit}")
    return names


def fault_words(names: Iterable[str]) -> str:
    """``["ESTOP", "OVERCURRENT"]`` as ``emergency stop and over-current``; ``none``."""
    words = [FAULT_WORDS.get(str(n).upper(), str(n).replace("_", " ").lower()) for n in names]
    if not words:
        return "none"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


def device_state(name: str | None) -> str:
    """The device's state (``FAULT``) in plain words."""
    if not name:
        return "not known"
    return DEVICE_STATE_WORDS.get(name.upper(), name.replace("_", " ").lower())


def is_estop_only(faults: Iterable[str]) -> bool:
    """True when the only latched fault is the emergency stop."""
    names = {str(n).upper() for n in faults}
    return names == {"ESTOP"}


def alarm_title(code: str, detail: Mapping[str, object] | None = None, title: str = "") -> str:
    """An alarm's title in the practitioner's words: a device fault that is only the
    emergency stop is called "Emergency stop" (the practitioner's own, or epm's), never
    "Device fault"; other device faults name the fault."""
    faults = (detail or {}).get("faults")
    names = [str(n) for n in faults] if isinstance(faults, (list, tuple)) else []
    if code == AlarmCode.DEVICE_FAULT.value:
        if is_estop_only(names):
            return "Emergency stop"
        if names:
            return f"Device fault: {fault_words(names)}"
    if title:
        return title
    try:
        from controller.session.alarms import ALARM_SPECS

        return ALARM_SPECS[AlarmCode(code)].title
    except (KeyError, ValueError):
        return str(code).replace("_", " ").capitalize()


def phase_label(phase: Phase, faults: Iterable[str] = ()) -> str:
    """The phase badge; a FAULT that is only the emergency stop reads ``EMERGENCY STOP``."""
    if phase is Phase.FAULT and is_estop_only(faults):
        return "EMERGENCY STOP"
    return PHASE_LABELS.get(phase, phase.value.upper())


# --- text written elsewhere (the engine, the rules), shown to the practitioner ----------------

#: Protocol and device field names that may appear in messages, in plain words.
FIELD_WORDS: dict[str, str] = {
    "amplitude_v": "starting intensity",
    "amplitude_max_v": "the step's maximum intensity",
    "amplitude_dv": "intensity",
    "amplitude_max_dv": "the step's maximum intensity",
    "pulse_width_us": "pulse width",
    "frequency_hz": "pulse rate",
    "current_limit_ma": "current limit",
    "current_limit_ua": "current limit",
    "duration_s": "duration",
    "ramp_up_s": "ramp-up time",
    "ramp_down_s": "ramp-down time",
    "on_ms": "burst on time",
    "off_ms": "burst off time",
    "interval_days": "days between sessions",
    "maintenance_interval_days": "days between maintenance sessions",
    "step_elapsed_ms": "time delivered in the step",
    "max_step_ms": "longest step",
    "serum_lot": "serum lot number",
    "client_code": "client code",
}

_UNIT_SUFFIX = r"(?:v|dv|us|hz|ma|ua|s|ms|days|ohm|dc|mj)"
_FIELD = re.compile(rf"`?\b([a-z][a-z0-9]*(?:_[a-z0-9]+)*_{_UNIT_SUFFIX})\b`?")
_HEX_FAULTS = re.compile(r"\b(faults?(?: seen)?) 0x([0-9a-fA-F]+)\b")
_HEX = re.compile(r"\b0x([0-9a-fA-F]+)\b")
_SECONDS = re.compile(r"\b(\d+(?:\.\d+)?) ?s\b")
_PART_OF_SECONDS = re.compile(r"\b(\d+(?:\.\d+)?) of (\d+(?:\.\d+)?) ?s\b")
_MILLISECONDS = re.compile(r"\b(\d+(?:\.\d+)?) ?ms\b")


def _field(match: re.Match[str]) -> str:
    name = match.group(1)
    if name in FIELD_WORDS:
        return FIELD_WORDS[name]
    return re.sub(rf"_{_UNIT_SUFFIX}$", "", name).replace("_", " ")


def _hex_faults(match: re.Match[str]) -> str:
    return f"{match.group(1)}: {fault_words(fault_names_of_bits(int(match.group(2), 16)))}"


def _seconds(match: re.Match[str]) -> str:
    text = match.group(1)
    value = float(text)
    whole = "." not in text or len(text.split(".")[1]) == 1
    if value < 60 and whole:
        return match.group(0)  # "0.5 s", "10 s": a plain figure already
    return duration(int(value * 1000))


def _milliseconds(match: re.Match[str]) -> str:
    value = float(match.group(1))
    if value < 1000:
        return match.group(0)
    return duration(int(value))


def plain_words(text: str) -> str:
    """A message written elsewhere (the engine, the protocol rules), in the practitioner's
    words: field names (``amplitude_max_v``) become words, a fault mask in hex becomes the
    faults' names, other hex numbers decimal, and raw durations (``234.136 s``,
    ``300000 ms``, ``960 s``) read ``3 min 54 s``."""
    text = _FIELD.sub(_field, text)
    text = _HEX_FAULTS.sub(_hex_faults, text)
    text = _HEX.sub(lambda m: str(int(m.group(1), 16)), text)
    text = _MILLISECONDS.sub(_milliseconds, text)
    text = _PART_OF_SECONDS.sub(_part_of_seconds, text)
    return _SECONDS.sub(_seconds, text)


def _part_of_seconds(match: re.Match[str]) -> str:
    """``40 of 120 s``: both are seconds; both read the same way."""
    part, whole = float(match.group(1)), float(match.group(2))
    if whole < 60 and part == int(part) and whole == int(whole):
        return match.group(0)
    return f"{duration(int(part * 1000))} of {duration(int(whole * 1000))}"


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
