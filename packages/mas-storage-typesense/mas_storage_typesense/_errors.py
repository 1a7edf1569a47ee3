"""Typesense's answers and httpx's exceptions, mapped to the storage errors in one place.

HTTP statuses follow the core's table (:func:`mas_storage.error_for_status`), with
Typesense's own meanings on top:

HTTP 401/403            -> StorageConnectionError (authentication failed; never the key)
HTTP 500 "Could not find a leader." or empty -> StorageConnectionError (a cluster follower had no
                           Raft leader to forward a write to, or lost it while forwarding)
HTTP 400/422            -> StorageQueryError (Typesense: a malformed query; the server's message)
HTTP 404 "Could not find a field named" -> StorageQueryError (0.24 answers 404 for that)
HTTP 404 otherwise      -> StorageNotFoundError (where a 404 is not an answer)
other statuses          -> the core's table (409 data, 408/504 timeout, 502/503 connection, ...)
httpx.TimeoutException  -> StorageTimeoutError
httpx.TransportError    -> StorageConnectionError (refused, reset, protocol)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType

import httpx

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageQueryError,
    StorageTimeoutError,
    error_for_status,
)

__all__ = [
    "TypesenseImportError",
    "error_for_response",
    "leader_lost",
    "map_httpx_error",
    "no_leader",
    "server_message",
]

_UNKNOWN_FIELD = re.compile(r"^Could not find a (\w+ )?field named")
#: What a Typesense 0.24 follower answers (HTTP 500) for a write while the cluster has no leader.
_NO_LEADER = "Could not find a leader."
#: How many failed lines an import error's message lists (all are in ``.failures``).
_MAX_LISTED = 20


class TypesenseImportError(StorageDataError):
    """Some documents of a ``store_many`` batch were rejected; the others were stored.

    ``failures`` holds ``(index, id, error)`` for each rejected document, by its position in
    the input; ``stored_ids`` the ids of the documents that landed, in input order.
    """

    def __init__(
        self,
        message: str = "",
        *,
        backend: str | None = None,
        operation: str | None = None,
        orig: BaseException | None = None,
        failures: Sequence[tuple[int, str | None, str]] = (),
        stored_ids: Sequence[str] = (),
    ) -> None:
        super().__init__(message, backend=backend, operation=operation, orig=orig)
        self.failures = list(failures)
        self.stored_ids = list(stored_ids)

    @classmethod
    def from_failures(
        cls, failures: Sequence[tuple[int, str | None, str]], total: int, stored_ids: list[str]
    ) -> TypesenseImportError:
        """An error whose message names each failed line's index (the first few) and error."""
        listed = "; ".join(
            f"line {index}" + (f" (id {doc_id!r})" if doc_id else "") + f": {error}"
            for index, doc_id, error in failures[:_MAX_LISTED]
        )
        more = len(failures) - _MAX_LISTED
        if more > 0:
            listed += f"; ... and {more} more"
        return cls(
            f"{len(failures)} of {total} documents were rejected ({len(stored_ids)} stored): "
            f"{listed}",
            failures=failures,
            stored_ids=stored_ids,
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_import_error,
            (self.message, self.backend, self.operation, self.failures, self.stored_ids),
        )


def _rebuild_import_error(
    message: str,
    backend: str | None,
    operation: str | None,
    failures: list[tuple[int, str | None, str]],
    stored_ids: list[str],
) -> TypesenseImportError:
    return TypesenseImportError(
        message, backend=backend, operation=operation, failures=failures, stored_ids=stored_ids
    )


def server_message(response: httpx.Response) -> str:
    """The ``message`` of a Typesense error body, or a short excerpt of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(message, str):
        return message
    text = response.text.strip()
    return text[:200] if text else response.reason_phrase


#: Where Typesense means something else than the core's table by a status.
_STATUS_OVERRIDES: Mapping[int, type[StorageError]] = MappingProxyType(
    {400: StorageQueryError, 422: StorageQueryError}
)


def no_leader(response: httpx.Response) -> bool:
    """A follower refused a write because the cluster has no Raft leader (an election runs):
    nothing was applied."""
    return response.status_code == 500 and _NO_LEADER in response.text


def leader_lost(response: httpx.Response) -> bool:
    """HTTP 500 with an empty body: a follower's forward of a write to the leader failed (0.24
    answers so when its HTTP call to the leader breaks off). The leader may have applied it."""
    return response.status_code == 500 and not response.content.strip()


def error_for_response(response: httpx.Response, what: str) -> StorageError:
    """The storage error for an unexpected HTTP status; ``what`` names the request."""
    status = response.status_code
    if status in (401, 403):
        return StorageConnectionError(
            f"Typesense authentication failed during {what} (HTTP {status}): the API key was "
            "rejected or lacks permission"
        )
    if no_leader(response) or leader_lost(response):
        return StorageConnectionError(
            f"{what}: HTTP 500 from {_answered_by(response)}: the Typesense cluster has no "
            "reachable Raft leader (an election runs after a leader failed); a write may be "
            "retried once a leader is elected (keyed writes are safe to repeat)"
        )
    detail = server_message(response)
    message = f"{what}: HTTP {status}: {detail}"
    if status == 404 and _UNKNOWN_FIELD.match(detail):
        # Typesense 0.24 answers 404 for a query naming an unknown field: the query is wrong.
        return StorageQueryError(message)
    return error_for_status(status, _STATUS_OVERRIDES)(message)


def _origin(request: httpx.Request | None, fallback: str = "the node") -> str:
    """``scheme://host:port`` of ``request`` (never a credential: the key is a header)."""
    if request is None:
        return fallback
    url = request.url
    return f"{url.scheme}://{url.netloc.decode('ascii', 'replace')}"


def _answered_by(response: httpx.Response) -> str:
    try:
        return _origin(response.request)
    except RuntimeError:  # a response built without its request
        return "the node"


def map_httpx_error(exc: Exception, url: str) -> StorageError | None:
    """The storage error for an httpx transport exception; ``None`` for anything else.

    It names the node the failed request went to (``url`` when the exception has no request),
    and the notes the failover added (how many attempts, over how many nodes)."""
    if not isinstance(exc, httpx.TransportError):
        return None
    try:
        where = _origin(exc.request, url)
    except RuntimeError:  # raised outside a request
        where = url
    notes = "".join(f" ({note})" for note in getattr(exc, "__notes__", ()))
    if isinstance(exc, httpx.TimeoutException):
        return StorageTimeoutError(
            f"Typesense at {where} timed out: {type(exc).__name__}: {exc}{notes}"
        )
    return StorageConnectionError(
        f"Cannot reach Typesense at {where}: {type(exc).__name__}: {exc}{notes}"
    )
