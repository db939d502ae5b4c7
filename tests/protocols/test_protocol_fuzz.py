"""Random damage to valid files never gets anything but a validation report.

Text mutations (characters and lines inserted, deleted, swapped; bytes flipped) and structure
mutations (keys removed or added, values replaced by any YAML value, items duplicated). Every
outcome must be a well-formed report; a protocol that still loads must convert to device values
the device itself would accept.
"""

from __future__ import annotations

import copy
import io
import os
import re
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from protocols import LoadResult, Severity, load_protocol_text, to_device_step

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"
BASE = (DATA / "valid" / "base.yaml").read_bytes()
BASE_DATA = YAML(typ="safe").load(BASE)
#: EPM_FUZZ_EXAMPLES raises the count for a longer hunt; the suite keeps it modest.
EXAMPLES = int(os.environ.get("EPM_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
YAML_CHARS = ":{}[]-#&*!'\"\t\n ,?|>%@`~0123456789.eE+abcxyz_é\x00\x85\u2028"


def check_report(result: LoadResult, source: bytes) -> None:
    """What every load must give: located, coded problems and a consistent verdict."""
    lines = len(re.findall(rb"\r\n|\r|\n", source)) + 2  # YAML's line breaks
    for problem in result.problems:
        assert problem.line >= 1
        assert problem.column >= 1
        assert problem.line <= lines
        assert problem.code
        assert problem.message
        assert problem.severity in (Severity.ERROR, Severity.WARNING)
        assert problem.format().startswith(f"{problem.file}:{problem.line}:{problem.column}: ")
    has_errors = any(p.severity is Severity.ERROR for p in result.problems)
    assert (result.protocol is None) == has_errors
    if result.protocol is not None:
        for number, step in enumerate(result.protocol.delivery_steps, start=1):
            values = to_device_step(step, result.protocol.handpiece, number)
            assert 1 <= values.amplitude_dv <= values.amplitude_max_dv <= 1200
            assert 50 <= values.pulse_width_us <= 2000
            assert 1 <= values.frequency_hz <= 5000
            assert 500 <= values.current_limit_ua <= 10000
            assert 10000 <= values.duration_ms <= 1_200_000
            assert (values.burst_on_ms == 0) == (values.burst_off_ms == 0)
            if values.burst_on_ms:
                assert values.burst_on_ms * values.frequency_hz >= 1000
            phases = 2 if values.waveform == 2 else 1
            assert values.pulse_width_us * values.frequency_hz * phases <= 500_000


@st.composite
def text_mutations(draw: st.DrawFn) -> bytes:
    text = BASE.decode()
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(st.sampled_from(["insert", "delete", "replace", "swap", "dup"]))
        at = draw(st.integers(0, len(text)))
        if operation == "insert":
            text = text[:at] + draw(st.text(YAML_CHARS, min_size=1, max_size=6)) + text[at:]
        elif operation == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)) :]
        elif operation == "replace":
            text = text[:at] + draw(st.text(YAML_CHARS, min_size=1, max_size=3)) + text[at + 1 :]
        else:
            lines = text.splitlines(keepends=True)
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if operation == "swap":
                lines[i], lines[j] = lines[j], lines[i]
            else:
                lines.insert(j, lines[i])
            text = "".join(lines)
    data = text.encode()
    if draw(st.booleans()) and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


@given(text_mutations())
@SETTINGS
def test_text_mutations_give_a_report(source: bytes) -> None:
    check_report(load_protocol_text(source, "mutated.yaml"), source)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.text(max_size=12)
    | st.dates()
    | st.sampled_from(["delivery", "manual", "monophasic_square", "positive", "crown", "comb"])
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
NUMBERS = st.integers(-10, 7000) | st.floats(-10, 7000)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _parent(root: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        root = root[part]
    return root


@st.composite
def structure_mutations(draw: st.DrawFn) -> bytes:
    data = copy.deepcopy(BASE_DATA)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(data)[1:]))
        parent, key = _parent(data, path), path[-1]
        operation = draw(st.sampled_from(["remove", "value", "number", "add", "duplicate"]))
        if operation == "remove":
            del parent[key]
        elif operation == "value":
            parent[key] = draw(VALUES)
        elif operation == "number":
            parent[key] = draw(NUMBERS)
        elif operation == "add" and isinstance(parent, dict):
            parent[draw(st.text(min_size=1, max_size=15))] = draw(VALUES)
        elif operation == "duplicate" and isinstance(parent, list):
            parent.insert(key, parent[key])
    stream = io.StringIO()
    dumper = YAML(typ="safe", pure=True)
    dumper.allow_unicode = draw(st.booleans())
    dumper.dump(data, stream)
    return stream.getvalue().encode()


@given(structure_mutations())
@SETTINGS
def test_structure_mutations_give_a_report(source: bytes) -> None:
    check_report(load_protocol_text(source, "mutated.yaml"), source)
