"""The PostgreSQL adapter's fixed facts (its two tables, their lifetimes and sortable
columns) and the one URL bridge to yoyo. The adapter's settings are ``PostgresSettings``
(:mod:`._settings`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from mas_storage import StorageDataError

__all__ = [
    "ACTIVE_CONTEXT",
    "DEFAULT_TTL",
    "SORT_COLUMNS",
    "TABLES",
    "WORKING_MEMORY",
    "yoyo_database_url",
]

ACTIVE_CONTEXT: Final = "active_context"
WORKING_MEMORY: Final = "working_memory"
#: The only tables the adapter touches (the migration's two).
TABLES: Final = (ACTIVE_CONTEXT, WORKING_MEMORY)
#: The spec's default lifetimes: L1 turns 24 hours, L2 facts 7 days.
DEFAULT_TTL: Final = {ACTIVE_CONTEXT: timedelta(hours=24), WORKING_MEMORY: timedelta(days=7)}
#: Columns a search may sort by, per table (the whitelist; never interpolated unchecked).
SORT_COLUMNS: Final = {
    ACTIVE_CONTEXT: ("id", "session_id", "turn_id", "created_at", "ttl_expires_at"),
    WORKING_MEMORY: (
        "id",
        "session_id",
        "fact_type",
        "confidence",
        "created_at",
        "updated_at",
        "ttl_expires_at",
    ),
}

_URL_SCHEMES = ("postgresql", "postgres")


def yoyo_database_url(url: str) -> str:
    """The yoyo URL for a libpq URL: ``postgresql://`` becomes ``postgresql+psycopg://``.

    yoyo's plain ``postgresql://`` scheme needs psycopg2; the ``+psycopg`` one uses psycopg 3,
    which this workspace installs. The stack outputs and the adapter use libpq's own
    ``postgresql://``. This is the only place that translates one into the other.

    A URL of several hosts (``@h1:5432,h2:5433/db``: a primary and its standby) is beyond
    yoyo's URL parser (one host, an int port), so its hosts and ports move to the query as
    libpq's own ``host=h1,h2&port=5432,5433``, which yoyo hands to psycopg unchanged; with
    ``target_session_attrs=read-write`` (added when the URL names none) the migrations run
    on the primary, wherever it is.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in (*_URL_SCHEMES, "postgresql+psycopg"):
        raise StorageDataError(
            f"Not a PostgreSQL URL (scheme {parts.scheme!r}); expected postgresql://..."
        )
    parts = parts._replace(scheme="postgresql+psycopg")
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    if "," not in hostlist:
        return urlunsplit(parts)
    hosts, ports = zip(*(_host_port(item) for item in hostlist.split(",")), strict=True)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
    query += [("host", ",".join(hosts)), ("port", ",".join(ports))]
    if not any(k == "target_session_attrs" for k, _ in query):
        query.append(("target_session_attrs", "read-write"))
    return urlunsplit(parts._replace(netloc=f"{userinfo}{at}", query=urlencode(query, safe=",")))


def _host_port(item: str) -> tuple[str, str]:
    """``host:port``, ``[v6]:port`` or a bare host -> (host, port or "")."""
    if item.startswith("["):
        host, _, rest = item[1:].partition("]")
        return host, rest.removeprefix(":")
    host, _, port = item.partition(":")
    return host, port
