"""The zone countdown in large digits, with zone and whole-session progress bars.

Why: "how long is left on this zone" is the question a practitioner asks most; it must be
readable from the chair. While on HOLD or PAUSED the zone's time is frozen by the device and
the countdown says so.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Digits, Label, ProgressBar

from controller.session.model import Phase, SessionSnapshot
from controller.ui.widgets import formatting as fmt

#: Bars move in steps of 1/BAR_STEPS of their length (finer than a terminal cell), so the
#: 20 Hz refresh redraws a bar only when it visibly moves.
BAR_STEPS = 400


def bar_position(done: int, total: int) -> tuple[int, int]:
    """``(total, progress)`` for a ProgressBar, progress rounded down to 1/BAR_STEPS."""
    total = max(1, total)
    done = max(0, min(total, done))
    return BAR_STEPS, done * BAR_STEPS // total


#: Phases in which the device holds the zone's time still, with the reason shown under it.
FROZEN_PHASES: dict[Phase, str] = {
    Phase.HOLD: "FROZEN: hold",
    Phase.PAUSED: "FROZEN: paused",
    Phase.FAULT: "FROZEN: fault",
    Phase.LINK_LOST: "FROZEN: no link",
}


class ZoneProgress(Widget):
    """Countdown (``Digits``) on the left; labelled zone and session bars on the right."""

    DEFAULT_CSS = """
    ZoneProgress {
        height: 4;
        width: 100%;
    }
    ZoneProgress > Horizontal {
        height: 4;
    }
    ZoneProgress Digits {
        width: 16;
        height: 3;
        margin: 0 1;
    }
    ZoneProgress #countdown-box {
        width: 18;
        height: 4;
    }
    ZoneProgress #countdown-label {
        width: 100%;
        height: 1;
        padding-left: 1;
        text-wrap: nowrap;
    }
    ZoneProgress #bars {
        width: 1fr;
        height: 4;
    }
    ZoneProgress #bars Label {
        height: 1;
        width: 100%;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    ZoneProgress ProgressBar {
        height: 1;
    }
    ZoneProgress.-frozen Digits {
        text-style: dim;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown = fmt.ChangeFilter()

    def compose(self) -> ComposeResult:
        with Horizontal():
            with Vertical(id="countdown-box"):
                yield Digits("--:--", id="countdown")
                yield Label("", id="countdown-label")
            with Vertical(id="bars"):
                yield Label("", id="zone-label")
                yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="zone-bar")
                yield Label("", id="session-label")
                yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="session-bar")

    def show(self, snap: SessionSnapshot) -> None:
        step = snap.current_step
        frozen = snap.phase in FROZEN_PHASES
        self.set_class(frozen, "-frozen")
        if snap.phase is Phase.MANUAL:
            remaining = snap.manual_remaining_ms
            caption = "manual timer" if remaining is not None else "manual step"
        elif step is not None and step.kind == "delivery":
            remaining = max(0, snap.zone_planned_ms - snap.zone_delivered_ms)
            caption = "zone time left"
        else:
            remaining = None
            caption = ""
        if frozen and remaining is not None:
            caption = FROZEN_PHASES[snap.phase]
        if self._shown.changed("countdown", fmt.clock(remaining)):
            self.query_one("#countdown", Digits).update(fmt.clock(remaining))
        if self._shown.changed("caption", caption):
            self.query_one("#countdown-label", Label).update(caption, layout=False)

        if step is not None and step.kind == "delivery":
            zone_name = fmt.zone(step.zone) or step.title
            zone_text = (
                f"Zone {zone_name}: {fmt.elapsed(snap.zone_delivered_ms)} of "
                f"{fmt.clock(snap.zone_planned_ms)} delivered"
            )
            zone_total, zone_done = max(1, snap.zone_planned_ms), snap.zone_delivered_ms
        elif step is not None:
            zone_text = f"Manual step: {step.title}"
            zone_total = max(1, step.planned_ms)
            zone_done = (
                step.planned_ms - snap.manual_remaining_ms
                if snap.manual_remaining_ms is not None
                else 0
            )
        else:
            zone_text, zone_total, zone_done = "No step active", 1, 0
        if self._shown.changed("zone-label", zone_text):
            self.query_one("#zone-label", Label).update(zone_text, layout=False)
        zone_bar = bar_position(zone_done, zone_total)
        if self._shown.changed("zone-bar", zone_bar):
            self.query_one("#zone-bar", ProgressBar).update(total=zone_bar[0], progress=zone_bar[1])
        session_total = max(1, snap.session_planned_ms)
        session_text = (
            f"Session: {fmt.elapsed(snap.session_delivered_ms)} of "
            f"{fmt.clock(snap.session_planned_ms)} delivered"
        )
        if self._shown.changed("session-label", session_text):
            self.query_one("#session-label", Label).update(session_text, layout=False)
        session_bar = bar_position(snap.session_delivered_ms, session_total)
        if self._shown.changed("session-bar", session_bar):
            self.query_one("#session-bar", ProgressBar).update(
                total=session_bar[0], progress=session_bar[1]
            )
