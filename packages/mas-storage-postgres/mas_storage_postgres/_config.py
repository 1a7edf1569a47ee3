"""The PostgreSQL adapter's fixed facts (its two tables, their lifetimes and sortable
columns) and the one URL bridge to yoyo. The adapter's settings are ``PostgresSettings``
(:mod:`._settings`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Final
from urllib.parse import urlsplit, urlunsplit

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
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "postgresql+psycopg":
        return url
    if scheme not in _URL_SCHEMES:
        raise StorageDataError(
            f"Not a PostgreSQL URL (scheme {parts.scheme!r}); expected postgresql://..."
        )
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))
