"""What is particular to the embedded engine, Qdrant Edge: old data, indexes, locks, optimising.

Embedded mode only: these run where the stack outputs name a ``qdrant_path`` and skip, with the
reason, where they name only a server (``qdrant_modes``).
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import qdrant_edge as qe
from embedded_qdrant import loop_gaps
from qdrant_client import QdrantClient, models
from qdrant_client.local.persistence import CollectionPersistence
from qdrant_modes import Mode, require_mode
from qdrant_payloads import serde_json_float

from mas_storage import StorageConnectionError, StorageDataError
from mas_storage_qdrant import QdrantAdapter
from mas_storage_qdrant.migrate import migrate

Make = Callable[..., QdrantAdapter]


@pytest.fixture
def qdrant_mode(stack_outputs: dict[str, Any]) -> Mode:
    """This module is embedded mode's own (``make_qdrant`` builds embedded adapters here)."""
    require_mode(stack_outputs, "embedded")
    return "embedded"


@pytest.fixture(autouse=True)
def _embedded_only(qdrant_mode: Mode) -> None:
    """Every test here, ``make_qdrant`` or not, is skipped where the outputs name no path."""


#: Past Qdrant's indexing threshold (10,000 KB of vectors) at 2,048 dimensions: 1,250 points.
WIDE = 2048


def tree(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*"))}


def wide_records(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {"vector": v, "content": f"c{i}", "session_id": f"s{i % 5}"}
        for i, v in enumerate(rng.standard_normal((n, WIDE)))
    ]


def raw_info(path: Path, collection: str) -> Any:
    shard = qe.EdgeShard.load(str(path / collection))
    try:
        return shard.info()
    finally:
        shard.close()


def local_mode_directory(path: Path) -> dict[str, Any]:
    """A directory written by qdrant-client's local mode, the old embedded engine."""
    # force_disable_check_same_thread: no SQLite probe left unclosed (see the migrate test).
    client = QdrantClient(path=str(path), force_disable_check_same_thread=True)
    uid = str(uuid.uuid4())
    try:
        client.create_collection(
            "episodic_memory",
            vectors_config=models.VectorParams(size=4, distance=models.Distance.COSINE),
        )
        client.upsert(
            "episodic_memory",
            points=[
                models.PointStruct(
                    id=uid,
                    vector=[1.0, 0.0, 0.0, 0.0],
                    payload={"content": "old", "session_id": "s", "metadata": {"flag": True}},
                ),
                models.PointStruct(id=9, vector=[0.0, 1.0, 0.0, 0.0], payload={"content": "n"}),
            ],
        )
    finally:
        client.close()
    return {"uuid": uid}


async def test_a_local_mode_directory_is_refused_and_left_untouched(tmp_path: Path) -> None:
    old = tmp_path / "old"
    local_mode_directory(old)
    before = tree(old)
    adapter = QdrantAdapter({"path": str(old), "vector_size": 4})
    with pytest.raises(StorageDataError) as info:
        await adapter.connect()
    message = str(info.value)
    assert "written by qdrant-client's local mode" in message
    assert f"python -m mas_storage_qdrant.migrate {old}" in message
    assert not adapter.is_connected
    assert tree(old) == before  # nothing created, nothing changed


def test_migrate_leaves_no_sqlite_connection_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every SQLite connection migrate opens is closed, none is left to the garbage collector
    (Python 3.13 warns about each one then, an error under this suite's warning filters):
    qdrant-client's local mode probes SQLite's thread safety with a connection it never closes,
    unless the client's same-thread check is off."""
    old = tmp_path / "old"
    local_mode_directory(old)
    # As in a fresh process: the client probes again (the answer is cached on the class).
    monkeypatch.setattr(CollectionPersistence, "CHECK_SAME_THREAD", None)
    opened: list[sqlite3.Connection] = []
    connect = sqlite3.connect

    def recording(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        opened.append(connect(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(sqlite3, "connect", recording)
    assert migrate(old, tmp_path / "new") == {"episodic_memory": 2}
    assert opened  # the collection's own database, at least
    for conn in opened:
        with pytest.raises(sqlite3.ProgrammingError, match="closed database"):
            conn.execute("SELECT 1")


async def test_migrate_converts_local_mode_data(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    made = local_mode_directory(old)
    before = tree(old)
    assert migrate(old, new) == {"episodic_memory": 2}
    assert tree(old) == before
    async with QdrantAdapter({"path": str(new), "vector_size": 4}) as qa:
        assert await qa.count() == 2
        record = await qa.retrieve(made["uuid"])
        assert record is not None
        assert record["content"] == "old"
        assert record["metadata"] == {"flag": True}
        hits = await qa.search({"vector": [0.0, 1.0, 0.0, 0.0], "limit": 1})
        assert [h["id"] for h in hits] == ["9"]
        assert await qa.count(filter={"flag": True}) == 1
    with pytest.raises(FileExistsError):
        migrate(old, new)


async def test_payload_indexes_cover_the_filtered_fields(make_qdrant: Make, tmp_path: Path) -> None:
    qa = make_qdrant(vector_size=4)
    await qa.connect()
    await qa.store({"vector": [1.0, 0, 0, 0], "session_id": "s1"})
    await qa.disconnect()
    schema = raw_info(tmp_path / "qdrant", qa.collection_name).payload_schema
    assert schema["session_id"].data_type == qe.PayloadSchemaType.Keyword
    assert schema["session_id"].points == 1
    assert schema["created_at"].data_type == qe.PayloadSchemaType.Datetime
    assert schema["created_at"].points == 1


async def test_collections_of_one_path_open_together_but_each_only_once(
    make_qdrant: Make,
) -> None:
    first, second = make_qdrant(vector_size=4), make_qdrant(vector_size=4)
    await first.connect()
    await second.connect()
    await first.store({"id": 1, "vector": [1.0, 0, 0, 0]})
    await second.store({"id": 2, "vector": [1.0, 0, 0, 0]})
    assert [await first.count(), await second.count()] == [1, 1]
    again = make_qdrant(vector_size=4, collection_name=first.collection_name)
    with pytest.raises(StorageConnectionError, match="is locked by another client"):
        await again.connect()


async def test_optimize_builds_hnsw_while_the_loop_and_calls_go_on(
    make_qdrant: Make, tmp_path: Path
) -> None:
    qa = make_qdrant(vector_size=WIDE, auto_optimize=False)
    await qa.connect()
    records = wide_records(1400)
    ids = await qa.store_many(records)
    status = (await qa.get_metrics())["backend_specific"]
    assert (status["points"], status["indexed_vectors"]) == (1400, 0)

    async with loop_gaps(0.001) as gaps:
        start = time.perf_counter()
        optimizing = asyncio.create_task(qa.optimize())
        await asyncio.sleep(0.05)  # the child process is at work: these calls wait for it
        searched = asyncio.create_task(qa.search({"vector": records[7]["vector"], "limit": 1}))
        stored = asyncio.create_task(qa.store({"vector": records[8]["vector"], "content": "x"}))
        assert await optimizing is True
        took = time.perf_counter() - start
        hits, late = await searched, await stored
    assert [h["id"] for h in hits] == [ids[7]]
    assert (await qa.retrieve(late) or {}).get("content") == "x"
    status = (await qa.get_metrics())["backend_specific"]
    assert status["points"] == 1401
    assert status["indexed_vectors"] >= 1400
    # The loop kept ticking: no stall near the optimisation's own length.
    assert len(gaps) > 10
    assert max(gaps) < took / 2, (max(gaps), took)


async def test_store_many_and_connect_optimise_past_the_threshold(make_qdrant: Make) -> None:
    loader = make_qdrant(vector_size=WIDE, auto_optimize=False)
    await loader.connect()
    await loader.store_many(wide_records(1300))
    await loader.disconnect()

    auto = make_qdrant(vector_size=WIDE, collection_name=loader.collection_name)
    await auto.connect()  # 1,300 unindexed points: connect() optimises first
    status = (await auto.get_metrics())["backend_specific"]
    assert status["indexed_vectors"] == 1300

    await auto.store_many(wide_records(100, seed=5))  # below the threshold: no optimisation
    status = (await auto.get_metrics())["backend_specific"]
    assert (status["points"], status["indexed_vectors"]) == (1400, 1300)

    fresh = make_qdrant(vector_size=WIDE)
    await fresh.connect()
    await fresh.store_many(wide_records(1300, seed=9))  # a segment's worth: optimised
    status = (await fresh.get_metrics())["backend_specific"]
    assert status["indexed_vectors"] == 1300


async def test_in_memory_location_leaves_no_directory() -> None:
    qa = QdrantAdapter({"location": ":memory:", "vector_size": 4})
    await qa.connect()
    assert qa._edge is not None
    root = qa._edge.root
    await qa.store({"vector": [1.0, 0, 0, 0]})
    assert root.is_dir()
    await qa.disconnect()
    assert not root.exists()


async def test_metadata_integers_are_kept_exactly_or_refused(make_qdrant: Make) -> None:
    # Qdrant keeps payload integers in 64 bits; a bigger one would come back as a float.
    qa = make_qdrant(vector_size=4)
    await qa.connect()
    edges = {"max": 2**64 - 1, "min": -(2**63), "nested": [{"n": 2**63}]}
    pid = await qa.store({"vector": [1.0, 0, 0, 0], "metadata": edges})
    assert (await qa.retrieve(pid) or {})["metadata"] == edges
    with pytest.raises(StorageDataError, match="beyond 64 bits"):
        await qa.store({"vector": [1.0, 0, 0, 0], "metadata": {"big": [2**64]}})
    assert await qa.count() == 1


async def test_metadata_floats_come_back_within_one_ulp(make_qdrant: Make) -> None:
    # Qdrant keeps a payload as JSON text, read back by serde_json's default float parser,
    # which is not correctly rounded: this value comes back one ulp off, exactly as that parser
    # reads it once (a server parses twice: qdrant_payloads).
    qa = make_qdrant(vector_size=4)
    await qa.connect()
    given = 4.7720626500237765e-118
    pid = await qa.store({"vector": [1.0, 0, 0, 0], "metadata": {"x": given, "y": 0.1}})
    held = (await qa.retrieve(pid) or {})["metadata"]
    assert held["y"] == 0.1
    assert held["x"] != given  # the engine's rounding, seen with qdrant-edge-py 0.9.0
    assert abs(held["x"] - given) <= math.ulp(given)
    assert held["x"] == serde_json_float(given)


def test_migrate_command_line(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    local_mode_directory(old)
    command = [sys.executable, "-m", "mas_storage_qdrant.migrate"]
    done = subprocess.run([*command, str(old), str(new)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"episodic_memory: 2 points -> {new / 'episodic_memory'}"
    refused = subprocess.run(
        [*command, str(new), str(tmp_path / "x")], capture_output=True, text=True
    )
    assert refused.returncode == 1
    assert "is not a qdrant-client local-mode directory" in refused.stderr
