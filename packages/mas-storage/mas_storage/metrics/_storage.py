"""Bounded, thread-safe, in-memory store of raw operation figures.

Everything here is sized once and never grows with load:

* per operation: exact counters, the last ``max_history`` latency samples (a ``deque`` with
  ``maxlen``) and per-time-bucket counts covering the rate window (also a bounded ``deque``);
* at most :data:`MAX_OPERATIONS` distinct operation names (later ones are pooled as ``other``);
* the last :data:`MAX_ERRORS` error records, and error counts keyed by (operation, type).

A :class:`threading.Lock` guards each update for a few attribute increments only, so the store
can be fed from several threads or tasks at once and never makes the event loop wait: nothing
here awaits. Statistics are computed later, from a :meth:`MetricsStorage.snapshot`, outside the
lock (see :mod:`._aggregator`).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "MAX_ERRORS",
    "MAX_OPERATIONS",
    "OTHER_OPERATION",
    "ConnectionSnapshot",
    "ErrorRecord",
    "MetricsSnapshot",
    "MetricsStorage",
    "OperationSnapshot",
]

#: Error records kept for ``recent_errors``.
MAX_ERRORS = 100
#: Distinct operation names tracked; more are pooled under :data:`OTHER_OPERATION`.
MAX_OPERATIONS = 256
OTHER_OPERATION = "other"


@dataclass(frozen=True, slots=True)
class ErrorRecord:
    """One failed operation, as kept in ``recent_errors``. Never holds argument values."""

    timestamp: datetime
    type: str
    operation: str
    message: str
    duration_ms: float
    cause: str | None = None


@dataclass(frozen=True, slots=True)
class OperationSnapshot:
    """Raw figures of one operation name at snapshot time."""

    count: int
    errors: int
    seconds_total: float
    bytes_total: int
    #: Latency samples in seconds, oldest first (the last ``max_history`` sampled calls).
    samples: list[float]
    #: ``(bucket start, operations, bytes)`` per time bucket, oldest first.
    buckets: list[tuple[float, int, int]]


@dataclass(frozen=True, slots=True)
class ConnectionSnapshot:
    """Connection lifecycle figures at snapshot time."""

    connect_count: int
    connect_error_count: int
    disconnect_count: int
    connected: bool
    last_connect_seconds: float | None
    last_disconnect_seconds: float | None
    last_connect_at: datetime | None
    connected_seconds_total: float


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """A consistent copy of everything in a :class:`MetricsStorage`."""

    now: float
    since: float
    operations: dict[str, OperationSnapshot]
    connection: ConnectionSnapshot
    #: Error counts keyed by ``(operation, error type)``.
    errors: dict[tuple[str, str], int]
    recent_errors: list[ErrorRecord]


class _Series:
    """Mutable per-operation figures; only touched under the storage lock."""

    __slots__ = ("buckets", "bytes", "count", "errors", "samples", "seconds")

    def __init__(self, max_history: int, max_buckets: int) -> None:
        self.count = 0
        self.errors = 0
        self.seconds = 0.0
        self.bytes = 0
        self.samples: deque[float] = deque(maxlen=max_history)
        self.buckets: deque[list[int]] = deque(maxlen=max_buckets)


class MetricsStorage:
    """Thread-safe in-memory metrics with fixed memory limits.

    ``bucket_seconds`` is the width of a rate bucket and ``window_seconds`` the span they must
    cover: ``ceil(window / width) + 1`` buckets are kept per operation.
    """

    def __init__(
        self,
        max_history: int = 1000,
        *,
        window_seconds: float = 60.0,
        bucket_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_history = max_history
        self.bucket_seconds = bucket_seconds
        self.clock = clock
        self._max_buckets = math.ceil(window_seconds / bucket_seconds) + 1
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}
        self._errors: dict[tuple[str, str], int] = {}
        self._recent: deque[ErrorRecord] = deque(maxlen=MAX_ERRORS)
        self._since = clock()
        # Connection lifecycle.
        self._connects = self._connect_errors = self._disconnects = 0
        self._connected = False
        self._connected_at = 0.0
        self._connected_total = 0.0
        self._last_connect: float | None = None
        self._last_disconnect: float | None = None
        self._last_connect_at: datetime | None = None

    def add_operation(
        self, operation: str, seconds: float, ok: bool, nbytes: int, sampled: bool, now: float
    ) -> None:
        """Count one call; keep its latency sample when ``sampled``. The hot path."""
        bucket = int(now // self.bucket_seconds)
        with self._lock:
            series = self._series.get(operation)
            if series is None:
                series = self._new_series(operation)
            series.count += 1
            if not ok:
                series.errors += 1
            series.seconds += seconds
            series.bytes += nbytes
            if sampled:
                series.samples.append(seconds)
            buckets = series.buckets
            if buckets and buckets[-1][0] == bucket:
                last = buckets[-1]
                last[1] += 1
                last[2] += nbytes
            else:
                buckets.append([bucket, 1, nbytes])

    def _new_series(self, operation: str) -> _Series:
        # Called under the lock. Bounds the number of names whatever callers pass.
        if len(self._series) >= MAX_OPERATIONS:
            series = self._series.get(OTHER_OPERATION)
            if series is not None:
                return series
            operation = OTHER_OPERATION
        series = self._series[operation] = _Series(self.max_history, self._max_buckets)
        return series

    def add_data_volume(self, operation: str, nbytes: int, now: float) -> None:
        """Add bytes to an operation without counting a call."""
        bucket = int(now // self.bucket_seconds)
        with self._lock:
            series = self._series.get(operation) or self._new_series(operation)
            series.bytes += nbytes
            buckets = series.buckets
            if buckets and buckets[-1][0] == bucket:
                buckets[-1][2] += nbytes
            else:
                buckets.append([bucket, 0, nbytes])

    def add_error(self, record: ErrorRecord) -> None:
        """Count an error by (operation, type) and keep it among the recent ones."""
        key = (record.operation, record.type)
        with self._lock:
            self._errors[key] = self._errors.get(key, 0) + 1
            self._recent.append(record)

    def connection_event(
        self, event: str, seconds: float | None, ok: bool, now: float, at: datetime
    ) -> None:
        """Track ``connect`` (success or failure) and ``disconnect`` events."""
        with self._lock:
            if event == "connect":
                if not ok:
                    self._connect_errors += 1
                    return
                self._connects += 1
                if self._connected:  # a reconnect: close the running interval first
                    self._connected_total += now - self._connected_at
                self._connected = True
                self._connected_at = now
                self._last_connect = seconds
                self._last_connect_at = at
            else:
                self._disconnects += 1
                if self._connected:
                    self._connected_total += now - self._connected_at
                self._connected = False
                self._last_disconnect = seconds

    def snapshot(self) -> MetricsSnapshot:
        """Copy everything under the lock (bounded work), for aggregation outside it."""
        width = self.bucket_seconds
        with self._lock:
            now = self.clock()
            operations = {
                name: OperationSnapshot(
                    count=s.count,
                    errors=s.errors,
                    seconds_total=s.seconds,
                    bytes_total=s.bytes,
                    samples=list(s.samples),
                    buckets=[(b[0] * width, b[1], b[2]) for b in s.buckets],
                )
                for name, s in self._series.items()
            }
            connected_total = self._connected_total
            if self._connected:
                connected_total += now - self._connected_at
            connection = ConnectionSnapshot(
                connect_count=self._connects,
                connect_error_count=self._connect_errors,
                disconnect_count=self._disconnects,
                connected=self._connected,
                last_connect_seconds=self._last_connect,
                last_disconnect_seconds=self._last_disconnect,
                last_connect_at=self._last_connect_at,
                connected_seconds_total=connected_total,
            )
            return MetricsSnapshot(
                now=now,
                since=self._since,
                operations=operations,
                connection=connection,
                errors=dict(self._errors),
                recent_errors=list(self._recent),
            )

    def reset(self) -> None:
        """Forget every figure. Whether the adapter is connected is a fact, not a figure: it
        is kept, and a running connection interval restarts now."""
        with self._lock:
            now = self.clock()
            self._series = {}
            self._errors = {}
            self._recent.clear()
            self._since = now
            self._connects = self._connect_errors = self._disconnects = 0
            self._connected_total = 0.0
            self._connected_at = now
            self._last_connect = self._last_disconnect = None
            self._last_connect_at = None

    def __len__(self) -> int:
        """Latency samples held, all operations together (bounded by names x max_history)."""
        with self._lock:
            return sum(len(s.samples) for s in self._series.values())
