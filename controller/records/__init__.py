"""SQLite records of clients, treatment sessions, steps, a hash-chained event log, decimated
telemetry, protocol approvals and courses.

The record is written before the device acts and is never lost: see ``store`` for what is
committed when, and docs/records.md for the whole design.
"""

from controller.records.chain import VerifyReport
from controller.records.errors import (
    DatabaseError,
    DataDirError,
    InvalidRecordError,
    NoRecordsError,
    ReadOnlyStoreError,
    RecordsError,
    SchemaTooNewError,
    SessionEndedError,
    StoreLockedError,
    UnknownClientError,
    UnknownSessionError,
)
from controller.records.kinds import EVENT_KINDS
from controller.records.models import (
    Client,
    EventRow,
    SessionDetail,
    SessionRecord,
    StepRecord,
    TelemetrySummary,
)
from controller.records.paths import resolve_data_dir
from controller.records.store import END_OUTCOMES, RecordStore

__all__ = [
    "END_OUTCOMES",
    "EVENT_KINDS",
    "Client",
    "DataDirError",
    "DatabaseError",
    "EventRow",
    "InvalidRecordError",
    "NoRecordsError",
    "ReadOnlyStoreError",
    "RecordStore",
    "RecordsError",
    "SchemaTooNewError",
    "SessionDetail",
    "SessionEndedError",
    "SessionRecord",
    "StepRecord",
    "StoreLockedError",
    "TelemetrySummary",
    "UnknownClientError",
    "UnknownSessionError",
    "VerifyReport",
    "resolve_data_dir",
]
