"""The one place neo4j driver exceptions become storage errors.

The core calls :meth:`Neo4jAdapter._map_error`, which delegates here. The most specific rule
wins; anything unclaimed falls back to the core's defaults (``TimeoutError`` -> timeout,
``OSError`` -> connection, else query). Messages are redacted by the core afterwards.
"""

from __future__ import annotations

from neo4j import exceptions as nx

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
)

__all__ = ["map_neo4j_error"]

#: Server codes (suffix after ``Neo.<Classification>.``) that mean a time budget ran out.
_TIMEOUT_CODES = (
    "Transaction.TransactionTimedOut",
    "Transaction.TransactionTimedOutClientConfiguration",
    "Transaction.LockAcquisitionTimeout",
    "Transaction.LockClientStopped",
)
_NOT_FOUND_CODES = ("Database.DatabaseNotFound",)
_ACCESS_MODE_CODE = "Neo.ClientError.Statement.AccessMode"


def map_neo4j_error(
    exc: Exception, op: str, *, user: str | None, uri: str | None
) -> type[StorageError] | StorageError | None:
    """Classify ``exc``; ``None`` lets the core's generic rules decide."""
    if isinstance(exc, nx.AuthError):
        # The driver's own text is fine, but say which user and server, never the password.
        return StorageConnectionError(
            f"authentication failed for user {user!r} at {uri}: {exc.code}"
        )
    if isinstance(exc, nx.ConnectionAcquisitionTimeoutError):
        return StorageTimeoutError
    if isinstance(exc, (nx.ServiceUnavailable, nx.SessionExpired, nx.DatabaseUnavailable)):
        return StorageConnectionError
    if isinstance(exc, nx.Neo4jError):
        return _map_server_error(exc, op)
    if isinstance(exc, nx.ConfigurationError):
        return StorageDataError
    if type(exc).__name__ == "SocketDeadlineExceededError":  # private class of the driver
        return StorageTimeoutError
    if type(exc).__module__.startswith("neo4j") and type(exc).__name__.startswith("Bolt"):
        return StorageConnectionError
    return None


def _map_server_error(exc: nx.Neo4jError, op: str) -> type[StorageError] | StorageError:
    code = exc.code or ""
    if code.endswith(_TIMEOUT_CODES):
        return StorageTimeoutError
    if code.endswith(_NOT_FOUND_CODES):
        return StorageNotFoundError
    if code.endswith("MemoryPoolOutOfMemoryError"):
        return StorageQueryError(
            f"{op}: the transaction outgrew the server's transaction memory limit; split the "
            f"call into smaller ones ({exc.message})"
        )
    if code == _ACCESS_MODE_CODE:
        return StorageQueryError(
            f"{op} is read-only and the query writes; pass 'write': True to allow writes "
            f"({exc.message})"
        )
    if isinstance(exc, (nx.ConstraintError, nx.CypherTypeError)):
        return StorageDataError
    return StorageQueryError
