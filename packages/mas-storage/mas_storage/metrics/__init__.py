"""Operation metrics for storage adapters (the spec's Priority 4A).

Every adapter owns a :class:`MetricsCollector` (``adapter.metrics``) built from
``config["metrics"]``; the core times every public operation and calls
:meth:`MetricsCollector.record`. Read the figures with ``await adapter.get_metrics()`` or
``await adapter.export_metrics("prometheus" | "json" | "csv" | "markdown")``.

* :class:`MetricsCollector`: config, the cheap ``record`` hot path, reports and exports.
* :class:`OperationTimer`: times a block of your own code into the same collector.
* :class:`MetricsStorage`: the bounded, thread-safe raw store (deques with ``maxlen``).
* :class:`MetricsAggregator`: percentiles, latency summaries and rates, computed on read.
"""

from ._aggregator import MetricsAggregator, percentile_key
from ._collector import DEFAULT_CONFIG, MetricsCollector
from ._exporters import (
    EXPORT_FORMATS,
    check_format,
    export,
    to_csv,
    to_json,
    to_markdown,
    to_prometheus,
)
from ._size import estimate_size
from ._storage import MAX_ERRORS, MAX_OPERATIONS, ErrorRecord, MetricsStorage
from ._timer import OperationTimer

__all__ = [
    "DEFAULT_CONFIG",
    "EXPORT_FORMATS",
    "MAX_ERRORS",
    "MAX_OPERATIONS",
    "ErrorRecord",
    "MetricsAggregator",
    "MetricsCollector",
    "MetricsStorage",
    "OperationTimer",
    "check_format",
    "estimate_size",
    "export",
    "percentile_key",
    "to_csv",
    "to_json",
    "to_markdown",
    "to_prometheus",
]
