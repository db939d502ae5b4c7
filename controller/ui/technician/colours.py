"""Theme colours for the technician screens' Rich-rendered parts (tables, the text area).

Why: red, yellow and cyan belong to the alarms (IEC 60601-1-8; ``controller.ui.theme``), so a
protocol error or a warning is painted with the theme's ``error``/``warning`` colours, which
the epm themes keep away from the alarm hues. Widgets that take Textual ``Content`` use the
``$text-error`` style variables directly; DataTable cells and TextArea lines are Rich text, so
they get the theme's colour resolved here (and redrawn when the theme changes).
"""

from __future__ import annotations

from textual.app import App
from textual.color import Color

FALLBACK = {
    "text-error": "#d17e92",
    "text-warning": "#b48edb",
    "text-success": "#8ad4a1",
    "error-muted": "#441e27",
    "warning-muted": "#3a2f4a",
    "accent": "#9b8cf0",
    "secondary": "#6f86a6",
}


def colour(app: App[object], name: str) -> str:
    """The theme's colour ``name`` as ``#rrggbb`` (a fixed fallback when it is not a colour)."""
    try:
        value = app.get_css_variables().get(name, "")
        return Color.parse(value).hex
    except Exception:  # a variable like "auto 60%" or no theme yet
        return FALLBACK.get(name, "#888888")
