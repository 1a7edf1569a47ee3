"""Server mode with the client mocked: the exact requests the adapter sends, and its errors."""

from __future__ import annotations

import logging
import uuid
from types import SimpleNamespace
from typing import Any
from unittest.mock import call

import grpc
import httpx
import pytest
from qdrant_client import models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
    create_adapter,
)
from mas_storage_qdrant import QdrantAdapter

VEC = [0.5] * 384


def unexpected(status: int, content: bytes = b'{"status":{"error":"boom"}}') -> UnexpectedResponse:
    return UnexpectedResponse(status, "reason", content, httpx.Headers())


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details="x")


@pytest.fixture
async def adapter(fake_qdrant: Any, server_config: dict[str, Any]) -> Any:
    qa = QdrantAdapter(server_config)
    await qa.connect()
    yield qa
    await qa.disconnect()


# -- connect -----------------------------------------------------------------------------------


async def test_client_gets_url_api_key_and_no_blocking_version_probe(
    fake_qdrant: Any, server_config: dict[str, Any], api_key: str
) -> None:
    qa = QdrantAdapter({**server_config, "timeout": 2.5})
    await qa.connect()
    assert fake_qdrant.kwargs == {
        "url": "http://127.0.0.1:6333",
        "api_key": api_key,
        "timeout": 3,
        "prefer_grpc": False,
        "check_compatibility": False,
    }
    assert qa.mode == "server"
    await qa.disconnect()


async def test_host_port_and_grpc_options_are_passed(fake_qdrant: Any) -> None:
    qa = QdrantAdapter(
        {"host": "127.0.0.1", "port": 16333, "https": False, "prefer_grpc": True, "grpc_port": 1}
    )
    await qa.connect()
    assert fake_qdrant.kwargs == {
        "host": "127.0.0.1",
        "port": 16333,
        "https": False,
        "grpc_port": 1,
        "prefer_grpc": True,
        "api_key": None,
        "timeout": 10,
        "check_compatibility": False,
    }
    await qa.disconnect()


async def test_max_connections_bounds_the_rest_pool_and_keeps_it_alive(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    qa = QdrantAdapter({**server_config, "max_connections": 5})
    await qa.connect()
    limits = fake_qdrant.kwargs["limits"]
    assert isinstance(limits, httpx.Limits)
    assert (limits.max_connections, limits.max_keepalive_connections) == (5, 5)
    await qa.disconnect()
    with pytest.raises(StorageDataError, match="max_connections"):
        QdrantAdapter({**server_config, "max_connections": 0})


async def test_connect_creates_collection_and_payload_indexes(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    qa = QdrantAdapter({**server_config, "vector_size": 8, "distance": "dot"})
    fake_qdrant.set_collection(8, models.Distance.DOT)
    await qa.connect()
    client = fake_qdrant.client
    client.collection_exists.assert_awaited_once_with(collection_name="unit")
    client.create_collection.assert_awaited_once_with(
        collection_name="unit",
        vectors_config=models.VectorParams(size=8, distance=models.Distance.DOT),
    )
    assert client.create_payload_index.await_args_list == [
        call(
            collection_name="unit",
            field_name="session_id",
            field_schema=models.PayloadSchemaType.KEYWORD,
            wait=True,
        ),
        call(
            collection_name="unit",
            field_name="created_at",
            field_schema=models.PayloadSchemaType.DATETIME,
            wait=True,
        ),
    ]
    assert qa.is_connected
    await qa.disconnect()


async def test_existing_collection_gets_only_missing_indexes(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    fake_qdrant.client.collection_exists.return_value = True
    fake_qdrant.set_collection(384, models.Distance.COSINE, {"session_id": object()})
    qa = QdrantAdapter(server_config)
    await qa.connect()
    fake_qdrant.client.create_collection.assert_not_awaited()
    fake_qdrant.client.create_payload_index.assert_awaited_once_with(
        collection_name="unit",
        field_name="created_at",
        field_schema=models.PayloadSchemaType.DATETIME,
        wait=True,
    )
    await qa.disconnect()


async def test_payload_indexes_can_be_turned_off(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    qa = QdrantAdapter({**server_config, "create_payload_indexes": False})
    await qa.connect()
    fake_qdrant.client.create_payload_index.assert_not_awaited()
    await qa.disconnect()


async def test_concurrently_created_collection_is_checked_not_fatal(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    fake_qdrant.client.create_collection.side_effect = unexpected(409)
    qa = QdrantAdapter(server_config)
    await qa.connect()
    assert qa.is_connected
    fake_qdrant.client.get_collection.assert_awaited_once_with(collection_name="unit")
    await qa.disconnect()


@pytest.mark.parametrize(
    ("size", "distance", "found"),
    [
        (768, models.Distance.COSINE, "size=768, distance=Cosine"),
        (384, models.Distance.EUCLID, "size=384, distance=Euclid"),
    ],
)
async def test_mismatched_collection_is_refused_and_untouched(
    fake_qdrant: Any, server_config: dict[str, Any], size: int, distance: Any, found: str
) -> None:
    fake_qdrant.client.collection_exists.return_value = True
    fake_qdrant.set_collection(size, distance)
    qa = QdrantAdapter(server_config)
    with pytest.raises(StorageDataError) as info:
        await qa.connect()
    assert found in str(info.value)
    assert "configured for size=384, distance=Cosine" in str(info.value)
    assert "'unit'" in str(info.value)
    client = fake_qdrant.client
    client.create_collection.assert_not_awaited()
    client.create_payload_index.assert_not_awaited()
    client.upsert.assert_not_awaited()
    client.close.assert_awaited_once()
    assert not qa.is_connected


async def test_named_vectors_collection_is_refused(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    fake_qdrant.client.collection_exists.return_value = True
    fake_qdrant.client.get_collection.return_value = SimpleNamespace(
        config=SimpleNamespace(
            params=SimpleNamespace(
                vectors={"text": models.VectorParams(size=384, distance=models.Distance.COSINE)}
            )
        ),
        payload_schema={},
    )
    with pytest.raises(StorageDataError, match=r"named vectors \(text\)"):
        await QdrantAdapter(server_config).connect()


async def test_connect_twice_is_a_no_op_and_disconnect_closes_once(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    qa = QdrantAdapter(server_config)
    await qa.disconnect()  # before connect: safe
    await qa.connect()
    await qa.connect()
    fake_qdrant.client.collection_exists.assert_awaited_once()
    await qa.disconnect()
    await qa.disconnect()
    fake_qdrant.client.close.assert_awaited_once()
    assert not qa.is_connected


async def test_operations_before_connect_raise(server_config: dict[str, Any]) -> None:
    qa = QdrantAdapter(server_config)
    with pytest.raises(StorageConnectionError, match="not connected"):
        await qa.store({"vector": VEC})
    with pytest.raises(StorageConnectionError, match="not connected"):
        await qa.count()


async def test_async_with_connects_and_closes(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    async with QdrantAdapter(server_config) as qa:
        assert qa.is_connected
    fake_qdrant.client.close.assert_awaited_once()
    assert not qa.is_connected


# -- writes ------------------------------------------------------------------------------------


async def test_store_sends_one_point_and_returns_its_id(adapter: Any, fake_qdrant: Any) -> None:
    data = {"vector": VEC, "content": "c", "session_id": "s", "metadata": {"a": 1}}
    pid = await adapter.store(data)
    assert data == {"vector": VEC, "content": "c", "session_id": "s", "metadata": {"a": 1}}
    upsert = fake_qdrant.client.upsert
    upsert.assert_awaited_once()
    kwargs = upsert.await_args.kwargs
    assert kwargs["collection_name"] == "unit"
    assert kwargs["wait"] is True
    [point] = kwargs["points"]
    assert point.id == pid
    assert uuid.UUID(pid)
    assert point.vector == VEC
    assert point.payload["metadata"] == {"a": 1}
    assert point.payload["session_id"] == "s"


async def test_store_with_caller_id_uses_it(adapter: Any, fake_qdrant: Any) -> None:
    assert await adapter.store({"vector": VEC, "id": 7}) == "7"
    assert fake_qdrant.client.upsert.await_args.kwargs["points"][0].id == 7


@pytest.mark.parametrize(
    ("batch_size", "count", "sizes"),
    [(128, 300, [128, 128, 44]), (64, 128, [64, 64]), (256, 257, [256, 1]), (128, 0, [])],
)
async def test_store_many_sends_batches_of_batch_size(
    fake_qdrant: Any,
    server_config: dict[str, Any],
    batch_size: int,
    count: int,
    sizes: list[int],
) -> None:
    qa = QdrantAdapter({**server_config, "batch_size": batch_size})
    await qa.connect()
    records = [{"vector": VEC, "id": i, "content": str(i)} for i in range(count)]
    ids = await qa.store_many(records)
    calls = fake_qdrant.client.upsert.await_args_list
    assert [len(c.kwargs["points"]) for c in calls] == sizes
    assert all(c.kwargs["wait"] is True and c.kwargs["collection_name"] == "unit" for c in calls)
    sent = [p.id for c in calls for p in c.kwargs["points"]]
    assert sent == list(range(count))
    assert ids == [str(i) for i in range(count)]
    await qa.disconnect()


async def test_store_many_validates_everything_before_sending(
    adapter: Any, fake_qdrant: Any
) -> None:
    records = [{"vector": VEC}, {"vector": VEC}, {"vector": [float("nan")] * 384}]
    with pytest.raises(StorageDataError, match=r"Record 2: 'vector\[0\]' is nan"):
        await adapter.store_many(records)
    fake_qdrant.client.upsert.assert_not_awaited()


@pytest.mark.parametrize(
    "bad",
    [
        {"vector": [0.1] * 383},
        {"vector": [0.1] * 383 + [float("inf")]},
        {"vector": [0.1] * 383 + [float("nan")]},
        {"vector": None},
        {"content": "no vector"},
        {"vector": VEC, "id": "x-y"},
    ],
)
async def test_store_rejects_bad_records_without_a_request(
    adapter: Any, fake_qdrant: Any, bad: dict[str, Any]
) -> None:
    with pytest.raises(StorageDataError):
        await adapter.store(bad)
    fake_qdrant.client.upsert.assert_not_awaited()


# -- reads -------------------------------------------------------------------------------------


async def test_search_sends_query_points_with_filter(adapter: Any, fake_qdrant: Any) -> None:
    pid = str(uuid.uuid4())
    fake_qdrant.client.query_points.return_value = SimpleNamespace(
        points=[
            SimpleNamespace(id=pid, score=0.9, payload={"content": "c", "session_id": "s"}),
        ]
    )
    hits = await adapter.search(
        {
            "vector": VEC,
            "limit": 3,
            "score_threshold": 0.5,
            "session_id": "s",
            "filter": {"topic": "billing", "turn": 2},
        }
    )
    fake_qdrant.client.query_points.assert_awaited_once_with(
        collection_name="unit",
        query=VEC,
        query_filter=models.Filter(
            must=[
                models.FieldCondition(key="session_id", match=models.MatchValue(value="s")),
                models.FieldCondition(
                    key="metadata.topic", match=models.MatchValue(value="billing")
                ),
                models.FieldCondition(key="metadata.turn", match=models.MatchValue(value=2)),
            ]
        ),
        limit=3,
        score_threshold=0.5,
        with_payload=True,
        with_vectors=False,
    )
    assert hits == [{"id": pid, "score": 0.9, "content": "c", "session_id": "s"}]


async def test_search_defaults(adapter: Any, fake_qdrant: Any) -> None:
    await adapter.search({"vector": VEC})
    kwargs = fake_qdrant.client.query_points.await_args.kwargs
    assert kwargs["limit"] == 10
    assert kwargs["score_threshold"] is None
    assert kwargs["query_filter"] is None


async def test_search_with_vector_returns_it(adapter: Any, fake_qdrant: Any) -> None:
    fake_qdrant.client.query_points.return_value = SimpleNamespace(
        points=[SimpleNamespace(id=1, score=1.0, payload=None, vector=VEC)]
    )
    hits = await adapter.search({"vector": VEC, "with_vector": True})
    assert hits == [{"id": "1", "score": 1.0, "vector": VEC}]
    assert fake_qdrant.client.query_points.await_args.kwargs["with_vectors"] is True


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"limit": 3}, "Missing required fields: vector"),
        ({"vector": VEC, "limit": 0}, "'limit' must be a positive integer"),
        ({"vector": VEC, "limit": True}, "'limit' must be a positive integer"),
        ({"vector": VEC, "score_threshold": "high"}, "'score_threshold' must be a finite"),
        ({"vector": VEC, "score_threshold": float("nan")}, "'score_threshold' must be a finite"),
        ({"vector": VEC, "with_vector": "yes"}, "'with_vector' must be a boolean"),
        ({"vector": VEC, "query_vector": VEC}, "Unknown search keys: query_vector"),
        ({"vector": VEC[:10]}, "has 10 dimensions"),
        ({"vector": VEC, "filter": {"x": 1.5}}, "got float"),
        ("vector", "must be a mapping"),
    ],
)
async def test_search_rejects_bad_queries_without_a_request(
    adapter: Any, fake_qdrant: Any, query: Any, message: str
) -> None:
    with pytest.raises(StorageDataError, match=message):
        await adapter.search(query)
    fake_qdrant.client.query_points.assert_not_awaited()


async def test_retrieve(adapter: Any, fake_qdrant: Any) -> None:
    pid = str(uuid.uuid4())
    assert await adapter.retrieve(pid) is None
    fake_qdrant.client.retrieve.assert_awaited_once_with(
        collection_name="unit", ids=[pid], with_payload=True, with_vectors=False
    )
    fake_qdrant.client.retrieve.return_value = [
        SimpleNamespace(id=pid, payload={"content": "c"}, vector=VEC)
    ]
    assert await adapter.retrieve(pid.upper(), with_vector=True) == {
        "id": pid,
        "content": "c",
        "vector": VEC,
    }
    assert fake_qdrant.client.retrieve.await_args.kwargs["ids"] == [pid]  # canonical form


async def test_malformed_ids_are_refused_without_a_request(adapter: Any, fake_qdrant: Any) -> None:
    for op in (adapter.retrieve, adapter.delete):
        with pytest.raises(StorageDataError, match="Malformed point id 'nope'"):
            await op("nope")
    fake_qdrant.client.retrieve.assert_not_awaited()
    fake_qdrant.client.delete.assert_not_awaited()


async def test_delete_missing_returns_false_without_deleting(
    adapter: Any, fake_qdrant: Any
) -> None:
    assert await adapter.delete("5") is False
    fake_qdrant.client.retrieve.assert_awaited_once_with(
        collection_name="unit", ids=[5], with_payload=False, with_vectors=False
    )
    fake_qdrant.client.delete.assert_not_awaited()


async def test_delete_existing_returns_true(adapter: Any, fake_qdrant: Any) -> None:
    fake_qdrant.client.retrieve.return_value = [SimpleNamespace(id=5, payload=None, vector=None)]
    assert await adapter.delete("5") is True
    fake_qdrant.client.delete.assert_awaited_once_with(
        collection_name="unit", points_selector=models.PointIdsList(points=[5]), wait=True
    )


async def test_delete_failure_raises_not_false(adapter: Any, fake_qdrant: Any) -> None:
    fake_qdrant.client.retrieve.return_value = [SimpleNamespace(id=5, payload=None, vector=None)]
    fake_qdrant.client.delete.side_effect = unexpected(500)
    with pytest.raises(StorageQueryError):
        await adapter.delete("5")


async def test_count_with_filter(adapter: Any, fake_qdrant: Any) -> None:
    fake_qdrant.client.count.return_value = SimpleNamespace(count=12)
    assert await adapter.count(session_id="s", filter={"kind": "note"}) == 12
    fake_qdrant.client.count.assert_awaited_once_with(
        collection_name="unit",
        count_filter=models.Filter(
            must=[
                models.FieldCondition(key="session_id", match=models.MatchValue(value="s")),
                models.FieldCondition(key="metadata.kind", match=models.MatchValue(value="note")),
            ]
        ),
        exact=True,
    )


async def test_backend_metrics_report_point_count(adapter: Any, fake_qdrant: Any) -> None:
    fake_qdrant.client.count.return_value = SimpleNamespace(count=5)
    metrics = await adapter.get_metrics()
    assert metrics["backend_specific"] == {
        "mode": "server",
        "collection_name": "unit",
        "vector_size": 384,
        "distance": "Cosine",
        "point_count": 5,
    }


async def test_drop_collection(adapter: Any, fake_qdrant: Any) -> None:
    fake_qdrant.client.collection_exists.return_value = False
    assert await adapter.drop_collection() is False
    fake_qdrant.client.delete_collection.assert_not_awaited()
    fake_qdrant.client.collection_exists.return_value = True
    assert await adapter.drop_collection() is True
    fake_qdrant.client.delete_collection.assert_awaited_once_with(collection_name="unit")


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (unexpected(400), StorageDataError),
        (unexpected(401), StorageConnectionError),
        (unexpected(403), StorageConnectionError),
        (unexpected(404), StorageNotFoundError),
        (unexpected(408), StorageTimeoutError),
        (unexpected(422), StorageDataError),
        (unexpected(500), StorageQueryError),
        (unexpected(502), StorageConnectionError),  # the core's one table of statuses
        (unexpected(503), StorageConnectionError),  # not ready: as for Typesense
        (unexpected(409), StorageDataError),
        (unexpected(504), StorageTimeoutError),
        (ResponseHandlingException(httpx.ConnectError("refused")), StorageConnectionError),
        (ResponseHandlingException(httpx.ReadTimeout("slow")), StorageTimeoutError),
        (ResponseHandlingException(ConnectionResetError("reset")), StorageConnectionError),
        (ResponseHandlingException(ValueError("bad json")), StorageQueryError),
        (httpx.ConnectError("refused"), StorageConnectionError),
        (httpx.RemoteProtocolError("eof"), StorageConnectionError),
        (httpx.PoolTimeout("pool"), StorageTimeoutError),
        (TimeoutError(), StorageTimeoutError),
        (ResourceExhaustedResponse("slow down", 3), StorageQueryError),
        (rpc_error(grpc.StatusCode.UNAVAILABLE), StorageConnectionError),
        (rpc_error(grpc.StatusCode.UNAUTHENTICATED), StorageConnectionError),
        (rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED), StorageTimeoutError),
        (rpc_error(grpc.StatusCode.INVALID_ARGUMENT), StorageDataError),
        (rpc_error(grpc.StatusCode.NOT_FOUND), StorageNotFoundError),
        (rpc_error(grpc.StatusCode.INTERNAL), StorageQueryError),
        (ValueError("Collection unit not found"), StorageNotFoundError),
        (RuntimeError("QdrantLocal instance is closed."), StorageConnectionError),
        (RuntimeError("something else"), StorageQueryError),
    ],
)
async def test_driver_errors_are_translated(
    adapter: Any, fake_qdrant: Any, raised: Exception, expected: type[StorageError]
) -> None:
    fake_qdrant.client.query_points.side_effect = raised
    with pytest.raises(StorageError) as info:
        await adapter.search({"vector": VEC})
    assert type(info.value) is expected
    assert info.value.orig is raised
    assert info.value.__cause__ is raised
    assert info.value.backend == "qdrant"
    assert info.value.operation == "search"


@pytest.mark.parametrize(
    "op",
    [
        ("store", ({"vector": VEC},)),
        ("store_many", ([{"vector": VEC}],)),
        ("retrieve", ("1",)),
        ("delete", ("1",)),
        ("count", ()),
        ("drop_collection", ()),
    ],
)
async def test_no_raw_exception_escapes_any_operation(
    adapter: Any, fake_qdrant: Any, op: tuple[str, tuple[Any, ...]]
) -> None:
    name, args = op
    boom = ResponseHandlingException(httpx.ConnectError("refused"))
    for method in ("upsert", "retrieve", "count", "collection_exists"):
        getattr(fake_qdrant.client, method).side_effect = boom
    with pytest.raises(StorageConnectionError, match=r"cannot reach Qdrant at http://127\.0\.0\.1"):
        await getattr(adapter, name)(*args)


async def test_connect_failure_closes_the_client(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    fake_qdrant.client.collection_exists.side_effect = unexpected(401)
    qa = QdrantAdapter(server_config)
    with pytest.raises(StorageConnectionError):
        await qa.connect()
    fake_qdrant.client.close.assert_awaited_once()
    assert not qa.is_connected


async def test_api_key_never_in_errors_logs_or_repr(
    fake_qdrant: Any,
    server_config: dict[str, Any],
    api_key: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    echo = unexpected(403, b'{"status":{"error":"bad api-key ' + api_key.encode() + b'"}}')
    fake_qdrant.client.collection_exists.side_effect = echo
    qa = QdrantAdapter(server_config)
    with pytest.raises(StorageConnectionError) as info:
        await qa.connect()
    assert api_key not in str(info.value)
    assert "***" in str(info.value)
    assert api_key not in repr(info.value)
    assert api_key not in repr(qa)
    assert api_key not in caplog.text
    assert "failed" in caplog.text  # the failure was logged, masked


# -- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "mode", "kwargs"),
    [
        ({"url": "http://127.0.0.1:1", "path": "/tmp/x"}, "server", {"url": "http://127.0.0.1:1"}),
        ({"host": "127.0.0.1", "path": "/tmp/x"}, "server", {"host": "127.0.0.1", "port": 6333}),
        ({"path": None}, "server", {"host": "127.0.0.1", "port": 6333}),
        ({}, "embedded", {"path": ".mas/qdrant"}),  # the local stack's default
        ("http://127.0.0.1:7", "server", {"url": "http://127.0.0.1:7"}),
        ({"path": "/tmp/x"}, "embedded", {"path": "/tmp/x"}),
        ({"location": ":memory:"}, "embedded", {"location": ":memory:"}),
    ],
)
def test_mode_selection_url_wins(config: Any, mode: str, kwargs: dict[str, Any]) -> None:
    qa = QdrantAdapter(config)
    assert qa.mode == mode
    assert kwargs.items() <= qa._client_kwargs.items()
    if mode == "embedded":
        assert qa._client_kwargs == kwargs


def test_settings_object_is_accepted(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from mas_storage_qdrant import QdrantSettings

    monkeypatch.chdir(tmp_path)  # no .env, no stack outputs here
    for var in ("QDRANT_URL", "QDRANT_PATH", "QDRANT_API_KEY", "MAS_STACK_OUTPUTS"):
        monkeypatch.delenv(var, raising=False)
    embedded = QdrantAdapter(QdrantSettings(path=str(tmp_path), distance="EUCLID"))
    assert embedded.mode == "embedded"
    assert embedded.distance is models.Distance.EUCLID
    server = QdrantAdapter(QdrantSettings(url="http://127.0.0.1:6333", api_key="k" * 12))
    assert server.mode == "server"
    assert server._client_kwargs["api_key"] == "k" * 12


@pytest.mark.parametrize("name", ["cosine", "COSINE", "Euclid", "dot", "Manhattan"])
def test_distance_is_case_insensitive(name: str) -> None:
    assert QdrantAdapter({"path": "/tmp/x", "distance": name}).distance.value.lower() == (
        name.lower()
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"distance": "hamming"}, "distance: Input should be 'Cosine', 'Euclid', 'Dot' or"),
        ({"distance": 3}, "distance: Input should be 'Cosine'"),
        ({"vector_size": 0}, "vector_size: Input should be greater than or equal to 1"),
        ({"vector_size": "384"}, "vector_size: Input should be a valid integer"),
        ({"batch_size": 5000}, "batch_size: Input should be less than or equal to 1024"),
        ({"location": "somewhere"}, "location: Input should be ':memory:'"),
        ({"url": "http://127.0.0.1:1", "timeout": 0}, "timeout: Input should be greater than 0"),
        ({"collection_name": 5}, "collection_name: Input should be a valid string"),
        ({"collection_nam": "x"}, "unknown key 'collection_nam'"),
    ],
)
def test_bad_config_is_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(StorageDataError, match=message):
        QdrantAdapter({"path": "/tmp/x", **config})


def test_registry_knows_qdrant() -> None:
    assert isinstance(create_adapter("qdrant", {"location": ":memory:"}), QdrantAdapter)


# -- real client, no server ---------------------------------------------------------------------


async def test_unreachable_server_is_a_connection_error(api_key: str) -> None:
    qa = QdrantAdapter({"url": "https://127.0.0.1:61633", "api_key": api_key, "timeout": 2})
    with pytest.raises(
        StorageConnectionError, match=r"cannot reach Qdrant at https://127\.0\.0\.1"
    ):
        await qa.connect()
    assert not qa.is_connected
    await qa.disconnect()


async def test_plain_http_api_key_warning_becomes_a_log_line(
    api_key: str, caplog: pytest.LogCaptureFixture
) -> None:
    # filterwarnings=error: a leaked UserWarning would fail this test.
    qa = QdrantAdapter({"url": "http://127.0.0.1:61633", "api_key": api_key, "timeout": 1})
    with pytest.raises(StorageConnectionError):
        await qa.connect()
    assert "api_key is sent over plain http to http://127.0.0.1:61633" in caplog.text
    assert api_key not in caplog.text


def test_package_exports() -> None:
    import mas_storage_qdrant

    assert mas_storage_qdrant.__all__ == ["QdrantAdapter", "QdrantSettings"]
    assert mas_storage_qdrant.QdrantAdapter.kind == "qdrant"


async def test_optimize_is_the_servers_business(adapter: Any, fake_qdrant: Any) -> None:
    # The server's own optimisers index in the background: nothing is sent, nothing waits.
    calls_before = len(fake_qdrant.client.mock_calls)
    assert await adapter.optimize() is False
    assert len(fake_qdrant.client.mock_calls) == calls_before
    await adapter.disconnect()
    with pytest.raises(StorageConnectionError):
        await adapter.optimize()


# -- distributed Qdrant: write ordering and read consistency ------------------------------------


async def test_write_ordering_and_read_consistency_reach_every_call(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    qa = QdrantAdapter(
        {**server_config, "write_ordering": "strong", "read_consistency": "majority"}
    )
    await qa.connect()
    client = fake_qdrant.client
    client.retrieve.return_value = [SimpleNamespace(id=7, payload={}, vector=None)]
    await qa.store({"vector": VEC, "id": 7})
    await qa.store_many([{"vector": VEC, "id": 8}])
    await qa.retrieve("7")
    await qa.search({"vector": VEC})
    assert await qa.delete("7") is True
    await qa.disconnect()
    for write in (*client.upsert.await_args_list, client.delete.await_args):
        assert write.kwargs["ordering"] is models.WriteOrdering.STRONG
    assert client.upsert.await_count == 2
    for read in (*client.retrieve.await_args_list, client.query_points.await_args):
        assert read.kwargs["consistency"] is models.ReadConsistencyType.MAJORITY
    assert client.retrieve.await_count == 2  # retrieve() and delete()'s existence check


async def test_a_replica_count_is_passed_as_a_number(
    fake_qdrant: Any, server_config: dict[str, Any]
) -> None:
    qa = QdrantAdapter({**server_config, "read_consistency": 2})
    await qa.connect()
    await qa.search({"vector": VEC})
    await qa.store({"vector": VEC, "id": 1})
    await qa.disconnect()
    assert fake_qdrant.client.query_points.await_args.kwargs["consistency"] == 2
    assert "ordering" not in fake_qdrant.client.upsert.await_args.kwargs  # the server's default


async def test_unset_they_leave_the_servers_defaults(adapter: Any, fake_qdrant: Any) -> None:
    await adapter.store({"vector": VEC, "id": 1})
    await adapter.search({"vector": VEC})
    assert "ordering" not in fake_qdrant.client.upsert.await_args.kwargs
    assert "consistency" not in fake_qdrant.client.query_points.await_args.kwargs


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"write_ordering": "eventual"}, "write_ordering"),
        ({"read_consistency": 0}, "read_consistency"),
        ({"read_consistency": "most"}, "read_consistency"),
        ({"url": None, "path": "/tmp/x", "write_ordering": "strong"}, "server mode only"),
        ({"url": None, "path": "/tmp/x", "read_consistency": "all"}, "server mode only"),
    ],
)
def test_bad_replication_options_are_refused(
    server_config: dict[str, Any], config: dict[str, Any], problem: str
) -> None:
    with pytest.raises(StorageDataError, match=problem):
        QdrantAdapter({**server_config, **config})
