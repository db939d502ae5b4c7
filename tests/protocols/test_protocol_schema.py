"""The JSON Schema: committed copy up to date, valid draft-07, agreeing with the validator."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

import protocols
from protocols.schema import SCHEMA_DRAFT, SCHEMA_FILE, SCHEMA_ID, render_schema

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"
LIBRARY = protocols.bundled_library_path()


def _plain(value: Any) -> Any:
    """YAML data as JSON data (a YAML date becomes its ISO text, as editors see it)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _load(path: Path) -> Any:
    return _plain(YAML(typ="safe").load(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def test_committed_schema_is_what_the_generator_makes() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render_schema(), (
        "protocols/schema/protocol-v1.json is stale: run python -m protocols.schema"
    )


def test_generation_is_deterministic() -> None:
    assert render_schema() == render_schema()
    assert protocols.json_schema() == json.loads(render_schema())


def test_schema_declares_draft_07_and_a_stable_id() -> None:
    schema = protocols.json_schema()
    assert schema["$schema"] == SCHEMA_DRAFT == "http://json-schema.org/draft-07/schema#"
    assert schema["$id"] == SCHEMA_ID
    jsonschema.Draft7Validator.check_schema(schema)
    assert "$defs" not in render_schema()


def test_schema_holds_the_single_field_rules() -> None:
    schema = protocols.json_schema()
    delivery = schema["definitions"]["DeliveryStep"]
    assert delivery["additionalProperties"] is False
    assert delivery["properties"]["pulse_width_us"]["minimum"] == 50
    assert delivery["properties"]["pulse_width_us"]["maximum"] == 2000
    assert "polarity" not in delivery["required"]
    assert schema["properties"]["id"]["pattern"] == "^[a-z][a-z0-9-]{2,63}$"
    assert schema["properties"]["steps"]["maxItems"] == 40


@pytest.mark.parametrize("path", sorted(LIBRARY.glob("*.yaml")), ids=lambda p: p.name)
def test_library_file_is_valid_against_the_committed_schema(
    path: Path, validator: jsonschema.Draft7Validator
) -> None:
    errors = [e.message for e in validator.iter_errors(_load(path))]
    assert errors == []


def test_check_jsonschema_accepts_the_library() -> None:
    tool = Path(sys.executable).with_name("check-jsonschema")
    files = [str(p) for p in sorted(LIBRARY.glob("*.yaml"))]
    run = subprocess.run(
        [str(tool), "--schemafile", str(SCHEMA_FILE), *files],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_check_jsonschema_rejects_a_bad_file() -> None:
    tool = Path(sys.executable).with_name("check-jsonschema")
    bad = DATA / "bad" / "pulse-width-out-of-range.yaml"
    run = subprocess.run(
        [str(tool), "--schemafile", str(SCHEMA_FILE), str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert "pulse_width_us" in run.stdout


#: Fixtures whose one problem is a rule the schema can express.
SCHEMA_CATCHES = [
    "wrong-format",
    "invalid-id",
    "version-zero",
    "version-not-whole",
    "title-too-long",
    "invalid-indication",
    "invalid-status",
    "approval-missing",
    "approval-not-allowed",
    "approved-on-not-a-date",
    "invalid-handpiece",
    "unknown-field",
    "serum-name-missing",
    "ingredient-not-text",
    "course-sessions-out-of-range",
    "course-interval-out-of-range",
    "course-maintenance-out-of-range",
    "steps-empty",
    "steps-too-many",
    "aftercare-empty",
    "contraindication-not-text",
    "notes-empty",
    "manual-title-missing",
    "manual-duration-out-of-range",
    "manual-step-delivery-field",
    "invalid-step-kind",
    "missing-field",
    "unknown-step-field",
    "invalid-zone",
    "delivery-duration-out-of-range",
    "invalid-waveform",
    "amplitude-below-min",
    "amplitude-max-out-of-range",
    "pulse-width-out-of-range",
    "frequency-out-of-range",
    "burst-on-out-of-range",
    "burst-off-out-of-range",
    "ramp-up-out-of-range",
    "ramp-down-out-of-range",
    "current-limit-out-of-range",
    "polarity-required",
    "polarity-not-allowed",
    "polarity-needs-burst",
]

#: Derived rules need arithmetic across fields: only `epm validate` checks them.
SCHEMA_CANNOT = [
    "amplitude-above-max",
    "burst-too-short",
    "duty-cycle",
    "current-density",
    "net-dc",
    "ramp-too-long",
    "total-delivery-time",
    "no-delivery-step",
    "device-rounding",
]


@pytest.mark.parametrize("name", SCHEMA_CATCHES)
def test_schema_rejects_single_field_errors(
    name: str, validator: jsonschema.Draft7Validator
) -> None:
    assert not validator.is_valid(_load(DATA / "bad" / f"{name}.yaml"))


@pytest.mark.parametrize("name", SCHEMA_CANNOT)
def test_schema_accepts_what_only_the_derived_rules_refuse(
    name: str, validator: jsonschema.Draft7Validator
) -> None:
    assert validator.is_valid(_load(DATA / "bad" / f"{name}.yaml"))
    assert not protocols.load_protocol(DATA / "bad" / f"{name}.yaml").ok


def test_schema_and_validator_agree_on_the_valid_base(
    validator: jsonschema.Draft7Validator,
) -> None:
    assert validator.is_valid(_load(DATA / "valid" / "base.yaml"))
