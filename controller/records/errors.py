"""Errors of the records package. Every message says what is wrong and how to fix it."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class RecordsError(Exception):
    """Base class: the records could not do what was asked; nothing was half-written."""


class DataDirError(RecordsError):
    """The data folder cannot be used."""


class NoRecordsError(DataDirError):
    """Asked to read records where none were ever written (no folder, or no database)."""


class DatabaseError(RecordsError):
    """The records database cannot be opened or upgraded."""


class SchemaTooNewError(DatabaseError):
    """The database was written by a newer epm."""


class StoreLockedError(RecordsError):
    """Another epm already runs sessions on this data folder."""


class ReadOnlyStoreError(RecordsError):
    """A store opened for reading was asked to run sessions."""


class UnknownClientError(RecordsError, LookupError):
    """No client has that code."""


class UnknownSessionError(RecordsError, LookupError):
    """No session has that id."""


class InvalidRecordError(RecordsError, ValueError):
    """A value given to the store breaks a rule (bad client code, unknown outcome...)."""


class SessionEndedError(RecordsError):
    """The session already has its outcome."""


#: What reading a database changed or damaged outside epm can raise (a malformed page, text
#: that is not UTF-8, JSON that is not JSON, a number where text belongs, an infinite float).
UNREADABLE: tuple[type[BaseException], ...] = (
    sqlite3.Error,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    UnicodeError,
)


def unreadable(path: Path | str, exc: BaseException) -> DatabaseError:
    """The error for a read that failed on what the database holds."""
    return DatabaseError(
        f"the records database {path} cannot be read here ({type(exc).__name__}: {exc}): it "
        "was changed or damaged outside epm. Run `epm records verify`, keep the data folder "
        "as evidence, and restore a backup"
    )
