"""The protocol library as the technician's screen shows it: pure data, no widgets.

Why a separate module: the library screen must reload when files change on disk, every second,
without blocking the UI. Telling whether anything changed costs one ``stat`` per file
(:func:`folder_fingerprint`); only then is the folder loaded again (:func:`scan_library`), with
``protocols.load_library`` so the cross-file rules (one id and version, one content) apply
exactly as ``epm validate`` applies them, and each file's approval is looked up by the SHA-256
of its bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from controller.records import RecordStore
from controller.records.approvals import Approval, is_approved
from protocols import LoadResult, load_library
from protocols.library import SUFFIXES

#: ``(file name, mtime in ns, size)`` of every protocol file, sorted: equal means unchanged.
Fingerprint = tuple[tuple[str, int, int], ...]


@dataclass(frozen=True)
class LibraryEntry:
    """One protocol file of the library with what the technician needs to see about it."""

    path: Path
    result: LoadResult
    approval: Approval | None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def errors(self) -> int:
        return len(self.result.errors)

    @property
    def warnings(self) -> int:
        return len(self.result.warnings)

    @property
    def validity(self) -> str:
        """``valid``, ``valid, 2 warnings`` or ``3 errors`` (an invalid file's warnings are
        listed with its problems, but the errors are what matter first)."""
        if self.errors:
            return _plural(self.errors, "error")
        if self.warnings:
            return f"valid, {_plural(self.warnings, 'warning')}"
        return "valid"

    @property
    def protocol_id(self) -> str:
        if self.result.protocol is not None:
            return self.result.protocol.id
        return self.result.id or "?"

    @property
    def version(self) -> str:
        if self.result.protocol is not None:
            return str(self.result.protocol.version)
        return "?" if self.result.version is None else str(self.result.version)

    @property
    def title(self) -> str:
        return self.result.protocol.title if self.result.protocol is not None else ""

    @property
    def status(self) -> str:
        if self.result.protocol is None:
            return "?"
        return str(self.result.protocol.status)

    @property
    def approved_label(self) -> str:
        """``yes`` when these exact bytes were approved, else ``no``."""
        return "yes" if self.approval is not None else "no"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def folder_fingerprint(folder: Path) -> Fingerprint | None:
    """The cheap change detector: name, mtime and size of each protocol file; ``None`` when
    the folder cannot be read (it was removed or its permissions changed)."""
    try:
        entries = []
        for path in folder.iterdir():
            if path.suffix not in SUFFIXES:
                continue
            try:
                info = path.stat()
            except OSError:
                continue
            entries.append((path.name, info.st_mtime_ns, info.st_size))
    except OSError:
        return None
    return tuple(sorted(entries))


class LibraryUnreadableError(Exception):
    """The library folder cannot be listed; the message says which folder and how to fix it."""


def scan_library(folder: Path, store: RecordStore | None) -> list[LibraryEntry]:
    """Load every protocol file of ``folder`` and look up each one's approval record."""
    if not folder.is_dir():
        raise LibraryUnreadableError(
            f"the protocol library folder {folder} does not exist or is not a folder: "
            "create it, or start epm with --library DIR pointing at your protocols"
        )
    try:
        results = load_library(folder)
    except OSError as exc:
        raise LibraryUnreadableError(
            f"the protocol library folder {folder} cannot be read ({exc.strerror or exc}): "
            "check its permissions"
        ) from exc
    entries = []
    for result in results:
        approval = None
        if store is not None and result.sha256 is not None:
            approval = is_approved(store, result.sha256)
        entries.append(LibraryEntry(result.path, result, approval))
    return entries
