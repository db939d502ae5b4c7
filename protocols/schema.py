"""JSON Schema of ``epm-protocol/1``, for editors and independent validators.

Generated from the pydantic models, then rewritten to JSON Schema draft-07: the draft the
YAML language server (VS Code's YAML extension) documents, and one every validator knows.
draft-07 has everything the format needs (``const``, ``if``/``then``/``else``, ``format``).
The committed copy, ``protocols/schema/protocol-v1.json``, is regenerated with
``python -m protocols.schema`` and a test fails when it differs from what this module makes.

The schema holds every single-field rule (types, required fields, ranges, enums, patterns,
no unknown fields), tells delivery and manual steps apart by ``kind``, and adds the rules
draft-07 can say across fields: approval fields only with ``status: approved``, polarity
only (and always) for monophasic steps, ``alternate_burst`` only with a burst. Derived rules
(duty cycle, current density, totals, ...) need arithmetic and are only in ``epm validate``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from protocols.models import FORMAT, Protocol

SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"
SCHEMA_ID = "https://epm.example/schema/epm-protocol/1.json"
SCHEMA_FILE = Path(__file__).parent / "schema" / "protocol-v1.json"

_KEYWORD_DICTS = {"properties", "definitions", "$defs"}


def json_schema() -> dict[str, Any]:
    """The schema as a dict (a fresh copy on every call)."""
    schema = Protocol.model_json_schema(ref_template="#/definitions/{model}")
    definitions = schema.pop("$defs")
    schema = _clean(schema)
    definitions = {name: _clean(body) for name, body in definitions.items()}
    _add_step_rules(schema, definitions)
    _add_approval_rule(schema)
    schema["title"] = "EPM-1 treatment protocol (epm-protocol/1)"
    schema["description"] = (
        f"A treatment protocol for the EPM-1 electroporation unit, format {FORMAT}. "
        "Run `epm validate FILE` for the derived rules (duty cycle, current density, "
        "totals) this schema cannot express."
    )
    return {
        "$schema": SCHEMA_DRAFT,
        "$id": SCHEMA_ID,
        **schema,
        "definitions": definitions,
    }


def render_schema() -> str:
    """The schema as committed: sorted keys, two-space indent, UTF-8, final newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(path: Path = SCHEMA_FILE) -> Path:
    path.write_text(render_schema(), encoding="utf-8")
    return path


def _clean(node: Any, in_keyword_dict: bool = False) -> Any:
    """Draft-07 form of one pydantic schema node.

    Drops pydantic's generated titles and ``null`` defaults, turns ``X | None`` into ``X``
    (an optional field is left out when unused; an empty value is an error), and moves a
    ``$ref`` that has sibling keywords into ``allOf`` (draft-07 ignores siblings of ``$ref``).
    """
    if isinstance(node, list):
        return [_clean(item) for item in node]
    if not isinstance(node, dict):
        return node
    if in_keyword_dict:
        return {key: _clean(value) for key, value in node.items()}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key == "default":
            continue
        out[key] = _clean(value, in_keyword_dict=key in _KEYWORD_DICTS)
    options = out.get("anyOf")
    if isinstance(options, list) and {"type": "null"} in options:
        rest = [option for option in options if option != {"type": "null"}]
        del out["anyOf"]
        if len(rest) == 1:
            out = {**rest[0], **out}
        else:
            out["anyOf"] = rest
    if "$ref" in out and len(out) > 1:
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


def _add_step_rules(schema: dict[str, Any], definitions: dict[str, Any]) -> None:
    schema["properties"]["steps"]["items"] = {
        "if": {"properties": {"kind": {"const": "manual"}}, "required": ["kind"]},
        "then": {"$ref": "#/definitions/ManualStep"},
        "else": {"$ref": "#/definitions/DeliveryStep"},
    }
    delivery = definitions["DeliveryStep"]
    delivery["allOf"] = [
        {
            "if": {
                "properties": {"waveform": {"const": "biphasic_square"}},
                "required": ["waveform"],
            },
            "then": {"not": {"required": ["polarity"]}},
        },
        {
            "if": {
                "properties": {"waveform": {"const": "monophasic_square"}},
                "required": ["waveform"],
            },
            "then": {"required": ["polarity"]},
        },
        {
            "if": {
                "properties": {"polarity": {"const": "alternate_burst"}},
                "required": ["polarity"],
            },
            "then": {"required": ["burst"]},
        },
    ]


def _add_approval_rule(schema: dict[str, Any]) -> None:
    schema["allOf"] = [
        {
            "if": {"properties": {"status": {"const": "approved"}}, "required": ["status"]},
            "then": {"required": ["approved_by", "approved_on"]},
            "else": {
                "not": {"anyOf": [{"required": ["approved_by"]}, {"required": ["approved_on"]}]}
            },
        }
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m protocols.schema [PATH]``: write the committed schema file."""
    args = sys.argv[1:] if argv is None else argv
    target = write_schema(Path(args[0])) if args else write_schema()
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
