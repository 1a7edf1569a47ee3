"""Configuration of the PostgreSQL adapter, and the one URL bridge to yoyo.

The adapter reads the spec's keys from its config dict (``url``, ``pool_size``, ``min_size``,
``timeout``, ``table``) plus ``statement_timeout`` and ``query_timeout``. Everything is checked
once, at construction, so a bad value fails before any connection is attempted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from mas_storage import StorageDataError

__all__ = [
    "ACTIVE_CONTEXT",
    "DEFAULT_TTL",
    "SORT_COLUMNS",
    "TABLES",
    "WORKING_MEMORY",
    "PostgresConfig",
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

_KNOWN_KEYS = frozenset(
    {
        "url",
        "pool_size",
        "min_size",
        "timeout",
        "table",
        "statement_timeout",
        "query_timeout",
        "auto_connect",
    }
)
_CORE_KEYS = frozenset({"metrics"})
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


def _positive_number(config: Mapping[str, Any], key: str, default: float | None) -> float | None:
    value = config.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise StorageDataError(f"Config '{key}' must be a positive number of seconds")
    return float(value)


def _count(config: Mapping[str, Any], key: str, default: int, minimum: int) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise StorageDataError(f"Config '{key}' must be an integer >= {minimum}")
    return value


@dataclass(frozen=True, slots=True)
class PostgresConfig:
    """The adapter's validated settings."""

    url: str = field(repr=False)  # holds the password: never in a repr (tracebacks, debuggers)
    pool_size: int = 10
    min_size: int = 2
    timeout: float = 5.0
    table: str = ACTIVE_CONTEXT
    statement_timeout: float | None = None
    #: Client-side bound on the wait for any one server reply (a frozen server cannot hang us).
    query_timeout: float = 30.0

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> PostgresConfig:
        """Validate the adapter's config dict; raise :class:`StorageDataError` naming the key."""
        unknown = set(config) - _KNOWN_KEYS - _CORE_KEYS
        if unknown:
            raise StorageDataError(
                f"Unknown PostgresAdapter config keys: {', '.join(sorted(unknown))}; "
                f"known: {', '.join(sorted(_KNOWN_KEYS))}"
            )
        url: Any = config.get("url")
        reveal = getattr(url, "get_secret_value", None)
        if callable(reveal):
            url = reveal()
        if not isinstance(url, str) or not url:
            raise StorageDataError(
                "PostgresAdapter needs 'url' (postgresql://user:pass@host:port/db): pass it in "
                "the config, set POSTGRES_URL, or use create_adapter('postgres') to read the "
                "stack outputs"
            )
        try:
            scheme = urlsplit(url).scheme.lower()
        except ValueError:
            scheme = ""
        # libpq also takes "host=... dbname=..." strings: only a URL with another scheme is wrong.
        if "://" in url and scheme not in _URL_SCHEMES:
            raise StorageDataError(
                f"Config 'url' must be a postgresql:// URL, not {scheme or 'an unparsable'}:// one"
            )
        table = config.get("table", ACTIVE_CONTEXT)
        if table not in TABLES:
            raise StorageDataError(
                f"Config 'table' must be one of {', '.join(TABLES)}, got {table!r}"
            )
        pool_size = _count(config, "pool_size", 10, 1)
        min_size = _count(config, "min_size", 2, 0)
        if min_size > pool_size:
            raise StorageDataError(
                f"Config 'min_size' ({min_size}) must not exceed 'pool_size' ({pool_size})"
            )
        timeout = _positive_number(config, "timeout", 5.0)
        assert timeout is not None
        return cls(
            url=url,
            pool_size=pool_size,
            min_size=min_size,
            timeout=timeout,
            table=table,
            statement_timeout=_positive_number(config, "statement_timeout", None),
            query_timeout=_positive_number(config, "query_timeout", 30.0) or 30.0,
        )
