"""The clinic server: one PostgreSQL database that receives every treatment room's records
and keeps the clinic's own ledger (docs/records.md, "Clinic server").

- :mod:`~controller.server.url`: which server URLs epm accepts (no password in the URL; TLS
  with the certificate checked unless over a Unix socket or the loopback). No driver import.
- :mod:`~controller.server.schema`: the server's versioned migrations, its roles, and
  :func:`~controller.server.schema.init_server` (``epm server init``).
- :mod:`~controller.server.sync`: :func:`~controller.server.sync.push`, a station's events sent
  in chain order with each batch's chain checked on arrival, and
  :func:`~controller.server.sync.sync_once` (``epm sync``): push, claims, pull, documents.
- :mod:`~controller.server.pull`: the clinic ledger and the other rooms' sessions taken, the
  station's client codes claimed, its handed-out documents sent.
- :mod:`~controller.server.clinic`: approvals, revocations and client resolutions made on the
  server by a technician.
- :mod:`~controller.server.worker`: the app's background sync.
"""

from __future__ import annotations


class ServerError(Exception):
    """The clinic server cannot be used; the message says what is wrong and how to fix it."""


class ServerSchemaTooNewError(ServerError):
    """The server's schema was written by a newer epm: this one will not touch it."""
