"""The output now and its setpoint in large digits, readable from the chair.

Why: while the handpiece moves on the scalp the practitioner glances at the screen for two
things — how much is going out, and how long is left. Both are as big as the countdown
(Textual's ``Digits``, 3 rows tall; 5 on a screen of 110×36 or more, see
``controller.ui.shared.tall_digits``). A figure that is not current is never shown as current: a
reading older than 0.3 s, or one received before the link went down, is dimmed with its age;
after 2 s it is replaced by dashes. The setpoint is the controller's own value (not a
measurement), so it is always current.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Label

from controller.ui.practitioner.run_text import Freshness, Readings, age_words
from controller.ui.shared import formatting as fmt
from controller.ui.shared.tall_digits import GrowingDigits

#: What the big figures show when there is nothing to show.
NO_DIGITS = "--.-V"


def volts_digits(dv: int | None) -> str:
    """0.1 V units as ``41.2V`` for :class:`Digits` (the ``V`` sits on the bottom row)."""
    return NO_DIGITS if dv is None else f"{dv / 10:.1f}V"


def output_caption(now: Readings) -> str:
    """At most 17 characters: ``Output now``, ``Output 0.8 s old``, ``Output, no link``."""
    if now.freshness is Freshness.FRESH:
        return "Output now"
    if now.freshness is Freshness.GONE:
        return "No output reading"
    if now.link_down:
        return "Output, no link"
    assert now.age_s is not None
    return f"Output {age_words(now.age_s)}"


class BigReadings(Widget):
    """Two boxes: the output now (live amplitude) and the setpoint, each a caption over digits."""

    DEFAULT_CSS = """
    BigReadings {
        layout: horizontal;
        width: auto;
        height: 4;
    }
    BigReadings .big-box {
        width: 17;
        height: 4;
    }
    BigReadings #out-box {
        margin-right: 1;
    }
    BigReadings .big-caption {
        width: 100%;
        height: 1;
        text-wrap: nowrap;
        text-overflow: ellipsis;
        text-style: bold;
    }
    BigReadings GrowingDigits {
        width: auto;
        height: 3;
    }
    BigReadings.-tall, BigReadings.-tall .big-box {
        height: 6;
    }
    BigReadings GrowingDigits.-tall {
        height: 5;
    }
    BigReadings #out-digits {
        text-style: bold;
    }
    BigReadings.-stale #out-digits {
        text-style: dim;
    }
    BigReadings.-stale #out-caption, BigReadings.-gone #out-caption {
        color: $warning;
    }
    BigReadings.-gone #out-digits {
        text-style: dim;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown = fmt.ChangeFilter()

    def compose(self) -> ComposeResult:
        with Vertical(id="out-box", classes="big-box"):
            yield Label("Output now", id="out-caption", classes="big-caption")
            yield GrowingDigits(NO_DIGITS, id="out-digits")
        with Vertical(id="set-box", classes="big-box"):
            yield Label("Set", id="set-caption", classes="big-caption")
            yield GrowingDigits(NO_DIGITS, id="set-digits")

    def show(self, now: Readings, setpoint_dv: int | None, max_dv: int | None) -> None:
        """Update both figures (only what changed is redrawn)."""
        state = now.freshness
        self.set_class(state is Freshness.STALE, "-stale")
        self.set_class(state is Freshness.GONE, "-gone")
        out = volts_digits(now.amplitude_dv) if now.shown else NO_DIGITS
        if self._shown.changed("out", out):
            self.query_one("#out-digits", GrowingDigits).update(out)
        caption = output_caption(now)
        if self._shown.changed("out-caption", caption):
            self.query_one("#out-caption", Label).update(caption, layout=False)
        setpoint = volts_digits(setpoint_dv)
        if self._shown.changed("set", setpoint):
            self.query_one("#set-digits", GrowingDigits).update(setpoint)
        set_caption = f"Set, max {fmt.volts(max_dv)}" if max_dv is not None else "Set"
        if self._shown.changed("set-caption", set_caption):
            self.query_one("#set-caption", Label).update(set_caption, layout=False)
