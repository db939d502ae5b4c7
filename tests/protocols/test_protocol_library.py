"""The bundled library and the identity rule across a folder."""

from __future__ import annotations

import re
import shutil
from importlib import resources
from pathlib import Path

import pytest

from protocols import (
    Handpiece,
    Indication,
    LoadResult,
    StepKind,
    Zone,
    bundled_library_path,
    load_library,
)

DATA = Path(__file__).resolve().parents[1] / "data" / "protocols"
MODELINE = "# yaml-language-server: $schema=../schema/protocol-v1.json"


@pytest.fixture(scope="module")
def library() -> list[LoadResult]:
    return load_library(bundled_library_path())


def _by_indication(library: list[LoadResult], indication: Indication) -> list[LoadResult]:
    return [r for r in library if r.protocol is not None and r.protocol.indication is indication]


def test_bundled_library_has_no_errors(library: list[LoadResult]) -> None:
    assert len(library) >= 5
    for result in library:
        assert result.errors == (), [p.format() for p in result.errors]
        assert result.ok


def test_warnings_only_where_the_file_says_why(library: list[LoadResult]) -> None:
    for result in library:
        text = result.path.read_text(encoding="utf-8")
        for warning in result.warnings:
            pattern = rf"#.*accepted warning: {warning.code}\b.*\S"
            assert re.search(pattern, text), warning.format()


def test_every_library_file_starts_with_the_modeline(library: list[LoadResult]) -> None:
    for result in library:
        first = result.path.read_text(encoding="utf-8").splitlines()[0]
        assert first == MODELINE, result.path.name


def test_every_session_lasts_15_to_30_minutes(library: list[LoadResult]) -> None:
    for result in library:
        assert result.protocol is not None
        assert 15 * 60 <= result.protocol.total_session_s <= 30 * 60, result.path.name


def test_library_covers_the_clinical_cases(library: list[LoadResult]) -> None:
    (aga, combo) = sorted(
        _by_indication(library, Indication.EARLY_ANDROGENETIC_ALOPECIA),
        key=lambda r: len(r.protocol.steps) if r.protocol else 0,
    )
    assert aga.protocol is not None
    assert aga.protocol.handpiece is Handpiece.SCALP_ROLLER
    assert set(aga.protocol.zones) == {Zone.FRONTAL, Zone.MIDSCALP, Zone.CROWN}
    assert combo.protocol is not None
    manual = [s for s in combo.protocol.steps if s.kind == StepKind.MANUAL]
    assert any("microneedling" in s.title.lower() for s in manual)

    (effluvium,) = _by_indication(library, Indication.TELOGEN_EFFLUVIUM)
    assert effluvium.protocol is not None
    assert len(effluvium.protocol.zones) == 6  # the whole scalp
    most_aga = max(s.amplitude_max_v for s in aga.protocol.delivery_steps)
    assert max(s.amplitude_max_v for s in effluvium.protocol.delivery_steps) < most_aga

    (areata,) = _by_indication(library, Indication.ALOPECIA_AREATA)
    assert areata.protocol is not None
    assert areata.protocol.handpiece is Handpiece.FLAT_PROBE
    assert areata.protocol.zones == (Zone.PATCH,)

    assert _by_indication(library, Indication.DAMAGED_HAIR)
    assert _by_indication(library, Indication.MAINTENANCE)


def test_library_ids_are_unique(library: list[LoadResult]) -> None:
    ids = [r.protocol.id for r in library if r.protocol is not None]
    assert len(ids) == len(set(ids))


def test_duplicate_id_and_version_with_different_content_is_an_error_in_both() -> None:
    results = {r.path.name: r for r in load_library(DATA / "library-duplicate")}
    assert sorted(results) == ["a.yaml", "b.yaml", "c.yml"]
    for name, other in (("a.yaml", "b.yaml"), ("b.yaml", "a.yaml")):
        (problem,) = results[name].problems
        assert (problem.code, problem.line, problem.column, problem.path) == (
            "duplicate_id_version",
            3,
            1,
            "id",
        )
        assert other in problem.message
        assert results[name].protocol is None
    assert results["c.yml"].ok


def test_identical_copies_are_not_a_conflict(tmp_path: Path) -> None:
    source = DATA / "valid" / "base.yaml"
    shutil.copy(source, tmp_path / "one.yaml")
    shutil.copy(source, tmp_path / "two.yaml")
    (tmp_path / "notes.txt").write_text("not a protocol")
    results = load_library(tmp_path)
    assert [r.path.name for r in results] == ["one.yaml", "two.yaml"]
    assert all(r.ok for r in results)


def test_package_data_is_installed() -> None:
    root = resources.files("protocols")
    names = {entry.name for entry in root.joinpath("library").iterdir()}
    assert len([n for n in names if n.endswith(".yaml")]) >= 5
    assert root.joinpath("schema", "protocol-v1.json").is_file()
    assert root.joinpath("py.typed").is_file()
    assert bundled_library_path().is_dir()
    assert {p.name for p in bundled_library_path().glob("*.yaml")} == {
        n for n in names if n.endswith(".yaml")
    }


def test_package_data_globs_cover_every_data_file() -> None:
    """A non-editable install ships only what pyproject's package-data names."""
    import fnmatch
    import tomllib

    project = Path(__file__).resolve().parents[2]
    config = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    globs = config["tool"]["setuptools"]["package-data"]["protocols"]
    package = project / "protocols"
    data_files = [
        path.relative_to(package).as_posix()
        for path in package.rglob("*")
        if path.is_file() and path.suffix in (".yaml", ".json", ".typed")
    ]
    assert len(data_files) >= 7
    for name in data_files:
        assert any(fnmatch.fnmatch(name, pattern) for pattern in globs), name
