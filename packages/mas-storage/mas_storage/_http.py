"""HTTP status codes to storage errors: one table for every adapter that speaks HTTP.

An adapter calls :func:`error_for_status` with the status of an answer it did not expect and,
where its server means something else by a code, a small ``overrides`` mapping (Typesense's
400 and 422 are a malformed query, not bad data). Anything not listed is a
:class:`StorageQueryError`: the server failed or refused the request itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ._exceptions import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
)

__all__ = ["HTTP_STATUS_ERRORS", "error_for_status"]

HTTP_STATUS_ERRORS: Mapping[int, type[StorageError]] = MappingProxyType(
    {
        400: StorageDataError,  # the request's content was refused
        401: StorageConnectionError,  # credentials refused: the connection is unusable
        403: StorageConnectionError,  # the credentials may not do this
        404: StorageNotFoundError,  # the collection, document or endpoint does not exist
        408: StorageTimeoutError,
        409: StorageDataError,  # the id or collection exists already
        413: StorageDataError,  # the payload is too large
        422: StorageDataError,  # well-formed but invalid content
        502: StorageConnectionError,  # a proxy could not reach the server
        503: StorageConnectionError,  # the server is not ready, or lagging
        504: StorageTimeoutError,
    }
)


def error_for_status(
    status: int, overrides: Mapping[int, type[StorageError]] | None = None
) -> type[StorageError]:
    """The storage error class for an unexpected HTTP ``status``."""
    if overrides and status in overrides:
        return overrides[status]
    return HTTP_STATUS_ERRORS.get(status, StorageQueryError)
