"""The per-adapter metrics collector the core feeds on every operation.

The core wrapper (:mod:`mas_storage._operations`) calls :meth:`MetricsCollector.record`
synchronously after each adapter call, success or failure, ``connect`` and ``disconnect``
included. ``record`` is the hot path: a clock read, a few checks and one tuple queued (the
store folds the queue in batches); the payload is measured on a sample of the calls. Its cost
against a loopback Redis call is measured in ``tests/benchmarks/bench_metrics.py``. It never
awaits and never computes a statistic. Percentiles and rates are computed when metrics are read.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from mas_storage._exceptions import StorageDataError, cap_message
from mas_storage._redact import redact

from ._aggregator import MetricsAggregator, format_timestamp
from ._exporters import check_format, export
from ._settings import MetricsSettings, parse_metrics_settings
from ._size import estimate_size
from ._storage import FOLD_BATCH, MAX_OPERATIONS, ErrorRecord, MetricsStorage
from ._timer import OperationTimer

__all__ = ["DEFAULT_CONFIG", "VOLUME_SAMPLE_EVERY", "MetricsCollector"]

#: The ``metrics`` config keys and their defaults (declared by :class:`MetricsSettings`).
DEFAULT_CONFIG: dict[str, Any] = MetricsSettings().model_dump(exclude={"always_sample_errors"})
_LIFECYCLE = frozenset({"connect", "disconnect"})
#: Rate buckets per window at most: memory per operation stays small for long windows.
_MAX_BUCKETS = 120
#: Then (after each operation's first FOLD_BATCH calls, all measured) one successful call in
#: this many, on average, has its payload measured, at random gaps: a fixed stride could lock
#: onto a periodic pattern of calls.
VOLUME_SAMPLE_EVERY = 16
#: Skips drawn uniformly in ``[0, _MAX_SKIP)``: mean ``VOLUME_SAMPLE_EVERY - 1``.
_MAX_SKIP = 2 * VOLUME_SAMPLE_EVERY - 1
#: A queue of this many floats is folded (three per call).
_FOLD_FLOATS = 3 * FOLD_BATCH


def _payload_size(args: tuple[Any, ...]) -> int:
    """:func:`estimate_size` that never raises: metrics must never break an operation."""
    try:
        return estimate_size(args)
    except Exception:  # e.g. an argument whose __len__ or items() raises
        return 0


class MetricsCollector:
    """Collects counts, latencies, data volume, connection events and errors for one adapter.

    ``config`` takes the keys of :data:`DEFAULT_CONFIG` (``True``/``None`` mean defaults,
    ``False`` disables). With ``sampling_rate`` below 1, counts, total time and rates stay
    exact; only the latency samples and the payload measurement are sampled. Payloads are
    measured on each operation's first batch of calls (:data:`FOLD_BATCH`), then on one in
    :data:`VOLUME_SAMPLE_EVERY`, and the measured bytes are extrapolated to every call (a
    ratio estimate, see :mod:`._storage`): measuring a payload is the dearest step of a call.
    Errors are always recorded in full.

    ``adapter`` names the backend in reports and labels. ``secrets`` are masked out of every
    error message recorded. ``clock`` (monotonic seconds; :func:`time.perf_counter` by default,
    the core's own clock) and ``rand`` can be injected in tests.
    """

    def __init__(
        self,
        config: MetricsSettings | Mapping[str, Any] | bool | None = None,
        *,
        adapter: str = "storage",
        secrets: Iterable[str] = (),
        clock: Callable[[], float] = time.perf_counter,
        rand: Callable[[], float] = random.random,
    ) -> None:
        settings = parse_metrics_settings(config)
        self.settings = settings
        self.adapter = adapter
        self.enabled: bool = settings.enabled
        self.max_history: int = settings.max_history
        self.track_errors: bool = settings.track_errors
        self.track_data_volume: bool = settings.track_data_volume
        self.percentiles: tuple[float, ...] = settings.percentiles
        self.aggregation_window: float = settings.aggregation_window
        self.sampling_rate: float = settings.sampling_rate
        self._secrets = tuple(secrets)
        self._clock = clock
        self._rand = rand
        #: Its own generator: payload sampling must not shift the draws of latency sampling.
        self._volume_rand: Callable[[], float] = random.Random().random
        #: Operations still in their first batch: every payload measured.
        self._exact: set[str] = set()
        #: Successful calls whose payload is skipped before the next one is measured.
        self._skip = 0
        self._bucket_seconds = max(1.0, self.aggregation_window / _MAX_BUCKETS)
        self._storage = MetricsStorage(
            self.max_history,
            window_seconds=self.aggregation_window,
            bucket_seconds=self._bucket_seconds,
            clock=clock,
        )
        self._queues = self._storage.queues
        #: Operations past their first batch, by name -> their queue (see :meth:`record`).
        self._steady: dict[str, list[float]] = {}
        #: Whether ``clock`` is not :func:`time.perf_counter`, the clock of ``record(end=)``.
        self._foreign_clock = clock is not time.perf_counter
        self._started = clock()

    @property
    def storage(self) -> MetricsStorage:
        """The raw, bounded store behind this collector."""
        return self._storage

    # -- the hot path ------------------------------------------------------------------------

    def record(
        self,
        operation: str,
        seconds: float,
        error: BaseException | None,
        args: tuple[Any, ...] = (),
        end: float | None = None,
    ) -> None:
        """Record one finished call of ``operation`` that took ``seconds``.

        ``error`` is the exception it raised, or ``None``. ``args`` are its positional
        arguments: only their approximate size is taken (``track_data_volume``), never their
        values, on a sample of the calls (see the class docstring). ``end`` is the
        :func:`time.perf_counter` reading at the end of the call, if the caller has one (the
        core does): it saves a clock read when the collector runs on that clock (the default).
        Called by the core for every adapter operation; cheap and synchronous (it queues three
        numbers, see :mod:`._storage`).
        """
        if not self.enabled:
            return
        # The hot path, a successful call in the steady state: its payload not measured this
        # time, three numbers queued. Kept short: between two round trips it runs cache-cold.
        queue = self._steady.get(operation)
        if queue is not None and error is None:
            skip = self._skip
            if skip:
                self._skip = skip - 1
                if end is None or self._foreign_clock:
                    end = self._clock()
                queue += (seconds, end, -1)
                if len(queue) >= _FOLD_FLOATS:
                    self._storage.fold(operation)
                return
        now = self._clock() if end is None or self._foreign_clock else end
        if error is None:
            if self.sampling_rate < 1.0:
                sampled = self._rand() < self.sampling_rate
                measure = sampled and self.track_data_volume
                nbytes = (_payload_size(args) if args else 0) if measure else -1
                self._storage.add_operation(operation, seconds, True, nbytes, sampled, now)
            else:
                queue = self._queues.get(operation)
                if queue is None:
                    queue = self._storage.queue(operation)
                    if len(self._exact) < MAX_OPERATIONS:
                        self._exact.add(operation)
                # Payload size: every call of an operation's first batch, then a sample.
                if not args:
                    nbytes = 0
                elif not self.track_data_volume:
                    nbytes = -1
                elif operation in self._exact:
                    nbytes = _payload_size(args)
                elif self._skip:
                    self._skip -= 1
                    nbytes = -1
                else:
                    self._skip = int(self._volume_rand() * _MAX_SKIP)
                    nbytes = _payload_size(args)
                queue.extend((seconds, now, nbytes))
                if len(queue) >= _FOLD_FLOATS:
                    self._storage.fold(operation)
                    if operation in self._exact:
                        self._exact.discard(operation)
                        self._promote(operation, args)
        else:
            nbytes = _payload_size(args) if self.track_data_volume else -1
            self._storage.add_operation(operation, seconds, False, nbytes, True, now)
            if self.track_errors:
                self._storage.add_error(self._error_record(operation, seconds, error))
        if operation in _LIFECYCLE:
            at = datetime.now(UTC)
            self._storage.connection_event(operation, seconds, error is None, now, at)

    def _promote(self, operation: str, args: tuple[Any, ...]) -> None:
        """After its first batch, put ``operation`` on the hot path of :meth:`record`.

        Only what that path covers: calls with arguments, volume tracked, no latency sampling,
        not ``connect``/``disconnect`` (they also record a connection event).
        """
        if (
            args
            and self.track_data_volume
            and self.sampling_rate >= 1.0
            and operation not in _LIFECYCLE
            and self._queues.get(operation) is not None
        ):
            self._steady[operation] = self._queues[operation]

    def _error_record(self, operation: str, seconds: float, error: BaseException) -> ErrorRecord:
        message = cap_message(redact(str(error), self._secrets))
        cause = getattr(error, "orig", None) or error.__cause__
        return ErrorRecord(
            timestamp=datetime.now(UTC),
            type=type(error).__name__,
            operation=operation,
            message=message,
            duration_ms=round(seconds * 1000.0, 6),
            cause=type(cause).__name__ if cause is not None else None,
        )

    def timer(self, operation: str, *args: Any) -> OperationTimer:
        """An :class:`OperationTimer` recording ``operation`` on this collector."""
        return OperationTimer(self, operation, *args)

    # -- the spec's recording API (thin wrappers over the same storage) ----------------------

    async def record_operation(
        self, operation: str, duration_ms: float, success: bool, *args: Any
    ) -> None:
        """Record an operation by outcome; a failure here carries no error details."""
        if not self.enabled:
            return
        now = self._clock()
        sampled = not success or self.sampling_rate >= 1.0 or self._rand() < self.sampling_rate
        if not args:
            nbytes = 0
        elif sampled and self.track_data_volume:
            nbytes = _payload_size(args)
        else:
            nbytes = -1
        self._storage.add_operation(operation, duration_ms / 1000.0, success, nbytes, sampled, now)

    async def record_error(
        self, error_type: str, operation: str, details: str, duration_ms: float = 0.0
    ) -> None:
        """Record an error event (counted by type, kept among the recent errors)."""
        if not (self.enabled and self.track_errors):
            return
        message = cap_message(redact(details, self._secrets))
        record = ErrorRecord(datetime.now(UTC), error_type, operation, message, duration_ms)
        self._storage.add_error(record)

    async def record_connection_event(
        self, event: str, duration_ms: float | None = None, success: bool = True
    ) -> None:
        """Record ``connect`` or ``disconnect`` in the connection figures only."""
        if event not in _LIFECYCLE:
            raise StorageDataError(
                f"Unknown connection event {event!r}: use 'connect' or 'disconnect'",
                operation="metrics",
            )
        if self.enabled:
            seconds = None if duration_ms is None else duration_ms / 1000.0
            self._storage.connection_event(
                event, seconds, success, self._clock(), datetime.now(UTC)
            )

    async def record_data_volume(self, operation: str, bytes_count: int) -> None:
        """Add ``bytes_count`` to ``operation``'s data volume."""
        if self.enabled and self.track_data_volume:
            self._storage.add_data_volume(operation, bytes_count, self._clock())

    # -- reading -----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Every figure with its statistics, as a plain JSON-ready dict (see the docs)."""
        snap = self._storage.snapshot()
        body = MetricsAggregator.summarize(
            snap,
            percentiles=self.percentiles,
            window_seconds=self.aggregation_window,
            bucket_seconds=self._bucket_seconds,
        )
        return {
            "adapter_type": self.adapter,
            "timestamp": format_timestamp(datetime.now(UTC)),
            "uptime_seconds": round(snap.now - self._started, 3),
            "enabled": self.enabled,
            "sampling_rate": self.sampling_rate,
            "aggregation_window_seconds": self.aggregation_window,
            **body,
        }

    async def get_metrics(self) -> dict[str, Any]:
        """The report of :meth:`report` (async, for the adapter interface)."""
        return self.report()

    async def export_metrics(self, format: str = "dict") -> dict[str, Any] | str:
        """The report as ``dict``, ``json``, ``prometheus``, ``csv`` or ``markdown``."""
        check_format(format)
        return export(self.report(), format)

    async def reset_metrics(self) -> None:
        """Forget every figure (the connection state itself is kept)."""
        self._storage.reset()
