"""The UI's themes and the fixed alarm colours.

Why: IEC 60601-1-8 gives alarm priorities their colours (high red, medium yellow, low cyan).
A practitioner must never mistake a theme colour for an alarm, so alarm colours are not taken
from the theme: they come from :attr:`controller.session.alarms.Priority.style` and stay the
same in every theme. The themes offered here avoid red, yellow and cyan hues for everything
else (checked by :func:`theme_conflicts` and the tests), and the command palette offers only
these themes.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

from textual.color import Color
from textual.theme import Theme

from controller.session.alarms import Priority

#: Bright, unmistakable colour of the SIMULATOR marker (magenta: no alarm uses it).
SIM_BANNER_BACKGROUND = "#b0009a"
SIM_BANNER_FOREGROUND = "#ffffff"

#: A theme colour closer than this (degrees of hue) to an alarm hue could be mistaken for it.
MIN_HUE_DISTANCE = 25.0
#: Colours with less saturation than this are greys: they carry no hue to confuse.
GREY_SATURATION = 0.25


@dataclass(frozen=True)
class AlarmColours:
    """How one alarm priority is painted: background, text, and the "off" phase of a flash."""

    background: str
    foreground: str
    flash_hz: float
    """0 means steady."""

    @property
    def flash_interval_s(self) -> float:
        """Seconds between on/off toggles (half a flash period); 0 when steady."""
        return 0.0 if self.flash_hz <= 0 else 1.0 / (2.0 * self.flash_hz)


def alarm_colours(priority: Priority) -> AlarmColours:
    """The fixed colours of ``priority`` (from the alarm module's data, never the theme)."""
    background = Color.parse(priority.style.colour)
    foreground = "#ffffff" if priority is Priority.HIGH else "#000000"
    return AlarmColours(background.hex, foreground, priority.style.flash_hz)


EPM_DARK = Theme(
    name="epm-dark",
    primary="#4f7cc4",
    secondary="#6f86a6",
    accent="#9b8cf0",
    warning="#b48edb",
    error="#d66ba0",
    success="#5fae6e",
    foreground="#e2e6ec",
    background="#14181e",
    surface="#1c2129",
    panel="#262d37",
    dark=True,
)

EPM_LIGHT = Theme(
    name="epm-light",
    primary="#2f5fa8",
    secondary="#52698a",
    accent="#6a55c8",
    warning="#8a5cc0",
    error="#b0407a",
    success="#2e7d43",
    foreground="#1d232b",
    background="#f4f6f9",
    surface="#ffffff",
    panel="#e3e8ef",
    dark=False,
)

THEMES: tuple[Theme, ...] = (EPM_DARK, EPM_LIGHT)
DEFAULT_THEME = EPM_DARK.name


def _hue_saturation(colour: str) -> tuple[float, float]:
    red, green, blue = Color.parse(colour).rgb
    hue, _lightness, saturation = colorsys.rgb_to_hls(red / 255, green / 255, blue / 255)
    return hue * 360.0, saturation


def _hue_distance(a: float, b: float) -> float:
    gap = abs(a - b) % 360.0
    return min(gap, 360.0 - gap)


def theme_conflicts(theme: Theme) -> list[str]:
    """Theme colours too close in hue to an alarm colour (empty: the theme is safe to offer)."""
    alarm_hues = {p: _hue_saturation(p.style.colour)[0] for p in Priority}
    named = {
        "primary": theme.primary,
        "secondary": theme.secondary,
        "accent": theme.accent,
        "warning": theme.warning,
        "error": theme.error,
        "success": theme.success,
        "foreground": theme.foreground,
        "background": theme.background,
        "surface": theme.surface,
        "panel": theme.panel,
    }
    problems: list[str] = []
    for role, value in named.items():
        if value is None:
            continue
        hue, saturation = _hue_saturation(value)
        if saturation < GREY_SATURATION:
            continue
        for priority, alarm_hue in alarm_hues.items():
            distance = _hue_distance(hue, alarm_hue)
            if distance < MIN_HUE_DISTANCE:
                problems.append(
                    f"{theme.name} {role} {value} is {distance:.0f}° from the "
                    f"{priority.value}-priority alarm colour {priority.style.colour}"
                )
    return problems
