"""The storage error hierarchy, drawn once.

    StorageError
    ├── StorageConnectionError   backend unreachable, refused, or authentication failed
    ├── StorageQueryError        the backend rejected or failed the query itself
    ├── StorageDataError         caller data is invalid, or violates a constraint
    ├── StorageTimeoutError      an operation ran past its time budget
    └── StorageNotFoundError     a resource the operation needs does not exist

Every adapter raises only these. A driver exception is translated at one choke point
(:mod:`mas_storage._operations`) and kept as ``__cause__`` and ``.orig``. Messages never carry a
password or an API key. The names never shadow builtins (no bare ``ConnectionError``).
"""

from __future__ import annotations

__all__ = [
    "StorageConnectionError",
    "StorageDataError",
    "StorageError",
    "StorageNotFoundError",
    "StorageQueryError",
    "StorageTimeoutError",
]


class StorageError(Exception):
    """Base of every storage failure; catch this to handle any of them."""

    def __init__(
        self,
        message: str = "",
        *,
        backend: str | None = None,
        operation: str | None = None,
        orig: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.backend = backend
        self.operation = operation
        #: The driver exception this error translates, if any (also ``__cause__``).
        self.orig = orig

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only attributes would be lost by the default pickling of exceptions.
        return (_rebuild, (type(self), self.message, self.backend, self.operation))


def _rebuild(
    cls: type[StorageError], message: str, backend: str | None, operation: str | None
) -> StorageError:
    return cls(message, backend=backend, operation=operation)


class StorageConnectionError(StorageError):
    """The backend cannot be reached, refused the connection, or refused the credentials."""


class StorageQueryError(StorageError):
    """The backend rejected or failed the query (syntax, read-only violation, server error)."""


class StorageDataError(StorageError):
    """Caller data is invalid: missing or mistyped fields, bad ids, constraint violations."""


class StorageTimeoutError(StorageError):
    """An operation exceeded its time budget (connect, query, or lock acquisition)."""


class StorageNotFoundError(StorageError):
    """A resource that the operation requires (record, endpoint, collection) does not exist."""
