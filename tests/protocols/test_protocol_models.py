"""The models: helpers for the controller, immutability, and error locations."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from protocols import (
    DeliveryStep,
    ManualStep,
    Protocol,
    Status,
    Zone,
    load_library,
    load_protocol,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"


@pytest.fixture
def protocol() -> Protocol:
    result = load_protocol(DATA / "valid" / "base.yaml")
    assert result.protocol is not None
    return result.protocol


def test_helpers(protocol: Protocol) -> None:
    assert protocol.total_delivery_s == 900
    assert protocol.total_session_s == 1020
    assert [s.zone for s in protocol.delivery_steps] == [Zone.FRONTAL, Zone.MIDSCALP, Zone.CROWN]
    assert protocol.zones == (Zone.FRONTAL, Zone.MIDSCALP, Zone.CROWN)
    assert protocol.area_cm2 == 4.0
    assert protocol.runs_on_real_device
    assert protocol.runs_on_simulator
    assert isinstance(protocol.steps[0], ManualStep)
    assert protocol.delivery_steps[0].effective_duty == pytest.approx(0.025)


def test_zones_are_listed_once_in_first_treated_order() -> None:
    (result,) = [
        r
        for r in load_library(DATA.parent.parent.parent / "protocols" / "library")
        if r.path.name == "alopecia-areata-patch.yaml"
    ]
    assert result.protocol is not None
    assert result.protocol.zones == (Zone.PATCH,)


def test_models_are_frozen(protocol: Protocol) -> None:
    with pytest.raises(ValidationError):
        protocol.version = 4  # type: ignore[misc]
    step = protocol.delivery_steps[0]
    with pytest.raises(ValidationError):
        step.amplitude_v = 100  # type: ignore[misc]


def test_status_decides_where_a_protocol_runs(protocol: Protocol) -> None:
    draft = protocol.model_copy(update={"status": Status.DRAFT})
    retired = protocol.model_copy(update={"status": Status.RETIRED})
    assert (draft.runs_on_real_device, draft.runs_on_simulator) == (False, True)
    assert (retired.runs_on_real_device, retired.runs_on_simulator) == (False, False)


def test_step_errors_are_located_without_a_union_tag(protocol: Protocol) -> None:
    data = protocol.model_dump(exclude_none=True)
    data["steps"] = [dict(s) for s in data["steps"]]
    data["steps"][1]["pulse_width_us"] = 5
    data["steps"][0]["zone"] = "crown"
    data["steps"][2]["kind"] = "other"
    data["steps"][3] = "not a step"
    with pytest.raises(ValidationError) as caught:
        Protocol.model_validate(data)
    locs = {tuple(e["loc"]) for e in caught.value.errors()}
    assert {
        ("steps", 0, "zone"),
        ("steps", 1, "pulse_width_us"),
        ("steps", 2, "kind"),
        ("steps", 3),
    } <= locs
    tags = {"delivery", "manual", "DeliveryStep", "ManualStep"}
    assert not any(tags & set(map(str, loc)) for loc in locs)


def test_all_steps_invalid_does_not_claim_the_list_is_empty(protocol: Protocol) -> None:
    text = (DATA / "valid" / "base.yaml").read_text(encoding="utf-8")
    text = text.replace("kind: manual", "kind: handwork").replace("kind: delivery", "kind: zap")
    from protocols import load_protocol_text

    codes = [p.code for p in load_protocol_text(text, "t.yaml").problems]
    assert codes == ["invalid_choice"] * 4


def test_extra_fields_are_forbidden_everywhere() -> None:
    with pytest.raises(ValidationError):
        DeliveryStep.model_validate({"kind": "delivery", "colour": "red"})
    with pytest.raises(ValidationError) as caught:
        ManualStep.model_validate({"kind": "manual", "title": "x", "colour": "red"})
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_bool_is_not_a_number() -> None:
    with pytest.raises(ValidationError) as caught:
        ManualStep.model_validate({"kind": "manual", "title": "x", "duration_s": True})
    assert caught.value.errors()[0]["type"] == "float_type"
