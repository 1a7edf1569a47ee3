"""Metrics of every adapter against its real backend of the local stack (or the lab's outputs).

Each test builds its adapter with ``mas_storage.create_adapter(kind, config)`` from the stack
outputs, runs store, retrieve, search and delete, then one bad input, and checks what the
collector recorded: the counts per operation, positive latencies and throughput, the error
counter and the recent-errors list, the connection events, the Prometheus export (parsed), and
that no credential of the config appears in any export. Everything is created under a unique
``test-…`` id (session, collection or node property) and removed afterwards. Qdrant runs in
each mode the outputs name (``qdrant-embedded``: the stack's own path; ``qdrant-server``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from embedded_qdrant import connect_when_unlocked
from prometheus_client.parser import text_string_to_metric_families
from qdrant_modes import MODES, Mode, adapter_config, require_mode
from stack_tls import typesense_admin_key

from mas_storage import StorageDataError, create_adapter

QDRANT_DIM = 8


@dataclass(frozen=True)
class Case:
    """How to exercise one adapter: its config, a record, a query matching it, a bad input."""

    config: Callable[[dict[str, Any], str], dict[str, Any]]
    record: Callable[[str], dict[str, Any]]
    query: Callable[[str], dict[str, Any]]
    bad_record: Callable[[str], dict[str, Any]]
    cleanup: Callable[[Any, str], Awaitable[Any]]
    #: How to read a stored record's content back from retrieve/search results.
    content_of: Callable[[dict[str, Any]], Any] = lambda row: row.get("content")


def _qdrant_config(mode: Mode) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """The Qdrant config of ``mode`` (skips where the outputs do not name that mode)."""

    def config(outputs: dict[str, Any], run: str) -> dict[str, Any]:
        require_mode(outputs, mode)
        return adapter_config(outputs, mode, collection_name=run, vector_size=QDRANT_DIM)

    return config


def _qdrant_case(mode: Mode) -> Case:
    return Case(
        config=_qdrant_config(mode),
        record=lambda run: {"vector": _vector(), "content": "metrics probe", "session_id": run},
        query=lambda run: {"vector": _vector(), "limit": 5, "session_id": run},
        bad_record=lambda run: {"vector": [1.0, 2.0], "content": "wrong dimension"},
        cleanup=lambda a, run: a.drop_collection(),
    )


def backend_of(kind: str) -> str:
    """The adapter kind of a case (``qdrant-server`` -> ``qdrant``)."""
    return kind.partition("-")[0]


def _vector() -> list[float]:
    return [1.0] + [0.0] * (QDRANT_DIM - 1)


async def _neo4j_cleanup(adapter: Any, run: str) -> None:
    await adapter.search(
        {
            "cypher": "MATCH (n {test_run: $run}) DETACH DELETE n",
            "params": {"run": run},
            "write": True,
        }
    )


CASES: dict[str, Case] = {
    "postgres": Case(
        config=lambda o, run: {"url": o["postgres_url"], "table": "active_context"},
        record=lambda run: {"session_id": run, "turn_id": 1, "content": "metrics probe"},
        query=lambda run: {"session_id": run},
        bad_record=lambda run: {"session_id": run, "content": "no turn id"},
        cleanup=lambda a, run: _delete_all(a, {"session_id": run}),
    ),
    "redis": Case(
        config=lambda o, run: {"url": o["redis_url"]},
        record=lambda run: {"session_id": run, "turn_id": 1, "content": "metrics probe"},
        query=lambda run: {"session_id": run},
        bad_record=lambda run: {"session_id": run, "content": "no turn id"},
        cleanup=lambda a, run: a.delete(f"session:{run}:turns"),
    ),
    **{f"qdrant-{mode}": _qdrant_case(mode) for mode in MODES},
    "neo4j": Case(
        config=lambda o, run: {
            "url": o["neo4j_url"],
            "user": o.get("neo4j_user") or "neo4j",
            "password": o["neo4j_password"],
        },
        record=lambda run: {
            "type": "entity",
            "label": "TestPerson",
            "properties": {"id": f"{run}-1", "content": "metrics probe", "test_run": run},
        },
        query=lambda run: {
            "cypher": "MATCH (n:TestPerson {test_run: $run}) RETURN n.content AS content",
            "params": {"run": run},
        },
        bad_record=lambda run: {"type": "entity", "label": "Bad Label`) DETACH", "properties": {}},
        cleanup=_neo4j_cleanup,
        content_of=lambda row: row.get("content", row.get("properties", {}).get("content")),
    ),
    "typesense": Case(
        config=lambda o, run: {
            "url": o["typesense_url"],
            "api_key": typesense_admin_key(o),
            "collection_name": run,
        },
        record=lambda run: {
            "content": "metrics probe",
            "session_id": run,
            "fact_type": "test",
            "confidence": 0.9,
        },
        query=lambda run: {"q": "probe", "filters": {"session_id": run}},
        bad_record=lambda run: {"session_id": run, "fact_type": "test", "confidence": 0.5},
        cleanup=lambda a, run: a.drop_collection(),
    ),
}


async def _delete_all(adapter: Any, query: dict[str, Any]) -> None:
    for row in await adapter.search(query):
        await adapter.delete(str(row["id"]))


def _secrets(config: dict[str, Any]) -> list[str]:
    """The credentials of an adapter config: passwords, API keys, URL passwords."""
    found = [str(config[k]) for k in ("password", "api_key") if config.get(k)]
    url = config.get("url")
    if isinstance(url, str) and urlsplit(url).password:
        found.append(str(urlsplit(url).password))
    return found


@pytest.mark.parametrize("kind", list(CASES))
async def test_adapter_records_its_metrics(kind: str, stack_outputs: dict[str, Any]) -> None:
    case = CASES[kind]
    run = f"test-metrics-{uuid.uuid4().hex[:10]}"
    config = {**case.config(stack_outputs, run), "metrics": {"max_history": 50}}
    adapter = create_adapter(backend_of(kind), config)
    await connect_when_unlocked(adapter)
    try:
        record_id = await adapter.store(case.record(run))
        stored = await adapter.retrieve(record_id)
        assert stored is not None
        assert case.content_of(stored) == "metrics probe"
        hits = await adapter.search(case.query(run))
        assert [case.content_of(h) for h in hits] == ["metrics probe"]
        assert await adapter.delete(record_id) is True
        assert await adapter.retrieve(record_id) is None  # the backend no longer holds it
        with pytest.raises(StorageDataError):
            await adapter.store(case.bad_record(run))
        metrics = await adapter.get_metrics()
        exports = {fmt: await adapter.export_metrics(fmt) for fmt in ("json", "prometheus", "csv")}
        assert await adapter.search(case.query(run)) == []  # the bad input wrote nothing
    finally:
        try:
            await case.cleanup(adapter, run)
        finally:
            await adapter.disconnect()

    ops = metrics["operations"]
    expected = {"store": (2, 1), "retrieve": (2, 0), "search": (1, 0), "delete": (1, 0)}
    for op, (total, errors) in expected.items():
        stats = ops[op]
        assert (stats["total_count"], stats["error_count"]) == (total, errors), op
        assert stats["latency_ms"]["min"] > 0, op
        assert stats["latency_ms"]["p50"] >= stats["latency_ms"]["min"], op
        assert stats["throughput"]["ops_per_sec"] > 0, op
    assert ops["store"]["success_rate"] == 0.5
    assert ops["store"]["bytes_total"] > 0
    assert metrics["adapter_type"] == backend_of(kind)

    errors = metrics["errors"]
    assert errors["by_type"].get("StorageDataError") == 1
    (bad,) = [e for e in errors["recent_errors"] if e["operation"] == "store"]
    assert bad["type"] == "StorageDataError"
    assert bad["message"]
    assert bad["duration_ms"] > 0

    conn = metrics["connection"]
    assert conn["connect_count"] == 1
    assert conn["current_state"] == "connected"  # read before disconnect
    assert conn["last_connect_duration_ms"] > 0
    assert metrics.get("backend_specific"), "backend figures are fetched on request"

    families = {f.name: f for f in text_string_to_metric_families(str(exports["prometheus"]))}
    counted = {
        (s.labels["operation"], s.labels["status"]): s.value
        for s in families["storage_operations"].samples
    }
    assert counted[("store", "success")] == 1
    assert counted[("store", "error")] == 1
    assert counted[("search", "success")] == 1
    assert json.loads(str(exports["json"]))["operations"]["delete"]["total_count"] == 1

    secrets = _secrets(config)
    for text in [json.dumps(metrics), *map(str, exports.values())]:
        for secret in secrets:
            assert secret not in text
