"""The key footer: the emergency stop first, then the screen's keys, wrapped onto two lines.

Why: Textual's footer is one line that scrolls sideways, so at 80 columns the keys on the right
(and the app's F12 E-STOP, which comes last) would simply not be visible. This footer puts the
emergency stop first on every screen, then the screen's keys in their order (disabled ones
dimmed, as Textual's footer does), then the app's keys, and wraps onto a second line when one
is not enough.

A screen may choose which of its keys the footer shows by defining ``footer_actions()``: the
names of its actions to show, in that order (the run screen shows the five keys that matter in
the phase). Then only those, the keys of the focused widget (e.g. an open question's Enter and
Esc), the emergency stop and F1 help are shown; every other key still works and is listed in
the help screen, which reads the screens' bindings, not the footer.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import ActiveBinding, Binding
from textual.containers import HorizontalGroup
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

#: The action bound to the emergency stop (shown first, with its own style).
ESTOP_ACTION = "emergency_stop"
#: The app's keys shown when a screen chooses its own (F1 help lists the rest).
CHOSEN_APP_ACTIONS = frozenset({"help"})
#: At most this many lines of keys.
MAX_ROWS = 2


def key_width(key_display: str, description: str) -> int:
    """Cells one compact footer key takes, with its right margin."""
    return len(key_display) + (1 + len(description) if description else 0) + 1


def pack_rows(widths: list[int], available: int, max_rows: int = MAX_ROWS) -> list[list[int]]:
    """Indices of keys per row, filling each row left to right (greedy, order kept)."""
    rows: list[list[int]] = [[]]
    used = 0
    for index, width in enumerate(widths):
        if rows[-1] and used + width > available and len(rows) < max_rows:
            rows.append([])
            used = 0
        rows[-1].append(index)
        used += width
    return rows


def signature(entries: list[tuple[Binding, bool, str]]) -> list[tuple[str, str, str]]:
    """What the footer's layout depends on: each key, its action and its label."""
    return [(binding.key, binding.action, binding.description) for binding, _, _ in entries]


class EpmFooter(Footer):
    """A drop-in ``Footer`` (compact); see the module docstring."""

    DEFAULT_CSS = """
    EpmFooter {
        layout: vertical;
        height: auto;
        max-height: 2;
    }
    EpmFooter > HorizontalGroup {
        height: 1;
        width: 100%;
    }
    EpmFooter FooterKey.-estop .footer-key--key {
        text-style: bold reverse;
    }
    EpmFooter FooterKey.-estop .footer-key--description {
        text-style: bold;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True, show_command_palette=False)
        self._packed_for = 0
        self._signature: list[tuple[str, str, str]] = []

    def bindings_changed(self, screen: Screen[object]) -> None:
        """When only which keys are enabled changed, restyle the keys in place.

        Why: the run screen's keys change state with every phase; rebuilding the footer
        (a dozen widgets, styles, a layout pass) each time costs more than the rest of the
        screen's refresh. A different set of keys still rebuilds it.
        """
        self._bindings_ready = True
        if not (self.is_attached and screen is self.screen):
            return
        entries = self.ordered_bindings()
        keys = list(self.query(FooterKey))
        if self._signature == signature(entries) and len(keys) == len(entries):
            for widget, (_binding, enabled, _tooltip) in zip(keys, entries, strict=True):
                widget._disabled = not enabled
                widget.set_class(not enabled, "-disabled")
            return
        self.call_after_refresh(self.recompose)

    def on_resize(self) -> None:
        # Only a new width changes how the keys wrap (the height follows from the rows).
        if self.size.width != self._packed_for:
            self.call_after_refresh(self.recompose)

    def ordered_bindings(self) -> list[tuple[Binding, bool, str]]:
        """Shown bindings, one per action: emergency stop, the screen's, then the app's."""
        active = self.screen.active_bindings
        first: list[tuple[Binding, bool, str]] = []
        screen_keys: list[tuple[Binding, bool, str]] = []
        app_keys: list[tuple[Binding, bool, str]] = []
        seen: set[str] = set()
        for node, binding, enabled, tooltip in active.values():
            if not binding.show or binding.action in seen:
                continue
            seen.add(binding.action)
            entry = (binding, enabled, tooltip)
            if binding.action == ESTOP_ACTION:
                first.append(entry)
            elif node is self.app:
                app_keys.append(entry)
            else:
                screen_keys.append(entry)
        chooser = getattr(self.screen, "footer_actions", None)
        chosen = chooser() if callable(chooser) else None
        if chosen is not None:
            return (
                first
                + self._chosen(active, list(chosen))
                + [entry for entry in app_keys if entry[0].action in CHOSEN_APP_ACTIONS]
            )
        palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        if self.app.ENABLE_COMMAND_PALETTE and palette is not None:
            _node, binding, enabled, _tooltip = palette
            app_keys.append((binding, enabled, "Open the command palette"))
        return first + screen_keys + app_keys

    def _chosen(
        self, active: dict[str, ActiveBinding], actions: list[str]
    ) -> list[tuple[Binding, bool, str]]:
        """The focused widgets' shown keys, then the screen's ``actions`` in their order."""
        screen = self.screen
        focused: list[tuple[Binding, bool, str]] = []
        by_action: dict[str, tuple[Binding, bool, str]] = {}
        for node, binding, enabled, tooltip in active.values():
            if not binding.show or binding.action == ESTOP_ACTION:
                continue
            if node is screen:
                by_action.setdefault(binding.action, (binding, enabled, tooltip))
            elif node is not self.app and binding.action not in {b.action for b, _, _ in focused}:
                focused.append((binding, enabled, tooltip))
        return focused + [by_action[action] for action in actions if action in by_action]

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        entries = self.ordered_bindings()
        self._signature = signature(entries)
        displays = [self.app.get_key_display(binding) for binding, _, _ in entries]
        widths = [
            key_width(display, binding.description or "Commands")
            for display, (binding, _, _) in zip(displays, entries, strict=True)
        ]
        self._packed_for = self.size.width
        available = max(20, (self.size.width or self.app.size.width) - 1)
        for row in pack_rows(widths, available):
            with HorizontalGroup():
                for index in row:
                    binding, enabled, tooltip = entries[index]
                    # Compact from the start (no data binding: a bound ``compact`` restyles
                    # every key once more at mount, which costs more than the footer itself).
                    classes = "-compact -estop" if binding.action == ESTOP_ACTION else "-compact"
                    yield FooterKey(
                        binding.key,
                        displays[index],
                        binding.description or "Commands",
                        binding.action,
                        disabled=not enabled,
                        tooltip=tooltip or binding.description,
                        classes=classes,
                    )
