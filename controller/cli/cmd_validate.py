"""``epm validate PATH...``: check protocol files and folders (a folder is a library)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from protocols import LoadResult, Problem

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check treatment protocol files",
        description=(
            "Check treatment protocol files (epm-protocol/1). A folder is checked as a "
            "library: every *.yaml and *.yml file in it, and no two files with the same id "
            "and version but different content. Exit status: 0 all valid (warnings allowed), "
            "1 a file is invalid, 2 usage error."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="*",
        metavar="PATH",
        help="protocol file or folder (none: list and check the bundled library)",
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help=(
            "text for people (default); json for tools: every file with its verdict, id, "
            "version, SHA-256 and problems, and a summary"
        ),
    )


def run(args: argparse.Namespace) -> int:
    from protocols import load_library, load_protocol

    if not args.paths:
        if args.format == "json":
            from protocols import bundled_library_path

            args.paths = [str(bundled_library_path())]
        else:
            return summarise_bundled_library()
    missing = [path for path in args.paths if not Path(path).exists()]
    for path in missing:
        print(f"epm validate: no such file or folder: {path}", file=sys.stderr)
    if missing:
        return EXIT_USAGE

    results: list[LoadResult] = []
    for name in args.paths:
        path = Path(name)
        if path.is_dir():
            found = load_library(path)
            if not found:
                print(f"epm validate: no .yaml or .yml files in folder: {name}", file=sys.stderr)
                return EXIT_USAGE
            results += found
        else:
            results.append(load_protocol(path))

    if args.format == "json":
        print(json.dumps(json_report(results), indent=2, ensure_ascii=False))
    else:
        for result in results:
            print_result(result)
        print(summary(results))
    return EXIT_OK if all(result.ok for result in results) else EXIT_INVALID


def json_report(results: list[LoadResult]) -> dict[str, Any]:
    """Every file with its verdict, identity and problems, and the counts over all of them.

    ``id`` and ``version`` are those written in the file (also for an invalid file, when they
    have the right type; otherwise null); ``sha256`` is that of the file's bytes (null when
    they could not be read, or the file is too large).
    """
    files = [
        {
            "path": str(result.path),
            "verdict": _verdict(result),
            "id": result.protocol.id if result.protocol is not None else result.id,
            "version": result.protocol.version if result.protocol is not None else result.version,
            "sha256": result.sha256,
            "problems": [problem.to_dict() for problem in result.problems],
        }
        for result in results
    ]
    valid = sum(1 for result in results if result.ok)
    skipped = sum(1 for result in results if result.skipped)
    summary = {
        "files": len(results),
        "valid": valid,
        "invalid": len(results) - valid - skipped,
        "skipped": skipped,
        "errors": sum(len(result.errors) for result in results),
        "warnings": sum(len(result.warnings) for result in results),
    }
    return {"files": files, "summary": summary}


def problem_line(problem: Problem) -> str:
    """An error as ``file:line:col: path: message``; a warning with ``warning:`` after the
    position, so both stay clickable in editors and terminals."""
    if problem.is_error:
        return problem.format()
    where = f"{problem.file}:{problem.line}:{problem.column}: warning: "
    return where + (f"{problem.path}: {problem.message}" if problem.path else problem.message)


def _verdict(result: LoadResult) -> str:
    """valid, invalid, or skipped (an entry that is not a readable file: never checked)."""
    if result.ok:
        return "valid"
    return "skipped" if result.skipped else "invalid"


def print_result(result: LoadResult) -> None:
    state = {"valid": "valid", "invalid": "INVALID", "skipped": "SKIPPED"}[_verdict(result)]
    counts = "" if result.skipped else _counts(len(result.errors), len(result.warnings))
    print(f"{result.path}: {state}" + (f" ({counts})" if counts else ""))
    for problem in (*result.errors, *result.warnings):
        print(f"  {problem_line(problem)}")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _counts(errors: int, warnings: int) -> str:
    parts = []
    if errors:
        parts.append(_plural(errors, "error"))
    if warnings:
        parts.append(_plural(warnings, "warning"))
    return ", ".join(parts)


def summary(results: list[LoadResult]) -> str:
    """``3 files: 2 valid, 1 invalid (4 errors, 1 warning)``, ``…, 1 skipped`` when an entry
    could not be read at all."""
    valid = sum(1 for result in results if result.ok)
    skipped = sum(1 for result in results if result.skipped)
    errors = sum(len(result.errors) for result in results if not result.skipped)
    warnings = sum(len(result.warnings) for result in results)
    invalid = len(results) - valid - skipped
    line = f"{_plural(len(results), 'file')}: {valid} valid, {invalid} invalid"
    if skipped:
        line += f", {skipped} skipped (not a readable file)"
    counts = _counts(errors, warnings)
    return line + (f" ({counts})" if counts else "")


def summarise_bundled_library() -> int:
    """Check the bundled library and list what it holds; 0 when every protocol is valid."""
    from protocols import bundled_library_path, load_library

    folder = bundled_library_path()
    results = load_library(folder)
    print(f"Bundled protocol library ({folder}): {_plural(len(results), 'protocol')}")
    rows = [_row(result) for result in results]
    header = ("id", "ver", "title", "indication", "handpiece", "zones", "min", "status", "check")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))
    for result in results:
        for problem in (*result.errors, *result.warnings):
            print(f"  {problem_line(problem)}")
    print(summary(results))
    return EXIT_OK if all(result.ok for result in results) else EXIT_INVALID


def _row(result: LoadResult) -> tuple[str, ...]:
    protocol = result.protocol
    check = "valid" if result.ok else "INVALID"
    if result.warnings:
        check += f" ({_plural(len(result.warnings), 'warning')})"
    if protocol is None:
        return (
            result.id or result.path.name,
            str(result.version or "?"),
            "?",
            "?",
            "?",
            "?",
            "?",
            "?",
            check,
        )
    return (
        protocol.id,
        str(protocol.version),
        protocol.title,
        str(protocol.indication),
        str(protocol.handpiece),
        ", ".join(protocol.zones),
        f"{protocol.total_session_s / 60:g}",
        str(protocol.status),
        check,
    )
