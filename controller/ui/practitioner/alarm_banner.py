"""The alarm banner: the most urgent alarm in its IEC 60601-1-8 colour, flashing when it must.

Why: a practitioner with a handpiece in hand must see at a glance that something went wrong
and how urgent it is. High priority is red and flashes at 2 Hz, medium is yellow and flashes at
0.6 Hz, low is cyan and steady (``Priority.style``; colours are never the theme's). The flash is
a CSS class (``-flash-off``) toggled on a timer at the priority's frequency; an acknowledged
alarm stops flashing but stays shown until the engine clears it.
"""

from __future__ import annotations

from rich.text import Text
from textual.timer import Timer
from textual.widgets import Static

from controller.session.alarms import Alarm, Priority
from controller.ui.shared import formatting as fmt
from controller.ui.theme import alarm_colours

#: Background of the flash's "off" phase: the alarm colour moves to the text.
FLASH_OFF_BACKGROUND = "#000000"
PRIORITY_WORDS = {Priority.HIGH: "HIGH", Priority.MEDIUM: "MEDIUM", Priority.LOW: "LOW"}


def _title(alarm: Alarm) -> str:
    """The practitioner's words: their own emergency stop is never called a device fault."""
    return fmt.alarm_title(alarm.code.value, alarm.detail, alarm.title)


def alarm_lines(alarms: tuple[Alarm, ...], ack_key: str = "a") -> Text:
    """The banner's text: the first (most urgent) alarm in full, the others on one line."""
    if not alarms:
        return Text("No alarms", style="dim")
    top = alarms[0]
    state = []
    if top.acknowledged:
        state.append("acknowledged")
    if not top.condition_active:
        state.append("condition gone")
    suffix = f" ({', '.join(state)})" if state else ""
    text = Text()
    text.append(f" {PRIORITY_WORDS[top.priority]} ", style="bold reverse")
    text.append(f" {_title(top)}{suffix}", style="bold")
    if any(not alarm.acknowledged for alarm in alarms):
        text.append(f"  [{ack_key}] acknowledge", style="bold")
    text.append("\n")
    text.append(top.message)
    if len(alarms) > 1:
        others = "; ".join(f"{_title(a)} ({a.priority.value})" for a in alarms[1:])
        text.append(f"\nAlso: {others}")
    return text


class AlarmBanner(Static):
    """Shows ``SessionSnapshot.alarms`` (most urgent first); call :meth:`show_alarms`."""

    DEFAULT_CSS = """
    AlarmBanner {
        width: 100%;
        height: auto;
        min-height: 1;
        max-height: 5;
        padding: 0 1;
        color: $text-muted;
    }
    """

    def __init__(self, *, flash: bool = True, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._flash_enabled = flash
        self._alarms: tuple[Alarm, ...] = ()
        self._timer: Timer | None = None
        self._timer_interval = 0.0
        self._priority: Priority | None = None

    def on_mount(self) -> None:
        self.add_class("-none")
        self.update(alarm_lines(()))

    @property
    def alarms(self) -> tuple[Alarm, ...]:
        return self._alarms

    @property
    def priority(self) -> Priority | None:
        """Priority of the alarm shown first, or None."""
        return self._priority

    @property
    def flashing(self) -> bool:
        return self._timer is not None

    @property
    def flash_interval_s(self) -> float:
        """Seconds between the flash's on/off toggles (0 when steady)."""
        return self._timer_interval if self._timer is not None else 0.0

    def show_alarms(self, alarms: tuple[Alarm, ...]) -> None:
        """Show ``alarms`` (already sorted most urgent first); cheap when nothing changed."""
        if alarms == self._alarms:
            return
        self._alarms = alarms
        self.update(alarm_lines(alarms))
        top = alarms[0] if alarms else None
        self._priority = top.priority if top else None
        for priority in Priority:
            self.set_class(top is not None and top.priority is priority, f"-{priority.value}")
        self.set_class(top is None, "-none")
        interval = 0.0
        if top is not None and not top.acknowledged and self._flash_enabled:
            interval = alarm_colours(top.priority).flash_interval_s
        self._set_flash(interval)
        self._paint()

    def _set_flash(self, interval: float) -> None:
        if interval == self._timer_interval and (self._timer is not None) == (interval > 0):
            return
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self._timer_interval = interval
        self.remove_class("-flash-off")
        if interval > 0:
            self._timer = self.set_interval(interval, self._toggle)

    def _toggle(self) -> None:
        self.toggle_class("-flash-off")
        self._paint()

    def _paint(self) -> None:
        """Colours from the priority's data; the ``-flash-off`` class swaps them."""
        if self._priority is None:
            self.styles.clear_rule("background")
            self.styles.clear_rule("color")
            return
        colours = alarm_colours(self._priority)
        if self.has_class("-flash-off"):
            self.styles.background = FLASH_OFF_BACKGROUND
            self.styles.color = colours.background
        else:
            self.styles.background = colours.background
            self.styles.color = colours.foreground
