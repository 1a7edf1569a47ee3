"""OpenTelemetry spans and metrics for every adapter operation, made once, in the core.

The wrapper of :mod:`mas_storage._operations` calls :func:`current` on each operation. It
returns ``None`` (and the operation runs exactly as without OpenTelemetry) unless
``opentelemetry-api`` is installed (``pip install "mas-storage[otel]"``) **and** the application
has configured a tracer or meter provider, globally (``trace.set_tracer_provider``,
``metrics.set_meter_provider``, or the ``OTEL_PYTHON_*_PROVIDER`` variables) or for this library
only (:func:`configure_telemetry`). The SDK and its exporters are the application's choice;
this module depends on the API alone.

What is emitted follows the OpenTelemetry database client conventions (schema
:data:`SCHEMA_URL`):

* one span per operation, kind ``CLIENT`` (``INTERNAL`` for an in-process engine), named
  ``{db.operation.name} {target}`` where the target is the collection, else the namespace, else
  ``server.address:server.port``; parented to the caller's current span and made current for
  the call, so driver instrumentations nest under it. Attributes: ``db.system.name``,
  ``db.operation.name`` (the adapter method, e.g. ``store``, ``get_recent_turns``),
  ``db.collection.name``, ``db.namespace``, ``server.address``, ``server.port``; on failure
  ``error.type`` (the :class:`~mas_storage.StorageError` class, e.g. ``StorageTimeoutError``),
  ``mas_storage.error.cause`` (the driver exception's class) and status ``ERROR`` whose
  description is that same class name;
* ``db.client.operation.duration`` (histogram, seconds, the recommended buckets): the same
  duration the metrics collector records, with the span's attributes and ``error.type``;
* ``db.client.response.returned_rows`` (histogram) for operations that return a list.

Never recorded: statement text, argument values, payloads, error messages (they may quote the
caller's input) and credentials. The adapter supplies its facts once through
:meth:`StorageAdapter._telemetry_facts`; attribute dicts are built once per adapter and
operation and reused.

The check that runs when nothing is configured costs two module attribute reads: the API's
proxy objects would cost microseconds per call (measured in ``tests/benchmarks/bench_metrics.py``),
so the global providers are read where the API keeps them, with the public getters as the
fallback should a future API move them.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from ._base import StorageAdapter
    from ._exceptions import StorageError

__all__ = [
    "DURATION_BUCKETS",
    "OTEL_AVAILABLE",
    "ROWS_BUCKETS",
    "SCHEMA_URL",
    "DatabaseFacts",
    "Telemetry",
    "configure_telemetry",
    "current",
]

try:
    from opentelemetry import context as _context
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
    from opentelemetry.environment_variables import (
        OTEL_PYTHON_METER_PROVIDER,
        OTEL_PYTHON_TRACER_PROVIDER,
    )
except ImportError:  # the optional extra is not installed: telemetry is off, at no cost
    OTEL_AVAILABLE = False
else:
    OTEL_AVAILABLE = True
    from opentelemetry.metrics import _internal as _metrics_state
    from opentelemetry.trace import SpanKind, Status, StatusCode

#: The semantic conventions version followed here.
SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
#: ``db.client.operation.duration`` buckets, in seconds, as the conventions recommend.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
#: ``db.client.response.returned_rows`` buckets, as the conventions recommend.
ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_SCOPE = "mas_storage"
_LIFECYCLE = frozenset({"connect", "disconnect"})
_VIEW_ATTR = "_mas_telemetry_view"
logger = logging.getLogger("mas_storage")


@dataclass(frozen=True, slots=True)
class DatabaseFacts:
    """What an adapter tells the core about its backend, for span and metric attributes.

    ``collection`` is the collection (table, collection) the adapter's operations work on;
    ``collections`` overrides it per operation (``None``: no single collection, e.g. an
    operation over two tables). ``connect`` and ``disconnect`` never carry one.
    ``namespace_in_span_name=False`` keeps the namespace out of span names (Redis: the
    conventions say a database index there is noise). ``in_process`` marks an embedded engine
    (span kind ``INTERNAL`` instead of ``CLIENT``).
    """

    system: str
    server_address: str | None = None
    server_port: int | None = None
    namespace: str | None = None
    collection: str | None = None
    collections: Mapping[str, str | None] = field(default_factory=dict)
    namespace_in_span_name: bool = True
    in_process: bool = False

    @classmethod
    def from_url(cls, system: str, url: str | None, default_port: int, **facts: Any) -> Self:
        """Facts with ``server.address``/``server.port`` read from ``url`` (never its
        credentials); a URL that does not parse gives no address."""
        address: str | None = None
        port: int | None = None
        if url:
            try:
                parts = urlsplit(url)
                address, port = parts.hostname, parts.port or default_port
            except ValueError:
                address = port = None
        return cls(system, address, port if address else None, **facts)

    def collection_of(self, operation: str) -> str | None:
        """The ``db.collection.name`` of ``operation``, or ``None``."""
        if operation in _LIFECYCLE:
            return None
        return self.collections.get(operation, self.collection)

    def attributes(self, operation: str) -> dict[str, str | int]:
        """Span and metric attributes of ``operation`` (no ``error.type``)."""
        attrs: dict[str, str | int] = {
            "db.system.name": self.system,
            "db.operation.name": operation,
        }
        collection = self.collection_of(operation)
        if collection:
            attrs["db.collection.name"] = collection
        if self.namespace:
            attrs["db.namespace"] = self.namespace
        if self.server_address:
            attrs["server.address"] = self.server_address
            if self.server_port is not None:
                attrs["server.port"] = self.server_port
        return attrs

    def span_name(self, operation: str) -> str:
        """``{db.operation.name} {target}``, the target as the conventions order it."""
        target = self.collection_of(operation)
        if not target and self.namespace_in_span_name:
            target = self.namespace
        if not target and self.server_address:
            target = (
                self.server_address
                if self.server_port is None
                else f"{self.server_address}:{self.server_port}"
            )
        return f"{operation} {target}" if target else operation


class _AdapterView:
    """Per adapter: facts, span kinds, names and attribute dicts, each built once."""

    __slots__ = ("attrs", "facts", "kind", "names", "outcome")

    def __init__(self, facts: DatabaseFacts) -> None:
        self.facts = facts
        self.kind = SpanKind.INTERNAL if facts.in_process else SpanKind.CLIENT
        self.names: dict[str, str] = {}
        self.attrs: dict[str, dict[str, str | int]] = {}
        #: (operation, error type or None) -> metric attributes.
        self.outcome: dict[tuple[str, str | None], dict[str, str | int]] = {}

    def of(self, operation: str) -> tuple[str, dict[str, str | int]]:
        attrs = self.attrs.get(operation)
        if attrs is None:
            attrs = self.attrs[operation] = self.facts.attributes(operation)
            self.names[operation] = self.facts.span_name(operation)
        return self.names[operation], attrs

    def metric_attrs(self, operation: str, error: str | None) -> dict[str, str | int]:
        key = (operation, error)
        attrs = self.outcome.get(key)
        if attrs is None:
            attrs = dict(self.of(operation)[1])
            if error is not None:
                attrs["error.type"] = error
            self.outcome[key] = attrs
        return attrs


class Telemetry:
    """The tracer and instruments of one (tracer provider, meter provider) pair."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        from . import __version__

        self.tracer: Any = None
        self.duration: Any = None
        self.rows: Any = None
        if tracer_provider is not None:
            self.tracer = tracer_provider.get_tracer(_SCOPE, __version__, schema_url=SCHEMA_URL)
        if meter_provider is not None:
            meter = meter_provider.get_meter(_SCOPE, __version__, schema_url=SCHEMA_URL)
            self.duration = meter.create_histogram(
                "db.client.operation.duration",
                unit="s",
                description="Duration of database client operations.",
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )
            self.rows = meter.create_histogram(
                "db.client.response.returned_rows",
                unit="{row}",
                description="The actual number of records returned by the database operation.",
                explicit_bucket_boundaries_advisory=ROWS_BUCKETS,
            )

    def view(self, adapter: StorageAdapter) -> _AdapterView:
        """The adapter's cached view: its facts are asked for once per telemetry (kept on the
        adapter itself, so nothing here holds adapters alive)."""
        entry = adapter.__dict__.get(_VIEW_ATTR)
        if entry is None or entry[0] is not self:
            entry = (self, _AdapterView(adapter._telemetry_facts()))
            adapter.__dict__[_VIEW_ATTR] = entry
        view: _AdapterView = entry[1]
        return view

    # -- the three calls the wrapper makes ---------------------------------------------------

    def start(self, adapter: StorageAdapter, operation: str) -> tuple[Any, Any]:
        """Start the operation's span as a child of the current one and make it current.

        Returns ``(span, context token)``, or ``(None, None)`` when only metrics are on (or
        when starting failed: telemetry never fails an operation).
        """
        if self.tracer is None:
            return None, None
        try:
            view = self.view(adapter)
            name, attrs = view.of(operation)
            span = self.tracer.start_span(
                name,
                kind=view.kind,
                attributes=attrs,
                record_exception=False,
                set_status_on_exception=False,
            )
            return span, _context.attach(_trace.set_span_in_context(span))
        except Exception:
            logger.debug("mas_storage telemetry: could not start a span", exc_info=True)
            return None, None

    def finish(
        self,
        adapter: StorageAdapter,
        operation: str,
        span: Any,
        token: Any,
        seconds: float,
        error: StorageError | None,
        result: Any = None,
    ) -> None:
        """End the span (status and ``error.type`` on failure) and record the metrics."""
        try:
            error_type = None if error is None else type(error).__qualname__
            if span is not None:
                _context.detach(token)
                if error is not None and span.is_recording():
                    span.set_attribute("error.type", error_type)
                    cause = getattr(error, "orig", None)
                    if cause is not None:
                        kind = type(cause)
                        span.set_attribute(
                            "mas_storage.error.cause", f"{kind.__module__}.{kind.__qualname__}"
                        )
                    span.set_status(Status(StatusCode.ERROR, error_type))
                span.end()
            if self.duration is not None:
                view = self.view(adapter)
                self.duration.record(seconds, view.metric_attrs(operation, error_type))
                if error is None and type(result) is list:
                    self.rows.record(len(result), view.metric_attrs(operation, None))
        except Exception:
            logger.debug("mas_storage telemetry: could not finish a span", exc_info=True)

    def abandon(self, span: Any, token: Any) -> None:
        """End the span of a cancelled call (no status: cancellation is not a failure)."""
        if span is not None:
            _context.detach(token)
            span.end()


# -- which providers are in force ------------------------------------------------------------

_MISSING = object()
_explicit: tuple[Any, Any] | None = None
_disabled = False
#: The provider pair ``_active`` was built for; nothing matches it before the first call.
_seen: tuple[Any, Any] = (_MISSING, _MISSING)
_active: Telemetry | None = None


def _global_providers() -> tuple[Any, Any]:
    """The global (tracer provider, meter provider), ``None`` where none is set."""
    try:
        return _trace._TRACER_PROVIDER, _metrics_state._METER_PROVIDER
    except AttributeError:  # the API moved its globals: the public getters (slower) tell too
        return _trace.get_tracer_provider(), _metrics.get_meter_provider()


def current() -> Telemetry | None:
    """The telemetry in force now, or ``None`` when there is nothing to emit to."""
    if _disabled:
        return None
    if _explicit is not None:
        pair = _explicit
    else:
        try:
            pair = (_trace._TRACER_PROVIDER, _metrics_state._METER_PROVIDER)
        except AttributeError:
            pair = _global_providers()
    if pair[0] is _seen[0] and pair[1] is _seen[1]:
        return _active
    return _refresh(pair)


def _refresh(pair: tuple[Any, Any]) -> Telemetry | None:
    """A provider changed (or the first call): build the tracer and instruments anew."""
    global _seen, _active
    tracer_provider, meter_provider = pair
    if _explicit is None:
        # Providers named by environment variables are loaded by the public getters.
        if tracer_provider is None and OTEL_PYTHON_TRACER_PROVIDER in os.environ:
            tracer_provider = _trace.get_tracer_provider()
        if meter_provider is None and OTEL_PYTHON_METER_PROVIDER in os.environ:
            meter_provider = _metrics.get_meter_provider()
        pair = _global_providers()
    if isinstance(tracer_provider, (_trace.NoOpTracerProvider, _trace.ProxyTracerProvider)):
        tracer_provider = None
    if isinstance(meter_provider, _metrics.NoOpMeterProvider):
        meter_provider = None
    active = None
    if tracer_provider is not None or meter_provider is not None:
        active = Telemetry(tracer_provider, meter_provider)
    _seen, _active = pair, active
    return active


def configure_telemetry(
    *,
    tracer_provider: Any = None,
    meter_provider: Any = None,
    enabled: bool = True,
) -> None:
    """Choose where this library's spans and metrics go.

    With no argument, the global providers are used (the default). Given providers are used
    instead of the global ones, for this library only (``None`` for one of them: that signal
    is off). ``enabled=False`` turns both off whatever is configured.
    """
    global _explicit, _disabled, _seen, _active
    if not OTEL_AVAILABLE and enabled and (tracer_provider or meter_provider):
        raise ImportError(
            "OpenTelemetry is not installed: pip install 'mas-storage[otel]' "
            "(and an SDK, e.g. opentelemetry-sdk)"
        )
    _disabled = not enabled
    _explicit = (tracer_provider, meter_provider) if tracer_provider or meter_provider else None
    _seen, _active = (_MISSING, _MISSING), None
