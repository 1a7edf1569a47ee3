"""The one mechanism every adapter operation runs through.

:class:`~mas_storage.StorageAdapter` wraps each public coroutine method of a subclass with
:func:`operation` when the class is created, so no adapter re-implements any of this:

* the "not connected" check, or the lazy first connect when ``auto_connect`` is on;
* timing and metrics for the operation, and its OpenTelemetry span and metrics when a provider
  is configured (:mod:`mas_storage._telemetry`; nothing is done, at no measurable cost, when
  none is);
* translation of driver exceptions into the six storage errors, chained with ``from`` and kept
  as ``.orig``, with every secret of the adapter's config masked out of the message;
* logging with the adapter kind and the operation name.

``asyncio.CancelledError`` and ``KeyboardInterrupt`` are ``BaseException``s and pass through
untouched: cancellation is never wrapped.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from time import perf_counter
from typing import TYPE_CHECKING, Any, TypeVar

from . import _telemetry
from ._exceptions import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
)
from ._redact import redact
from ._tls import certificate_error

if TYPE_CHECKING:
    from ._base import StorageAdapter

__all__ = ["OPERATION_ATTR", "default_error_class", "operation", "translate_error"]

OPERATION_ATTR = "__mas_operation__"
#: Set while a task runs ``connect()``, so the calls ``connect()`` makes itself pass the check.
_CONNECTING: ContextVar[object | None] = ContextVar("mas_storage_connecting", default=None)

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])
logger = logging.getLogger("mas_storage")


def default_error_class(exc: BaseException) -> type[StorageError]:
    """Classify an exception no adapter-specific rule claimed."""
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
        return StorageTimeoutError
    if isinstance(exc, (ConnectionError, OSError)):
        return StorageConnectionError
    if isinstance(exc, (ValueError, TypeError, KeyError, UnicodeError, OverflowError)):
        return StorageDataError
    return StorageQueryError


def translate_error(adapter: StorageAdapter, exc: Exception, op: str) -> StorageError:
    """Turn a driver exception into a :class:`StorageError`, secrets masked.

    A refused server certificate anywhere in the chain is recognised first, for every adapter
    (:func:`~mas_storage.certificate_error`): its error says so, whatever the driver wrapped
    it in.
    """
    mapped: type[StorageError] | StorageError | None = certificate_error(exc, adapter._server())
    if mapped is None:
        mapped = adapter._map_error(exc, op)
    if isinstance(mapped, StorageError):
        cls, detail = type(mapped), mapped.message
    else:
        cls = mapped or default_error_class(exc)
        detail = f"{type(exc).__name__}: {exc}"
    message = redact(f"{adapter.kind} {op} failed: {detail}", adapter._secret_values)
    return cls(message, backend=adapter.kind, operation=op, orig=exc)


def _log_failure(adapter: StorageAdapter, op: str, err: StorageError) -> None:
    # Bad input is the caller's business: debug. Backend trouble is the operator's: warning.
    quiet = isinstance(err, (StorageDataError, StorageNotFoundError))
    level = logging.DEBUG if quiet else logging.WARNING
    if logger.isEnabledFor(level):
        logger.log(level, "%s.%s failed: %s: %s", adapter.kind, op, type(err).__name__, err)


def operation(name: str | None = None, *, connects: bool = False) -> Callable[[_F], _F]:
    """Decorate an adapter coroutine method as a timed, checked, error-translated operation.

    ``connects=True`` marks ``connect``/``disconnect``: they skip the connection check.
    """

    def decorate(fn: _F) -> _F:
        op = name or fn.__name__

        @functools.wraps(fn)
        async def wrapper(self: StorageAdapter, *args: Any, **kwargs: Any) -> Any:
            # OpenTelemetry: ``tel`` stays None (two module reads) unless a provider is set.
            tel = span = otel_token = None
            if _telemetry.OTEL_AVAILABLE:
                tel = _telemetry.current()
                if tel is not None:
                    span, otel_token = tel.start(self, op)
            if connects:
                token = _CONNECTING.set(self) if op == "connect" else None
            else:
                token = None
                if not self._connected and _CONNECTING.get() is not self:
                    start = perf_counter()
                    try:
                        await self._require_connection(op)
                    except StorageError as refused:
                        # A call refused for want of a connection is a failed operation too.
                        seconds = perf_counter() - start
                        self.metrics.record(op, seconds, refused, args)
                        if tel is not None:
                            tel.finish(self, op, span, otel_token, seconds, refused)
                        raise
                    except BaseException:
                        if tel is not None:
                            tel.abandon(span, otel_token)
                        raise
            metrics = self.metrics
            start = perf_counter()
            try:
                result = await fn(self, *args, **kwargs)
            except StorageError as err:
                seconds = perf_counter() - start
                if err.backend is None:
                    err.backend = self.kind
                if err.operation is None:
                    err.operation = op
                metrics.record(op, seconds, err, args)
                if tel is not None:
                    tel.finish(self, op, span, otel_token, seconds, err)
                _log_failure(self, op, err)
                raise
            except Exception as exc:
                seconds = perf_counter() - start
                translated = translate_error(self, exc, op)
                metrics.record(op, seconds, translated, args)
                if tel is not None:
                    tel.finish(self, op, span, otel_token, seconds, translated)
                _log_failure(self, op, translated)
                raise translated from exc
            except BaseException:  # cancellation: never recorded as an outcome
                if tel is not None:
                    tel.abandon(span, otel_token)
                raise
            finally:
                if token is not None:
                    _CONNECTING.reset(token)
            end = perf_counter()  # the collector's own clock: it reads no other (see record)
            seconds = end - start
            metrics.record(op, seconds, None, args, end)
            if tel is not None:
                tel.finish(self, op, span, otel_token, seconds, None, result)
            return result

        setattr(wrapper, OPERATION_ATTR, op)
        return wrapper  # type: ignore[return-value]

    return decorate
