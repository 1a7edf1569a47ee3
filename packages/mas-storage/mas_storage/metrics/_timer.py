"""Time a block of code and record it as one operation, for code outside the adapter core.

Adapter methods are timed by the core already (:mod:`mas_storage._operations`); use this for
anything else you want in the same report, e.g. a multi-step workflow::

    async with OperationTimer(adapter.metrics, "promote_facts", facts):
        ...
"""

from __future__ import annotations

from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from ._collector import MetricsCollector

__all__ = ["OperationTimer"]


class OperationTimer:
    """Async (or plain) context manager recording one timed operation on exit.

    A normal exit records a success; an ``Exception`` records a failure with its type and
    message, and propagates. Cancellation (``BaseException``) is not an outcome of the
    operation and is not recorded, as in the core. ``args`` are only measured, for the data
    volume; their values are never kept.
    """

    __slots__ = ("_start", "args", "collector", "duration_ms", "operation")

    def __init__(self, collector: MetricsCollector, operation: str, *args: Any) -> None:
        self.collector = collector
        self.operation = operation
        self.args = args
        self._start = 0.0
        #: Elapsed milliseconds, set on exit.
        self.duration_ms: float | None = None

    def __enter__(self) -> Self:
        self._start = perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        seconds = perf_counter() - self._start
        self.duration_ms = seconds * 1000.0
        if exc is None:
            self.collector.record(self.operation, seconds, None, self.args)
        elif isinstance(exc, Exception):
            self.collector.record(self.operation, seconds, exc, self.args)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
