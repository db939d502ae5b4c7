"""The chain's anchor: the head and event count last printed on an export or a report.

A hash chain shows an edit made behind epm's back, unless the editor also recomputes every
hash after it, or cuts rows off the end and moves the head back. What stops that is a copy of
the head kept *outside* the database. Every export and report prints the head and the event
count; the last ones are also kept in ``chain-anchor.json`` in the data folder, and
``epm records verify`` checks that the event at that count still has that hash. The file sits
beside the database, so whoever can rewrite the database can rewrite it too: the printed copy
(on paper, in the clinic system, on the clinic server) is the one that cannot be reached.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from controller.records.paths import FILE_MODE

ANCHOR_FILENAME = "chain-anchor.json"


@dataclass(frozen=True)
class Anchor:
    head: str
    events: int
    saved_at: str
    purpose: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def line(self) -> str:
        """``chain head 3f…, 120 events`` as printed on exports and reports."""
        return f"chain head {self.head}, {self.events} events"


def load(data_dir: Path) -> Anchor | str | None:
    """The saved anchor; a sentence when the file cannot be read; None when there is none."""
    path = data_dir / ANCHOR_FILENAME
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"the saved chain anchor {path} cannot be read: {exc.strerror or exc}"
    try:
        data = json.loads(raw)
        anchor = Anchor(
            str(data["head"]), int(data["events"]), str(data["saved_at"]), str(data["purpose"])
        )
    except (ValueError, KeyError, TypeError):
        return f"the saved chain anchor {path} is not readable JSON: it was edited or damaged"
    return anchor


def save(data_dir: Path, anchor: Anchor) -> None:
    """Replace the saved anchor atomically (mode 0600)."""
    fd, tmp = tempfile.mkstemp(prefix=".anchor-", dir=data_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(anchor.to_dict(), f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, data_dir / ANCHOR_FILENAME)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def check(conn: sqlite3.Connection, anchor: Anchor) -> str | None:
    """Why the chain no longer holds ``anchor`` at its position (None: it does)."""
    (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
    when = f"saved by {anchor.purpose} at {anchor.saved_at[:19].replace('T', ' ')} UTC"
    if anchor.events > count:
        return (
            f"the head {when} ({anchor.events} events, head {anchor.head[:16]}…) is beyond the "
            f"end of the chain, which now has {count} events: the chain was truncated"
        )
    if anchor.events == 0:
        return None
    row = conn.execute("SELECT hash FROM events WHERE id = ?", (anchor.events,)).fetchone()
    if row is None or row[0] != anchor.head:
        return (
            f"the head {when} ({anchor.events} events, head {anchor.head[:16]}…) is no longer "
            f"the hash of event {anchor.events}: the chain was rewritten"
        )
    return None
