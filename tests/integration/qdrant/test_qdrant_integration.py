"""QdrantAdapter against the Qdrant the stack outputs point at, in each mode they name.

Every test runs once per mode (``[embedded]``: the real embedded engine, Qdrant Edge, one
directory per test; ``[server]``: the outputs' server and API key, one collection per test),
and skips a mode the outputs do not name (see ``qdrant_modes``). A few tests are one mode's
own: the lock and ``:memory:`` (embedded; the rest of what is particular to Qdrant Edge is in
``test_qdrant_integration_edge.py``); the API key, the payload indexes and payload floats
(server).
"""

from __future__ import annotations

import gc
import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from embedded_qdrant import loop_gaps
from qdrant_modes import Engine, Mode, adapter_config, raw_client, unique_collection
from qdrant_payloads import PARSES, same_payload

from mas_storage import StorageConnectionError, StorageDataError, StorageNotFoundError
from mas_storage_qdrant import QdrantAdapter

DIM = 384
Make = Callable[..., QdrantAdapter]
EMBEDDED_ONLY = pytest.mark.parametrize("qdrant_mode", ["embedded"], indirect=True)
SERVER_ONLY = pytest.mark.parametrize("qdrant_mode", ["server"], indirect=True)


def axis(i: int, dim: int = 8, scale: float = 1.0) -> list[float]:
    vector = [0.0] * dim
    vector[i] = scale
    return vector


def norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


# -- round trip --------------------------------------------------------------------------------


async def test_store_retrieve_search_delete_round_trip(
    qdrant: QdrantAdapter, vectors: Callable[..., list[list[float]]]
) -> None:
    [vec] = vectors(1)
    data = {
        "vector": vec,
        "content": "the user asked about invoices",
        "session_id": "test-s1",
        "metadata": {"topic": "billing", "turn": 3},
    }
    before = {**data, "vector": list(vec), "metadata": dict(data["metadata"])}
    pid = await qdrant.store(data)
    assert data == before
    assert str(uuid.UUID(pid)) == pid

    record = await qdrant.retrieve(pid)
    assert record is not None
    assert record["id"] == pid
    assert record["content"] == "the user asked about invoices"
    assert record["session_id"] == "test-s1"
    assert record["metadata"] == {"topic": "billing", "turn": 3}
    assert datetime.fromisoformat(record["created_at"]).tzinfo is not None
    assert "vector" not in record

    with_vec = await qdrant.retrieve(pid, with_vector=True)
    assert with_vec is not None
    assert len(with_vec["vector"]) == DIM
    assert norm(with_vec["vector"]) == pytest.approx(1.0, abs=1e-5)  # Cosine: normalized

    hits = await qdrant.search({"vector": vec, "limit": 5})
    assert [h["id"] for h in hits] == [pid]
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert hits[0]["content"] == "the user asked about invoices"

    assert await qdrant.count() == 1
    assert await qdrant.delete(pid) is True
    assert await qdrant.retrieve(pid) is None
    assert await qdrant.delete(pid) is False
    assert await qdrant.delete(str(uuid.uuid4())) is False
    assert await qdrant.count() == 0
    assert await qdrant.search({"vector": vec}) == []


async def test_caller_id_makes_store_idempotent(qdrant: QdrantAdapter) -> None:
    pid = str(uuid.uuid4())
    vec = [0.1] * DIM
    assert await qdrant.store({"id": pid, "vector": vec, "content": "v1"}) == pid
    assert await qdrant.store({"id": pid.upper(), "vector": vec, "content": "v2"}) == pid
    assert await qdrant.count() == 1
    record = await qdrant.retrieve(pid)
    assert record is not None
    assert record["content"] == "v2"
    assert await qdrant.store({"id": 12, "vector": vec}) == "12"
    assert (await qdrant.retrieve("12")) is not None


# -- ranking -----------------------------------------------------------------------------------


async def test_nearest_first_and_threshold_cuts(make_qdrant: Make) -> None:
    qa = make_qdrant(vector_size=8)
    await qa.connect()
    ids = {
        "same": await qa.store({"vector": axis(0), "content": "same"}),
        "close": await qa.store({"vector": [1.0, 0.5, 0, 0, 0, 0, 0, 0], "content": "close"}),
        "orthogonal": await qa.store({"vector": axis(1), "content": "orthogonal"}),
        "opposite": await qa.store({"vector": axis(0, scale=-1.0), "content": "opposite"}),
    }
    hits = await qa.search({"vector": axis(0, scale=3.0), "limit": 10})
    assert [h["content"] for h in hits] == ["same", "close", "orthogonal", "opposite"]
    assert [h["id"] for h in hits] == list(ids.values())
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == pytest.approx(1.0, abs=1e-6)
    assert scores[1] == pytest.approx(1 / math.sqrt(1.25), abs=1e-6)

    assert [h["content"] for h in await qa.search({"vector": axis(0), "limit": 2})] == [
        "same",
        "close",
    ]
    above = await qa.search({"vector": axis(0), "score_threshold": 0.5})
    assert [h["content"] for h in above] == ["same", "close"]
    assert [
        h["content"] for h in await qa.search({"vector": axis(0), "score_threshold": 0.95})
    ] == ["same"]


async def test_euclid_ranks_by_smallest_distance(make_qdrant: Make) -> None:
    qa = make_qdrant(vector_size=8, distance="euclid")
    await qa.connect()
    await qa.store({"vector": axis(0, scale=5.0), "content": "far"})
    await qa.store({"vector": axis(0, scale=1.5), "content": "near"})
    hits = await qa.search({"vector": axis(0), "limit": 2})
    assert [h["content"] for h in hits] == ["near", "far"]
    assert hits[0]["score"] == pytest.approx(0.5, abs=1e-5)
    # For distances the threshold is a maximum.
    close = await qa.search({"vector": axis(0), "score_threshold": 1.0})
    assert [h["content"] for h in close] == ["near"]


# -- filters -----------------------------------------------------------------------------------


async def test_filters_by_session_and_metadata(
    qdrant: QdrantAdapter, vectors: Callable[..., list[list[float]]]
) -> None:
    vecs = vectors(6, seed=11)
    plan = [
        ("test-a", "billing", "en"),
        ("test-a", "billing", "fr"),
        ("test-a", "support", "en"),
        ("test-b", "billing", "en"),
        ("test-b", "support", "en"),
        ("test-b", "support", "de"),
    ]
    ids = await qdrant.store_many(
        {"vector": v, "session_id": s, "metadata": {"topic": t, "lang": lang}, "content": str(i)}
        for i, (v, (s, t, lang)) in enumerate(zip(vecs, plan, strict=True))
    )
    query = vecs[0]

    async def found(**q: Any) -> set[str]:
        return {h["id"] for h in await qdrant.search({"vector": query, "limit": 100, **q})}

    assert await found(session_id="test-a") == set(ids[:3])
    assert await found(session_id="test-b") == set(ids[3:])
    assert await found(filter={"topic": "billing"}) == {ids[0], ids[1], ids[3]}
    assert await found(filter={"metadata.topic": "support", "lang": "en"}) == {ids[2], ids[4]}
    assert await found(session_id="test-b", filter={"topic": "support"}) == {ids[4], ids[5]}
    assert await found(filter={"session_id": "test-a", "lang": ["fr", "de"]}) == {ids[1]}
    assert await found(session_id="test-c") == set()
    assert await qdrant.count(session_id="test-a") == 3
    assert await qdrant.count(filter={"lang": "en"}) == 4


# -- volume ------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_store_many_5000_then_count(qdrant: QdrantAdapter) -> None:
    records = [
        {"vector": [math.sin(i + d) for d in range(DIM)], "content": f"c{i}", "session_id": "s"}
        for i in range(5000)
    ]
    ids = await qdrant.store_many(records)
    assert len(ids) == len(set(ids)) == 5000
    assert await qdrant.count() == 5000
    assert await qdrant.count(session_id="s") == 5000
    for index in (0, 1234, 4999):
        record = await qdrant.retrieve(ids[index])
        assert record is not None
        assert record["content"] == f"c{index}"


async def test_store_many_gives_the_loop_a_turn_between_batches(
    make_qdrant: Make, vectors: Callable[..., list[list[float]]]
) -> None:
    # Embedded, Qdrant Edge holds the GIL during each call, so no thread could keep the loop
    # free: the adapter bounds each stall to one batch and yields between batches instead.
    # Server, the calls await the network; a blocking client would stall for the whole call.
    qa = make_qdrant(batch_size=64)
    await qa.connect()
    records = [{"vector": v} for v in vectors(1280)]
    async with loop_gaps() as gaps:
        start = time.perf_counter()
        await qa.store_many(records)
        total = time.perf_counter() - start
    assert await qa.count() == 1280
    assert len(gaps) >= 1280 // 64  # at least one turn per batch
    assert max(gaps) < total / 4  # no stall anywhere near the whole call


# -- persistence -------------------------------------------------------------------------------


async def test_data_survives_disconnect_and_reconnect(make_qdrant: Make, engine: Engine) -> None:
    first = make_qdrant()
    await first.connect()
    pid = await first.store({"vector": [0.2] * DIM, "content": "kept", "session_id": "test-p"})
    await first.disconnect()

    held = await engine.points(first.collection_name)  # embedded: the lock is released
    assert held[pid]["content"] == "kept"

    second = make_qdrant(collection_name=first.collection_name)
    await second.connect()
    record = await second.retrieve(pid)
    assert record is not None
    assert record["content"] == "kept"
    assert await second.count() == 1
    hits = await second.search({"vector": [0.2] * DIM, "session_id": "test-p"})
    assert [h["id"] for h in hits] == [pid]


@EMBEDDED_ONLY
async def test_second_client_on_a_locked_path_is_refused_cleanly(make_qdrant: Make) -> None:
    first = make_qdrant()
    await first.connect()
    second = make_qdrant(collection_name=first.collection_name)
    with pytest.raises(StorageConnectionError, match="is locked by another client"):
        await second.connect()
    assert not second.is_connected
    gc.collect()  # a leaked lock file or SQLite handle would warn now (warnings are errors)
    await first.disconnect()
    await second.connect()
    assert await second.count() == 0


@EMBEDDED_ONLY
async def test_in_memory_location(
    qdrant_mode: Mode, vectors: Callable[..., list[list[float]]]
) -> None:
    async with QdrantAdapter({"location": ":memory:", "collection_name": "test-mem"}) as qa:
        [vec] = vectors(1)
        pid = await qa.store({"vector": vec})
        assert [h["id"] for h in await qa.search({"vector": vec})] == [pid]


# -- mismatches and bad input ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("other", "found"),
    [
        ({"vector_size": 128}, "configured for size=128, distance=Cosine"),
        ({"distance": "Dot"}, "configured for size=384, distance=Dot"),
    ],
)
async def test_mismatched_existing_collection_is_refused_and_untouched(
    make_qdrant: Make, engine: Engine, other: dict[str, Any], found: str
) -> None:
    original = make_qdrant()
    await original.connect()
    pid = await original.store({"vector": [0.3] * DIM, "content": "original"})
    await original.disconnect()

    wrong = make_qdrant(collection_name=original.collection_name, **other)
    with pytest.raises(StorageDataError) as info:
        await wrong.connect()
    message = str(info.value)
    assert "exists with size=384, distance=Cosine" in message
    assert found in message
    assert original.collection_name in message
    assert not wrong.is_connected

    held = await engine.points(original.collection_name)
    assert list(held) == [pid]
    assert await engine.vector_size(original.collection_name) == 384


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ([0.1] * (DIM - 1), f"has {DIM - 1} dimensions; the collection expects {DIM}"),
        ([0.1] * (DIM + 1), f"has {DIM + 1} dimensions"),
        ([0.1] * (DIM - 1) + [math.nan], rf"vector\[{DIM - 1}\]' is nan"),
        ([math.inf] + [0.1] * (DIM - 1), r"vector\[0\]' is inf"),
        (["0.1"] * DIM, r"must be a number, got str"),
        ("not a vector", "must be a list"),
    ],
)
async def test_bad_vectors_are_refused_and_nothing_is_written(
    qdrant: QdrantAdapter, vector: Any, message: str
) -> None:
    with pytest.raises(StorageDataError, match=message):
        await qdrant.store({"vector": vector, "content": "bad"})
    with pytest.raises(StorageDataError, match=message):
        await qdrant.store_many([{"vector": [0.1] * DIM}, {"vector": vector}])
    with pytest.raises(StorageDataError, match=message):
        await qdrant.search({"vector": vector})
    assert await qdrant.count() == 0


async def test_malformed_ids_are_data_errors(qdrant: QdrantAdapter) -> None:
    for bad in ("nope", "-3", "12345678-1234"):
        with pytest.raises(StorageDataError, match="Malformed point id"):
            await qdrant.retrieve(bad)
        with pytest.raises(StorageDataError, match="Malformed point id"):
            await qdrant.delete(bad)


# -- helpers -----------------------------------------------------------------------------------


async def test_backend_metrics_and_drop_collection(make_qdrant: Make, qdrant_mode: Mode) -> None:
    qa = make_qdrant(vector_size=8)
    await qa.connect()
    await qa.store_many([{"vector": axis(i % 8)} for i in range(10)])
    metrics = await qa.get_metrics()
    assert metrics["backend_specific"]["point_count"] == 10
    assert metrics["backend_specific"]["mode"] == qdrant_mode

    assert await qa.drop_collection() is True
    with pytest.raises(StorageNotFoundError):
        await qa.count()
    assert await qa.drop_collection() is False
    await qa.disconnect()
    await qa.connect()  # recreates it, empty
    assert await qa.count() == 0


async def test_created_at_is_kept_in_utc(qdrant: QdrantAdapter) -> None:
    when = datetime(2025, 10, 20, 10, 0, tzinfo=UTC)
    pid = await qdrant.store({"vector": [0.5] * DIM, "created_at": when})
    record = await qdrant.retrieve(pid)
    assert record is not None
    assert datetime.fromisoformat(record["created_at"]) == when


# -- server mode's own -------------------------------------------------------------------------


@SERVER_ONLY
async def test_a_wrong_api_key_is_refused_without_showing_it(
    qdrant_mode: Mode, stack_outputs: dict[str, Any]
) -> None:
    key = stack_outputs.get("qdrant_api_key")
    if not key:
        pytest.skip("the outputs name no qdrant_api_key: the server takes no key to refuse")
    wrong = f"{key}x"
    config = adapter_config(
        stack_outputs, qdrant_mode, collection_name=unique_collection("test-wrong-key")
    )
    adapter = QdrantAdapter({**config, "api_key": wrong})
    with pytest.raises(StorageConnectionError) as info:
        await adapter.connect()
    assert not adapter.is_connected
    shown = [str(info.value), repr(info.value), repr(adapter), str(adapter.config)]
    assert not [text for text in shown if key in text], "the key is shown"


@SERVER_ONLY
async def test_server_mode_indexes_the_filtered_payload_fields(
    qdrant: QdrantAdapter, stack_outputs: dict[str, Any]
) -> None:
    async with raw_client(stack_outputs) as client:
        info = await client.get_collection(qdrant.collection_name)
    schema = {name: field.data_type.value for name, field in (info.payload_schema or {}).items()}
    assert schema == {"session_id": "keyword", "created_at": "datetime"}


@SERVER_ONLY
async def test_a_server_gives_payload_floats_back_as_its_json_parser_reads_them(
    qdrant: QdrantAdapter,
) -> None:
    """A payload float may come back a few ulps off from a server, as its JSON parser reads it
    (``qdrant_payloads``; issue #23: 5.3016454816300884e+23 came back as
    5.301645481630088e+23); everything else in the payload comes back exactly, types too."""
    floats = [5.3016454816300884e23, 4.7720626500237765e-118, 0.1, 1 / 3, 5e-324, 1e308, 1e15 + 1]
    metadata = {"f": floats, "n": 2**53, "s": "x", "b": True, "none": None}
    pid = await qdrant.store({"vector": [0.5] * DIM, "metadata": metadata})
    record = await qdrant.retrieve(pid)
    assert record is not None
    assert same_payload(record["metadata"], metadata, parses=PARSES["server"]), record["metadata"]
