"""From a location in the data (keys and list indexes) to a line, a column and a human path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from protocols.rules import Loc


def position(root: CommentedMap, loc: Loc) -> tuple[int, int]:
    """1-based line and column of the key or list item at ``loc``.

    Where ``loc`` runs past what the file holds (a missing key), the position is that of the
    deepest part that exists: the key or list item of the mapping that should hold it, or the
    first key of the file for a missing top-level field.
    """
    line, column = root.lc.line, root.lc.col
    node: object = root
    for part in loc:
        try:
            if isinstance(node, CommentedMap) and isinstance(part, str) and part in node:
                line, column = node.lc.key(part)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                line, column = node.lc.item(part)
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError):  # ruamel kept no position for this part
            break
    return line + 1, column + 1


def human_path(data: object, loc: Loc) -> str:
    """``steps → step 4 (delivery, crown) → pulse_width_us`` (steps count from 1)."""
    parts: list[str] = []
    node: object = data
    for depth, part in enumerate(loc):
        child = _child(node, part)
        if isinstance(part, int):
            if loc[:depth] == ("steps",):
                parts.append(step_label(part, child))
            else:
                parts.append(f"item {part + 1}")
        else:
            parts.append(str(part))
        node = child
    return " → ".join(parts)


def step_label(index: int, step: object) -> str:
    """``step 4 (delivery, crown)``, ``step 1 (manual)`` or ``step 2``."""
    label = f"step {index + 1}"
    if not isinstance(step, Mapping):
        return label
    kind = step.get("kind")
    if kind not in ("delivery", "manual"):
        return label
    zone = step.get("zone")
    if kind == "delivery" and isinstance(zone, str) and 0 < len(zone) <= 30:
        return f"{label} (delivery, {zone})"
    return f"{label} ({kind})"


def _child(node: object, part: str | int) -> object:
    if isinstance(node, Mapping) and isinstance(part, str):
        return node.get(part)
    if isinstance(node, Sequence) and not isinstance(node, str) and isinstance(part, int):
        return node[part] if 0 <= part < len(node) else None
    return None
