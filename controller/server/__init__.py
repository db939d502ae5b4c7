"""The clinic server: one PostgreSQL database that will receive every station's hash-chained
events (first part: the schema, its roles and the connection rules; see docs/records.md,
"Clinic server (first part)").

- :mod:`~controller.server.url`: which server URLs epm accepts (no password in the URL; TLS
  with the certificate checked unless over a Unix socket or the loopback). No driver import.
- :mod:`~controller.server.schema`: the server's versioned migrations, its roles, and
  :func:`~controller.server.schema.init_server` (``epm server init``).
- :mod:`~controller.server.sync`: :func:`~controller.server.sync.push` (``epm sync --once``),
  a station's events sent in chain order with each batch's chain checked on arrival.
"""

from __future__ import annotations


class ServerError(Exception):
    """The clinic server cannot be used; the message says what is wrong and how to fix it."""


class ServerSchemaTooNewError(ServerError):
    """The server's schema was written by a newer epm: this one will not touch it."""
