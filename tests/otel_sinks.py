"""The OTel SDK's in-memory span exporter and metric reader, given to mas_storage only.

Shared by the telemetry tests and the reliability suite's secrets sweep. :func:`sinks_installed`
hands them to the library with ``configure_telemetry`` (no global provider is touched) and
restores the default afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from mas_storage import configure_telemetry

__all__ = ["Sinks", "sinks_installed", "span_texts"]


class Sinks:
    """A tracer provider exporting to memory and a meter provider read from memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def points(self, name: str) -> list[HistogramDataPoint]:
        """The histogram points of metric ``name`` (none when nothing was recorded)."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
            for point in metric.data.data_points  # type: ignore[union-attr]
            if isinstance(point, HistogramDataPoint)
        ]

    def metric_attribute_texts(self) -> list[str]:
        """``key=value`` of every attribute of every data point recorded so far."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            f"{key}={value}"
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            for point in metric.data.data_points
            for key, value in (point.attributes or {}).items()
        ]

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def span_texts(span: ReadableSpan) -> list[str]:
    """Everything a span carries as text: name, status, attributes, events, links."""
    texts = [span.name, str(span.status.description or "")]
    texts += [f"{key}={value}" for key, value in (span.attributes or {}).items()]
    texts += [f"{event.name} {dict(event.attributes or {})}" for event in span.events]
    texts += [str(dict(link.attributes or {})) for link in span.links]
    return texts


@contextmanager
def sinks_installed() -> Iterator[Sinks]:
    """Fresh sinks given to mas_storage for the block; the default restored after."""
    sinks = Sinks()
    configure_telemetry(tracer_provider=sinks.tracer_provider, meter_provider=sinks.meter_provider)
    try:
        yield sinks
    finally:
        configure_telemetry()
        sinks.shutdown()
