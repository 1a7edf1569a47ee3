"""A ``prometheus_client`` collector serving the adapters' figures live, under the names of
the text export (``storage_operations_total``, ``storage_operation_duration_seconds``, ...).

::

    from prometheus_client import CollectorRegistry, start_http_server
    from mas_storage.metrics import PrometheusCollector

    registry = CollectorRegistry()
    collector = PrometheusCollector(registry=registry)
    collector.add(cache)                        # an adapter; extra labels: add(pg, layer="l2")
    start_http_server(9464, registry=registry)  # or prometheus_client.make_asgi_app(registry)

Each scrape reads every adapter's collector (thread-safe, no I/O) and renders the families of
:func:`~mas_storage.metrics.prometheus_families`, the same code as
``export_metrics("prometheus")``. Backend figures (``storage_backend_metric``) need a call to
the backend on the adapter's event loop: a scrape served from another thread (as
``start_http_server`` does) asks that loop for them, waiting at most ``backend_timeout``
seconds; a scrape served on the loop itself (an ASGI app) cannot wait for it, and shows the
figures of the last :meth:`PrometheusCollector.refresh_backend` (call it periodically there).

Needs ``prometheus-client`` (``pip install "mas-storage[prometheus]"``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mas_storage._exceptions import StorageDataError

from ._exporters import Family, prometheus_families

try:
    from prometheus_client.metrics_core import Metric
except ImportError as exc:  # pragma: no cover - the extra is part of the dev environment
    raise ImportError(
        "PrometheusCollector needs prometheus-client: pip install 'mas-storage[prometheus]'"
    ) from exc

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

    from mas_storage._base import StorageAdapter

__all__ = ["PrometheusCollector"]

logger = logging.getLogger("mas_storage")
_PROM_KINDS = {"counter": "counter", "gauge": "gauge", "summary": "summary"}


def _to_metric(family: Family) -> Metric:
    """A ``prometheus_client`` metric with the family's exact sample names."""
    base = family.name
    if family.kind == "counter" and base.endswith("_total"):
        base = base[: -len("_total")]  # the client adds it back in every exposition format
    metric = Metric(base, family.help, _PROM_KINDS[family.kind])
    for suffix, labels, value in family.samples:
        metric.add_sample(family.name + suffix, labels, float(value))
    return metric


class _Tracked:
    __slots__ = ("adapter", "backend", "labels", "loop")

    def __init__(
        self,
        adapter: StorageAdapter,
        labels: dict[str, str],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self.adapter = adapter
        self.labels = labels
        self.loop = loop
        self.backend: dict[str, Any] | None = None


class PrometheusCollector:
    """Registers the figures of any number of adapters in a ``prometheus_client`` registry.

    ``adapters`` are added at once (see :meth:`add`); with ``registry`` the collector
    registers itself there. ``namespace`` prefixes every name (``storage`` by default, as in the
    text export).
    """

    def __init__(
        self,
        adapters: Iterable[StorageAdapter] = (),
        *,
        registry: CollectorRegistry | None = None,
        namespace: str = "storage",
        backend_timeout: float = 2.0,
    ) -> None:
        self.namespace = namespace
        self.backend_timeout = backend_timeout
        self._tracked: list[_Tracked] = []
        self._lock = threading.Lock()
        for adapter in adapters:
            self.add(adapter)
        if registry is not None:
            registry.register(self)

    def add(
        self,
        adapter: StorageAdapter,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        **labels: str,
    ) -> None:
        """Serve ``adapter``'s figures, with ``labels`` on its samples (to tell apart two
        adapters of one kind). ``loop`` is the event loop it runs on (default: the running
        loop, when called from one): backend figures are fetched there."""
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
        key = (adapter.kind, tuple(sorted(labels.items())))
        with self._lock:
            for tracked in self._tracked:
                if tracked.adapter is adapter:
                    raise StorageDataError(f"{adapter!r} is already collected")
                if (tracked.adapter.kind, tuple(sorted(tracked.labels.items()))) == key:
                    raise StorageDataError(
                        f"Two {adapter.kind} adapters with the same labels {labels or '{}'}: "
                        "their series would clash; give one other labels, e.g. add(a, layer=...)"
                    )
            self._tracked.append(_Tracked(adapter, dict(labels), loop))

    def remove(self, adapter: StorageAdapter) -> None:
        """Stop serving ``adapter``'s figures (no error if it was not served)."""
        with self._lock:
            self._tracked = [t for t in self._tracked if t.adapter is not adapter]

    async def refresh_backend(self) -> None:
        """Fetch every connected adapter's backend figures now, on the running loop, for the
        scrapes that cannot fetch them themselves (served on that loop)."""
        loop = asyncio.get_running_loop()
        for tracked in list(self._tracked):
            tracked.loop = tracked.loop or loop
            if tracked.adapter.is_connected:
                tracked.backend = await self._fetch(tracked.adapter)

    @staticmethod
    async def _fetch(adapter: StorageAdapter) -> dict[str, Any] | None:
        report = await adapter.get_metrics()
        backend: dict[str, Any] | None = report.get("backend_specific")
        return backend

    def _backend(self, tracked: _Tracked) -> dict[str, Any] | None:
        """Live backend figures when the adapter's loop can be asked from this thread."""
        loop = tracked.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return tracked.backend
        if not tracked.adapter.is_connected:
            return None
        try:
            if asyncio.get_running_loop() is loop:
                return tracked.backend  # served on the loop itself: it cannot wait for itself
        except RuntimeError:
            pass
        future = asyncio.run_coroutine_threadsafe(self._fetch(tracked.adapter), loop)
        try:
            tracked.backend = future.result(self.backend_timeout)
        except Exception as exc:  # a scrape never fails for a backend that is slow or down
            future.cancel()
            logger.debug(
                "%s backend figures not fetched for a scrape: %s",
                tracked.adapter.kind,
                type(exc).__name__,
            )
        return tracked.backend

    def _families(self, with_backend: bool) -> list[Family]:
        merged: dict[str, Family] = {}
        for tracked in list(self._tracked):
            report = tracked.adapter.metrics.report()
            report["adapter_type"] = tracked.adapter.kind
            if with_backend:
                backend = self._backend(tracked)
                if backend:
                    report["backend_specific"] = backend
            for family in prometheus_families(report, self.namespace, **tracked.labels):
                known = merged.setdefault(family.name, family)
                if known is not family:
                    known.samples += family.samples
        return list(merged.values())

    def collect(self) -> Iterator[Metric]:
        """Every family with samples, read now (called by the registry on each scrape)."""
        for family in self._families(with_backend=True):
            if family.samples:
                yield _to_metric(family)

    def describe(self) -> Iterator[Metric]:
        """The families' names, without samples (what a registry checks for clashes)."""
        empty = {"adapter_type": "storage", "operations": {}, "connection": {}}
        for family in prometheus_families(empty, self.namespace):
            yield _to_metric(family)
