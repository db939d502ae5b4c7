"""pydantic's field errors rewritten for a technician: the value, the rule, the unit, the fix."""

from __future__ import annotations

import difflib
import enum
import typing
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from protocols import units
from protocols.models import Burst, Course, DeliveryStep, ManualStep, Protocol, Serum
from protocols.rules import Issue, Loc
from protocols.units import fmt, unit_of

#: pydantic error types that only repeat, as one line, rules the rules pass reports in full.
RULES_ERROR_TYPE = "protocol_rules"

_RANGE_TYPES = {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}
_NUMBER_TYPES = {"float_type", "float_parsing", "int_type", "int_parsing", "int_from_float"}
_MAPPING_TYPES = {"model_type", "dict_type", "model_attributes_type"}
_LIST_TYPES = {"tuple_type", "list_type", "iterable_type"}


def model_at(data: object, loc: Loc) -> type[BaseModel] | None:
    """The model that describes the mapping found at ``loc``."""
    if loc == ():
        return Protocol
    if loc == ("serum",):
        return Serum
    if loc == ("course",):
        return Course
    if len(loc) in (2, 3) and loc[0] == "steps" and isinstance(loc[1], int):
        steps = data.get("steps") if isinstance(data, Mapping) else None
        step = steps[loc[1]] if isinstance(steps, list) and loc[1] < len(steps) else None
        kind = step.get("kind") if isinstance(step, Mapping) else None
        if len(loc) == 3:
            return Burst if loc[2] == "burst" and kind == "delivery" else None
        models: dict[str, type[BaseModel]] = {"delivery": DeliveryStep, "manual": ManualStep}
        return models.get(str(kind))
    return None


def _field(model: type[BaseModel] | None, name: str) -> FieldInfo | None:
    return model.model_fields.get(name) if model is not None else None


def _enum_of(info: FieldInfo | None) -> type[enum.Enum] | None:
    if info is None:
        return None
    candidates = [info.annotation, *typing.get_args(info.annotation)]
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, enum.Enum):
            return candidate
    return None


def _choices(info: FieldInfo | None) -> list[str]:
    found = _enum_of(info)
    if found is not None:
        return [str(member.value) for member in found]
    if info is not None and typing.get_origin(info.annotation) is typing.Literal:
        return [str(arg) for arg in typing.get_args(info.annotation)]
    return []


def _bounds(info: FieldInfo | None) -> tuple[float | None, float | None]:
    low = high = None
    for item in info.metadata if info is not None else ():
        low = getattr(item, "ge", low)
        high = getattr(item, "le", high)
    return low, high


def hint(model: type[BaseModel] | None, name: str) -> str:
    """What a field holds, for "missing" and "wrong type" messages."""
    info = _field(model, name)
    choices = _choices(info)
    if choices:
        return "one of " + ", ".join(choices)
    low, high = _bounds(info)
    if low is not None and high is not None:
        return f"a number, {fmt(low)}–{fmt(high)} {unit_of(name)}".rstrip()
    if low is not None:
        return f"a whole number, at least {fmt(low)}"
    if info is not None and info.description:
        text = info.description.removeprefix("Optional: ").removeprefix("Optional ")
        return text[0].lower() + text[1:]
    return "a value"


def show(value: object) -> str:
    """A value as the technician wrote it."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return fmt(value)
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'"{text}"'
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return str(value)


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def translate(error: ErrorDetails, data: object) -> Issue | None:
    """One pydantic error as an :class:`Issue`; ``None`` for the one-line rules summary."""
    kind = error["type"]
    if kind == RULES_ERROR_TYPE:
        return None
    loc: Loc = tuple(error["loc"])
    value: Any = error["input"]
    ctx = error.get("ctx") or {}
    name = str(loc[-1]) if loc else ""
    parent = loc[:-1]
    model = model_at(data, parent)

    if kind == "missing":
        message = f'required field "{name}" is missing: add it ({hint(model, name)})'
        return Issue(loc, "missing_field", message, path_loc=parent)
    if kind == "extra_forbidden":
        return _unknown_field(loc, name, model)
    if kind == "null_value" or value is None:
        return Issue(
            loc,
            "missing_value",
            f"no value is given: write {hint(model, name)} after the colon, or remove the line"
            if kind == "null_value"
            else f"no value is given: write {hint(model, name)} after the colon",
        )
    if kind in _RANGE_TYPES:
        return Issue(loc, "out_of_range", _range_message(kind, value, ctx, name))
    if kind in _NUMBER_TYPES:
        whole = "whole " if kind.startswith("int") else ""
        return Issue(
            loc,
            "wrong_type",
            f"{show(value)} is not a {whole}number: write {hint(model, name)}",
        )
    if kind == "finite_number":
        return Issue(loc, "wrong_type", f"{show(value)} is not a number: write {hint(model, name)}")
    if kind == "string_type":
        extra = f' (put it in quotes, "{value}", if it is meant)' if _scalar(value) else ""
        return Issue(loc, "wrong_type", f"expected text, found {show(value)}{extra}")
    if kind == "string_too_short":
        return Issue(loc, "empty_text", "the text is empty: write something, or remove the line")
    if kind == "string_too_long":
        return Issue(
            loc,
            "too_long",
            f"the text is {len(str(value))} characters long, more than the "
            f"{ctx.get('max_length')} allowed: shorten it",
        )
    if kind == "string_pattern_mismatch":
        return Issue(
            loc,
            "invalid_id",
            f'{show(value)} is not a valid id: use 3–64 characters of a-z, 0-9 and "-", '
            'starting with a letter, e.g. "aga-early-scalp"',
        )
    if kind == "literal_error" and name == "format":
        return Issue(
            loc,
            "wrong_format",
            f'{show(value)} is not a format this controller reads: write "format: epm-protocol/1"',
        )
    if kind in ("enum", "literal_error", "step_kind"):
        options = _choices(_field(model, name)) or ["delivery", "manual"]
        typo = _did_you_mean(value, options) if isinstance(value, str) else ""
        return Issue(
            loc,
            "invalid_choice",
            f"{show(value)} is not a valid {name}{typo}: use one of {', '.join(options)}",
        )
    if kind in _MAPPING_TYPES:
        return Issue(
            loc,
            "wrong_type",
            f'expected a mapping of fields (indented "name: value" lines), found {show(value)}',
        )
    if kind in _LIST_TYPES:
        return Issue(
            loc,
            "wrong_type",
            f'expected a list (lines starting with "- "), found {show(value)}',
        )
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        if isinstance(value, list | tuple) and len(value) >= least:
            # pydantic counts only the items that validated; the items' own errors say why.
            return None
        return Issue(loc, "too_few", f"the list is empty: at least {least} item is needed")
    if kind == "too_long":
        return Issue(
            loc,
            "too_many",
            f"{ctx.get('actual_length')} items, more than the {ctx.get('max_length')} allowed",
        )
    if kind == "date_type":
        return Issue(
            loc,
            "invalid_date",
            f"{show(value)} is not a valid date ({error['msg']}): write it as YYYY-MM-DD, "
            "e.g. 2026-11-20",
        )
    return Issue(loc, "invalid_value", f"{show(value)} is not valid here: {error['msg']}")


def _scalar(value: object) -> bool:
    return isinstance(value, int | float | bool) or value is None or hasattr(value, "isoformat")


def _whole(limit: Any) -> Any:
    """Limits of float fields come back as floats: show ``2000.0`` as ``2000``."""
    if isinstance(limit, float) and limit.is_integer():
        return int(limit)
    return limit


def _range_message(kind: str, value: object, ctx: Mapping[str, Any], name: str) -> str:
    unit = unit_of(name)
    limit_of = {"less_than_equal": "le", "less_than": "lt", "greater_than_equal": "ge"}
    limit = _whole(ctx.get(limit_of.get(kind, "gt")))
    if isinstance(value, int | float) and isinstance(limit, int | float):
        # never "0.5 mA is below the minimum of 0.5 mA" for 0.4999999
        shown = units.with_unit(value, unit, against=limit)
        bound = units.with_unit(limit, unit, against=value)
    else:
        shown = units.with_unit(value, unit) if isinstance(value, int | float) else show(value)
        bound = units.with_unit(limit, unit)
    if kind in ("less_than_equal", "less_than"):
        return f"{shown} is above the maximum of {bound}"
    return f"{shown} is below the minimum of {bound}"


def _unknown_field(loc: Loc, name: str, model: type[BaseModel] | None) -> Issue:
    known = list(model.model_fields) if model is not None else []
    suggestion = _did_you_mean(name, known)
    message = f'unknown field "{name}"{suggestion}'
    if model in (DeliveryStep, ManualStep):
        own, other = ("manual", DeliveryStep) if model is ManualStep else ("delivery", ManualStep)
        if name in other.model_fields and not suggestion:
            theirs = "delivery" if own == "manual" else "manual"
            message += f": a {own} step has no {name} (only {theirs} steps do)"
            return Issue(loc, "unknown_field", message, path_loc=loc[:-1])
    if not suggestion:
        message += ": remove it, or check its spelling"
    return Issue(loc, "unknown_field", message, path_loc=loc[:-1])
