"""Every key of every screen, read from the classes' own ``BINDINGS``: the help screen's data.

Why generated: a hand-written key list goes stale the first time someone adds a binding, and a
help screen that lies about keys is worse than none. The app's bindings come first (emergency
stop at the very top), then each screen of the practitioner's, the technician's and the
shared packages (:data:`PACKAGES`) and each dialog or panel there that has keys of its own. A
module that cannot be imported is reported in the list rather than breaking the help screen.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass
from types import ModuleType

from textual.app import App
from textual.binding import Binding, BindingsMap
from textual.dom import DOMNode
from textual.screen import Screen

#: The order screens are listed in (module names); others follow alphabetically.
SCREEN_ORDER = (
    "home",
    "new_session",
    "run",
    "session",
    "end",
    "device",
    "library",
    "editor",
    "records",
    "record_detail",
    "help",
)

#: The emergency stop of the shared key design, shown even before the app's binding is read.
ESTOP_ACTION = "emergency_stop"
ESTOP_KEYS_DEFAULT = "F12 or Ctrl+E"

_KEY_NAMES = {
    "escape": "Esc",
    "enter": "Enter",
    "tab": "Tab",
    "space": "Space",
    "backspace": "Backspace",
    "delete": "Del",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "home": "Home",
    "end": "End",
    "question_mark": "?",
    "slash": "/",
    "plus": "+",
    "minus": "-",
}


def key_label(key: str) -> str:
    """``ctrl+e`` → ``Ctrl+E``, ``f12`` → ``F12``, ``escape`` → ``Esc``, ``a`` → ``a``."""
    parts = key.split("+")
    shown = []
    for part in parts[:-1]:
        shown.append(part.capitalize())
    last = parts[-1]
    if last in _KEY_NAMES:
        shown.append(_KEY_NAMES[last])
    elif (len(last) > 1 and last[0] == "f" and last[1:].isdigit()) or len(parts) > 1:
        shown.append(last.upper())
    else:
        shown.append(last)
    return "+".join(shown)


def keys_label(keys: str) -> str:
    """A binding's comma-separated keys: ``f2,ctrl+s`` → ``F2 / Ctrl+S``."""
    return " / ".join(key_label(k.strip()) for k in keys.split(",") if k.strip())


@dataclass(frozen=True)
class KeyRow:
    keys: str
    """As shown: ``F2 / Ctrl+S``."""
    description: str
    action: str
    priority: bool = False


@dataclass(frozen=True)
class KeySection:
    title: str
    rows: tuple[KeyRow, ...]
    source: str
    """``module.Class`` the keys were read from (or the module that failed to import)."""
    problem: str | None = None


def _describe(binding: Binding) -> str:
    if binding.description:
        return binding.description
    return binding.action.replace("_", " ").replace("app.", "").strip().capitalize()


def _project_bindings(cls: type[DOMNode]) -> dict[str, list[Binding]]:
    """Bindings declared by ``cls`` and its epm base classes (textual's own classes skipped:
    their keys are listed once, in the app's section)."""
    keys: dict[str, list[Binding]] = {}
    for base in reversed(cls.__mro__):
        if not issubclass(base, DOMNode) or base.__module__.startswith("textual."):
            continue
        declared = BindingsMap(base.__dict__.get("BINDINGS", [])).key_to_bindings
        keys.update(declared)
    return keys


def binding_rows(cls: type[DOMNode], *, scope: str = "project") -> list[KeyRow]:
    """The keys of ``cls``, system bindings skipped and keys of one action joined.

    ``scope``: ``project`` (its own and epm base classes'), ``own`` (the class alone) or
    ``merged`` (everything it inherits, textual's own bindings too).
    """
    if scope == "own":
        bindings = BindingsMap(cls.__dict__.get("BINDINGS", [])).key_to_bindings
    elif scope == "merged":
        bindings = cls._merge_bindings().key_to_bindings
    else:
        bindings = _project_bindings(cls)
    by_action: dict[str, list[Binding]] = {}
    order: list[str] = []
    for key_bindings in bindings.values():
        for binding in key_bindings:
            if binding.system:
                continue
            if binding.action not in by_action:
                by_action[binding.action] = []
                order.append(binding.action)
            by_action[binding.action].append(binding)
    rows = []
    for action in order:
        group = by_action[action]
        keys = ",".join(b.key for b in group)
        rows.append(
            KeyRow(
                keys_label(keys),
                _describe(group[0]),
                action,
                any(b.priority for b in group),
            )
        )
    return rows


def app_rows(app_cls: type[App[object]]) -> list[KeyRow]:
    """The app's keys, the emergency stop first, the command palette and moving between
    fields included."""
    rows = binding_rows(app_cls, scope="merged")
    rows += [r for r in binding_rows(Screen, scope="merged") if r.action.startswith("app.focus")]
    if getattr(app_cls, "ENABLE_COMMAND_PALETTE", True) and not any(
        r.action.endswith("command_palette") for r in rows
    ):
        rows.append(
            KeyRow(
                keys_label(app_cls.COMMAND_PALETTE_BINDING), "Command palette", "command_palette"
            )
        )
    rows.sort(key=lambda r: 0 if r.action.endswith(ESTOP_ACTION) else 1)
    return rows


def estop_keys(app_cls: type[App[object]]) -> str:
    """The keys of the emergency stop as the app binds them (the design's F12 / Ctrl+E when
    the app binds none, e.g. in a test harness)."""
    for row in binding_rows(app_cls, scope="merged"):
        if row.action.endswith(ESTOP_ACTION):
            return row.keys
    return ESTOP_KEYS_DEFAULT


def _title(cls: type) -> str:
    """``HELP_TITLE`` when the class has one, else its name in words (``NewSessionScreen`` →
    ``New session screen``)."""
    title = getattr(cls, "HELP_TITLE", None)
    if isinstance(title, str) and title:
        return title
    words = re.findall(r"[A-Z][a-z0-9]*|[a-z0-9]+", cls.__name__)
    if not words:
        return cls.__name__
    return " ".join([words[0], *(w.lower() for w in words[1:])])


#: Where the screens and their widgets live, one package per role and one for both.
PACKAGES = ("controller.ui.practitioner", "controller.ui.technician", "controller.ui.shared")


def _all_modules(packages: tuple[str, ...]) -> list[tuple[str, ModuleType | None, str | None, str]]:
    return [(n, m, p, pkg) for pkg in packages for n, m, p in _modules(pkg)]


def _modules(package: str) -> list[tuple[str, ModuleType | None, str | None]]:
    try:
        pkg = importlib.import_module(package)
    except Exception as exc:
        return [(package, None, f"{type(exc).__name__}: {exc}")]
    found: list[tuple[str, ModuleType | None, str | None]] = []
    for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
        name = f"{package}.{info.name}"
        try:
            found.append((info.name, importlib.import_module(name), None))
        except Exception as exc:
            found.append((info.name, None, f"{type(exc).__name__}: {exc}"))
    return found


def _order(name: str) -> tuple[int, str]:
    return (SCREEN_ORDER.index(name) if name in SCREEN_ORDER else len(SCREEN_ORDER), name)


def screen_sections(packages: tuple[str, ...] = PACKAGES) -> list[KeySection]:
    """One section per screen class defined in ``packages`` (in :data:`SCREEN_ORDER`)."""
    sections = []
    for name, module, problem, package in sorted(
        _all_modules(packages), key=lambda m: _order(m[0])
    ):
        if module is None:
            sections.append(KeySection(name, (), f"{package}.{name}", problem))
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, Screen):
                continue
            rows = binding_rows(cls)
            if rows:
                sections.append(
                    KeySection(_title(cls), tuple(rows), f"{cls.__module__}.{cls.__qualname__}")
                )
    return sections


def widget_sections(packages: tuple[str, ...] = PACKAGES) -> list[KeySection]:
    """Dialogs and panels of ``packages`` that have keys of their own (screens excluded:
    :func:`screen_sections` lists them)."""
    sections = []
    for _name, module, _problem, _package in sorted(_all_modules(packages), key=lambda m: m[0]):
        if module is None:
            continue  # reported once, by screen_sections
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != module.__name__ or not issubclass(cls, DOMNode):
                continue
            if issubclass(cls, Screen):
                continue
            rows = binding_rows(cls, scope="own")
            if rows:
                sections.append(
                    KeySection(_title(cls), tuple(rows), f"{cls.__module__}.{cls.__qualname__}")
                )
    return sections


def all_sections(app_cls: type[App[object]]) -> list[KeySection]:
    """The app's keys, then every screen's, then every dialog's and panel's."""
    app_section = KeySection(
        "Everywhere (every screen)",
        tuple(app_rows(app_cls)),
        f"{app_cls.__module__}.{app_cls.__qualname__}",
    )
    return [app_section, *screen_sections(), *widget_sections()]
