"""QdrantAdapter speed against the raw engine, in the same run, on the same data.

Embedded (the local stack: no ``qdrant_url``): the adapter on Qdrant Edge against raw
``qdrant_edge`` (an ``EdgeShard`` used directly, on a copy of the adapter's directory), in a
private temporary directory (never the stack's ``qdrant_path``). With a ``qdrant_url`` in the
outputs (the lab) it runs ``bench_qdrant_server.py`` instead.

Measured, 384-dimension cosine vectors in 20 sessions:

* **scaling**: for 1,000, 10,000 and 100,000 points (1,000 and 2,000 with ``--quick``), the
  adapter loads them with ``store_many`` and builds the indexes with ``optimize()``; search
  (top 10) and search filtered by session, p50/p95, adapter and raw; how long the HNSW build
  took and how long the caller's loop stalled meanwhile (the adapter builds in a child process;
  raw ``optimize()`` in-process stalls the loop for all of it, measured up to 10,000 points);
* at the largest size: ``store``, ``retrieve``, search and session-filtered search (latency and
  sequential ops/s), 50 tasks searching, ``store_many`` points/s into a fresh collection (the
  adapter's default batch size, raw ``update`` in the same batches) with a batch-size sweep, and
  the longest loop stall during one ``store_many``;
* **the old embedded engine**: qdrant-client's local mode (raw ``AsyncQdrantClient(path=...)``,
  an upper bound of the old adapter) on the same data at 10,000 points (1,000 with
  ``--quick``): store, retrieve, search, filtered search and ``store_many``, as a ratio.

Medians of 5 repetitions after a warm-up (``benchkit``); contenders alternate in blocks.

Run from the repository root with the stack up::

    uv run python tests/benchmarks/bench_qdrant.py [--quick] [--json]
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

import benchkit as bk
import numpy as np
import qdrant_edge as qe
from qdrant_client import AsyncQdrantClient, models

from mas_storage_qdrant import QdrantAdapter
from mas_storage_qdrant._adapter import DEFAULT_BATCH_SIZE
from mas_storage_qdrant._points import build_filter

DIM = 384
SESSIONS = 20
TASKS = 50
NAME = "bench"
#: Up to this size the raw engine also builds its own index in-process (timed: a loop stall).
RAW_OPTIMIZE_UP_TO = 10_000
#: A directory where built (loaded and optimised) collections are kept and reused: the HNSW
#: build of 100,000 points takes minutes, a rerun of the other figures then does not.
CACHE_ENV = "MAS_BENCH_QDRANT_CACHE"
TARGETS = [
    *bk.ratio_targets(("store", "retrieve", "search", "search_session_filter")),
    bk.Target(
        "store_many ÷ raw update (same batch size)", "batch.ratio", ">=", 0.9, "x", "issue #19"
    ),
    bk.Target("search p95 at the largest size", "ops.search.adapter.p95_ms", "<=", 2.0, "ms",
              "issue #19 (100,000 points x 384)"),
    bk.Target("session-filtered search p95 at the largest size",
              "ops.search_session_filter.adapter.p95_ms", "<=", 2.0, "ms",
              "issue #19 (100,000 points x 384)"),
    bk.Target("store_many", "batch.adapter_per_s", ">=", 20_000, "points/s", "issue #19"),
    bk.Target("search p95 (spec)", "ops.search.adapter.p95_ms", "<=", 50.0, "ms", "spec"),
    bk.Target("sequential search", "ops.search.adapter.ops_per_s", ">=", 100, "searches/s",
              "spec (Qdrant > 100 searches/s)"),
    bk.Target(f"{TASKS} tasks searching", "concurrency.adapter_ops_per_s", ">=", 100,
              "searches/s", "spec (Qdrant > 100 searches/s)"),
]  # fmt: skip

Contenders = dict[str, Callable[[int], Awaitable[Any]]]


def _records(n: int, seed: int, tag: str) -> list[dict[str, Any]]:
    """``n`` caller records; each vector is a float32 NumPy row (the adapter accepts arrays)."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        {
            "vector": v,
            "content": f"{tag} episode {i}: the user talked about topic {i % 17}",
            "session_id": f"bench-{i % SESSIONS}",
            "metadata": {"topic": i % 17, "tag": tag},
        }
        for i, v in enumerate(vectors)
    ]


def _payload(record: dict[str, Any]) -> dict[str, Any]:
    """What a caller of the bare engine stores: the adapter's payload fields."""
    return {
        "content": record["content"],
        "session_id": record["session_id"],
        "metadata": record["metadata"],
        "created_at": datetime.now(UTC).isoformat(),
    }


def _raw_points(records: list[dict[str, Any]]) -> list[qe.Point]:
    return [qe.Point(str(uuid.uuid4()), r["vector"].tolist(), _payload(r)) for r in records]


def _read(points: list[Any]) -> list[tuple[Any, ...]]:
    """What any caller reads of the engine's hits: the engine's objects are lazy, and a payload
    asked for is only converted to Python when read."""
    return [(p.id, getattr(p, "score", None), p.payload) for p in points]


def _raw_session(session: str) -> qe.Filter:
    return qe.Filter(must=[qe.FieldCondition("session_id", match=qe.MatchValue(session))])


def _raw_many(shard: qe.EdgeShard, records: list[dict[str, Any]], batch: int) -> None:
    """The caller's records as engine points (built inside the timing, like the adapter's),
    written ``batch`` per ``update``."""
    points = _raw_points(records)
    for start in range(0, len(points), batch):
        shard.update(qe.UpdateOperation.upsert_points(points[start : start + batch]))


def _new_shard(path: Path) -> qe.EdgeShard:
    config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(DIM, qe.Distance.Cosine))
    shard = qe.EdgeShard.create(str(path), config)
    shard.update(qe.UpdateOperation.create_field_index("session_id", qe.PayloadSchemaType.Keyword))
    shard.update(qe.UpdateOperation.create_field_index("created_at", qe.PayloadSchemaType.Datetime))
    return shard


async def _run_sync(fn: Callable[[], Any]) -> Any:
    """A blocking raw-engine call awaited as a caller would make it: on the loop."""
    return fn()


class _Scale:
    """One data size: the adapter's collection and a raw shard on a copy of it."""

    def __init__(self, scratch: Path, n: int, quick: bool) -> None:
        self.n = n
        self.quick = quick
        self.root = scratch / f"a{n}"
        self.raw_dir = scratch / f"r{n}"
        self.records = _records(n, seed=n, tag="load")
        self.queries = [r["vector"].tolist() for r in _records(64, seed=99, tag="q")]
        self.adapter: QdrantAdapter | None = None
        self.raw: qe.EdgeShard | None = None
        self.ids: list[str] = []
        self.figures: dict[str, Any] = {"points": n}

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"path": str(self.root), "collection_name": NAME, "auto_optimize": False, **extra}

    async def build(self) -> None:
        """The loaded, indexed collections: built now, or copied from ``$CACHE_ENV``."""
        cache = os.environ.get(CACHE_ENV)
        cached = Path(cache) / f"n{self.n}" if cache else None
        if cached is not None and (cached / "figures.json").is_file():
            shutil.copytree(cached / "a", self.root)
            shutil.copytree(cached / "r", self.raw_dir)
            self.figures = json.loads((cached / "figures.json").read_text())
            self.ids = json.loads((cached / "ids.json").read_text())
        else:
            await self._build()
            if cached is not None:
                shutil.rmtree(cached, ignore_errors=True)
                shutil.copytree(self.root, cached / "a")
                shutil.copytree(self.raw_dir, cached / "r")
                (cached / "ids.json").write_text(json.dumps(self.ids))
                (cached / "figures.json").write_text(json.dumps(self.figures))
        self.raw = qe.EdgeShard.load(str(self.raw_dir))
        adapter = QdrantAdapter(self.config())
        await adapter.connect()
        self.adapter = adapter

    async def _build(self) -> None:
        """Load with ``store_many``, then build the indexes (adapter: child process; raw:
        in-process on its own copy, up to ``RAW_OPTIMIZE_UP_TO``). Leaves both closed."""
        self.figures["built_at_loadavg"] = bk.loadavg()
        adapter = QdrantAdapter(self.config())
        await adapter.connect()
        start = perf_counter()
        for at in range(0, self.n, 10_000):
            self.ids += await adapter.store_many(self.records[at : at + 10_000])
        self.figures["load_points_per_s"] = self.n / (perf_counter() - start)
        raw_optimizes = self.n <= RAW_OPTIMIZE_UP_TO
        if raw_optimizes:
            await adapter.disconnect()
            shutil.copytree(self.root / NAME, self.raw_dir)
            await adapter.connect()
        start = perf_counter()
        stall = await bk.max_loop_stall(adapter.optimize())
        self.figures["optimize_s"] = perf_counter() - start
        self.figures["optimize_loop_stall_ms"] = stall
        assert adapter._edge is not None and adapter._edge.last_optimization is not None
        self.figures["optimize_cpu_s"] = adapter._edge.last_optimization["cpu_seconds"]
        status = (await adapter.get_metrics())["backend_specific"]
        self.figures["indexed"] = status["indexed_vectors"]
        self.figures["segments"] = status["segments"]
        await adapter.disconnect()
        if not raw_optimizes:
            shutil.copytree(self.root / NAME, self.raw_dir)
            return
        raw = qe.EdgeShard.load(str(self.raw_dir))
        try:
            start, cpu = perf_counter(), process_time()
            raw.optimize()
            self.figures["raw_optimize_s"] = perf_counter() - start  # all of it a loop stall
            self.figures["raw_optimize_cpu_s"] = process_time() - cpu
            self.figures["raw_indexed"] = raw.info().indexed_vectors_count
        finally:
            raw.close()

    def searches(self) -> tuple[Contenders, Contenders]:
        adapter, raw, queries = self.adapter, self.raw, self.queries
        assert adapter is not None and raw is not None

        async def raw_search(i: int) -> Any:
            request = qe.QueryRequest(
                limit=10, query=qe.Query.Nearest(queries[i % 64]), with_payload=True
            )
            return _read(raw.query(request))

        async def raw_filtered(i: int) -> Any:
            request = qe.QueryRequest(
                limit=10,
                query=qe.Query.Nearest(queries[i % 64]),
                filter=_raw_session(f"bench-{i % 7}"),
                with_payload=True,
            )
            return _read(raw.query(request))

        plain: Contenders = {
            "adapter": lambda i: adapter.search({"vector": queries[i % 64], "limit": 10}),
            "raw": raw_search,
        }
        filtered: Contenders = {
            "adapter": lambda i: adapter.search(
                {"vector": queries[i % 64], "limit": 10, "session_id": f"bench-{i % 7}"}
            ),
            "raw": raw_filtered,
        }
        return plain, filtered

    def writes(self) -> tuple[Contenders, Contenders]:
        adapter, raw, ids = self.adapter, self.raw, self.ids
        assert adapter is not None and raw is not None
        writes = _records(256, seed=5, tag="single")

        async def raw_store(i: int) -> None:
            raw.update(qe.UpdateOperation.upsert_points(_raw_points([writes[i % 256]])))

        async def raw_retrieve(i: int) -> Any:
            return _read(raw.retrieve([ids[i % len(ids)]], True, False))

        store: Contenders = {"adapter": lambda i: adapter.store(writes[i % 256]), "raw": raw_store}
        retrieve: Contenders = {
            "adapter": lambda i: adapter.retrieve(ids[i % len(ids)]),
            "raw": raw_retrieve,
        }
        return store, retrieve

    async def close(self) -> None:
        if self.adapter is not None:
            await self.adapter.disconnect()
        if self.raw is not None:
            self.raw.close()


class _LocalMode:
    """qdrant-client's local mode (the old embedded engine) holding the same records."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.client = AsyncQdrantClient(path=str(path))

    async def load(self, records: list[dict[str, Any]]) -> float:
        await self.client.create_collection(
            NAME, vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE)
        )
        return await bk.rate_of(len(records), self.upsert(records))

    async def upsert(self, records: list[dict[str, Any]], batch: int = DEFAULT_BATCH_SIZE) -> None:
        points = [
            models.PointStruct(
                id=str(uuid.uuid4()), vector=r["vector"].tolist(), payload=_payload(r)
            )
            for r in records
        ]
        for start in range(0, len(points), batch):
            await self.client.upsert(NAME, points=points[start : start + batch], wait=True)

    def contenders(self, scale: _Scale) -> dict[str, Callable[[int], Awaitable[Any]]]:
        client, queries, ids = self.client, scale.queries, scale.ids
        writes = _records(256, seed=5, tag="single")
        return {
            "store": lambda i: self.upsert([writes[i % 256]]),
            "retrieve": lambda i: client.retrieve(NAME, ids=[ids[i % len(ids)]], with_payload=True),
            "search": lambda i: client.query_points(
                NAME, query=queries[i % 64], limit=10, with_payload=True
            ),
            "search_session_filter": lambda i: client.query_points(
                NAME,
                query=queries[i % 64],
                limit=10,
                query_filter=build_filter(f"bench-{i % 7}"),
                with_payload=True,
            ),
        }


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Measure the adapter, the raw engine and the old local mode; nothing is asserted."""
    if outputs.get("qdrant_url"):
        import bench_qdrant_server

        return await bench_qdrant_server.run(outputs, quick=quick)
    sizes = [1_000, 2_000] if quick else [1_000, 10_000, 100_000]
    local_at = 1_000 if quick else 10_000
    calls = 40 if quick else 400
    filtered_calls = 40 if quick else 200
    warmup = 10 if quick else 40
    local_calls = {"store": 20, "retrieve": 40, "search": 40, "search_session_filter": 10}
    if not quick:
        local_calls = {"store": 100, "retrieve": 200, "search": 100, "search_session_filter": 20}
    chunk = 1_000 if quick else 5_000  # store_many: below one segment's worth (no optimise)
    sweep_sizes = [] if quick else [64, 256, 512, 1024]
    scratch = Path(tempfile.mkdtemp(prefix="bench-qdrant-"))
    scaling: list[dict[str, Any]] = []
    versus_local: dict[str, Any] = {}
    ops: dict[str, Any] = {}
    rates: dict[str, float] = {}
    edge_version = importlib.metadata.version("qdrant-edge-py")
    edge_label = f"qdrant_edge {edge_version} EdgeShard"
    try:
        for n in sizes:
            scale = _Scale(scratch, n, quick)
            try:
                await scale.build()
                plain, filtered = scale.searches()
                searched = await bk.compare(plain, calls=calls, warmup=warmup)
                narrowed = await bk.compare(filtered, calls=filtered_calls, warmup=warmup)
                scale.figures["search"] = searched
                scale.figures["search_session_filter"] = narrowed
                if n == sizes[-1]:
                    store, retrieve = scale.writes()
                    label = f"{edge_label}, same request, same loop"
                    ops["store"] = bk.op_entry(
                        await bk.compare(store, calls=calls, warmup=warmup), label
                    )
                    ops["retrieve"] = bk.op_entry(
                        await bk.compare(retrieve, calls=calls * 5, warmup=warmup), label
                    )
                    ops["search"] = bk.op_entry(searched, label)
                    ops["search_session_filter"] = bk.op_entry(narrowed, label)
                    rates = await bk.compare_concurrent(plain, calls=calls, tasks=TASKS)
                if n == local_at:
                    versus_local = await _versus_local(scale, scratch, local_calls, warmup)
                scaling.append(scale.figures)
            finally:
                await scale.close()
        many, sizes_swept, stall = await _store_many(scratch, chunk, sweep_sizes)
        many_local = await _store_many_local(scratch, min(chunk, 2_000))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    client_version = importlib.metadata.version("qdrant-client")
    largest = scaling[-1]
    return bk.backend_result(
        "qdrant",
        version=f"embedded (Qdrant Edge, qdrant-edge-py {edge_version})",
        raw_driver=edge_label,
        ops=ops,
        batch=bk.batch_entry(
            op="store_many",
            unit="points",
            per_call=chunk,
            rates=many,
            raw_path=f"EdgeShard.update(upsert_points) in batches of {DEFAULT_BATCH_SIZE}",
            batch_size=DEFAULT_BATCH_SIZE,
            sweep=sizes_swept,
        ),
        concurrency=bk.concurrency_entry(op="search", tasks=TASKS, calls=calls, rates=rates),
        targets=TARGETS,
        settings={
            "calls": calls,
            "filtered_calls": filtered_calls,
            "warmup": warmup,
            "sizes": sizes,
            "dim": DIM,
            "sessions": SESSIONS,
            "local_mode_at": local_at,
            "scratch": str(scratch),  # everything is written there, never to qdrant_path
            "data_prefix": scratch.name,
        },
        extra={
            "scaling": scaling,
            "versus_local_mode": versus_local,
            "store_many_local_mode_points_per_s": many_local,
            "store_many_loop_stall_ms": stall,
        },
        tables=[
            _scaling_table(scaling),
            _local_table(versus_local, many, many_local, local_at, client_version),
        ],
        notes=_notes(largest, stall, scaling),
    )


async def _versus_local(
    scale: _Scale, scratch: Path, calls: dict[str, int], warmup: int
) -> dict[str, Any]:
    """The adapter (Edge) and the old local mode on the same records, op by op."""
    local = _LocalMode(scratch / "local")
    try:
        load_rate = await local.load(scale.records)
        old = local.contenders(scale)
        plain, filtered = scale.searches()
        store, retrieve = scale.writes()
        ours = {
            "store": store["adapter"],
            "retrieve": retrieve["adapter"],
            "search": plain["adapter"],
            "search_session_filter": filtered["adapter"],
        }
        figures: dict[str, Any] = {"local_mode_load_points_per_s": load_rate}
        for op, n in calls.items():
            both = await bk.compare(
                {"adapter": ours[op], "local_mode": old[op]},
                calls=n,
                warmup=min(warmup, n // 4),
            )
            figures[op] = {**both, "ratio": bk.ratio(both["adapter"]["ops_per_s"],
                                                     both["local_mode"]["ops_per_s"])}  # fmt: skip
        return figures
    finally:
        await local.client.close()


async def _store_many(
    scratch: Path, chunk: int, sweep_sizes: list[int]
) -> tuple[dict[str, float], dict[str, float], dict[str, float]]:
    """store_many points/s into a fresh collection: adapter and raw, a sweep, loop stalls."""
    runs = iter(range(10**6))

    async def a_many(rep: int, batch: int = DEFAULT_BATCH_SIZE) -> float:
        place = scratch / f"ma{next(runs)}"
        records = _records(chunk, seed=1000 + rep, tag="w")
        async with QdrantAdapter({"path": str(place), "batch_size": batch}) as qa:
            rate = await bk.rate_of(chunk, qa.store_many(records))
        shutil.rmtree(place)
        return rate

    async def r_many(rep: int) -> float:
        place = scratch / f"mr{next(runs)}"
        records = _records(chunk, seed=1000 + rep, tag="w")
        shard = _new_shard(place / NAME)
        try:
            rate = await bk.rate_of(
                chunk, _run_sync(lambda: _raw_many(shard, records, DEFAULT_BATCH_SIZE))
            )
        finally:
            shard.close()
        shutil.rmtree(place)
        return rate

    many = await bk.compare_rates({"adapter": a_many, "raw": r_many})
    swept = await bk.sweep(
        lambda size, rep: a_many(rep, size),
        sweep_sizes,
        known={DEFAULT_BATCH_SIZE: many["adapter"]},
    )
    records = _records(chunk, seed=77, tag="stall")
    place = scratch / "stall-a"
    async with QdrantAdapter({"path": str(place)}) as qa:
        adapter_ms = await bk.max_loop_stall(qa.store_many(records))
    shard = _new_shard(scratch / "stall-r" / NAME)
    try:
        raw_ms = await bk.max_loop_stall(
            _run_sync(lambda: _raw_many(shard, records, DEFAULT_BATCH_SIZE))
        )
    finally:
        shard.close()
    return many, swept, {"adapter": adapter_ms, "raw": raw_ms}


async def _store_many_local(scratch: Path, chunk: int) -> float:
    """The old local mode's batched upsert (same batch size), points/s: the median of 3."""
    rates = []
    for rep in range(3):
        local = _LocalMode(scratch / f"local-many-{rep}")
        try:
            rates.append(await local.load(_records(chunk, seed=1000 + rep, tag="w")))
        finally:
            await local.client.close()
    return float(np.median(rates))


def _times(ratio: float) -> str:
    return f"{ratio:,.2f}x" if ratio < 10 else f"{ratio:,.0f}x"


def _ms(figures: dict[str, Any], who: str) -> str:
    fig = figures[who]
    return f"{fig['p50_ms']:.2f} / {fig['p95_ms']:.2f}"


def _scaling_table(scaling: list[dict[str, Any]]) -> dict[str, Any]:
    rows = []
    for s in scaling:
        raw_opt = s.get("raw_optimize_s")
        built = s.get("built_at_loadavg") or ["?"]
        rows.append(
            [
                f"{s['points']:,}",
                _ms(s["search"], "adapter"),
                _ms(s["search"], "raw"),
                _ms(s["search_session_filter"], "adapter"),
                _ms(s["search_session_filter"], "raw"),
                f"{s['load_points_per_s']:,.0f}",
                f"{s['optimize_s']:.1f} s, {s['optimize_cpu_s']:.1f} s CPU ({s['indexed']:,} "
                f"indexed, {s['segments']} segments; load average {built[0]})",
                f"{s['optimize_loop_stall_ms']:.1f} ms",
                "copied"
                if raw_opt is None
                else f"{raw_opt:.1f} s, {s['raw_optimize_cpu_s']:.1f} s CPU",
            ]
        )
    return {
        "title": "Scaling (top 10 of N points; p50 / p95 ms; after optimize()):",
        "header": [
            "points",
            "search adapter",
            "search raw",
            "filtered adapter",
            "filtered raw",
            "store_many load points/s",
            "adapter optimize() (child process)",
            "loop stall during it",
            "raw optimize() in-process (= loop stall)",
        ],
        "rows": rows,
    }


def _local_table(
    versus: dict[str, Any],
    many: dict[str, float],
    many_local: float,
    at: int,
    client_version: str,
) -> dict[str, Any]:
    rows = []
    for op in ("store", "retrieve", "search", "search_session_filter"):
        if op not in versus:
            continue
        entry = versus[op]
        rows.append(
            [
                op,
                f"{entry['adapter']['ops_per_s']:,.0f} ({_ms(entry, 'adapter')})",
                f"{entry['local_mode']['ops_per_s']:,.1f} ({_ms(entry, 'local_mode')})",
                _times(entry["ratio"]),
            ]
        )
    rows.append(
        [
            "store_many (points/s)",
            f"{many['adapter']:,.0f}",
            f"{many_local:,.0f}",
            _times(many["adapter"] / many_local) if many_local else "n/a",
        ]
    )
    return {
        "title": (
            f"Against the old embedded engine (qdrant-client {client_version} local mode, raw "
            f"AsyncQdrantClient) on the same {at:,} points; ops/s (p50 / p95 ms):"
        ),
        "header": ["operation", "adapter on Qdrant Edge", "old local mode", "adapter ÷ old"],
        "rows": rows,
    }


def _notes(
    largest: dict[str, Any], stall: dict[str, float], scaling: list[dict[str, Any]]
) -> list[str]:
    return [
        "Qdrant Edge (qdrant-edge-py 0.9.0) holds the GIL for the whole of every call, so the "
        "adapter calls it inline on the caller's loop (a thread would only add a hop): every "
        "call stalls the loop for its own length, which is what the raw engine does too.",
        f"Longest loop stall during one store_many: adapter {stall['adapter']:.1f} ms (one "
        f"batch of {DEFAULT_BATCH_SIZE}; it yields between batches), raw {stall['raw']:.1f} ms "
        "(the whole loop of updates).",
        "The HNSW build: the adapter runs optimize() in a child process on the closed "
        "collection (its own calls wait; the loop goes on), the raw engine in-process, where "
        "it holds the GIL throughout: see the scaling table.",
        "retrieve: the raw engine answers a lookup by id, payload read, in about 10 µs of CPU, "
        "so the adapter's fixed cost per call (the core's operation wrapper and metrics, id "
        "validation, the result dict: a few µs) is a large share and the 0.90 ratio is out of "
        "reach by construction.",
    ]


if __name__ == "__main__":
    bk.main(run, __doc__, "qdrant_url", "qdrant_path")
