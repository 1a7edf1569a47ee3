"""The shared adapter contract, run against all five real backends.

One test class, parametrised by backend: what every ``StorageAdapter`` promises whatever its
driver. A store/retrieve/delete round trip checked on the backend, ``None`` and ``False`` for a
missing id, bad input refused with nothing written, the "not connected" rule, and ``async
with``. Each backend contributes a small :class:`Case`: a config, a record, a bad record, a
missing id, and a way to count what the backend holds. Qdrant is two cases, one per mode
(``qdrant-embedded``, ``qdrant-server``), each run where the outputs name that mode
(``qdrant_modes``) and skipped, with the reason, where they do not.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
from qdrant_modes import MODES, Mode, adapter_config, require_mode
from stack_tls import typesense_admin_key

from mas_storage import (
    StorageAdapter,
    StorageConnectionError,
    StorageDataError,
    create_adapter,
)

RUN = uuid.uuid4().hex[:10]


@dataclass
class Case:
    kind: str
    config: dict[str, Any]
    record: dict[str, Any]
    bad_record: dict[str, Any]
    missing_id: str
    field: str  # a field whose value retrieve() must give back
    count: Callable[[Any], Awaitable[int]]
    cleanup: Callable[[Any], Awaitable[Any]] | None = None


def _vector(seed: float, size: int = 384) -> list[float]:
    return [math.sin(seed * (i + 1)) for i in range(size)]


def _case(kind: str, outputs: dict[str, Any], tmp: Path) -> Case:
    session = f"test-contract-{RUN}"
    if kind == "postgres":
        return Case(
            kind,
            {"url": outputs["postgres_url"], "table": "active_context"},
            {"session_id": session, "turn_id": 1, "content": "contract turn"},
            {"session_id": session, "turn_id": -1, "content": "negative turn id"},
            "2147480000",
            "content",
            lambda a: a.count(session, include_expired=True),
            lambda a: a.clear_session(session),
        )
    if kind == "redis":
        return Case(
            kind,
            {"url": outputs["redis_url"]},
            {"session_id": session, "turn_id": 1, "content": "contract turn"},
            {"session_id": session, "turn_id": "one", "content": "bad turn id"},
            f"session:{session}:turns:999",
            "content",
            lambda a: a.get_session_size(session),
            lambda a: a.clear_session(session),
        )
    if kind.startswith("qdrant-"):
        mode = cast(Mode, kind.removeprefix("qdrant-"))
        require_mode(outputs, mode)
        collection = f"test_contract_{RUN}"
        return Case(
            "qdrant",
            adapter_config(outputs, mode, path=tmp / "qdrant", collection_name=collection),
            {"vector": _vector(0.3), "content": "contract vector", "session_id": session},
            {"vector": [*_vector(0.3)[:-1], math.nan], "content": "NaN in the vector"},
            str(uuid.uuid4()),
            "content",
            lambda a: a.count(),
            lambda a: a.drop_collection(),
        )
    if kind == "neo4j":
        label = f"ContractTest_{RUN}"

        async def nodes(adapter: Any) -> int:
            rows = await adapter.search(
                {"cypher": f"MATCH (n:`{label}`) RETURN count(n) AS n", "params": {}}
            )
            return int(rows[0]["n"])

        return Case(
            kind,
            {
                "uri": outputs["neo4j_url"],
                "user": outputs["neo4j_user"],
                "password": outputs["neo4j_password"],
            },
            {"type": "entity", "label": label, "properties": {"name": "contract entity"}},
            {"type": "entity", "label": f"{label}`) DETACH DELETE n //", "properties": {}},
            str(uuid.uuid4()),
            "properties",
            nodes,
        )
    if kind == "typesense":
        return Case(
            kind,
            {
                "url": outputs["typesense_url"],
                "api_key": typesense_admin_key(outputs),
                "collection_name": f"test_contract_{RUN}",
            },
            {
                "content": "contract fact",
                "session_id": session,
                "fact_type": "preference",
                "confidence": 0.5,
            },
            {"session_id": session, "fact_type": "preference", "confidence": 0.5},
            str(uuid.uuid4()),
            "content",
            lambda a: a.count(),
            lambda a: a.drop_collection(),
        )
    raise AssertionError(kind)


KINDS = ["postgres", "redis", *(f"qdrant-{mode}" for mode in MODES), "neo4j", "typesense"]


@pytest.fixture(params=KINDS)
async def case(
    request: pytest.FixtureRequest, stack_outputs: dict[str, Any], tmp_path: Path
) -> AsyncIterator[Case]:
    case = _case(request.param, stack_outputs, tmp_path)
    yield case
    if case.cleanup is not None:
        async with create_adapter(case.kind, case.config) as adapter:
            await case.cleanup(adapter)


@pytest.fixture
async def adapter(case: Case) -> AsyncIterator[StorageAdapter]:
    async with create_adapter(case.kind, case.config) as adapter:
        yield adapter


class TestStorageAdapterContract:
    async def test_round_trip_is_held_by_the_backend(self, case: Case, adapter: Any) -> None:
        before = await case.count(adapter)
        record = dict(case.record)
        record_id = await adapter.store(record)
        assert record == case.record, "store() must not mutate the caller's dict"
        assert isinstance(record_id, str)
        assert await case.count(adapter) == before + 1
        stored = await adapter.retrieve(record_id)
        assert stored is not None
        expected = case.record.get(case.field, case.record.get("properties"))
        got = stored[case.field]
        if isinstance(expected, dict):
            assert expected.items() <= got.items()
        else:
            assert got == expected
        assert await adapter.delete(record_id) is True
        assert await adapter.retrieve(record_id) is None
        assert await case.count(adapter) == before

    async def test_missing_id_is_none_and_delete_is_false(self, case: Case, adapter: Any) -> None:
        assert await adapter.retrieve(case.missing_id) is None
        assert await adapter.delete(case.missing_id) is False

    async def test_bad_input_is_refused_and_nothing_is_written(
        self, case: Case, adapter: Any
    ) -> None:
        before = await case.count(adapter)
        with pytest.raises(StorageDataError):
            await adapter.store(dict(case.bad_record))
        assert await case.count(adapter) == before

    async def test_operations_need_a_connection(self, case: Case) -> None:
        adapter = create_adapter(case.kind, case.config)
        with pytest.raises(StorageConnectionError, match="not connected"):
            await adapter.store(dict(case.record))
        await adapter.disconnect()  # harmless before connect

    async def test_async_with_connects_and_disconnects(self, case: Case) -> None:
        adapter = create_adapter(case.kind, case.config)
        async with adapter as same:
            assert same is adapter
            assert adapter.is_connected
        assert not adapter.is_connected
        with pytest.raises(StorageConnectionError):
            await adapter.retrieve(case.missing_id)

    async def test_auto_connect_connects_on_first_use(self, case: Case) -> None:
        adapter = create_adapter(case.kind, {**case.config, "auto_connect": True})
        try:
            assert await adapter.retrieve(case.missing_id) is None
            assert adapter.is_connected
        finally:
            await adapter.disconnect()
