"""TypesenseAdapter writes, reads and deletes against the mocked server."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
)


def _sent(fake, path_part: str) -> list[httpx.Request]:
    return [r for r in fake.requests if path_part in r.url.path]


# -- store / upsert --------------------------------------------------------------------------


async def test_store_generates_an_id_and_never_mutates_the_input(fake, adapter, fact) -> None:
    data = fact(metadata={"source": "chat"})
    before = json.dumps(data, sort_keys=True)
    doc_id = await adapter.store(data)
    assert json.dumps(data, sort_keys=True) == before
    assert uuid.UUID(doc_id)
    held = fake.docs["facts"][doc_id]
    assert held["content"] == "User prefers dark mode"
    assert held["metadata"] == {"source": "chat"}
    assert isinstance(held["created_at"], int) and held["created_at"] > 1_600_000_000_000
    request = _sent(fake, "/documents")[-1]
    assert request.method == "POST" and "action" not in request.url.params


async def test_store_keeps_given_id_and_created_at(fake, adapter, fact) -> None:
    doc_id = await adapter.store(fact(id="f-1", created_at=42))
    assert doc_id == "f-1"
    assert fake.docs["facts"]["f-1"]["created_at"] == 42


async def test_store_converts_an_aware_datetime(fake, adapter, fact) -> None:
    when = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    await adapter.store(fact(id="f-2", created_at=when))
    assert fake.docs["facts"]["f-2"]["created_at"] == int(when.timestamp() * 1000)


async def test_store_refuses_a_naive_datetime(fake, adapter, fact) -> None:
    with pytest.raises(StorageDataError, match="timezone-aware"):
        await adapter.store(fact(created_at=datetime(2025, 1, 1)))
    assert fake.docs["facts"] == {}


async def test_store_existing_id_is_a_data_error(fake, adapter, fact) -> None:
    await adapter.store(fact(id="dup"))
    with pytest.raises(StorageDataError, match="already exists"):
        await adapter.store(fact(id="dup", content="changed"))
    assert fake.docs["facts"]["dup"]["content"] == "User prefers dark mode"


async def test_upsert_replaces(fake, adapter, fact) -> None:
    await adapter.store(fact(id="u-1"))
    assert await adapter.upsert(fact(id="u-1", content="User prefers light mode")) == "u-1"
    assert fake.docs["facts"]["u-1"]["content"] == "User prefers light mode"
    assert _sent(fake, "/documents")[-1].url.params["action"] == "upsert"


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"content": "x"}, "Missing required fields: session_id, fact_type, confidence"),
        ({"session_id": None}, "Missing required fields: session_id"),
        ({"content": 5}, "'content' must be of Typesense type 'string', got int"),
        ({"confidence": "high"}, "'confidence' must be of Typesense type 'float'"),
        ({"confidence": True}, "'confidence' must be of Typesense type 'float', got bool"),
        ({"confidence": math.nan}, "'confidence'"),
        ({"created_at": 1.5}, "'created_at' must be of Typesense type 'int64'"),
        ({"metadata": "text"}, "'metadata' must be of Typesense type 'object'"),
        ({"id": 7}, "'id' must be a non-empty string"),
        ({"id": ""}, "'id' must be a non-empty string"),
    ],
)
async def test_store_validates_before_sending(fake, adapter, fact, doc, message) -> None:
    data = {"content": "x"} if doc == {"content": "x"} else fact(**doc)
    with pytest.raises(StorageDataError, match=message):
        await adapter.store(data)
    assert _sent(fake, "/documents") == []
    assert fake.docs["facts"] == {}


async def test_store_refuses_a_non_mapping(adapter) -> None:
    with pytest.raises(StorageDataError, match="mapping"):
        await adapter.store(["content"])


async def test_store_refuses_unserialisable_values(fake, adapter, fact) -> None:
    with pytest.raises(StorageDataError, match="not JSON serializable"):
        await adapter.store(fact(extra=object()))
    with pytest.raises(StorageDataError):
        await adapter.store(fact(extra=math.inf))
    assert fake.docs["facts"] == {}


async def test_array_fields_are_checked(fake, make_adapter) -> None:
    schema = {
        "name": "facts",
        "fields": [
            {"name": "content", "type": "string"},
            {"name": "tags", "type": "string[]"},
            {"name": "flag", "type": "bool", "optional": True},
            {"name": "loc", "type": "geopoint", "optional": True},
        ],
    }
    async with make_adapter(schema=schema) as ts:
        await ts.store({"id": "a", "content": "x", "tags": ["a", "b"], "flag": True, "loc": [1, 2]})
        with pytest.raises(StorageDataError, match="'tags'"):
            await ts.store({"content": "x", "tags": ["a", 1]})
        with pytest.raises(StorageDataError, match="'flag'"):
            await ts.store({"content": "x", "tags": [], "flag": 1})
    assert list(fake.docs["facts"]) == ["a"]
    assert "created_at" not in fake.docs["facts"]["a"]


async def test_server_400_on_store_is_a_query_error(fake, adapter, fact) -> None:
    fake.fail("POST", "/documents", httpx.Response(400, json={"message": "Bad JSON."}))
    with pytest.raises(StorageQueryError, match=r"HTTP 400: Bad JSON\.") as info:
        await adapter.store(fact())
    assert info.value.operation == "store"


async def test_lost_connection_is_a_connection_error(fake, adapter, fact) -> None:
    fake.fail("POST", "/documents", httpx.RemoteProtocolError("Server disconnected"))
    with pytest.raises(StorageConnectionError, match="Server disconnected"):
        await adapter.store(fact())


# -- retrieve --------------------------------------------------------------------------------


async def test_retrieve_round_trip_and_missing(fake, adapter, fact) -> None:
    doc_id = await adapter.store(fact())
    got = await adapter.retrieve(doc_id)
    assert got == fake.docs["facts"][doc_id]
    assert await adapter.retrieve("never-stored") is None


async def test_retrieve_quotes_the_id_in_the_path(fake, adapter) -> None:
    assert await adapter.retrieve("../../collections?x=1") is None
    request = fake.requests[-1]
    assert (
        request.url.raw_path
        == b"/collections/facts/documents/%2E%2E%2F%2E%2E%2Fcollections%3Fx%3D1"
    )


async def test_retrieve_refuses_an_empty_id(adapter) -> None:
    with pytest.raises(StorageDataError, match="non-empty string"):
        await adapter.retrieve("")


async def test_retrieve_on_a_dropped_collection_raises_not_found(fake, adapter) -> None:
    del fake.collections["facts"]
    with pytest.raises(StorageNotFoundError, match="Not Found"):
        await adapter.retrieve("x")


async def test_retrieve_server_error_raises(fake, adapter) -> None:
    fake.fail("GET", "/documents/x", httpx.Response(500, json={"message": "boom"}))
    with pytest.raises(StorageQueryError, match="HTTP 500: boom"):
        await adapter.retrieve("x")


# -- delete ----------------------------------------------------------------------------------


async def test_delete_true_then_false(fake, adapter, fact) -> None:
    doc_id = await adapter.store(fact())
    assert await adapter.delete(doc_id) is True
    assert doc_id not in fake.docs["facts"]
    assert await adapter.delete(doc_id) is False


async def test_delete_on_missing_collection_raises(fake, adapter) -> None:
    del fake.collections["facts"]
    with pytest.raises(StorageNotFoundError):
        await adapter.delete("x")


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(500, json={"message": "Internal"}), StorageQueryError),
        (httpx.Response(503, json={"message": "Not Ready or Lagging"}), StorageConnectionError),
        (httpx.Response(401, json={"message": "Forbidden"}), StorageConnectionError),
        (httpx.ReadTimeout("read timed out"), StorageTimeoutError),
        (httpx.ConnectError("refused"), StorageConnectionError),
    ],
)
async def test_delete_failures_raise_never_false(fake, adapter, answer, error) -> None:
    fake.fail("DELETE", "/documents/x", answer)
    with pytest.raises(error):
        await adapter.delete("x")


async def test_drop_collection(fake, adapter) -> None:
    assert await adapter.drop_collection() is True
    assert "facts" not in fake.collections
    assert await adapter.drop_collection() is False


# -- count and metrics -----------------------------------------------------------------------


async def test_count_and_backend_metrics(fake, adapter, fact) -> None:
    await adapter.store(fact())
    await adapter.store(fact())
    assert await adapter.count() == 2
    metrics = await adapter.get_metrics()
    assert metrics["backend_specific"] == {"collection": "facts", "document_count": 2}


async def test_backend_metrics_when_collection_is_gone(fake, adapter) -> None:
    del fake.collections["facts"]
    metrics = await adapter.get_metrics()
    assert metrics["backend_specific"]["document_count"] is None
