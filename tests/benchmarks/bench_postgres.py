"""Benchmark of the PostgresAdapter against raw psycopg (spec: read < 10 ms, write < 20 ms).

The spec's targets: reads under 10 ms, writes under 20 ms, over 1,000 ops/s.

Measures, in one run against the real PostgreSQL of the stack outputs:

* single ``store`` and ``retrieve`` latency, one call at a time (p50/p95/p99, ms), for
  - the adapter,
  - raw psycopg through an ``AsyncConnectionPool`` with the same ``check_connection`` the adapter
    uses (so the ratio shows the adapter's own cost: validation, metrics, row conversion),
  - raw psycopg on one bare connection (the floor: no pool, no checkout check);
* concurrent ``store`` throughput (ops/s, 32 tasks on a pool of 10);
* ``store_many`` throughput (rows/s) of the adapter (binary COPY), of raw binary COPY, and of
  raw ``executemany`` in pipeline mode (the alternative ``store_many`` did not take).

Every figure is the median of 5 repetitions after a warm-up; adapter and raw runs alternate so
that drift hits both. Rows use ``test-bench-…`` sessions and are deleted at the end.
Nothing is asserted: this prints figures.

Run from the repository root once the stack is up::

    uv run python tests/benchmarks/bench_postgres.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from time import perf_counter
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from mas_storage import load_stack_outputs
from mas_storage_postgres import PostgresAdapter

REPEATS = 5
TARGETS = {"read_ms": 10.0, "write_ms": 20.0, "ops_per_s": 1_000, "batch_rows_per_s": 50_000}
INSERT = (
    "INSERT INTO active_context (session_id, turn_id, content, metadata, created_at, "
    "ttl_expires_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id"
)
SELECT = (
    "SELECT id, session_id, turn_id, content, metadata, created_at, ttl_expires_at "
    "FROM active_context WHERE id = %s AND (ttl_expires_at IS NULL OR ttl_expires_at > now())"
)
COPY = (
    "COPY active_context (id, session_id, turn_id, content, metadata, created_at, "
    "ttl_expires_at) FROM STDIN (FORMAT BINARY)"
)
COPY_TYPES = ["int4", "text", "int4", "text", "jsonb", "timestamptz", "timestamptz"]


class Sessions:
    """Unique ``test-bench-…`` session ids and a counter of turn numbers per run."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def new(self) -> str:
        self.made.append(f"test-bench-pg-{uuid.uuid4()}")
        return self.made[-1]


def _turn(session_id: str, turn_id: int) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "turn_id": turn_id,
        "content": f"Benchmark message {turn_id}: what is the capital of France?",
        "metadata": {"role": "user", "bench": True},
    }


def _raw_values(turn: dict[str, Any]) -> tuple[Any, ...]:
    now = datetime.now(UTC)
    return (
        turn["session_id"],
        turn["turn_id"],
        turn["content"],
        Jsonb(turn["metadata"]),
        now,
        now + timedelta(hours=24),
    )


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    q = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": q[49] * 1e3, "p95": q[94] * 1e3, "p99": q[98] * 1e3}


async def _latencies(call: Callable[[int], Awaitable[Any]], n: int) -> dict[str, float]:
    samples = []
    for i in range(n):
        start = perf_counter()
        await call(i)
        samples.append(perf_counter() - start)
    return _percentiles(samples)


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Measure and return the figures (nested dict); see the module docstring."""
    url = outputs["postgres_url"]
    n_single = 100 if quick else 500
    batch = 2_000 if quick else 10_000
    n_concurrent = 500 if quick else 2_000
    sessions = Sessions()
    adapter = PostgresAdapter({"url": url, "pool_size": 10, "min_size": 10})
    pool = AsyncConnectionPool(
        url,
        min_size=10,
        max_size=10,
        kwargs={"autocommit": True},
        check=AsyncConnectionPool.check_connection,
        open=False,
    )
    bare = await psycopg.AsyncConnection.connect(url, autocommit=True)
    await adapter.connect()
    await pool.open(wait=True)
    figures: dict[str, Any] = {"targets": TARGETS, "quick": quick}
    try:
        # -- single store ----------------------------------------------------------------
        async def adapter_store(session: str) -> Callable[[int], Awaitable[Any]]:
            return lambda i: adapter.store(_turn(session, i))

        async def pool_store(session: str) -> Callable[[int], Awaitable[Any]]:
            async def call(i: int) -> Any:
                async with pool.connection() as conn:
                    cur = await conn.execute(INSERT, _raw_values(_turn(session, i)))
                    return await cur.fetchone()

            return call

        async def bare_store(session: str) -> Callable[[int], Awaitable[Any]]:
            async def call(i: int) -> Any:
                cur = await bare.execute(INSERT, _raw_values(_turn(session, i)))
                return await cur.fetchone()

            return call

        store_runs: dict[str, list[dict[str, float]]] = {"adapter": [], "raw_pool": [], "raw": []}
        makers = {"adapter": adapter_store, "raw_pool": pool_store, "raw": bare_store}
        for make in makers.values():  # warm-up (and prepared statements)
            await _latencies(await make(sessions.new()), 50)
        for _ in range(REPEATS):
            for name, make in makers.items():
                store_runs[name].append(await _latencies(await make(sessions.new()), n_single))
        figures["store_ms"] = {name: _median_of(runs) for name, runs in store_runs.items()}

        # -- single retrieve --------------------------------------------------------------
        session = sessions.new()
        ids = await adapter.store_many([_turn(session, i) for i in range(n_single)])

        async def adapter_get(i: int) -> Any:
            return await adapter.retrieve(ids[i % len(ids)])

        async def pool_get(i: int) -> Any:
            async with pool.connection() as conn:
                cur = await conn.execute(SELECT, (int(ids[i % len(ids)]),))
                return await cur.fetchone()

        async def bare_get(i: int) -> Any:
            cur = await bare.execute(SELECT, (int(ids[i % len(ids)]),))
            return await cur.fetchone()

        getters = {"adapter": adapter_get, "raw_pool": pool_get, "raw": bare_get}
        for call in getters.values():
            await _latencies(call, 50)
        get_runs: dict[str, list[dict[str, float]]] = {name: [] for name in getters}
        for _ in range(REPEATS):
            for name, call in getters.items():
                get_runs[name].append(await _latencies(call, n_single))
        figures["retrieve_ms"] = {name: _median_of(runs) for name, runs in get_runs.items()}

        # -- concurrent store throughput ----------------------------------------------------
        async def concurrent(store_one: Callable[[str, int], Awaitable[Any]]) -> float:
            session = sessions.new()
            queue = iter(range(n_concurrent))

            async def worker() -> None:
                for i in queue:
                    await store_one(session, i)

            start = perf_counter()
            await asyncio.gather(*(worker() for _ in range(32)))
            return n_concurrent / (perf_counter() - start)

        async def pool_store_one(session: str, i: int) -> None:
            async with pool.connection() as conn:
                await conn.execute(INSERT, _raw_values(_turn(session, i)))

        async def adapter_store_one(session: str, i: int) -> None:
            await adapter.store(_turn(session, i))

        ops: dict[str, list[float]] = {"adapter": [], "raw_pool": []}
        await concurrent(adapter_store_one)
        await concurrent(pool_store_one)
        for _ in range(REPEATS):
            ops["adapter"].append(await concurrent(adapter_store_one))
            ops["raw_pool"].append(await concurrent(pool_store_one))
        figures["store_concurrent_ops_per_s"] = {k: statistics.median(v) for k, v in ops.items()}

        # -- store_many -----------------------------------------------------------------------
        async def adapter_many() -> float:
            session = sessions.new()
            records = [_turn(session, i) for i in range(batch)]
            start = perf_counter()
            await adapter.store_many(records)
            return batch / (perf_counter() - start)

        async def raw_copy() -> float:
            session = sessions.new()
            rows = [_raw_values(_turn(session, i)) for i in range(batch)]
            start = perf_counter()
            async with pool.connection() as conn, conn.transaction():
                cur = await conn.execute(
                    "SELECT array_agg(nextval('active_context_id_seq')) "
                    "FROM generate_series(1, %s)",
                    (batch,),
                )
                (new_ids,) = await cur.fetchone()
                async with conn.cursor().copy(COPY) as copy:
                    copy.set_types(COPY_TYPES)
                    for record_id, row in zip(new_ids, rows, strict=True):
                        await copy.write_row((record_id, *row))
            return batch / (perf_counter() - start)

        async def raw_executemany() -> float:
            session = sessions.new()
            rows = [_raw_values(_turn(session, i)) for i in range(batch)]
            start = perf_counter()
            async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                await cur.executemany(INSERT, rows, returning=True)
            return batch / (perf_counter() - start)

        batches = {
            "adapter_copy": adapter_many,
            "raw_copy": raw_copy,
            "raw_executemany_pipeline": raw_executemany,
        }
        for call in batches.values():
            await call()
        rates: dict[str, list[float]] = {name: [] for name in batches}
        for _ in range(REPEATS):
            for name, call in batches.items():
                rates[name].append(await call())
        figures["store_many_rows_per_s"] = {k: statistics.median(v) for k, v in rates.items()}
        figures["store_many_batch"] = batch
    finally:
        async with pool.connection() as conn:
            await conn.execute(
                "DELETE FROM active_context WHERE session_id = ANY(%s)", (sessions.made,)
            )
        await adapter.disconnect()
        await pool.close()
        await bare.close()

    figures["ratios"] = {
        "store_p50_adapter_over_raw_pool": figures["store_ms"]["adapter"]["p50"]
        / figures["store_ms"]["raw_pool"]["p50"],
        "store_p50_adapter_over_raw": figures["store_ms"]["adapter"]["p50"]
        / figures["store_ms"]["raw"]["p50"],
        "retrieve_p50_adapter_over_raw_pool": figures["retrieve_ms"]["adapter"]["p50"]
        / figures["retrieve_ms"]["raw_pool"]["p50"],
        "retrieve_p50_adapter_over_raw": figures["retrieve_ms"]["adapter"]["p50"]
        / figures["retrieve_ms"]["raw"]["p50"],
        "concurrent_ops_adapter_over_raw_pool": figures["store_concurrent_ops_per_s"]["adapter"]
        / figures["store_concurrent_ops_per_s"]["raw_pool"],
        "store_many_adapter_over_raw_copy": figures["store_many_rows_per_s"]["adapter_copy"]
        / figures["store_many_rows_per_s"]["raw_copy"],
        "copy_over_executemany": figures["store_many_rows_per_s"]["raw_copy"]
        / figures["store_many_rows_per_s"]["raw_executemany_pipeline"],
    }
    return figures


def format_table(figures: dict[str, Any]) -> str:
    """The figures as a readable table."""
    lines = [f"PostgreSQL benchmark ({'quick' if figures['quick'] else 'full'}; median of 5)"]
    for op in ("store_ms", "retrieve_ms"):
        lines.append(f"\n{op[:-3]} latency, ms          p50      p95      p99")
        for name, q in figures[op].items():
            lines.append(f"  {name:22s} {q['p50']:8.3f} {q['p95']:8.3f} {q['p99']:8.3f}")
    lines.append("\nconcurrent store (32 tasks, pool 10), ops/s")
    for name, value in figures["store_concurrent_ops_per_s"].items():
        lines.append(f"  {name:22s} {value:10.0f}")
    lines.append(f"\nstore_many ({figures['store_many_batch']} rows per batch), rows/s")
    for name, value in figures["store_many_rows_per_s"].items():
        lines.append(f"  {name:26s} {value:10.0f}")
    lines.append("\nratios")
    for name, value in figures["ratios"].items():
        lines.append(f"  {name:40s} {value:6.2f}")
    targets = figures["targets"]
    lines.append(
        f"\nspec targets: read < {targets['read_ms']} ms, write < {targets['write_ms']} ms, "
        f"> {targets['ops_per_s']} ops/s; batch goal > {targets['batch_rows_per_s']} rows/s"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    outputs = load_stack_outputs()
    if "postgres_url" not in outputs:
        sys.exit("no postgres_url in the stack outputs: run 'uv run mas-devstack up' first")
    figures = asyncio.run(run(outputs, quick=args.quick))
    print(format_table(figures))
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
