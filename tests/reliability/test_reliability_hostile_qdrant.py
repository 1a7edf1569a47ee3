"""Hostile input against QdrantAdapter, in each mode the outputs name (issues #11, #23).

Embedded: Qdrant Edge on a private path. Server: the outputs' server, a collection of its own.

500 generated calls per method that takes caller data: random records, NaN and infinities in
vectors, vectors of the wrong length or type, malformed point ids, hostile filter keys and
values, huge strings and unicode edge cases in payloads. Each call returns or raises a
StorageError; a refused call leaves the store as it was.

The state compared before and after each call is every point of the collection (id, payload,
vector), read from the engine itself (embedded: the adapter's own Qdrant Edge shard; server: a
raw client), plus the collections (embedded: the directories under the path; server: whether
this module's collection exists). Accepted writes are checked against what the engine holds,
payload floats as the engine's JSON parser reads them (``qdrant_payloads``: once embedded,
twice on a server; not bit for bit), then the collection is reset to its seed points.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
import qdrant_edge as qe
from hostile import (
    HostileFixture,
    any_value,
    explore,
    hostile_session,
    hostile_text,
    huge_text,
    json_objects,
    maybe,
    records,
    vectors,
)
from hypothesis import strategies as st
from qdrant_client import AsyncQdrantClient, models
from qdrant_modes import MODES, Mode, adapter_config, require_mode, server_client, unique_collection
from qdrant_payloads import PARSES, same_payload

from mas_storage_qdrant import QdrantAdapter
from mas_storage_qdrant._points import parse_id

SIZE = 8
COLLECTION = "test_hostile"
SEED_IDS = (str(uuid.UUID(int=1)), str(uuid.UUID(int=2)), "3", "4")
SEED_SESSIONS = ("seed-a", "seed-\u05e9\U0001f600")


def _seeds() -> list[tuple[int | str, list[float], dict[str, Any]]]:
    """The seed points: id, vector, payload."""
    return [
        (
            int(pid) if pid.isdigit() else pid,
            [float(i + 1)] * SIZE,
            {
                "content": f"seed {i} \u202e",
                "session_id": SEED_SESSIONS[i % 2],
                "metadata": {"topic": "billing" if i % 2 else "travel", "n": i},
                "created_at": "2025-01-01T00:00:00+00:00",
            },
        )
        for i, pid in enumerate(SEED_IDS)
    ]


@dataclass(repr=False)
class Qd(HostileFixture):
    """The module's adapter in one mode, the engine behind it, and the seed points.

    The engine is read and written without the adapter: embedded, the adapter's own open
    Qdrant Edge shard; server, a raw client of the outputs' server (``raw``).
    """

    adapter: QdrantAdapter
    mode: Mode
    collection: str
    raw: AsyncQdrantClient | None = None
    seeds: list[tuple[int | str, list[float], dict[str, Any]]] = field(default_factory=_seeds)

    def shard(self) -> qe.EdgeShard:
        """The adapter's own open shard: the engine, read and written without the adapter."""
        assert self.adapter._edge is not None
        return self.adapter._edge.shard()

    def points(self) -> dict[str, Any]:
        """The collection's points, read from the engine directly (not through the adapter)."""
        if self.raw is None:
            return _points(self.shard())
        return self.run(_server_points(self.raw, self.collection))

    def reset(self) -> None:
        """Only the seed points, as they were."""
        self.guard.forget()
        extra = [int(pid) if pid.isdigit() else pid for pid in self.points() if pid not in SEED_IDS]
        if self.raw is None:
            if extra:
                self.shard().update(qe.UpdateOperation.delete_points(extra))
            points = [qe.Point(pid, vector, payload) for pid, vector, payload in self.seeds]
            self.shard().update(qe.UpdateOperation.upsert_points(points))
            return
        if extra:
            selector = models.PointIdsList(points=extra)
            self.run(self.raw.delete(self.collection, points_selector=selector, wait=True))
        structs = [models.PointStruct(id=i, vector=v, payload=p) for i, v, p in self.seeds]
        self.run(self.raw.upsert(self.collection, points=structs, wait=True))


def _points(shard: qe.EdgeShard) -> dict[str, qe.Record]:
    records, _ = shard.scroll(qe.ScrollRequest(limit=10_000, with_payload=True, with_vector=True))
    return {str(r.id): r for r in records}


async def _server_points(client: AsyncQdrantClient, collection: str) -> dict[str, models.Record]:
    records, _ = await client.scroll(collection, limit=10_000, with_payload=True, with_vectors=True)
    return {str(r.id): r for r in records}


def _rounded(vector: Any) -> tuple[float, ...]:
    """A stored vector to 6 decimals (float32 storage: the engine's business, not a write)."""
    return tuple(round(x, 6) for x in vector)


@pytest.fixture(autouse=True)
def _fresh(qd: Qd) -> None:
    """Each property starts from the seeds, whatever an earlier one left behind."""
    qd.fresh()


@pytest.fixture(scope="module", params=MODES)
def qd(
    request: pytest.FixtureRequest,
    stack_outputs: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Qd]:
    """The adapter in each mode the outputs name: embedded on a private path (collection
    ``test_hostile``), or on the outputs' server (a collection of its own)."""
    mode: Mode = request.param
    require_mode(stack_outputs, mode)
    path: Path | None = None
    raw: AsyncQdrantClient | None = None
    if mode == "embedded":
        collection = COLLECTION
        path = tmp_path_factory.mktemp("qdrant-hostile")
    else:
        collection = unique_collection(COLLECTION)
        raw = server_client(stack_outputs)
    config = adapter_config(
        stack_outputs, mode, path=path, collection_name=collection, vector_size=SIZE
    )
    with hostile_session(stack_outputs, f"qdrant-{mode}") as session:
        adapter = QdrantAdapter(config)
        session.loop.run(adapter.connect())

        async def snapshot() -> tuple[Any, ...]:
            if raw is None:
                assert adapter._edge is not None and path is not None
                records = _points(adapter._edge.shard()).values()
                names = [p.name for p in path.iterdir()]
            else:  # a shared server: this module's collection is its whole state
                records = (await _server_points(raw, collection)).values()
                names = [collection] if await raw.collection_exists(collection) else []
            return (
                tuple(sorted(names)),
                tuple(
                    sorted(
                        (str(r.id), json.dumps(r.payload, sort_keys=True), _rounded(r.vector))
                        for r in records
                    )
                ),
            )

        env = Qd(session, session.guard(snapshot), adapter, mode, collection, raw)
        env.reset()
        try:
            yield env
        finally:
            try:
                session.loop.run(adapter.drop_collection())
                session.loop.run(adapter.disconnect())
            finally:
                if raw is not None:
                    session.loop.run(raw.close())


# -- strategies --------------------------------------------------------------------------------

aware = st.datetimes(timezones=st.just(UTC))
point_ids = st.one_of(
    st.none(),
    st.uuids(),
    st.uuids().map(str),
    st.uuids().map(lambda u: u.hex.upper()),
    st.integers(0, 2**64 - 1),
    st.integers(),
    st.sampled_from(SEED_IDS),
    hostile_text(),
)
session_ids = st.one_of(st.none(), st.sampled_from(SEED_SESSIONS), st.text(max_size=30))
metadata = json_objects()
RECORD_FIELDS = {
    "vector": vectors(SIZE),
    "content": st.one_of(st.text(max_size=60), st.text(max_size=60), huge_text(), hostile_text()),
    "session_id": session_ids,
    "metadata": metadata,
    "created_at": st.one_of(st.none(), aware, aware.map(lambda d: d.isoformat()), st.datetimes()),
    "id": point_ids,
}
filter_keys = st.one_of(
    st.sampled_from(["topic", "n", "session_id", "content", "metadata.topic", "a.b-c_d"]),
    hostile_text(),
    st.integers(),
)
filter_values = st.one_of(
    st.sampled_from(["billing", "travel", 0, 1, True]),
    st.text(max_size=10),
    st.integers(),
    st.lists(st.text(max_size=5), max_size=3),
    st.lists(st.integers(), max_size=3),
    any_value(),
)
filters = st.one_of(st.none(), st.dictionaries(filter_keys, filter_values, max_size=3), any_value())


# -- checks ------------------------------------------------------------------------------------


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value))


def check_point(qd: Qd, point_id: str, record: dict[str, Any]) -> None:
    """The engine holds the accepted record: payload as given, vector of the right size."""
    held = qd.points().get(point_id)
    assert held is not None, f"accepted point {point_id} is not stored"
    payload = held.payload or {}
    # As JSON reads it back: the engine stores payloads as JSON, so a surrogate pair given as
    # two code points comes back as one character; every other string comes back unchanged.
    assert payload["content"] == _as_json(record.get("content") or "")
    assert payload["session_id"] == _as_json(record.get("session_id"))
    # A float comes back as the engine's JSON parser reads it, not bit for bit (issue #23):
    # exactly that value, and nothing else, is accepted (qdrant_payloads).
    expected = _as_json(record.get("metadata") or {})
    parses = PARSES[qd.mode]
    assert same_payload(payload["metadata"], expected, parses=parses), (payload, expected)
    vector = held.vector
    assert isinstance(vector, list) and len(vector) == SIZE
    assert all(isinstance(x, float) and math.isfinite(x) for x in vector)
    if record.get("id") is not None:
        assert point_id == str(parse_id(record["id"])), "the point is not under the given id"


# -- the properties ----------------------------------------------------------------------------


def test_store(qd: Qd) -> None:
    def body(record: Any) -> None:
        out = qd.guard.attempt("store", lambda: qd.adapter.store(record), inputs=[record])
        if out.ok:
            check_point(qd, out.value, record)
            qd.reset()

    explore("qdrant.store", records(RECORD_FIELDS), body)
    qd.guard.assert_exercised("store")


def test_store_many(qd: Qd) -> None:
    batches = st.one_of(st.lists(records(RECORD_FIELDS), max_size=4), any_value())

    def body(batch: Any) -> None:
        out = qd.guard.attempt("store_many", lambda: qd.adapter.store_many(batch), inputs=[batch])
        if out.ok:
            batch = list(batch)
            assert len(out.value) == len(batch)
            last = {pid: record for pid, record in zip(out.value, batch, strict=True)}
            for pid, record in last.items():  # a repeated id: the last record wins
                check_point(qd, pid, record)
            qd.reset()

    explore("qdrant.store_many", batches, body)
    qd.guard.assert_exercised("store_many")


def test_retrieve(qd: Qd) -> None:
    args = st.tuples(point_ids, maybe(st.booleans()))

    def body(example: Any) -> None:
        point_id, with_vector = example
        out = qd.guard.attempt(
            "retrieve", lambda: qd.adapter.retrieve(point_id, with_vector), pure=True
        )
        if out.ok and out.value is not None:
            assert out.value["id"] in SEED_IDS

    explore("qdrant.retrieve", args, body)
    qd.guard.assert_exercised("retrieve")


def test_search(qd: Qd) -> None:
    fields = {
        "vector": vectors(SIZE),
        "limit": st.one_of(st.integers(1, 20), st.integers()),
        "score_threshold": st.one_of(st.none(), st.floats()),
        "session_id": session_ids,
        "filter": filters,
        "with_vector": st.booleans(),
    }

    def body(query: Any) -> None:
        out = qd.guard.attempt("search", lambda: qd.adapter.search(query), pure=True)
        if out.ok:
            assert len(out.value) <= query.get("limit", 10)
            for hit in out.value:
                assert hit["id"] in SEED_IDS
                if query.get("session_id") is not None:
                    assert hit["session_id"] == query["session_id"]

    explore("qdrant.search", records(fields, omit=0.3), body)
    qd.guard.assert_exercised("search")


def test_delete(qd: Qd) -> None:
    def body(point_id: Any) -> None:
        out = qd.guard.attempt(
            "delete", lambda: qd.adapter.delete(point_id), pure=lambda v: v is False
        )
        if out.ok and out.value:
            qd.reset()

    explore("qdrant.delete", point_ids, body)
    qd.guard.assert_exercised("delete")


def test_count(qd: Qd) -> None:
    args = st.tuples(maybe(session_ids), filters)

    def body(example: Any) -> None:
        session, equals = example
        out = qd.guard.attempt("count", lambda: qd.adapter.count(session, equals), pure=True)
        if out.ok and session is not None and not equals:
            expected = sum(1 for _, _, payload in qd.seeds if payload["session_id"] == session)
            assert out.value == expected

    explore("qdrant.count", args, body)
    qd.guard.assert_exercised("count")


def test_no_secret_in_logs(qd: Qd) -> None:
    """Every record the calls above logged, at DEBUG, is free of the stack's secrets."""
    assert qd.session.watch.records > 0
    qd.session.watch.assert_clean()
