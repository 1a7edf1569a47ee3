"""Bounded, thread-safe, in-memory store of raw operation figures.

Everything here is sized once and never grows with load:

* per operation: exact counters, the last ``max_history`` latency samples (a ``deque`` with
  ``maxlen``) and per-time-bucket counts covering the rate window (also a bounded ``deque``);
* at most :data:`MAX_OPERATIONS` distinct operation names (later ones are pooled as ``other``);
* the last :data:`MAX_ERRORS` error records, and error counts keyed by (operation, type).

**The hot path appends to a list.** A successful, sampled call is queued on its operation's
list as three floats (``seconds, now, nbytes``: one atomic ``list.extend``, no lock; see
:meth:`MetricsStorage.queue` and :meth:`MetricsStorage.fold`). Every :data:`FOLD_BATCH` calls,
and before any read, the queue is folded into the figures under a :class:`threading.Lock` with
list slices, ``sum`` and ``deque.extend``: C loops, not a Python loop per call. Measured against
a loopback Redis call (``tests/benchmarks/bench_metrics.py``), updating counters, deques and
buckets on every call cost several microseconds between two round trips (cold caches). Errors,
calls left out by latency sampling and the spec's recording API take the locked path
(:meth:`MetricsStorage.add_operation`), which folds the operation's queue first. Nothing here
awaits; several threads or tasks may feed the store at once. Statistics are computed later, from
a :meth:`MetricsStorage.snapshot`, outside the lock (see :mod:`._aggregator`).

**Payload bytes are a ratio estimate.** A call whose payload was measured brings its size; one
that was not (``nbytes < 0``: the collector measures a sample of the calls) brings none. An
operation's ``bytes_total`` is its measured bytes times ``count / measured calls`` (exact when
every call was measured), and each rate bucket is scaled the same way, by the bucket's own
measured calls, or the operation's when the bucket has none. Bytes added by
:meth:`~MetricsStorage.add_data_volume` are counted as they are.
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
    "FOLD_BATCH",
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
#: Queued calls that trigger a fold (a bound on memory and on one fold's duration).
FOLD_BATCH = 64
#: Floats per queued call: seconds, monotonic time, payload bytes (-1: not measured).
_STRIDE = 3


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
    """Mutable per-operation figures; only touched under the storage lock.

    ``buckets`` hold ``[bucket index, calls, measured calls, measured bytes, added bytes]``.
    """

    __slots__ = ("added", "buckets", "bytes", "count", "errors", "measured", "samples", "seconds")

    def __init__(self, max_history: int, max_buckets: int) -> None:
        self.count = 0
        self.errors = 0
        self.seconds = 0.0
        self.measured = 0  # calls whose payload was measured
        self.bytes = 0  # their bytes
        self.added = 0  # bytes given to add_data_volume
        self.samples: deque[float] = deque(maxlen=max_history)
        self.buckets: deque[list[int]] = deque(maxlen=max_buckets)

    def estimated_bytes(self) -> int:
        """Measured bytes extrapolated to every call, plus the added bytes."""
        if not self.measured:
            return self.added
        return self.bytes * self.count // self.measured + self.added

    def bucket_bytes(self, bucket: list[int]) -> int:
        """One bucket's bytes, scaled by its own measured calls (else the operation's)."""
        _, calls, measured, nbytes, added = bucket
        if measured:
            return nbytes * calls // measured + added
        if self.measured:
            return self.bytes * calls // self.measured + added
        return added


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
        #: Per operation, calls not folded yet (see :meth:`queue`).
        self._queues: dict[str, list[float]] = {}
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

    def queue(self, operation: str) -> list[float]:
        """The operation's queue of successful, sampled calls, created on first use.

        Append a call with ``queue.extend((seconds, now, nbytes))`` (``nbytes`` ``-1`` when not
        measured), and call :meth:`fold` once it holds :data:`FOLD_BATCH` calls or more. Names
        beyond :data:`MAX_OPERATIONS` share the queue of :data:`OTHER_OPERATION`.
        """
        with self._lock:
            queue = self._queues.get(operation)
            if queue is None:
                name = operation if operation in self._series else self._new_series(operation)[0]
                queue = self._queues.get(name)
                if queue is None:
                    queue = self._queues[name] = []
                if name != operation and len(self._queues) < 2 * MAX_OPERATIONS:
                    self._queues[operation] = queue
            return queue

    @property
    def queues(self) -> dict[str, list[float]]:
        """Operation name -> queue, for the hot path's lookup (read it, never change it)."""
        return self._queues

    def fold(self, operation: str) -> None:
        """Fold the operation's queued calls into its figures."""
        with self._lock:
            self._fold(operation)

    def _fold(self, operation: str) -> None:
        # Under the lock. Only the first ``n`` floats are taken and deleted: calls queued by
        # another thread meanwhile stay for the next fold (an ``extend`` is atomic).
        queue = self._queues.get(operation)
        if not queue:
            return
        n = len(queue) - len(queue) % _STRIDE
        batch = queue[:n]
        del queue[:n]
        seconds, times, sizes = batch[0::_STRIDE], batch[1::_STRIDE], batch[2::_STRIDE]
        calls = len(seconds)
        series = self._series.get(operation) or self._new_series(operation)[1]
        series.count += calls
        series.seconds += sum(seconds)
        series.samples.extend(seconds)
        unmeasured = sizes.count(-1)
        series.measured += calls - unmeasured
        series.bytes += int(sum(sizes)) + unmeasured
        width = self.bucket_seconds
        first, last = int(times[0] // width), int(times[-1] // width)
        if first == last:
            self._bucket(series, first, calls, calls - unmeasured, int(sum(sizes)) + unmeasured)
        else:  # the batch spans buckets: one at a time (rare: at most once per bucket width)
            for at, size in zip(times, sizes, strict=True):
                measured = size >= 0
                self._bucket(series, int(at // width), 1, int(measured), int(size) * measured)

    @staticmethod
    def _bucket(series: _Series, bucket: int, calls: int, measured: int, nbytes: int) -> None:
        buckets = series.buckets
        if buckets and buckets[-1][0] == bucket:
            last = buckets[-1]
            last[1] += calls
            last[2] += measured
            last[3] += nbytes
        else:
            buckets.append([bucket, calls, measured, nbytes, 0])

    def add_operation(
        self, operation: str, seconds: float, ok: bool, nbytes: int, sampled: bool, now: float
    ) -> None:
        """Count one call at once (the locked path); keep its latency sample when ``sampled``.

        ``nbytes`` is the payload size, or ``-1`` when it was not measured.
        """
        with self._lock:
            self._fold(operation)
            series = self._series.get(operation) or self._new_series(operation)[1]
            series.count += 1
            if not ok:
                series.errors += 1
            series.seconds += seconds
            if sampled:
                series.samples.append(seconds)
            measured = nbytes >= 0
            if measured:
                series.measured += 1
                series.bytes += nbytes
            self._bucket(series, int(now // self.bucket_seconds), 1, int(measured), max(nbytes, 0))

    def _new_series(self, operation: str) -> tuple[str, _Series]:
        # Called under the lock. Bounds the number of names whatever callers pass.
        if len(self._series) >= MAX_OPERATIONS:
            series = self._series.get(OTHER_OPERATION)
            if series is not None:
                return OTHER_OPERATION, series
            operation = OTHER_OPERATION
        series = self._series[operation] = _Series(self.max_history, self._max_buckets)
        return operation, series

    def add_data_volume(self, operation: str, nbytes: int, now: float) -> None:
        """Add bytes to an operation without counting a call."""
        bucket = int(now // self.bucket_seconds)
        with self._lock:
            series = self._series.get(operation) or self._new_series(operation)[1]
            series.added += nbytes
            buckets = series.buckets
            if buckets and buckets[-1][0] == bucket:
                buckets[-1][4] += nbytes
            else:
                buckets.append([bucket, 0, 0, 0, nbytes])

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
            for name in list(self._queues):
                self._fold(name)
            now = self.clock()
            operations = {
                name: OperationSnapshot(
                    count=s.count,
                    errors=s.errors,
                    seconds_total=s.seconds,
                    bytes_total=s.estimated_bytes(),
                    samples=list(s.samples),
                    buckets=[(b[0] * width, b[1], s.bucket_bytes(b)) for b in s.buckets],
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
            for queue in self._queues.values():  # emptied in place: collectors hold the lists
                queue.clear()
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
            for name in list(self._queues):
                self._fold(name)
            return sum(len(s.samples) for s in self._series.values())
