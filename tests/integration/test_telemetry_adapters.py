"""OpenTelemetry spans and metrics of every adapter against its real backend.

The OTel SDK's in-memory span exporter and metric reader are given to the library
(``configure_telemetry``); each test runs connect, store, retrieve, search, delete and one bad
store under an application span, then checks what was exported: one span per operation,
named ``{operation} {target}``, with the database conventions' attributes, a child of the
application span in its trace; the bad store's span has status ``ERROR`` carrying the
``StorageError`` class, and ``error.type``; ``db.client.operation.duration`` has a data point
per operation and outcome with the same attributes and the recommended buckets. No attribute
holds the payload or a credential. The adapters and cases are those of the metrics test (Qdrant
in each mode the outputs name).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from embedded_qdrant import connect_when_unlocked
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode
from otel_sinks import Sinks, sinks_installed, span_texts
from test_metrics_adapters import CASES, _secrets, backend_of

from mas_storage import StorageDataError, configure_telemetry, create_adapter
from mas_storage._telemetry import DURATION_BUCKETS

SYSTEMS = {
    "postgres": "postgresql",
    "redis": "redis",
    "qdrant": "qdrant",
    "neo4j": "neo4j",
    "typesense": "typesense",
}
URL_KEYS = {
    "postgres": "postgres_url",
    "redis": "redis_url",
    "qdrant-embedded": None,  # in-process: no server
    "qdrant-server": "qdrant_url",
    "neo4j": "neo4j_url",
    "typesense": "typesense_url",
}


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    with sinks_installed() as sinks:
        yield sinks


def _expected_server(kind: str, outputs: dict[str, Any]) -> tuple[str, int] | None:
    key = URL_KEYS[kind]
    if key is None:
        return None  # the embedded Qdrant: no server
    url = outputs[key]
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


@pytest.mark.parametrize("kind", list(CASES))
async def test_adapter_operations_are_spans_and_metrics(
    kind: str, stack_outputs: dict[str, Any], sinks: Sinks
) -> None:
    case = CASES[kind]
    run = f"test-otel-{uuid.uuid4().hex[:10]}"
    config = case.config(stack_outputs, run)
    backend = backend_of(kind)
    adapter = create_adapter(backend, config)
    tracer = sinks.tracer_provider.get_tracer("test-app")
    with tracer.start_as_current_span("agent-step") as parent:
        await connect_when_unlocked(adapter)
        try:
            record_id = await adapter.store(case.record(run))
            assert await adapter.retrieve(record_id) is not None
            hits = await adapter.search(case.query(run))
            assert [case.content_of(h) for h in hits] == ["metrics probe"]
            assert await adapter.delete(record_id) is True
            with pytest.raises(StorageDataError):
                await adapter.store(case.bad_record(run))
            before_cleanup = len(sinks.spans.get_finished_spans())
        finally:
            try:
                await case.cleanup(adapter, run)
            finally:
                await adapter.disconnect()

    spans = [
        s for s in sinks.spans.get_finished_spans() if s.instrumentation_scope.name == "mas_storage"
    ]
    by_op: dict[str, list[ReadableSpan]] = {}
    for span in sinks.spans.get_finished_spans()[:before_cleanup]:
        by_op.setdefault(str((span.attributes or {})["db.operation.name"]), []).append(span)
    assert any(s.attributes and s.attributes["db.operation.name"] == "disconnect" for s in spans)
    for op, count in {"store": 2, "retrieve": 1, "search": 1, "delete": 1, "connect": 1}.items():
        assert len(by_op.get(op, [])) == count, (op, sorted(by_op))

    context = parent.get_span_context()
    server = _expected_server(kind, stack_outputs)
    collection = {"postgres": "active_context", "qdrant": run, "typesense": run}.get(backend)
    for span in spans:
        attrs = dict(span.attributes or {})
        op = str(attrs["db.operation.name"])
        assert span.context is not None and span.context.trace_id == context.trace_id
        assert span.parent is not None
        if op in ("connect", "disconnect", "store", "retrieve", "search", "delete"):
            assert span.parent.span_id == context.span_id, op  # the caller's span, not a sibling
        assert attrs["db.system.name"] == SYSTEMS[backend]
        if server is None:
            assert "server.address" not in attrs
            assert span.kind is SpanKind.INTERNAL  # in-process engine
        else:
            assert (attrs["server.address"], attrs["server.port"]) == server
            assert span.kind is SpanKind.CLIENT
        if op in ("connect", "disconnect"):
            assert "db.collection.name" not in attrs
        elif collection is not None:
            assert attrs["db.collection.name"] == collection
        target = attrs.get("db.collection.name") or (
            attrs.get("db.namespace") if backend != "redis" else None
        )
        if not target and server:
            target = f"{server[0]}:{server[1]}"
        assert span.name == (f"{op} {target}" if target else op)

    failed = [s for s in by_op["store"] if s.status.status_code is StatusCode.ERROR]
    assert len(failed) == 1
    assert failed[0].status.description == "StorageDataError"
    assert (failed[0].attributes or {})["error.type"] == "StorageDataError"
    ok = [s for s in spans if s is not failed[0]]
    assert all(s.status.status_code is StatusCode.UNSET for s in ok)
    assert all("error.type" not in (s.attributes or {}) for s in ok)

    # No payload, no credential: in names, attributes, statuses or events.
    texts = [text for span in spans for text in span_texts(span)]
    for text in texts:
        assert "metrics probe" not in text
        for secret in _secrets(config):
            assert secret not in text

    points = sinks.points("db.client.operation.duration")
    outcomes = {
        (p.attributes["db.operation.name"], p.attributes.get("error.type")): p
        for p in points
        if p.attributes
    }
    assert outcomes[("store", None)].count == 1
    assert outcomes[("store", "StorageDataError")].count == 1
    assert outcomes[("retrieve", None)].count == 1
    assert outcomes[("connect", None)].count == 1
    store_span_attrs = dict(failed[0].attributes or {})
    assert dict(outcomes[("store", "StorageDataError")].attributes or {}) == store_span_attrs
    for point in outcomes.values():
        assert tuple(point.explicit_bounds) == DURATION_BUCKETS
        assert 0 < point.sum < 60
    rows = {
        p.attributes["db.operation.name"]: p
        for p in sinks.points("db.client.response.returned_rows")
        if p.attributes
    }
    assert rows["search"].sum == 1  # one hit


async def test_nothing_is_emitted_once_telemetry_is_turned_off(
    stack_outputs: dict[str, Any], sinks: Sinks
) -> None:
    configure_telemetry(enabled=False)
    adapter = create_adapter("redis", {"url": stack_outputs["redis_url"]})
    async with adapter:
        assert await adapter.retrieve("session:test-otel-off:turns:1") is None
    assert sinks.spans.get_finished_spans() == ()
    assert sinks.points("db.client.operation.duration") == []
    assert (await adapter.get_metrics())["operations"]["retrieve"]["total_count"] == 1
