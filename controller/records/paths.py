"""Where the clinic's records live: one data folder per user, overridable for tests and clinics.

Precedence, highest first: an explicit ``--data-dir``, the ``EPM_HOME`` environment variable,
then the platform's per-user data folder (``platformdirs.user_data_dir("epm")``). The folder
holds client names and treatment records, so it is created readable by its owner only.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from controller.records.errors import DataDirError, NoRecordsError

#: Environment variable that moves the data folder (a clinic's shared disk, a test's tmp dir).
ENV_VAR = "EPM_HOME"
#: The SQLite database inside the data folder.
DB_FILENAME = "records.sqlite3"
#: The lock file a session-running store holds (one controller per data folder).
LOCK_FILENAME = "records.lock"
#: The folder inside the data folder that holds the written documents (reports, handouts);
#: the clinic server sync sends them from there.
REPORTS_FOLDER = "reports"
DIR_MODE = 0o700
FILE_MODE = 0o600


def default_data_dir() -> Path:
    """The platform's per-user data folder for epm (not created)."""
    return Path(platformdirs.user_data_dir("epm", appauthor=False))


def resolve_data_dir(explicit: str | Path | None = None, *, create: bool = True) -> Path:
    """Return the data folder to use, creating it (mode 0700) when it does not exist.

    With ``create=False`` (reading records) a folder that does not exist, or holds no records
    database, is :class:`NoRecordsError`: a mistyped folder must never look like an empty,
    intact record.

    ``explicit`` (``--data-dir``) wins over ``EPM_HOME``, which wins over the platform default.
    An existing folder keeps its permissions: it may be a clinic's deliberate choice.
    """
    if explicit is not None and str(explicit).strip():
        chosen = Path(explicit).expanduser()
        source = "--data-dir"
    elif os.environ.get(ENV_VAR, "").strip():
        chosen = Path(os.environ[ENV_VAR].strip()).expanduser()
        source = ENV_VAR
    else:
        chosen = default_data_dir()
        source = "the default data folder"
    if chosen.exists() and not chosen.is_dir():
        raise DataDirError(
            f"{chosen} (from {source}) is a file, not a folder: point {source} at a folder "
            "for the records, or remove the file"
        )
    if not create and not (chosen / DB_FILENAME).is_file():
        what = "does not exist" if not chosen.exists() else "holds no records database"
        raise NoRecordsError(
            f"no records here: {chosen} (from {source}) {what}. Check the folder name; epm "
            "creates the records when it first records a session or an approval"
        )
    if not chosen.exists():
        try:
            chosen.mkdir(mode=DIR_MODE, parents=True)
            os.chmod(chosen, DIR_MODE)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise DataDirError(
                f"cannot create the records folder {chosen} (from {source}): {exc.strerror}; "
                f"choose a writable folder with --data-dir or {ENV_VAR}"
            ) from exc
    return chosen.resolve()


def database_path(data_dir: Path) -> Path:
    """The records database inside ``data_dir``."""
    return data_dir / DB_FILENAME
