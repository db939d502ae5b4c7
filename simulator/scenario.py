"""Scenario files: seed, handpiece, skin, practitioner model and a timed list of faults.

A scenario makes a run repeatable: the same scenario and the same host inputs give the same
telemetry. Files are YAML, validated by frozen pydantic models that forbid unknown keys; every
problem is reported at once with its file, line and column.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError

from simulator.catalogue import FAULT_NAMES, FaultSpec
from simulator.physics import SkinParams

HandpieceName = Literal["scalp_roller", "flat_probe", "comb", "none"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SkinModel(_Frozen):
    """Skin parameters; ranges from docs/simulator.md (domain notes for the sources)."""

    r_series_ohm: Annotated[float, Field(ge=100, le=300)] = 200.0
    r_sc_ohm: Annotated[float, Field(ge=1000, le=10_000)] = 4000.0
    c_sc_nf_per_cm2: Annotated[float, Field(ge=0, le=100)] = 2.0
    poration_threshold_v: Annotated[float, Field(ge=30, le=50)] = 40.0
    poration_drop_factor: Annotated[float, Field(ge=5, le=1000)] = 50.0
    recovery_fast_s: Annotated[float, Field(gt=0, le=60)] = 2.0
    recovery_slow_s: Annotated[float, Field(ge=60, le=7200)] = 300.0
    skin_temperature_c: Annotated[float, Field(ge=30, le=36)] = 32.5

    def params(self) -> SkinParams:
        return SkinParams(**self.model_dump())


class PractitionerModel(_Frozen):
    """A practitioner moving a roller: zones of contact, lifts between them, brief wobbles."""

    enabled: bool = False
    zone_s: Annotated[float, Field(gt=0, le=3600)] = 40.0
    lift_s: Annotated[float, Field(gt=0, le=600)] = 1.5
    marginal_per_min: Annotated[float, Field(ge=0, le=600)] = 2.0
    marginal_s: Annotated[float, Field(gt=0, le=60)] = 0.4
    jitter: Annotated[float, Field(ge=0, lt=1)] = 0.2


class Scenario(_Frozen):
    """A whole scenario file."""

    description: str = ""
    seed: Annotated[int, Field(ge=0, le=2**63 - 1)] | None = None
    handpiece: HandpieceName = "scalp_roller"
    selftest_fail: bool = False
    skin: SkinModel = SkinModel()
    practitioner: PractitionerModel = PractitionerModel()
    events: list[FaultSpec] = []


@dataclass(frozen=True)
class ScenarioProblem:
    """One problem in a scenario file, located for the person who has to fix it."""

    path: str
    line: int
    column: int
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.where}: {self.message}"


class ScenarioError(ValueError):
    """A scenario file could not be used; ``problems`` lists every reason with its location."""

    def __init__(self, problems: list[ScenarioProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


_HINTS = {
    "extra_forbidden": "remove it or check its spelling",
    "union_tag_not_found": f"add 'fault:' with one of: {', '.join(FAULT_NAMES)}",
    "missing": "add it",
}


def _position(data: Any, loc: tuple[int | str, ...]) -> tuple[int, int, str]:
    """0-based line/column of the deepest node ``loc`` reaches, and a readable path.

    A discriminated union adds the tag to the location (``events.0.overtemp.target_c``); path
    elements that are not in the data are skipped, so the tag does not hide the position.
    """
    line, col = 0, 0
    node = data
    parts: list[str] = []
    for key in loc:
        if isinstance(node, CommentedMap) and key in node:
            line, col = node.lc.key(key)
            parts.append(str(key))
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            line, col = node.lc.item(key)
            parts.append(f"[{key}]")
            node = node[key]
        elif isinstance(node, CommentedMap) and isinstance(key, str) and key in FAULT_NAMES:
            continue
        else:
            if isinstance(node, CommentedMap | CommentedSeq) and hasattr(node, "lc"):
                line, col = node.lc.line, node.lc.col
            parts.append(str(key))
            break
    where = ".".join(parts).replace(".[", "[") or "(top level)"
    return line, col, where


def validation_problems(path: str, data: Any, exc: ValidationError) -> list[ScenarioProblem]:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "union_tag_invalid":
            loc = (*loc, "fault")
        line, col, where = _position(data, loc)
        message = err["msg"]
        hint = _HINTS.get(err["type"])
        if hint:
            message = f"{message} — {hint}"
        problems.append(ScenarioProblem(path, line + 1, col + 1, where, message))
    return problems


def parse_scenario(text: str, path: str = "<scenario>") -> Scenario:
    """Validate scenario YAML text; raises :class:`ScenarioError` with located problems."""
    yaml = YAML(typ="rt")
    try:
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else 1
        col = mark.column + 1 if mark is not None else 1
        problem = ScenarioProblem(path, line, col, "YAML", f"{exc.problem or exc} — fix the syntax")
        raise ScenarioError([problem]) from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise ScenarioError(
            [
                ScenarioProblem(
                    path, 1, 1, "(top level)", "a scenario is a mapping (key: value lines)"
                )
            ]
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(validation_problems(path, data, exc)) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file (see :func:`parse_scenario`)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError(
            [ScenarioProblem(str(p), 1, 1, "file", f"cannot read it: {exc.strerror}")]
        ) from None
    except UnicodeDecodeError:
        raise ScenarioError(
            [ScenarioProblem(str(p), 1, 1, "file", "not UTF-8 text — save it as UTF-8")]
        ) from None
    return parse_scenario(text, str(p))


def bundled_scenarios() -> dict[str, Path]:
    """The example scenarios shipped in ``simulator/scenarios`` by name."""
    folder = Path(__file__).parent / "scenarios"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}
