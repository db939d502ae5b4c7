"""Writing a session's report or aftercare handout from a screen: where, under which name,
with which clinic settings — the parts the end screen and the records browser share.

Why here: the documents themselves are the records layer's (``controller.records.report``,
``controller.records.handout``); a screen only decides the file name and shows the result.
Files go to the data folder's ``reports/`` (private, 0700), named ``session-N-report.pdf`` /
``session-N-handout.pdf``; a name already taken gets ``-2``, ``-3``… so nothing is ever
overwritten. The clinic's name, contact line, station and paper come from the configuration
file, read afresh each time (a technician may have just set them).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controller.config import ConfigError, load_config
from controller.records import RecordsError, RecordStore
from controller.records.documents import ReportResult, ReportSettings
from controller.records.export import OutputExistsError
from controller.records.paths import REPORTS_FOLDER

if TYPE_CHECKING:
    from textual.screen import Screen

log = logging.getLogger(__name__)

KINDS = ("report", "handout")
#: How many numbered names are tried before giving up (a folder full of one session's copies).
MAX_TRIES = 100


@dataclass(frozen=True)
class Written:
    """A document written (``result``) or why not (``error``), in words for the screen."""

    kind: str
    result: ReportResult | None = None
    error: str = ""

    @property
    def message(self) -> str:
        what = "Session report" if self.kind == "report" else "Aftercare handout"
        if self.result is None:
            return f"{what} NOT written: {self.error}"
        pages = f"{self.result.pages} page" + ("s" if self.result.pages != 1 else "")
        return f"{what} written ({pages}, recorded in the session): {self.result.path}"


def reports_dir(store: RecordStore) -> Path:
    """``<data folder>/reports``, created private (0700) when missing."""
    folder = Path(store.data_dir) / REPORTS_FOLDER
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def free_name(folder: Path, session_id: int, kind: str) -> Path:
    """``session-N-KIND.pdf``, or the first ``session-N-KIND-M.pdf`` not taken."""
    for n in range(1, MAX_TRIES + 1):
        suffix = "" if n == 1 else f"-{n}"
        path = folder / f"session-{session_id}-{kind}{suffix}.pdf"
        if not os.path.lexists(path):
            return path
    raise OutputExistsError([folder / f"session-{session_id}-{kind}.pdf"])


def settings_for(store: RecordStore) -> ReportSettings:
    """The clinic's settings from the configuration file in the store's data folder."""
    config = load_config(store.data_dir)
    return ReportSettings(
        clinic_name=config.clinic_name,
        clinic_contact=config.clinic_contact,
        station_name=config.station_name,
        paper=config.report_paper,
    )


def write_document(store: RecordStore, session_id: int, kind: str) -> Written:
    """Write the ``report`` or ``handout`` of a closed session; never raises (it runs in a
    worker thread and the screen shows the words)."""
    from controller.records.handout import write_handout
    from controller.records.report import write_session_report

    if kind not in KINDS:
        return Written(kind, error=f"unknown document {kind!r}")
    try:
        settings = settings_for(store)
        folder = reports_dir(store)
        for _ in range(3):  # another writer may take the name between the check and the write
            path = free_name(folder, session_id, kind)
            try:
                if kind == "report":
                    result = write_session_report(store, session_id, settings, path)
                else:
                    result = write_handout(store, session_id, settings, path)
            except OutputExistsError:
                continue
            return Written(kind, result)
        return Written(kind, error=f"every name for it in {folder} is taken")
    except ConfigError as exc:
        return Written(kind, error=f"the configuration file has a problem: {exc}")
    except (RecordsError, OSError, ValueError) as exc:
        return Written(kind, error=str(exc))
    except Exception as exc:  # a bug: said on screen; a worker's exception would end the app
        log.exception("writing the %s of session %s failed", kind, session_id)
        return Written(kind, error=f"internal error ({exc!r}); see the log")


def write_in_background(
    screen: Screen[Any],
    store: RecordStore,
    session_id: int,
    kind: str,
    done: Callable[[Written], None],
) -> None:
    """Write the document in a worker thread (rendering takes up to a second), then call
    ``done(written)`` on the screen's thread. The screens' one way to do it."""

    def work() -> None:
        written = write_document(store, session_id, kind)
        screen.app.call_from_thread(done, written)

    screen.run_worker(work, thread=True, name=f"epm-{kind}", group="documents")
