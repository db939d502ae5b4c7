"""Which clinic-server URLs epm accepts, checked before any connection is made.

- The URL is a libpq ``postgresql://`` (or ``postgres://``) URL.
- It never carries a password (in the user part or as ``?password=``): configuration files are
  copied and shown; a password comes from the ``PGPASSWORD`` environment variable or a libpq
  password file (``~/.pgpass``, ``PGPASSFILE``).
- Over the network TLS is required with the server's certificate and name checked
  (``sslmode=verify-full``). Only a Unix socket (no host, or a host that is a folder) or the
  loopback (``localhost``, ``127.0.0.1``, ``::1``) may use a weaker ``sslmode``. The libpq
  variables ``PGHOST``, ``PGHOSTADDR`` and ``PGSSLMODE`` are taken into account where the URL
  leaves the value to them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import parse_qs, unquote, urlsplit

SCHEMES = ("postgresql", "postgres")
LOOPBACK = ("localhost", "127.0.0.1", "::1")
REQUIRED_SSLMODE = "verify-full"
PASSWORD_HELP = (
    "a password is never kept in epm's settings: leave it out of the URL and set the "
    "PGPASSWORD environment variable, or use a libpq password file (~/.pgpass, or PGPASSFILE)"
)


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as written (scheme, password); None when nothing is."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or not url.lower().startswith(
        tuple(f"{s}://" for s in SCHEMES)
    ):
        return (
            f"{url!r} is not a postgresql:// URL: write it as "
            "postgresql://USER@HOST/DATABASE?sslmode=verify-full"
        )
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    has_password = bool(userinfo.partition(":")[2])
    if has_password or any(v for v in _query(url).get("password", [])):
        return f"the URL carries a password: {PASSWORD_HELP}"
    return None


def _hosts(url: str, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """The hosts and host addresses libpq would connect to (empty host: the Unix socket)."""
    parts = urlsplit(url)
    query = _query(url)
    hostport = parts.netloc.rpartition("@")[2]
    hosts: list[str] = []
    for raw in hostport.split(",") if hostport else []:
        item = unquote(raw)
        if item.startswith("["):  # [::1]:5432
            hosts.append(item[1 : item.find("]")])
        else:
            hosts.append(item.rpartition(":")[0] if item.count(":") == 1 else item)
    if query.get("host"):
        hosts = [h for value in query["host"][-1:] for h in value.split(",")]
    if not any(hosts):
        hosts = env.get("PGHOST", "").split(",")
    addresses = query["hostaddr"][-1].split(",") if query.get("hostaddr") else []
    if not addresses and env.get("PGHOSTADDR", "").strip():
        addresses = env["PGHOSTADDR"].split(",")
    return [h.strip() for h in hosts], [a.strip() for a in addresses if a.strip()]


def _local(host: str) -> bool:
    return not host or host.startswith(("/", "@")) or host.lower() in LOOPBACK


def connection_problem(url: str, env: Mapping[str, str] | None = None) -> str | None:
    """What forbids connecting to ``url`` (a password in it, or the network without
    ``sslmode=verify-full``); None when epm may connect."""
    env = os.environ if env is None else env
    problem = url_problem(url)
    if problem:
        return problem
    hosts, addresses = _hosts(url, env)
    query = _query(url)
    sslmode = (query["sslmode"][-1] if query.get("sslmode") else env.get("PGSSLMODE", "")).strip()
    sslmode = sslmode or "prefer"
    remote = [h for h in hosts if not _local(h)] + [
        a for a in addresses if a not in ("127.0.0.1", "::1")
    ]
    if remote and sslmode != REQUIRED_SSLMODE:
        return (
            f"the server {', '.join(remote)} is reached over the network with "
            f"sslmode={sslmode}: epm requires TLS with the server's certificate checked "
            f"(sslmode={REQUIRED_SSLMODE}) except over a Unix socket or the loopback "
            f"({', '.join(LOOPBACK)}). Add ?sslmode={REQUIRED_SSLMODE} to the URL (and the "
            "clinic's CA certificate as sslrootcert=FILE, or ~/.postgresql/root.crt)"
        )
    return None
