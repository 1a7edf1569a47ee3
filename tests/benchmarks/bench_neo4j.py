"""Benchmark of the Neo4jAdapter against the raw ``neo4j`` async driver (the spec's 4B targets).

Measures, in one run against a real Neo4j, for the adapter and for the same Cypher sent through
the bare driver (same text, same parameters, same managed transactions, same database):

* single ``store`` (entity MERGE) and ``retrieve`` latency (p50/p95/p99) and sequential ops/s;
* ``get_neighbors`` at depth 2 on a random graph: latency and queries/s, sequential and with
  16 concurrent callers;
* ``store_many`` nodes/s and ``store_relationships_many`` relationships/s (5,000 per call),
  plus the adapter's nodes/s for several UNWIND batch sizes (what the default is chosen from);
* the ratio adapter / raw for each.

The spec's targets: a Neo4j query under 100 ms, over 50 queries/s. Each figure is the median of
5 repetitions after a warm-up; adapter and raw runs alternate so drift hits both. Nothing is
asserted. Nodes carry ``bench_run`` and are deleted at the end.

Run from the repository root once the stack is up::

    uv run python tests/benchmarks/bench_neo4j.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import uuid
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction

from mas_storage import load_stack_outputs
from mas_storage_neo4j import Neo4jAdapter

Call = Callable[[int], Awaitable[Any]]
TARGETS = {"query_ms": 100.0, "queries_per_s": 50.0}
REPS = 5
DB = "neo4j"
LABEL = "BenchPerson"

# The adapter's Cypher, written out as a user of the bare driver would.
MERGE_ONE = (
    "MERGE (n:`Entity` {id: $id}) ON CREATE SET n:`BenchPerson` "
    "WITH n WHERE n:`BenchPerson` SET n += $props RETURN n.id AS id"
)
MERGE_MANY = (
    "UNWIND $rows AS row MERGE (n:`Entity` {id: row.id}) ON CREATE SET n:`BenchPerson` "
    "WITH n, row WHERE n:`BenchPerson` SET n += row.props RETURN row.i AS i"
)
REL_MANY = (
    "UNWIND $rows AS row MATCH (a:`Entity` {id: row.from}) MATCH (b:`Entity` {id: row.to}) "
    "MERGE (a)-[r:`KNOWS`]->(b) SET r += row.props RETURN row.i AS i, elementId(r) AS id"
)
RETRIEVE = "MATCH (n:`Entity` {id: $id}) RETURN labels(n) AS labels, properties(n) AS properties"
NEIGHBORS = (
    "MATCH (s:`Entity` {id: $id}) MATCH p = (s)-[*1..2]-(n) WHERE n <> s "
    "WITH n, p ORDER BY length(p) WITH n, head(collect(p)) AS p "
    "RETURN n.id AS id, labels(n) AS labels, properties(n) AS properties, "
    "length(p) AS depth, [r IN relationships(p) | type(r)] AS relationships "
    "ORDER BY depth, id LIMIT $limit"
)


def _percentiles(samples: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50_ms": cuts[49] * 1e3, "p95_ms": cuts[94] * 1e3, "p99_ms": cuts[98] * 1e3}


async def _time_calls(call: Call, n: int) -> dict[str, float]:
    """Latency percentiles and sequential throughput of ``n`` awaited calls."""
    samples = [0.0] * n
    begin = perf_counter()
    for i in range(n):
        start = perf_counter()
        await call(i)
        samples[i] = perf_counter() - start
    return {**_percentiles(samples), "ops_per_s": n / (perf_counter() - begin)}


async def _concurrent(call: Call, n: int, workers: int) -> dict[str, float]:
    """Throughput of ``n`` calls spread over ``workers`` concurrent tasks."""
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            await call(i)

    begin = perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return {"ops_per_s": n / (perf_counter() - begin)}


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


class _Raw:
    """The adapter's operations as bare-driver managed transactions."""

    def __init__(self, driver: AsyncDriver) -> None:
        self.driver = driver

    async def _write(self, query: str, params: dict[str, Any]) -> list[Any]:
        async def work(tx: AsyncManagedTransaction) -> list[Any]:
            result = await tx.run(query, params)
            return [rec async for rec in result]

        async with self.driver.session(database=DB) as session:
            return await session.execute_write(work)

    async def _read(self, query: str, params: dict[str, Any]) -> list[Any]:
        async def work(tx: AsyncManagedTransaction) -> list[Any]:
            result = await tx.run(query, params)
            return [rec async for rec in result]

        async with self.driver.session(database=DB) as session:
            return await session.execute_read(work)

    async def store(self, props: dict[str, Any]) -> None:
        await self._write(MERGE_ONE, {"id": props["id"], "props": props})

    async def retrieve(self, node_id: str) -> Any:
        return await self._read(RETRIEVE, {"id": node_id})

    async def neighbors(self, node_id: str) -> Any:
        return await self._read(NEIGHBORS, {"id": node_id, "limit": 100})

    async def store_many(self, props: list[dict[str, Any]], batch: int, query: str) -> None:
        rows = [{"i": i, **p} for i, p in enumerate(props)]

        async def work(tx: AsyncManagedTransaction) -> None:
            for start in range(0, len(rows), batch):
                result = await tx.run(query, {"rows": rows[start : start + batch]})
                await result.consume()

        async with self.driver.session(database=DB) as session:
            await session.execute_write(work)


def _entity(run: str, key: str) -> dict[str, Any]:
    return {"label": LABEL, "properties": {"id": f"{run}-{key}", "bench_run": run, "n": key}}


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Measure the adapter and the raw driver; return the figures (nothing is asserted)."""
    calls = 100 if quick else 500
    warmup = 50 if quick else 200
    bulk = 1_000 if quick else 5_000
    graph_nodes = 500 if quick else 2_000
    batch_sizes = [250, 500, 1000, 2000] if quick else [100, 250, 500, 1000, 2000, 5000]
    run_id = f"bench-neo4j-{uuid.uuid4().hex[:8]}"
    config = {
        "url": outputs["neo4j_url"],
        "user": outputs.get("neo4j_user") or "neo4j",
        "password": outputs["neo4j_password"],
    }
    adapter = Neo4jAdapter(config)
    await adapter.connect()
    driver = AsyncGraphDatabase.driver(
        config["url"],
        auth=(config["user"], config["password"]),
        notifications_min_severity="OFF",
    )
    raw = _Raw(driver)
    rng = random.Random(7)
    serial = iter(range(10**9))
    results: dict[str, Any] = {"quick": quick, "calls_per_rep": calls, "reps": REPS}
    try:
        await adapter.ensure_schema([LABEL])

        # -- single store and retrieve -------------------------------------------------------
        async def a_store(i: int) -> None:
            await adapter.store({"type": "entity", **_entity(run_id, f"s{next(serial)}")})

        async def r_store(i: int) -> None:
            await raw.store(_entity(run_id, f"s{next(serial)}")["properties"])

        ids = await adapter.store_many([_entity(run_id, f"r{i}") for i in range(calls)])

        async def a_retrieve(i: int) -> None:
            await adapter.retrieve(ids[i % len(ids)])

        async def r_retrieve(i: int) -> None:
            await raw.retrieve(ids[i % len(ids)])

        # -- the traversal graph ---------------------------------------------------------------
        nodes = await adapter.store_many([_entity(run_id, f"g{i}") for i in range(graph_nodes)])
        edges = [
            {"from": node, "to": rng.choice(nodes), "relationship": "KNOWS"}
            for node in nodes
            for _ in range(3)
        ]
        edges = [e for e in edges if e["from"] != e["to"]]
        await adapter.store_relationships_many(edges)
        starts = [rng.choice(nodes) for _ in range(calls)]

        async def a_neighbors(i: int) -> None:
            await adapter.get_neighbors(starts[i % calls], depth=2, limit=100)

        async def r_neighbors(i: int) -> None:
            await raw.neighbors(starts[i % calls])

        pairs: dict[str, tuple[Call, Call]] = {
            "store": (a_store, r_store),
            "retrieve": (a_retrieve, r_retrieve),
            "get_neighbors_depth2": (a_neighbors, r_neighbors),
        }
        for name, (a_call, r_call) in pairs.items():
            await _time_calls(a_call, warmup)
            await _time_calls(r_call, warmup)
            a_runs, r_runs = [], []
            for _ in range(REPS):
                a_runs.append(await _time_calls(a_call, calls))
                r_runs.append(await _time_calls(r_call, calls))
            results[name] = _compare(_median_of(a_runs), _median_of(r_runs))

        a_runs, r_runs = [], []
        for _ in range(REPS):
            a_runs.append(await _concurrent(a_neighbors, calls * 2, 16))
            r_runs.append(await _concurrent(r_neighbors, calls * 2, 16))
        results["get_neighbors_depth2_concurrent16"] = _compare(
            _median_of(a_runs), _median_of(r_runs)
        )

        # -- batches ---------------------------------------------------------------------------
        async def bulk_pair(rep: int) -> tuple[dict[str, float], dict[str, float]]:
            ents = [_entity(run_id, f"b{rep}-{i}") for i in range(bulk)]
            start = perf_counter()
            made = await adapter.store_many(ents)
            a_nodes = bulk / (perf_counter() - start)
            raw_ents = [_entity(run_id, f"rb{rep}-{i}")["properties"] for i in range(bulk)]
            rows = [{"id": p["id"], "props": p} for p in raw_ents]
            start = perf_counter()
            await raw.store_many(rows, adapter.batch_size, MERGE_MANY)
            r_nodes = bulk / (perf_counter() - start)

            ring = [
                {"from": made[i], "to": made[(i + 1) % bulk], "relationship": "KNOWS"}
                for i in range(bulk)
            ]
            start = perf_counter()
            await adapter.store_relationships_many(ring)
            a_rels = bulk / (perf_counter() - start)
            raw_ring = [
                {"from": raw_ents[i]["id"], "to": raw_ents[(i + 1) % bulk]["id"], "props": {}}
                for i in range(bulk)
            ]
            start = perf_counter()
            await raw.store_many(raw_ring, adapter.batch_size, REL_MANY)
            r_rels = bulk / (perf_counter() - start)
            return (
                {"nodes_per_s": a_nodes, "relationships_per_s": a_rels},
                {"nodes_per_s": r_nodes, "relationships_per_s": r_rels},
            )

        await bulk_pair(-1)  # warm-up
        pairs_out = [await bulk_pair(rep) for rep in range(REPS)]
        results["store_many"] = _compare(
            _median_of([a for a, _ in pairs_out]), _median_of([r for _, r in pairs_out])
        )
        results["store_many"]["entities_per_call"] = bulk
        results["store_many"]["batch_size"] = adapter.batch_size

        default_batch = adapter.batch_size
        by_batch: dict[str, float] = {}
        for size in batch_sizes:
            adapter.batch_size = size
            rates = []
            for rep in range(REPS):
                ents = [_entity(run_id, f"bs{size}-{rep}-{i}") for i in range(bulk)]
                start = perf_counter()
                await adapter.store_many(ents)
                rates.append(bulk / (perf_counter() - start))
            by_batch[str(size)] = statistics.median(rates)
        adapter.batch_size = default_batch
        results["store_many_nodes_per_s_by_batch_size"] = by_batch
        results["targets"] = TARGETS
    finally:
        async with driver.session(database=DB) as session:
            result = await session.run(
                "MATCH (n:`Entity`) WHERE n.bench_run = $run "
                "CALL { WITH n DETACH DELETE n } IN TRANSACTIONS OF 5000 ROWS",
                {"run": run_id},
            )
            await result.consume()
        await driver.close()
        await adapter.disconnect()
    return results


def _compare(adapter: dict[str, float], raw: dict[str, float]) -> dict[str, Any]:
    """Both sides and the ratio adapter/raw of each figure (>1 is slower for latencies)."""
    ratio = {k: adapter[k] / raw[k] if raw[k] else float("nan") for k in adapter}
    return {"adapter": adapter, "raw": raw, "ratio": ratio}


def _print_table(results: dict[str, Any]) -> None:
    print(
        f"Neo4jAdapter vs raw neo4j driver ({'quick' if results['quick'] else 'full'} run, "
        f"medians of {results['reps']} reps)"
    )
    header = f"{'operation':<36}{'figure':<22}{'adapter':>12}{'raw':>12}{'ratio':>8}"
    print(header)
    print("-" * len(header))
    for name, value in results.items():
        if not isinstance(value, dict) or "adapter" not in value:
            continue
        for figure, a_value in value["adapter"].items():
            r_value = value["raw"][figure]
            print(
                f"{name:<36}{figure:<22}{a_value:>12.2f}{r_value:>12.2f}"
                f"{value['ratio'][figure]:>8.2f}"
            )
    print("\nadapter store_many nodes/s by UNWIND batch size:")
    for size, rate in results["store_many_nodes_per_s_by_batch_size"].items():
        print(f"  batch {size:>5}: {rate:>10.0f} nodes/s")
    targets = results["targets"]
    p95 = results["get_neighbors_depth2"]["adapter"]["p95_ms"]
    qps = results["get_neighbors_depth2_concurrent16"]["adapter"]["ops_per_s"]
    print(
        f"\nspec targets: query < {targets['query_ms']:.0f} ms (get_neighbors p95 {p95:.2f} ms), "
        f"> {targets['queries_per_s']:.0f} queries/s (concurrent get_neighbors {qps:.0f}/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    outputs = load_stack_outputs()
    if not outputs.get("neo4j_password"):
        sys.exit("no neo4j outputs: run 'uv run mas-devstack up' (or set MAS_STACK_OUTPUTS)")
    results = asyncio.run(run(outputs, quick=args.quick))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_table(results)


if __name__ == "__main__":
    main()
