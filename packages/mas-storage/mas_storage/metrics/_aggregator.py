"""Statistics over raw figures, computed only when metrics are read (lazy aggregation).

Percentile method: linear interpolation between closest ranks (Hyndman and Fan type 7, the
default of NumPy and R). For sorted data ``x[0..n-1]`` the p-th percentile sits at rank
``(n - 1) * p / 100``. For integer ``p`` in 1..99 it equals
``statistics.quantiles(data, n=100, method="inclusive")[p - 1]``; p0 is the minimum and p100
the maximum. A single sample is every percentile.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from typing import Any

from ._storage import ConnectionSnapshot, ErrorRecord, MetricsSnapshot, OperationSnapshot

__all__ = ["MetricsAggregator", "format_timestamp", "percentile_key"]

#: Milliseconds are reported at the clock's resolution, the nanosecond (``perf_counter``): the
#: seconds-to-milliseconds product would otherwise carry float noise such as 0.16988300000000002.
#: Ratios and rates (``success_rate``, ``throughput``) are reported exact, unrounded: rounding is
#: for where a human reads them (the Markdown export formats them), never for the stored figure.
_MS_DIGITS = 6


def percentile_key(percentile: float) -> str:
    """The report key of a percentile: ``50`` -> ``"p50"``, ``99.9`` -> ``"p99.9"``."""
    return f"p{percentile:g}"


def format_timestamp(moment: Any) -> str | None:
    """ISO 8601 in UTC with a ``Z`` suffix (e.g. ``2025-10-21T12:00:00.123Z``)."""
    if moment is None:
        return None
    text: str = moment.isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, _MS_DIGITS)


class MetricsAggregator:
    """Statistical aggregation of raw metrics: percentiles, latency summaries and rates."""

    @staticmethod
    def calculate_percentiles(
        values: Iterable[float], percentiles: Sequence[float] = (50, 95, 99)
    ) -> dict[str, float | None]:
        """Percentiles of ``values`` keyed ``p50``, ``p95``...; ``None`` when there are none."""
        data = sorted(values)
        return MetricsAggregator._percentiles_sorted(data, percentiles)

    @staticmethod
    def _percentiles_sorted(
        data: Sequence[float], percentiles: Sequence[float]
    ) -> dict[str, float | None]:
        out: dict[str, float | None] = {}
        last = len(data) - 1
        for p in percentiles:
            key = percentile_key(p)
            if last < 0:
                out[key] = None
                continue
            rank = last * p / 100.0
            low = math.floor(rank)
            high = min(low + 1, last)
            frac = rank - low
            out[key] = data[low] + (data[high] - data[low]) * frac
        return out

    @staticmethod
    def calculate_latency_stats(
        durations: Iterable[float], percentiles: Sequence[float] = (50, 95, 99)
    ) -> dict[str, float | None]:
        """``min``, ``max``, ``avg`` and the percentiles of ``durations`` (same unit)."""
        data = sorted(durations)
        if not data:
            empty: dict[str, float | None] = {"min": None, "max": None, "avg": None}
            empty.update(MetricsAggregator._percentiles_sorted(data, percentiles))
            return empty
        stats: dict[str, float | None] = {
            "min": data[0],
            "max": data[-1],
            "avg": math.fsum(data) / len(data),
        }
        stats.update(MetricsAggregator._percentiles_sorted(data, percentiles))
        return stats

    @staticmethod
    def calculate_rates(
        events: Iterable[tuple[float, int, int]],
        window_seconds: float = 60.0,
        *,
        now: float | None = None,
        since: float | None = None,
        bucket_seconds: float = 0.0,
    ) -> dict[str, float]:
        """Operations and bytes per second over the last ``window_seconds``.

        ``events`` are ``(timestamp, operations, bytes)``: single calls or time buckets of
        ``bucket_seconds`` starting at ``timestamp`` (a bucket counts when it overlaps the
        window). The divisor is the window, or the time since ``since`` (collection start)
        when that is shorter, so a young collector does not report a diluted rate.
        """
        if now is None:
            now = time.monotonic()
        start = now - window_seconds
        span = window_seconds if since is None else min(window_seconds, now - since)
        if span <= 0:
            return {"ops_per_sec": 0.0, "bytes_per_sec": 0.0}
        ops = nbytes = 0
        for timestamp, count, size in events:
            if timestamp + bucket_seconds > start or timestamp >= start:
                ops += count
                nbytes += size
        return {"ops_per_sec": ops / span, "bytes_per_sec": nbytes / span}

    # -- the report --------------------------------------------------------------------------

    @classmethod
    def summarize(
        cls,
        snapshot: MetricsSnapshot,
        *,
        percentiles: Sequence[float],
        window_seconds: float,
        bucket_seconds: float,
    ) -> dict[str, Any]:
        """The ``operations``, ``connection`` and ``errors`` sections of the metrics report."""
        operations = {
            name: cls._operation(series, snapshot, percentiles, window_seconds, bucket_seconds)
            for name, series in sorted(snapshot.operations.items())
        }
        return {
            "operations": operations,
            "connection": cls._connection(snapshot.connection),
            "errors": cls._errors(snapshot.errors, snapshot.recent_errors),
        }

    @classmethod
    def _operation(
        cls,
        series: OperationSnapshot,
        snapshot: MetricsSnapshot,
        percentiles: Sequence[float],
        window_seconds: float,
        bucket_seconds: float,
    ) -> dict[str, Any]:
        stats = cls.calculate_latency_stats(series.samples, percentiles)
        rates = cls.calculate_rates(
            series.buckets,
            window_seconds,
            now=snapshot.now,
            since=snapshot.since,
            bucket_seconds=bucket_seconds,
        )
        success = series.count - series.errors
        return {
            "total_count": series.count,
            "success_count": success,
            "error_count": series.errors,
            "success_rate": success / series.count if series.count else None,
            "latency_ms": {key: _ms(value) for key, value in stats.items()},
            "latency_samples": len(series.samples),
            "total_time_ms": _ms(series.seconds_total),
            "throughput": dict(rates),
            "bytes_total": series.bytes_total,
        }

    @staticmethod
    def _connection(conn: ConnectionSnapshot) -> dict[str, Any]:
        return {
            "connect_count": conn.connect_count,
            "connect_error_count": conn.connect_error_count,
            "disconnect_count": conn.disconnect_count,
            "current_state": "connected" if conn.connected else "disconnected",
            "last_connect_duration_ms": _ms(conn.last_connect_seconds),
            "last_disconnect_duration_ms": _ms(conn.last_disconnect_seconds),
            "last_connect_at": format_timestamp(conn.last_connect_at),
            "total_connection_time_seconds": conn.connected_seconds_total,
        }

    @staticmethod
    def _errors(keyed: dict[tuple[str, str], int], recent: list[ErrorRecord]) -> dict[str, Any]:
        by_type: dict[str, int] = {}
        by_operation: dict[str, int] = {}
        for (operation, kind), count in sorted(keyed.items()):
            by_type[kind] = by_type.get(kind, 0) + count
            by_operation[operation] = by_operation.get(operation, 0) + count
        return {
            "total_count": sum(keyed.values()),
            "by_type": by_type,
            "by_operation": by_operation,
            "recent_errors": [
                {
                    "timestamp": format_timestamp(rec.timestamp),
                    "type": rec.type,
                    "operation": rec.operation,
                    "message": rec.message,
                    "duration_ms": rec.duration_ms,
                    "cause": rec.cause,
                }
                for rec in recent
            ],
        }
