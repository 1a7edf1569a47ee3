"""The core's OpenTelemetry instrumentation, on a dict-backed adapter defined here.

Spans and metrics through the SDK's in-memory exporter and reader (given to the library with
``configure_telemetry``): names, attributes, kinds, parentage, error status and ``error.type``,
cancellation, a broken facts hook, and the OTel API missing altogether (a child process in
which ``opentelemetry`` cannot be imported).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.semconv.attributes import error_attributes, server_attributes
from opentelemetry.semconv.metrics import db_metrics
from opentelemetry.trace import SpanKind, StatusCode
from otel_sinks import Sinks, sinks_installed
from pydantic import SecretStr

from mas_storage import (
    AdapterSettings,
    DatabaseFacts,
    StorageAdapter,
    StorageQueryError,
    configure_telemetry,
)
from mas_storage import _telemetry as telemetry

SECRET = "pw-Otel-Secret-77"


class DictSettings(AdapterSettings):
    """The test adapter's own settings model (no prefix: explicit values only)."""

    password: SecretStr | None = None


class DictAdapter(StorageAdapter):
    """A dict-backed adapter whose driver fails on demand."""

    kind = "dictdb"
    settings_model = DictSettings

    def __init__(self, config: Any = None, facts: DatabaseFacts | None = None) -> None:
        super().__init__(config)
        self.items: dict[str, dict[str, Any]] = {}
        self.facts = facts or DatabaseFacts.from_url(
            "dictdb",
            f"dict://user:{SECRET}@db.example:7000/zero",
            1234,
            namespace="zero",
            collection="things",
            collections={"wipe": None},
        )

    def _telemetry_facts(self) -> DatabaseFacts:
        return self.facts

    async def connect(self) -> None:
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    async def store(self, data: dict[str, Any]) -> str:
        if data.get("explode"):
            raise RuntimeError(f"driver exploded on {data['content']}")
        self.items[str(len(self.items))] = dict(data)
        return str(len(self.items) - 1)

    async def retrieve(self, id: str) -> dict[str, Any] | None:
        return self.items.get(id)

    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        if query.get("hang"):
            await asyncio.sleep(10)
        return list(self.items.values())

    async def delete(self, id: str) -> bool:
        return self.items.pop(id, None) is not None

    async def wipe(self) -> int:
        count = len(self.items)
        self.items.clear()
        return count


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    with sinks_installed() as sinks:
        yield sinks


def test_the_attribute_names_are_the_conventions_own() -> None:
    facts = DatabaseFacts("x", "h", 1, "n", "c")
    assert set(facts.attributes("store")) == {
        "db.system.name",
        "db.operation.name",
        "db.collection.name",
        "db.namespace",
        server_attributes.SERVER_ADDRESS,
        server_attributes.SERVER_PORT,
    }
    assert error_attributes.ERROR_TYPE == "error.type"
    assert db_metrics.DB_CLIENT_OPERATION_DURATION == "db.client.operation.duration"


def test_no_provider_means_no_telemetry() -> None:
    configure_telemetry()
    # This process sets no global provider (nothing here calls set_tracer_provider).
    assert telemetry.current() is None


async def test_spans_carry_the_conventions_attributes_and_nest_under_the_caller(
    sinks: Sinks,
) -> None:
    tracer = sinks.tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("agent-step") as parent:
        async with DictAdapter() as adapter:
            await adapter.store({"content": "private payload"})
            assert await adapter.search({}) == [{"content": "private payload"}]
            await adapter.wipe()
    spans = {s.name: s for s in sinks.spans.get_finished_spans()}
    assert set(spans) == {
        "connect zero",
        "store things",
        "search things",
        "wipe zero",
        "disconnect zero",
        "agent-step",
    }
    store = spans["store things"]
    assert store.kind is SpanKind.CLIENT
    assert dict(store.attributes or {}) == {
        "db.system.name": "dictdb",
        "db.operation.name": "store",
        "db.collection.name": "things",
        "db.namespace": "zero",
        "server.address": "db.example",
        "server.port": 7000,
    }
    assert store.status.status_code is StatusCode.UNSET
    context = parent.get_span_context()
    for name, span in spans.items():
        if name != "agent-step":
            assert span.parent is not None and span.parent.span_id == context.span_id
    assert "db.collection.name" not in (spans["wipe zero"].attributes or {})
    assert "db.collection.name" not in (spans["connect zero"].attributes or {})
    rows = sinks.points("db.client.response.returned_rows")
    assert [(p.attributes or {}).get("db.operation.name") for p in rows] == ["search"]
    assert rows[0].sum == 1


async def test_a_failure_sets_the_status_and_error_type_and_no_message(sinks: Sinks) -> None:
    async with DictAdapter({"password": SECRET}) as adapter:
        with pytest.raises(StorageQueryError):
            await adapter.store({"content": "private payload", "explode": True})
    (span,) = [s for s in sinks.spans.get_finished_spans() if s.name == "store things"]
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "StorageQueryError"
    attrs = dict(span.attributes or {})
    assert attrs["error.type"] == "StorageQueryError"
    assert attrs["mas_storage.error.cause"] == "builtins.RuntimeError"
    assert span.events == ()  # no exception event: its message would quote the payload
    assert "private payload" not in repr(attrs) and SECRET not in repr(attrs)
    (point,) = [
        p
        for p in sinks.points("db.client.operation.duration")
        if (p.attributes or {}).get("db.operation.name") == "store"
    ]
    assert (point.attributes or {})["error.type"] == "StorageQueryError"
    assert tuple(point.explicit_bounds) == telemetry.DURATION_BUCKETS


async def test_a_refused_call_is_a_failed_span(sinks: Sinks) -> None:
    adapter = DictAdapter()
    with pytest.raises(Exception, match="not connected"):
        await adapter.retrieve("1")
    (span,) = sinks.spans.get_finished_spans()
    assert (span.name, span.status.description) == ("retrieve things", "StorageConnectionError")


async def test_cancellation_ends_the_span_without_an_error(sinks: Sinks) -> None:
    async with DictAdapter() as adapter:
        task = asyncio.create_task(adapter.search({"hang": True}))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (span,) = [s for s in sinks.spans.get_finished_spans() if s.name == "search things"]
    assert span.end_time is not None
    assert span.status.status_code is StatusCode.UNSET
    assert not [
        p
        for p in sinks.points("db.client.operation.duration")
        if (p.attributes or {}).get("db.operation.name") == "search"
    ]


async def test_embedded_engines_are_internal_spans_named_by_operation(sinks: Sinks) -> None:
    async with DictAdapter(facts=DatabaseFacts("dictdb", in_process=True)) as adapter:
        await adapter.retrieve("1")
    spans = {s.name: s for s in sinks.spans.get_finished_spans()}
    assert spans["retrieve"].kind is SpanKind.INTERNAL


async def test_a_broken_facts_hook_never_fails_the_operation(sinks: Sinks) -> None:
    class Broken(DictAdapter):
        def _telemetry_facts(self) -> DatabaseFacts:
            raise RuntimeError("no facts today")

    async with Broken() as adapter:
        assert await adapter.store({"content": "x"}) == "0"
    assert sinks.spans.get_finished_spans() == ()


def test_without_the_api_the_core_runs_and_says_how_to_install_it() -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # import opentelemetry -> ImportError
        from mas_storage import StorageAdapter, _telemetry, configure_telemetry

        class Mini(StorageAdapter):
            async def connect(self): self._connected = True
            async def disconnect(self): self._connected = False
            async def store(self, data): return "1"
            async def retrieve(self, id): return None
            async def search(self, query): return []
            async def delete(self, id): return False

        async def main():
            async with Mini() as adapter:
                await adapter.store({"content": "x"})
                return (await adapter.get_metrics())["operations"]["store"]["total_count"]

        assert _telemetry.OTEL_AVAILABLE is False
        assert asyncio.run(main()) == 1
        try:
            configure_telemetry(tracer_provider=object())
        except ImportError as exc:
            assert "mas-storage[otel]" in str(exc)
        else:
            raise AssertionError("no ImportError")
        print("ok")
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
