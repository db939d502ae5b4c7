"""A library: every protocol file of one folder, with the identity rule across files."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from importlib import resources
from pathlib import Path

from protocols.loader import Analysis, LoadResult, analyse_file, unreadable
from protocols.locate import position
from protocols.problem import Problem, Severity, capped

SUFFIXES = (".yaml", ".yml")


def protocol_files(folder: str | Path) -> list[Path]:
    """Every entry of ``folder`` named ``*.yaml`` or ``*.yml``, sorted by name.

    Not only regular files: a folder, a named pipe or a dangling link with such a name is
    listed too, so that the library reports it as skipped instead of hiding it. Hidden names
    (``.name.yaml``, an editor's ``.#name.yaml`` lock) are not protocols and are left out.
    """
    return sorted(
        path
        for path in Path(folder).iterdir()
        if path.suffix in SUFFIXES and not path.name.startswith(".")
    )


def load_library(folder: str | Path) -> list[LoadResult]:
    """Load every protocol file of ``folder``; raises only when the folder cannot be listed.

    Each entry named ``*.yaml`` or ``*.yml`` gives one result, also one that is not a readable
    file (one "unreadable" error) and one whose checking failed unexpectedly (one "internal"
    error): one bad file never hides the others.

    Two files with the same ``id`` and ``version`` but different bytes are an error in both:
    a session record names its protocol by id, version and SHA-256, and one identity must
    mean one content.
    """
    analyses = [_analyse(path) for path in protocol_files(folder)]
    claims: dict[tuple[str, int], list[Analysis]] = defaultdict(list)
    for analysis in analyses:
        result = analysis.result
        if result.id is not None and result.version is not None and result.sha256 is not None:
            claims[(result.id, result.version)].append(analysis)

    extra: dict[int, list[Problem]] = defaultdict(list)
    for (identifier, version), group in claims.items():
        for mine in group:
            others = [o for o in group if o.result.sha256 != mine.result.sha256]
            if others:
                shown = [o.result.path.name for o in others[:3]]
                if len(others) > 3:
                    shown.append(f"{len(others) - 3} more files")
                names = ", ".join(shown)
                extra[id(mine)].append(_duplicate(mine, identifier, version, names))
    return [_with(analysis, extra.get(id(analysis), [])) for analysis in analyses]


def _analyse(path: Path) -> Analysis:
    try:
        return analyse_file(path)
    except Exception as exc:  # one broken file must not hide the others
        return unreadable(
            path,
            f"{path.name} could not be checked: epm failed on it ({type(exc).__name__}); "
            "check it on its own with epm validate, and report the problem with the file",
            code="internal",
        )


def _duplicate(analysis: Analysis, identifier: str, version: int, others: str) -> Problem:
    document = analysis.document
    line, column = position(document.root, ("id",)) if document is not None else (1, 1)
    return Problem(
        str(analysis.result.path),
        line,
        column,
        "id",
        Severity.ERROR,
        "duplicate_id_version",
        f'"{identifier}" version {version} is also used by {others} with different content: '
        'a changed protocol needs a new "version"; bump it in one of the files',
    )


def _with(analysis: Analysis, problems: list[Problem]) -> LoadResult:
    result = analysis.result
    if not problems:
        return result
    merged = capped((*analysis.all_problems, *problems), more=analysis.truncated)
    return dataclasses.replace(result, problems=merged, protocol=None)


def bundled_library_path() -> Path:
    """The folder of protocols shipped inside the package (works from an installed wheel)."""
    folder = resources.files("protocols").joinpath("library")
    path = Path(str(folder))
    if not path.is_dir():
        raise FileNotFoundError(f"the bundled protocol library is missing: {folder}")
    return path
