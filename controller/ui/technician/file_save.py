"""Saving a protocol file atomically, keeping the previous content as ``NAME.bak``.

Why: a protocol file is what a session runs; a crash or a full disk in the middle of a save
must never leave half a file. The new text goes to a temporary file in the same folder, is
flushed to disk, and replaces the file in one ``rename``; the previous bytes are first kept in
``NAME.bak`` (itself written the same way), so the last saved version can always be got back.
The file keeps its permissions. Protocol libraries list only ``*.yaml``/``*.yml``, so neither
the ``.bak`` nor the temporary file is ever taken for a protocol.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SaveResult:
    path: Path
    backup: Path | None
    """Where the previous content went (``None`` for a new file)."""
    sha256: str
    """SHA-256 of the bytes written (what an approval of this file would name)."""


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def file_digest(path: Path) -> str | None:
    """SHA-256 of the file's bytes, or ``None`` when it does not exist or cannot be read."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _write_replace(target: Path, data: bytes, mode: int | None) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_atomic(path: Path, text: str) -> SaveResult:
    """Write ``text`` (UTF-8) to ``path`` atomically, the previous bytes kept in ``.bak``.

    Raises ``OSError`` (with the operating system's reason) when the folder is not writable;
    the original file is then unchanged.
    """
    data = text.encode("utf-8")
    mode: int | None = None
    backup: Path | None = None
    try:
        info = path.stat()
    except FileNotFoundError:
        info = None
    if info is not None:
        mode = stat.S_IMODE(info.st_mode)
        backup = backup_path(path)
        _write_replace(backup, path.read_bytes(), mode)
    _write_replace(path, data, mode)
    _fsync_dir(path.parent)
    return SaveResult(path, backup, hashlib.sha256(data).hexdigest())
