"""Errors of the records package. Every message says what is wrong and how to fix it."""

from __future__ import annotations


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
