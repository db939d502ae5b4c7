"""Layers import downward only: ui -> session -> device -> link -> wire; the UI never reaches
past the device layer to the link or the codec.

``protocols`` depends on nothing of ours; the simulator may share the wire codec; the
controller reaches the simulator only from the CLI and the UI's app factory (the built-in
simulator). The check reads the import statements of every module, so a violation anywhere
(including inside a function) fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: package -> the packages of ours it may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "protocols": set(),
    "controller.wire": set(),
    "controller.link": {"controller.wire"},
    "controller.device": {"controller.link", "controller.wire"},
    "controller.records": {"protocols", "controller.wire"},  # the SIM- prefix, defined once
    "controller.session": {
        "controller.device",
        "controller.link",
        "controller.wire",
        "controller.records",
        "protocols",
    },
    # The screens get device, link and telemetry facts from the session's snapshot and the
    # device layer's views (controller.device.views), never from the link or the codec.
    "controller.ui": {
        "controller.session",
        "controller.device",
        "controller.records",
        "protocols",
        "simulator",
        "controller",
    },
    "simulator": {"controller.wire"},
}
OURS = ("protocols", "controller", "simulator")


def _layer(module: str) -> str | None:
    for name in sorted(ALLOWED, key=len, reverse=True):
        if module == name or module.startswith(name + "."):
            return name
    return None


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _modules() -> list[tuple[str, Path]]:
    out = []
    for top in OURS:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            out.append((".".join(rel.parts), path))
    return out


@pytest.mark.parametrize(("module", "path"), _modules(), ids=str)
def test_imports_go_downward_only(module: str, path: Path) -> None:
    layer = _layer(module)
    if layer is None:  # controller/__init__, controller/cli: the glue may import anything
        return
    allowed = ALLOWED[layer] | {layer}
    bad = []
    for line, imported in _imports(path):
        if not imported.startswith(OURS):
            continue
        target = _layer(imported) or imported
        if target == "controller" and layer == "controller.ui":
            continue
        if not any(target == a or target.startswith(a + ".") for a in allowed):
            bad.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    assert not bad, "layering violated:\n" + "\n".join(bad)


def test_the_check_sees_a_violation(tmp_path: Path) -> None:
    """The checker itself works: an upward import is found."""
    probe = tmp_path / "probe.py"
    probe.write_text("from controller.session import engine\n")
    assert _imports(probe) == [(1, "controller.session")]
    assert _layer("controller.link.link") == "controller.link"
    assert "controller.session" not in ALLOWED["controller.link"]
