"""Operation metrics for storage adapters: counts, latencies, volumes, connection and errors.

Every adapter owns a :class:`MetricsCollector` (``adapter.metrics``) built from its settings'
``metrics`` (a :class:`MetricsSettings`); the core times every public operation and calls
:meth:`MetricsCollector.record`. Read the figures with ``await adapter.get_metrics()`` or
``await adapter.export_metrics("prometheus" | "json" | "csv" | "markdown")``.

* :class:`MetricsSettings`: the collector's configuration (one pydantic model).
* :class:`MetricsCollector`: the cheap ``record`` hot path, reports and exports.
* :class:`OperationTimer`: times a block of your own code into the same collector.
* :class:`MetricsStorage`: the bounded, thread-safe raw store (deques with ``maxlen``).
* :class:`MetricsAggregator`: percentiles, latency summaries and rates, computed on read.
* :class:`PrometheusCollector`: a ``prometheus_client`` collector serving adapters' figures
  live under the text export's names (needs ``mas-storage[prometheus]``; imported on first use).
"""

from typing import TYPE_CHECKING, Any

from ._aggregator import MetricsAggregator, percentile_key
from ._collector import DEFAULT_CONFIG, MetricsCollector
from ._exporters import (
    EXPORT_FORMATS,
    Family,
    check_format,
    export,
    prometheus_families,
    to_csv,
    to_json,
    to_markdown,
    to_prometheus,
)
from ._settings import MetricsSettings
from ._size import estimate_size
from ._storage import MAX_ERRORS, MAX_OPERATIONS, ErrorRecord, MetricsStorage
from ._timer import OperationTimer

if TYPE_CHECKING:
    from ._prometheus import PrometheusCollector

__all__ = [
    "DEFAULT_CONFIG",
    "EXPORT_FORMATS",
    "MAX_ERRORS",
    "MAX_OPERATIONS",
    "ErrorRecord",
    "Family",
    "MetricsAggregator",
    "MetricsCollector",
    "MetricsSettings",
    "MetricsStorage",
    "OperationTimer",
    "PrometheusCollector",
    "check_format",
    "estimate_size",
    "export",
    "percentile_key",
    "prometheus_families",
    "to_csv",
    "to_json",
    "to_markdown",
    "to_prometheus",
]


def __getattr__(name: str) -> Any:
    # prometheus-client is optional: the collector is imported when first asked for.
    if name == "PrometheusCollector":
        from ._prometheus import PrometheusCollector

        return PrometheusCollector
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
