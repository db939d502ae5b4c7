"""The zone's time left in large digits, and the zone and session progress bars.

Why: "how long is left on this zone" is the question a practitioner asks most; it must be
readable from the chair, as big as the output figure beside it. It is the one place on the run
screen that uses mm:ss; everywhere else durations are words ("2 min 3 s"). While on HOLD,
paused, faulted or without a link the device holds the zone's time still and the countdown
says so. On a manual step it counts the step's minimum time down.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widget import Widget
from textual.widgets import Label, ProgressBar

from controller.session.model import Phase, SessionSnapshot
from controller.ui.practitioner.run_text import countdown, duration_words
from controller.ui.shared import formatting as fmt
from controller.ui.shared.tall_digits import GrowingDigits

#: Bars move in steps of 1/BAR_STEPS of their length (finer than a terminal cell), so the
#: 20 Hz refresh redraws a bar only when it visibly moves.
BAR_STEPS = 400


def bar_position(done: int, total: int) -> tuple[int, int]:
    """``(total, progress)`` for a ProgressBar, progress rounded down to 1/BAR_STEPS."""
    total = max(1, total)
    done = max(0, min(total, done))
    return BAR_STEPS, done * BAR_STEPS // total


#: Phases in which the device holds the zone's time still, with the reason shown over it.
FROZEN_PHASES: dict[Phase, str] = {
    Phase.HOLD: "FROZEN: hold",
    Phase.PAUSED: "FROZEN: paused",
    Phase.FAULT: "FROZEN: fault",
    Phase.LINK_LOST: "FROZEN: no link",
}


def time_left(snap: SessionSnapshot) -> tuple[int | None, str]:
    """The countdown's milliseconds (None: nothing counts) and its caption."""
    step = snap.current_step
    if snap.phase is Phase.MANUAL:
        if snap.manual_remaining_ms is None:
            return None, "Manual step"
        return snap.manual_remaining_ms, "Minimum time left"
    if step is not None and step.kind == "delivery":
        remaining = max(0, snap.zone_planned_ms - snap.zone_delivered_ms)
        return remaining, FROZEN_PHASES.get(snap.phase, "Zone time left")
    return None, ""


class ZoneProgress(Widget):
    """The countdown: a caption over ``Digits`` (mm:ss); dimmed while the time is frozen."""

    DEFAULT_CSS = """
    ZoneProgress {
        width: 17;
        height: 4;
    }
    ZoneProgress #countdown-label {
        width: 100%;
        height: 1;
        text-wrap: nowrap;
        text-style: bold;
    }
    ZoneProgress GrowingDigits {
        width: auto;
        height: 3;
    }
    ZoneProgress.-tall {
        height: 6;
    }
    ZoneProgress GrowingDigits.-tall {
        height: 5;
    }
    ZoneProgress.-frozen GrowingDigits {
        text-style: dim;
    }
    ZoneProgress.-frozen #countdown-label {
        color: $warning;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown = fmt.ChangeFilter()

    def compose(self) -> ComposeResult:
        yield Label("", id="countdown-label")
        yield GrowingDigits("--:--", id="countdown")

    def show(self, snap: SessionSnapshot) -> None:
        remaining, caption = time_left(snap)
        self.set_class(remaining is not None and snap.phase in FROZEN_PHASES, "-frozen")
        shown = countdown(remaining)
        if self._shown.changed("countdown", shown):
            self.query_one("#countdown", GrowingDigits).update(shown)
        if self._shown.changed("caption", caption):
            self.query_one("#countdown-label", Label).update(caption, layout=False)


def bar_lines(snap: SessionSnapshot) -> tuple[str, tuple[int, int], str, tuple[int, int]]:
    """(step text, step bar, session text, session bar) — durations in words."""
    step = snap.current_step
    if step is not None and step.kind == "delivery":
        step_text = (
            f"{duration_words(snap.zone_delivered_ms)} of {duration_words(snap.zone_planned_ms)}"
        )
        step_bar = bar_position(snap.zone_delivered_ms, snap.zone_planned_ms)
    elif step is not None and step.planned_ms:
        left = snap.manual_remaining_ms or 0
        step_text = f"{duration_words(step.planned_ms - left)} of {duration_words(step.planned_ms)}"
        step_bar = bar_position(step.planned_ms - left, step.planned_ms)
    elif step is not None:
        step_text, step_bar = "no timer", bar_position(0, 1)
    else:
        step_text, step_bar = "no step active", bar_position(0, 1)
    session_text = (
        f"{duration_words(snap.session_delivered_ms)} of {duration_words(snap.session_planned_ms)}"
    )
    session_bar = bar_position(snap.session_delivered_ms, snap.session_planned_ms)
    return step_text, step_bar, session_text, session_bar


class SessionBars(Widget):
    """Two lines: the zone's (or manual step's) bar and the whole session's, with words."""

    DEFAULT_CSS = """
    SessionBars {
        width: 100%;
        height: 2;
    }
    SessionBars > Horizontal {
        height: 1;
        width: 100%;
    }
    SessionBars .bar-name {
        width: 8;
        height: 1;
        text-style: bold;
    }
    SessionBars ProgressBar {
        width: 14;
        height: 1;
    }
    SessionBars Bar {
        width: 14;
    }
    SessionBars .bar-text {
        width: 1fr;
        height: 1;
        margin-left: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown = fmt.ChangeFilter()

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label("Zone", id="zone-name", classes="bar-name")
            yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="zone-bar")
            yield Label("", id="zone-label", classes="bar-text")
        with Horizontal():
            yield Label("Session", classes="bar-name")
            yield ProgressBar(total=1, show_eta=False, show_percentage=False, id="session-bar")
            yield Label("", id="session-label", classes="bar-text")

    def show(self, snap: SessionSnapshot) -> None:
        step = snap.current_step
        name = "Step" if step is not None and step.kind == "manual" else "Zone"
        if self._shown.changed("zone-name", name):
            self.query_one("#zone-name", Label).update(name, layout=False)
        step_text, step_bar, session_text, session_bar = bar_lines(snap)
        if self._shown.changed("zone-label", step_text):
            self.query_one("#zone-label", Label).update(step_text, layout=False)
        if self._shown.changed("zone-bar", step_bar):
            self.query_one("#zone-bar", ProgressBar).update(total=step_bar[0], progress=step_bar[1])
        if self._shown.changed("session-label", session_text):
            self.query_one("#session-label", Label).update(session_text, layout=False)
        if self._shown.changed("session-bar", session_bar):
            self.query_one("#session-bar", ProgressBar).update(
                total=session_bar[0], progress=session_bar[1]
            )
