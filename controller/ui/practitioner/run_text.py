"""The run screen's words: durations, the age of readings, and why a key does nothing now.

Why a module of its own: the run screen is read at a glance from the chair, so every widget on
it must say things the same way — durations as "16 min 0 s" (only the big countdown uses
mm:ss), stale readings dimmed with their age and "—" once they are too old to mean anything,
and a plain sentence when a key does not apply. Pure functions, no widget imports, so they are
tested without a running app.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from controller.device.views import Contact
from controller.device.views import TelemetrySample as Telemetry
from controller.session.alarms import AlarmCode
from controller.session.model import Phase, SessionSnapshot
from controller.ui.shared import formatting as fmt

#: Readings older than this are shown dimmed with their age (the supervisor's threshold).
STALE_AFTER_S = 0.3
#: Readings older than this are not shown at all ("—"): they say nothing about the output now.
GONE_AFTER_S = 2.0
#: What a reading that is not shown looks like.
NO_VALUE = "—"


def duration_words(ms: int | None, *, round_up: bool = False) -> str:
    """``960_000`` as ``16 min 0 s``; ``45 s`` under a minute; ``1 h 5 min 0 s`` from an hour.

    ``round_up`` for a time still to wait (never says less than is left), otherwise rounded
    down (never claims more than was delivered).
    """
    return fmt.duration(ms, round_up=round_up, unknown=NO_VALUE)


def countdown(ms: int | None) -> str:
    """The big countdown: ``mm:ss``, rounded up (``00:00`` only when it is done)."""
    if ms is None:
        return "--:--"
    seconds = (max(0, int(ms)) + 999) // 1000
    minutes, secs = divmod(seconds, 60)
    return f"{minutes:02d}:{secs:02d}"


def age_words(age_s: float) -> str:
    """How old a reading is: ``0.8 s old`` (tenths under 10 s), ``12 s old``, ``2 min 5 s old``."""
    if age_s < 10:
        return f"{age_s:.1f} s old"
    return f"{duration_words(int(age_s * 1000))} old"


class Freshness(Enum):
    FRESH = "fresh"
    """Younger than :data:`STALE_AFTER_S` on a link that is up: shown as current."""
    STALE = "stale"
    """Older, or the link is down: shown dimmed with its age, never as current."""
    GONE = "gone"
    """No reading, or older than :data:`GONE_AFTER_S`: shown as "—"."""


def freshness(age_s: float | None, link_down: bool) -> Freshness:
    if age_s is None or age_s > GONE_AFTER_S:
        return Freshness.GONE
    if link_down or age_s > STALE_AFTER_S:
        return Freshness.STALE
    return Freshness.FRESH


@dataclass(frozen=True)
class Readings:
    """The latest measurements as the run screen shows them, with how much to trust them."""

    amplitude_dv: int | None
    current_ua: int | None
    current_limit_ua: int | None
    impedance_ohm: int | None
    temperature_dc: int | None
    contact: str | None
    faults: tuple[str, ...]
    age_s: float | None
    """Seconds since the measurements arrived (None: none arrived yet)."""
    link_down: bool
    freshness: Freshness

    @property
    def shown(self) -> bool:
        """Whether values are shown at all (fresh or stale, not gone)."""
        return self.freshness is not Freshness.GONE

    def age_note(self) -> str:
        """``""`` when fresh; ``0.8 s old``, ``no link, 0.8 s old``, ``none for 3 s``, …"""
        if self.freshness is Freshness.FRESH:
            return ""
        prefix = "no link, " if self.link_down else ""
        if self.age_s is None:
            return f"{prefix}none yet"
        if self.freshness is Freshness.GONE:
            return f"{prefix}none for {duration_words(int(self.age_s * 1000))}"
        return f"{prefix}{age_words(self.age_s)}"


#: The device's fault names in the practitioner's words.
FAULT_WORDS: dict[str, str] = {
    "ESTOP": "emergency stop",
    "WATCHDOG": "watchdog (the unit lost contact with epm)",
    "OVERCURRENT": "over-current",
    "SHORT_CIRCUIT": "short circuit",
    "OVERTEMP": "handpiece too hot",
    "HANDPIECE_REMOVED": "handpiece removed",
    "OUTPUT_FAULT": "output fault",
    "SELFTEST": "self-test failed",
}


def fault_words(faults: Sequence[str]) -> str:
    """``("OVERCURRENT", "BIT9")`` as ``over-current, unknown fault``."""
    return ", ".join(FAULT_WORDS.get(name, "unknown fault") for name in faults)


def link_is_down(snap: SessionSnapshot) -> bool:
    """The link is lost or reconnecting (a figure received before is no longer current)."""
    if snap.phase is Phase.LINK_LOST:
        return True
    return snap.link is not None and snap.link.state != "up"


def _contact_name(code: int) -> str:
    try:
        return Contact(code).name.lower()
    except ValueError:
        return "unknown"


def readings(
    snap: SessionSnapshot, last_frame: Telemetry | None, frame_age_s: float | None
) -> Readings:
    """What to show from the snapshot's live view.

    The age is the live view's own (``LiveView.age_s``: seconds since the engine received the
    telemetry, measured when the snapshot was built). Only without a live view (no telemetry
    reached the engine's view yet) the last drained frame is used, aged from when the screen
    drained it (``frame_age_s``).
    """
    live = snap.live
    down = link_is_down(snap)
    if live is not None:
        age: float | None = live.age_s
        return Readings(
            amplitude_dv=live.amplitude_dv,
            current_ua=live.current_ua,
            current_limit_ua=live.current_limit_ua or None,
            impedance_ohm=live.impedance_ohm,
            temperature_dc=live.temperature_dc,
            contact=live.contact,
            faults=live.faults,
            age_s=age,
            link_down=down,
            freshness=freshness(age, down),
        )
    if last_frame is not None:
        return Readings(
            amplitude_dv=last_frame.amplitude_dv,
            current_ua=last_frame.current_ua,
            current_limit_ua=None,
            impedance_ohm=last_frame.impedance_ohm,
            temperature_dc=last_frame.temperature_dc,
            contact=_contact_name(last_frame.contact),
            faults=(),
            age_s=frame_age_s,
            link_down=down,
            freshness=freshness(frame_age_s, down),
        )
    return Readings(None, None, None, None, None, None, (), None, down, Freshness.GONE)


# --- why a key does nothing now ---------------------------------------------------------------

#: The session's situation, as the end of "… while <this>".
PHASE_NOW: dict[Phase, str] = {
    Phase.PREFLIGHT: "the device is still being checked",
    Phase.REFUSED: "the session was refused",
    Phase.MANUAL: "this is a manual step (output is off)",
    Phase.PLACE: "the handpiece is being placed",
    Phase.DELIVERING: "the zone is delivering",
    Phase.HOLD: "the device is on hold (no skin contact)",
    Phase.PAUSED: "the session is paused",
    Phase.STOPPING: "output is ramping down",
    Phase.FAULT: "the device has a fault",
    Phase.LINK_LOST: "the connection to the device is lost",
    Phase.RECOVERY: "the device reconnected and waits for your decision",
    Phase.FINISHED: "the session has ended",
}

#: What each key is for (said first, so the sentence also teaches the key).
ACTION_PURPOSE: dict[str, str] = {
    "confirm_start": "Enter starts the zone once the handpiece is on it",
    "confirm_done": "Enter marks a manual step as done",
    "intensity_up": "+ raises the intensity while placing or delivering a zone",
    "intensity_down": "- lowers the intensity while placing or delivering a zone",
    "pause": "Space pauses output while a zone is delivering",
    "resume": "Space resumes a paused zone",
    "stop": "s stops the session",
    "skip": "k skips the current step",
    "end": "e ends the session early",
    "acknowledge": "a acknowledges the alarms shown",
    "clear_faults": "c clears the device's faults after a fault alarm was acknowledged",
    "continue": "n continues the zone after a fault or a reconnection",
    "reconnect": "r tries the connection again once reconnecting gave up",
}


def _has_unacknowledged(snap: SessionSnapshot) -> bool:
    return any(not alarm.acknowledged for alarm in snap.alarms)


def _fault_alarm_unacknowledged(snap: SessionSnapshot) -> bool:
    return any(
        alarm.code is AlarmCode.DEVICE_FAULT and not alarm.acknowledged for alarm in snap.alarms
    )


def why_not(action: str, snap: SessionSnapshot | None) -> str:
    """One plain sentence: why ``action`` (a run-screen action) does nothing now."""
    purpose = ACTION_PURPOSE.get(action, "This key")
    if snap is None:
        return f"{purpose}; the session has not started yet."
    phase = snap.phase
    now = PHASE_NOW.get(phase, "the session is busy")
    if action == "confirm_done" and phase is Phase.MANUAL and snap.manual_remaining_ms:
        wait = duration_words(snap.manual_remaining_ms, round_up=True)
        step = snap.current_step
        least = f": this step takes at least {duration_words(step.planned_ms)}" if step else ""
        return f"Wait {wait} more{least}. Then press Enter when the step is done."
    if action == "confirm_start" and phase is Phase.PLACE:
        return (
            "The zone cannot start yet: it starts once skin contact is good, and not while a "
            "stop is under way."
        )
    if action == "acknowledge":
        if not _has_unacknowledged(snap):
            return "There is no alarm to acknowledge: every alarm shown was acknowledged."
        return f"{purpose}; not possible while {now}."
    if action == "clear_faults":
        if _fault_alarm_unacknowledged(snap):
            return "Acknowledge the fault alarm first (a), then clear the faults (c)."
        return f"{purpose}; there is no fault to clear while {now}."
    if action == "continue" and phase in (Phase.FAULT, Phase.RECOVERY):
        return "Clear the device's faults first (a, then c); then n continues the zone."
    if action == "reconnect" and phase is Phase.LINK_LOST:
        return "epm is reconnecting by itself; r applies once it has given up (after 30 s)."
    if action in ("intensity_up", "intensity_down") and phase in (
        Phase.PLACE,
        Phase.DELIVERING,
        Phase.HOLD,
        Phase.PAUSED,
    ):
        if action == "intensity_up":
            if phase is Phase.HOLD:
                return "The intensity cannot be raised on hold: put the handpiece back first."
            return "The intensity is at this step's maximum."
        return "The intensity is at its lowest: press Space to pause output instead."
    if phase is Phase.STOPPING:
        return f"{purpose}; output is ramping down now, wait for the next step."
    return f"{purpose}; not possible while {now}."
