"""psycopg and psycopg_pool exceptions mapped to the storage errors (the adapter's one rule set).

The core calls :func:`map_error` through ``PostgresAdapter._map_error`` for every exception an
operation lets escape; it chains and redacts. Classification goes by SQLSTATE class first
(stable across server versions), then by exception type for errors without one (a refused
connection, a pool timeout).
"""

from __future__ import annotations

from typing import Final

import psycopg
import psycopg_pool

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageQueryError,
    StorageTimeoutError,
)

from ._pool import READ_ONLY_SQLSTATE

__all__ = ["CONSTRAINT_RULES", "map_error"]

#: What each constraint of the migration means, for messages a caller can act on.
CONSTRAINT_RULES: Final = {
    "unique_session_turn": "a session holds each turn_id once (UNIQUE (session_id, turn_id))",
    "valid_turn_id": "turn_id must be >= 0",
    "valid_confidence": "confidence must be between 0.0 and 1.0",
    "valid_fact_type": "fact_type must not be empty",
    "valid_ttl": (
        "ttl_expires_at must be later than created_at; a new record cannot be born expired "
        "(pass its real created_at to import an expired one)"
    ),
    "valid_ttl_wm": (
        "ttl_expires_at must be later than created_at; a new record cannot be born expired "
        "(pass its real created_at to import an expired one)"
    ),
    # migration 0002 (the adapter writes keys with ON CONFLICT, so these are for other writers)
    "valid_idempotency_key": "idempotency_key must be 1 to 255 characters",
    "unique_session_idempotency_key": (
        "a session holds each idempotency_key once (partial unique index on "
        "(session_id, idempotency_key))"
    ),
}

# SQLSTATE classes and codes (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_DATA_CLASSES: Final = ("22", "23")  # data exception, integrity constraint violation
_CONNECTION_CLASSES: Final = ("08", "28", "53")  # connection, authorization, resources
_CONNECTION_CODES: Final = frozenset({"57P01", "57P02", "57P03", "3D000"})  # shutdowns, no db
_TIMEOUT_CODES: Final = frozenset({"57014", "55P03"})  # query_canceled, lock_not_available
_UNDEFINED_TABLE: Final = "42P01"
_UNDEFINED_COLUMN: Final = "42703"


def _integrity_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    constraint = diag.constraint_name or ""
    rule = CONSTRAINT_RULES.get(constraint)
    detail = diag.message_detail or ""
    if rule is None:
        return f"{type(exc).__name__}: {diag.message_primary or exc}"
    return f"constraint {constraint} violated: {rule}" + (f" ({detail})" if detail else "")


def map_error(
    exc: Exception, op: str, *, timeout: float, pool_size: int
) -> type[StorageError] | StorageError | None:
    """Classify ``exc``; ``None`` leaves it to the core's defaults (it is no psycopg error).

    Whatever fails inside ``connect`` is a failed connect: a
    :class:`~mas_storage.StorageConnectionError`, even when the exception is one this module
    does not know (the adapter is then unusable, whatever the cause).
    """
    if op == "connect":
        return _connect_error(exc, timeout=timeout, pool_size=pool_size)
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StorageTimeoutError(
            f"no PostgreSQL connection free within {timeout:g}s (pool_size={pool_size}): the "
            "pool is exhausted or the server stopped answering"
        )
    if isinstance(exc, psycopg_pool.TooManyRequests):
        return StorageTimeoutError(f"too many requests waiting for a connection: {exc}")
    if isinstance(exc, psycopg_pool.PoolClosed):
        return StorageConnectionError(f"the connection pool is closed: {exc}")
    if not isinstance(exc, psycopg.Error):
        return None
    code = exc.sqlstate or ""
    if code in _TIMEOUT_CODES:
        return StorageTimeoutError
    if code == READ_ONLY_SQLSTATE:
        return StorageConnectionError(
            f"{exc.diag.message_primary or exc}: the server takes no writes (a standby, or a "
            "primary being demoted: a failover in progress); the adapter's connections find "
            "the primary by target_session_attrs=read-write, so retry"
        )
    if code.startswith("23"):
        return StorageDataError(_integrity_message(exc))
    if code.startswith(_DATA_CLASSES):
        return StorageDataError
    if code == _UNDEFINED_TABLE:
        return StorageQueryError(
            f"{exc.diag.message_primary or exc}: the schema is missing; apply the migrations "
            "('uv run yoyo apply' from the repository root)"
        )
    if code == _UNDEFINED_COLUMN:
        return StorageQueryError(
            f"{exc.diag.message_primary or exc}: the schema may be older than the adapter; "
            "apply the pending migrations ('uv run yoyo apply' from the repository root)"
        )
    if code in _CONNECTION_CODES or code.startswith(_CONNECTION_CLASSES):
        return StorageConnectionError
    if code:
        return StorageQueryError
    # No SQLSTATE: the client side failed (refused, reset, timed out, closed connection), or
    # refused a value before sending it (a NUL character in a text parameter: bad input).
    if isinstance(exc, psycopg.DataError):
        return StorageDataError
    if isinstance(exc, psycopg.errors.ConnectionTimeout):
        return StorageTimeoutError
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return StorageConnectionError
    return StorageQueryError


def _connect_error(exc: Exception, *, timeout: float, pool_size: int) -> StorageConnectionError:
    """The :class:`StorageConnectionError` of a failed ``connect``, with the best message."""
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StorageConnectionError(f"PostgreSQL pool did not open within {timeout:g}s: {exc}")
    if isinstance(exc, TimeoutError):
        return StorageConnectionError(f"PostgreSQL did not answer within {timeout:g}s")
    mapped = map_error(exc, "open", timeout=timeout, pool_size=pool_size)
    if isinstance(mapped, StorageError):
        return StorageConnectionError(mapped.message)
    return StorageConnectionError(f"PostgreSQL connect failed: {type(exc).__name__}: {exc}")
