"""Checks on values given to the store; each failure says what is wrong and how to fix it."""

from __future__ import annotations

import datetime as dt
import re

from controller.records.errors import InvalidRecordError

CLIENT_CODE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
CLIENT_NAME_MAX = 120


def text(value: object, what: str, *, required: bool = True, max_len: int = 200) -> str:
    """``value`` stripped; refused when not text, empty (if ``required``) or too long."""
    if not isinstance(value, str):
        raise InvalidRecordError(f"{what} must be text, not {type(value).__name__}")
    clean = value.strip()
    if required and not clean:
        raise InvalidRecordError(f"{what} is empty: give the {what}")
    if len(clean) > max_len:
        raise InvalidRecordError(f"{what} is {len(clean)} characters long; at most {max_len}")
    return clean


def client_code(code: object) -> str:
    """A clinic's client code: 1-32 letters, digits, ``-`` or ``_``."""
    if not isinstance(code, str) or not CLIENT_CODE.match(code.strip()):
        raise InvalidRecordError(
            f"client code {code!r} is not valid: use 1-32 letters, digits, '-' or '_' "
            "(the clinic's own client number, e.g. C-0042)"
        )
    return code.strip()


def local_start(day: dt.date | dt.datetime) -> dt.datetime:
    """A local date's midnight (or a naive datetime) as an aware local datetime."""
    if isinstance(day, dt.datetime):
        return day if day.tzinfo else day.astimezone()
    return dt.datetime.combine(day, dt.time.min).astimezone()
