"""The Prometheus collector, scraped over HTTP while real adapters work.

``start_http_server`` serves a ``CollectorRegistry`` holding a
:class:`~mas_storage.metrics.PrometheusCollector` of a Redis and a PostgreSQL adapter on a port
the kernel picks (a fixed one collided with other processes' connections). The scrape is parsed
with ``prometheus_client.parser``: the families are those of the text export, the counts are
the adapters' own, a second scrape sees the calls made since (live), backend figures are
fetched from the scrape thread on the adapters' loop, and no credential appears.
"""

from __future__ import annotations

import asyncio
import urllib.request
import uuid
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from test_metrics_adapters import _secrets

from mas_storage import StorageDataError, create_adapter
from mas_storage.metrics import PrometheusCollector


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return str(reply.read().decode())


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_scraped_over_http_with_the_text_exports_names(stack_outputs: dict[str, Any]) -> None:
    session = f"test-prom-{uuid.uuid4().hex[:10]}"
    redis_cfg = {"url": stack_outputs["redis_url"]}
    pg_cfg = {"url": stack_outputs["postgres_url"], "table": "active_context"}
    registry = CollectorRegistry()
    collector = PrometheusCollector(registry=registry)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    port = server.server_port
    try:
        async with (
            create_adapter("redis", redis_cfg) as cache,
            create_adapter("postgres", pg_cfg) as pg,
        ):
            collector.add(cache)
            collector.add(pg, layer="l1")
            with pytest.raises(Exception, match="same labels"):
                collector.add(create_adapter("redis", redis_cfg))
            turn = {"session_id": session, "turn_id": 1, "content": "scrape probe"}
            for i in range(3):
                await cache.store({**turn, "turn_id": i})
            pg_id = await pg.store(turn)
            with pytest.raises(StorageDataError):
                await cache.store({"session_id": session})

            first = await asyncio.to_thread(_scrape, port)  # the loop stays free for backend calls
            await cache.retrieve(f"session:{session}:turns:1")
            second = await asyncio.to_thread(_scrape, port)
            text_export = str(await cache.export_metrics("prometheus"))
            await cache.delete(f"session:{session}:turns")
            await pg.delete(pg_id)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)

    scraped = _samples(first)
    ops = "storage_operations_total"
    redis_store_ok = (
        (ops, (("adapter", "redis"), ("operation", "store"), ("status", "success"))),
        (ops, (("adapter", "redis"), ("operation", "store"), ("status", "error"))),
    )
    assert [scraped[key] for key in redis_store_ok] == [3, 1]
    pg_store = (
        ops,
        (("adapter", "postgres"), ("layer", "l1"), ("operation", "store"), ("status", "success")),
    )
    assert scraped[pg_store] == 1
    assert (
        scraped[
            ("storage_errors_total", (("adapter", "redis"), ("error_type", "StorageDataError")))
        ]
        == 1
    )
    assert scraped[("storage_connected", (("adapter", "redis"),))] == 1
    count = (
        "storage_operation_duration_seconds_count",
        (("adapter", "redis"), ("operation", "store")),
    )
    assert scraped[count] == 4
    # Backend figures, fetched live on the adapters' loop from the server's thread.
    assert scraped[("storage_backend_metric", (("adapter", "redis"), ("name", "used_memory")))] > 0
    assert any(
        name == "storage_backend_metric" and ("layer", "l1") in labels for name, labels in scraped
    )

    # Live: the retrieve made between the scrapes is in the second one.
    retrieve = (ops, (("adapter", "redis"), ("operation", "retrieve"), ("status", "success")))
    assert retrieve not in scraped
    assert _samples(second)[retrieve] == 1

    # The same family names, types and help as the adapter's own text export.
    def shape(text: str) -> dict[str, tuple[str, str]]:
        return {f.name: (f.type, f.documentation) for f in text_string_to_metric_families(text)}

    assert shape(second) == shape(text_export)
    for secret in _secrets(redis_cfg) + _secrets(pg_cfg):
        assert secret not in first and secret not in second


def test_the_registry_sees_the_names_before_any_adapter() -> None:
    registry = CollectorRegistry()
    PrometheusCollector(registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        PrometheusCollector(registry=registry)  # the same names twice in one registry
