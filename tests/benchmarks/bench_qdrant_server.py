"""QdrantAdapter speed against raw ``AsyncQdrantClient`` on a Qdrant server (the lab).

``bench_qdrant.py`` runs this when the stack outputs have a ``qdrant_url``; the local stack's
embedded mode (Qdrant Edge) is measured by ``bench_qdrant.py`` itself. Both clients talk to the
same collection.

Measured:

* ``store`` (one upsert, ``wait=True``), ``retrieve`` and ``search`` (top 10 of 5,000
  384-dimension vectors; 1,000 with ``--quick``), plus (not with ``--quick``) search filtered on
  ``session_id``: latency and sequential ops/s;
* 50 tasks searching through one adapter (and through one raw client);
* ``store_many`` points/s against raw ``upsert`` of the same points in the same batch size
  (the adapter's default), plus the adapter at other batch sizes;
* the longest stall of the caller's event loop during one ``store_many``.

Medians of 5 repetitions after a warm-up (``benchkit``). The spec's targets (search under
50 ms, over 100 searches/s) are for the server.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from time import perf_counter
from typing import Any

import benchkit as bk
import numpy as np
from qdrant_client import AsyncQdrantClient, models

from mas_storage_qdrant import QdrantAdapter
from mas_storage_qdrant._adapter import DEFAULT_BATCH_SIZE
from mas_storage_qdrant._points import build_filter

DIM = 384
SESSIONS = 20
TASKS = 50
TARGETS = [
    *bk.ratio_targets(),
    bk.Target("search p95 (Qdrant search)", "ops.search.adapter.p95_ms", "<=", 50.0, "ms", "spec"),
    bk.Target(
        "sequential search",
        "ops.search.adapter.ops_per_s",
        ">=",
        100,
        "searches/s",
        "spec (Qdrant > 100 searches/s)",
    ),
    bk.Target(
        f"{TASKS} tasks searching",
        "concurrency.adapter_ops_per_s",
        ">=",
        100,
        "searches/s",
        "spec (Qdrant > 100 searches/s)",
    ),
    bk.Target(
        "store_many ÷ raw upsert (same batch size)", "batch.ratio", ">=", 0.9, "x", "issue #12"
    ),
]


def _vectors(n: int, seed: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIM))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.tolist()  # type: ignore[no-any-return]


def _records(vectors: list[list[float]], tag: str) -> list[dict[str, Any]]:
    return [
        {
            "vector": v,
            "content": f"{tag} episode {i}: the user talked about topic {i % 17}",
            "session_id": f"bench-{i % SESSIONS}",
            "metadata": {"topic": i % 17, "tag": tag},
        }
        for i, v in enumerate(vectors)
    ]


def _points(records: list[dict[str, Any]]) -> list[models.PointStruct]:
    """What a caller writes without the adapter: the same payload, fresh UUIDs."""
    return [
        models.PointStruct(
            id=str(uuid.uuid4()),
            vector=r["vector"],
            payload={k: r[k] for k in ("content", "session_id", "metadata")},
        )
        for r in records
    ]


async def _raw_upsert(
    client: AsyncQdrantClient, collection: str, records: list[dict[str, Any]], batch: int
) -> None:
    """The caller's records as points (built inside the timing, like the adapter's), upserted
    in batches of ``batch``."""
    points = _points(records)
    for start in range(0, len(points), batch):
        await client.upsert(collection, points=points[start : start + batch], wait=True)


class _Mode:
    """The server both the adapter and the raw client talk to (one shared collection)."""

    def __init__(self, outputs: dict[str, Any], scratch: Path) -> None:
        self.url = outputs["qdrant_url"]
        self.key = outputs.get("qdrant_api_key")
        self.scratch = scratch
        self.name = "server"

    def adapter_config(self, place: str) -> dict[str, Any]:
        return {"url": self.url, "api_key": self.key}

    def raw(self, place: str) -> AsyncQdrantClient:
        return AsyncQdrantClient(url=self.url, api_key=self.key, check_compatibility=False)

    def clone(self, source: str, target: str) -> None:
        """Nothing to copy: the server shares one collection."""


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Measure the adapter and the raw client; return the figures (nothing is asserted)."""
    if not outputs.get("qdrant_url"):
        raise ValueError("the server benchmark needs qdrant_url in the stack outputs")
    # Embedded search is a brute-force scan: these sizes keep a full run to a few minutes.
    n_points = 1_000 if quick else 5_000
    calls = 40 if quick else 400  # enough blocks for a stable median of ~ms calls
    warmup = 10 if quick else 30
    filtered_calls = 40  # full run only: each filtered search scans every payload
    concurrent_calls = 100 if quick else 200
    chunk = 256 if quick else 1_000
    sweep_sizes = [] if quick else [64, 256]
    scratch = Path(tempfile.mkdtemp(prefix="bench-qdrant-"))
    mode = _Mode(outputs, scratch)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    queries = _vectors(64, seed=99)
    writes = _records(_vectors(256, seed=5), "single")
    try:
        config = {**mode.adapter_config("a"), "collection_name": name}
        async with QdrantAdapter(config) as loader:
            load_start = perf_counter()
            ids = await loader.store_many(_records(_vectors(n_points, seed=1), "load"))
            load_s = perf_counter() - load_start
        mode.clone("a", "r")

        adapter = QdrantAdapter(config)
        await adapter.connect()
        raw = mode.raw("r")
        try:

            def a_search(i: int) -> Any:
                return adapter.search({"vector": queries[i % 64], "limit": 10})

            def r_search(i: int) -> Any:
                return raw.query_points(name, query=queries[i % 64], limit=10, with_payload=True)

            contenders: dict[str, dict[str, Callable[[int], Awaitable[Any]]]] = {
                "store": {
                    "adapter": lambda i: adapter.store(writes[i % 256]),
                    "raw": lambda i: raw.upsert(name, points=_points([writes[i % 256]]), wait=True),
                },
                "retrieve": {
                    "adapter": lambda i: adapter.retrieve(ids[i % n_points]),
                    "raw": lambda i: raw.retrieve(name, ids=[ids[i % n_points]], with_payload=True),
                },
                "search": {"adapter": a_search, "raw": r_search},
            }
            if not quick:  # a scan of every point's payload: slow in embedded mode
                contenders["search_session_filter"] = {
                    "adapter": lambda i: adapter.search(
                        {"vector": queries[i % 64], "limit": 10, "session_id": f"bench-{i % 7}"}
                    ),
                    "raw": lambda i: raw.query_points(
                        name,
                        query=queries[i % 64],
                        limit=10,
                        query_filter=build_filter(f"bench-{i % 7}"),
                        with_payload=True,
                    ),
                }
            label = f"AsyncQdrantClient ({mode.name}), same request"
            ops = {}
            for op, group in contenders.items():
                n = filtered_calls if op == "search_session_filter" else calls
                figures = await bk.compare(group, calls=n, warmup=min(warmup, n // 4))
                ops[op] = bk.op_entry(figures, label)
            rates = await bk.compare_concurrent(
                {"adapter": a_search, "raw": r_search}, calls=concurrent_calls, tasks=TASKS
            )
        finally:
            await adapter.disconnect()
            await raw.close()

        # -- store_many: a fresh collection (and, embedded, a fresh directory) per run ---------
        runs = iter(range(10**6))

        async def a_many(rep: int, batch: int = DEFAULT_BATCH_SIZE) -> float:
            place = f"ba{next(runs)}"
            records = _records(_vectors(chunk, seed=1000 + rep), "w")
            scratch_config = {
                **mode.adapter_config(place),
                "collection_name": f"{name}_{place}",
                "batch_size": batch,
            }
            async with QdrantAdapter(scratch_config) as qa:
                rate = await bk.rate_of(chunk, qa.store_many(records))
                await qa.drop_collection()
            return rate

        async def r_many(rep: int) -> float:
            place = f"br{next(runs)}"
            records = _records(_vectors(chunk, seed=1000 + rep), "w")
            client = mode.raw(place)
            try:
                await client.create_collection(
                    f"{name}_{place}",
                    vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
                )
                rate = await bk.rate_of(
                    chunk, _raw_upsert(client, f"{name}_{place}", records, DEFAULT_BATCH_SIZE)
                )
                await client.delete_collection(f"{name}_{place}")
            finally:
                await client.close()
            return rate

        many = await bk.compare_rates({"adapter": a_many, "raw": r_many})
        sizes = await bk.sweep(
            lambda size, rep: a_many(rep, size),
            sweep_sizes,
            known={DEFAULT_BATCH_SIZE: many["adapter"]},
        )
        stall = await _stalls(mode, name, chunk)
        if mode.url:
            cleanup = mode.raw("")
            await cleanup.delete_collection(name)
            await cleanup.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    client_version = importlib.metadata.version("qdrant-client")
    return bk.backend_result(
        "qdrant",
        version=(f"server at {mode.url}"),
        raw_driver=f"qdrant-client {client_version} AsyncQdrantClient ({mode.name})",
        ops=ops,
        batch=bk.batch_entry(
            op="store_many",
            unit="points",
            per_call=chunk,
            rates=many,
            raw_path=f"upsert(wait=True) in batches of {DEFAULT_BATCH_SIZE}",
            batch_size=DEFAULT_BATCH_SIZE,
            sweep=sizes,
        ),
        concurrency=bk.concurrency_entry(
            op="search", tasks=TASKS, calls=concurrent_calls, rates=rates
        ),
        targets=TARGETS,
        settings={
            "calls": calls,
            "warmup": warmup,
            "points": n_points,
            "dim": DIM,
            "data_prefix": name,
            "scratch": str(scratch),
        },
        extra={"bulk_load_points_per_s": n_points / load_s, "loop_stall_ms": stall},
        notes=[
            f"Mode: server at {mode.url}. Longest loop stall during one store_many of {chunk} "
            f"points: adapter {stall['adapter']:.1f} ms, raw {stall['raw']:.1f} ms.",
        ],
    )


async def _stalls(mode: _Mode, name: str, chunk: int) -> dict[str, float]:
    """Longest loop stall during one store_many, adapter and raw (fresh collections)."""
    records = _records(_vectors(chunk, seed=77), "stall")
    config = {**mode.adapter_config("sa"), "collection_name": f"{name}_sa"}
    async with QdrantAdapter(config) as qa:
        adapter_ms = await bk.max_loop_stall(qa.store_many(records))
        await qa.drop_collection()
    client = mode.raw("sr")
    try:
        await client.create_collection(
            f"{name}_sr",
            vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE),
        )
        raw_ms = await bk.max_loop_stall(
            _raw_upsert(client, f"{name}_sr", records, DEFAULT_BATCH_SIZE)
        )
        await client.delete_collection(f"{name}_sr")
    finally:
        await client.close()
    return {"adapter": adapter_ms, "raw": raw_ms}


if __name__ == "__main__":
    bk.main(run, __doc__, "qdrant_url", "qdrant_path")
