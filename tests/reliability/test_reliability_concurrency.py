"""1,000 concurrent operations per adapter, through one adapter, on a pool of 5 connections.

Every adapter is given a pool far smaller than the concurrency (PostgreSQL ``pool_size``, Redis
``max_connections``, Neo4j ``max_connection_pool_size``, Typesense's aiohttp connector limit; the
embedded Qdrant runs one call at a time inline, and closes its collection for an ``optimize()``
started among the writes, so the writes that arrive meanwhile must wait for it), and a wait bound
long enough for the queue to drain. Every call must succeed, which proves that callers beyond the
pool wait for a connection instead of failing, and the backend must hold exactly what was written,
each key once.

Qdrant runs in each mode the outputs name: ``qdrant`` (embedded, a private path) and
``qdrant-server`` (the outputs' server, ``max_connections``: its REST pool). Without that bound
qdrant-client opens one connection per concurrent call towards 127.0.0.1; against a Qdrant
1.19.0 server (a debug build, load 7) 157 of 1,000 concurrent retrieves then came back
``408 Request Timeout``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from faults import BACKENDS, Target, open_target
from qdrant_modes import require_mode
from secretwatch import active_sweep

pytestmark = pytest.mark.timeout(300)

CONCURRENCY = 1000
POOL = 5
#: Wait bound for a free connection: the whole queue drains well within it.
QUEUE_WAIT = 60
SMALL_POOLS: dict[str, dict[str, Any]] = {
    "postgres": {"pool_size": POOL, "min_size": 1, "timeout": QUEUE_WAIT},
    "redis": {"max_connections": POOL, "pool_timeout": QUEUE_WAIT},
    "typesense": {"max_connections": POOL, "timeout": QUEUE_WAIT},
    "neo4j": {"max_connection_pool_size": POOL, "timeout": QUEUE_WAIT},
    "qdrant": {},
    "qdrant-server": {"max_connections": POOL, "timeout": QUEUE_WAIT},
}


def pool_limit(target: Target) -> int:
    """The connection limit the driver enforces (from the driver objects themselves)."""
    adapter: Any = target.adapter
    if target.name == "postgres":
        return int(adapter.pool.get_stats()["pool_max"])
    if target.name == "redis":
        pool = adapter.client.connection_pool
        assert isinstance(pool, aioredis.BlockingConnectionPool), "a full pool must block"
        return int(pool.max_connections)
    if target.name == "neo4j":
        return int(adapter._driver._pool.pool_config.max_connection_pool_size)
    if target.name == "typesense":
        # aiohttp's connector, made at connect (the adapter's default transport)
        return int(adapter._client._transport._session.connector.limit)
    if target.name == "qdrant-server":  # qdrant-client's REST client: an httpx.AsyncClient
        rest = adapter._client._client.openapi_client.client._async_client
        return int(rest._transport._pool._max_connections)
    return 1  # the embedded engine: inline calls, one at a time


async def gather_all(calls: list[Any]) -> None:
    """Run ``calls`` concurrently; fail listing every exception (none may be raised, and each
    one is scanned for secrets before its text goes into the failure report)."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            active_sweep().exception(outcome, "of a concurrent call")
    errors = Counter(f"{type(o).__name__}: {o}"[:200] for o in outcomes if isinstance(o, Exception))
    assert not errors, f"{sum(errors.values())} of {len(calls)} calls failed: {errors}"


#: The slow ones (about 10-20 s each here): one write at a time per connection on the server.
SLOW = ("typesense", "neo4j", "qdrant", "qdrant-server")


@pytest.mark.parametrize(
    "backend", [pytest.param(b, marks=[pytest.mark.slow] if b in SLOW else []) for b in BACKENDS]
)
async def test_concurrent_operations_on_a_small_pool_are_exact(
    backend: str, stack_outputs: dict[str, Any], qdrant_path: Path
) -> None:
    if backend.startswith("qdrant"):
        require_mode(stack_outputs, "server" if backend == "qdrant-server" else "embedded")
    async with open_target(
        backend, stack_outputs, path=qdrant_path, **SMALL_POOLS[backend]
    ) as target:
        assert pool_limit(target) <= POOL < CONCURRENCY
        keys = range(CONCURRENCY)

        writes = [target.write(k) for k in keys]
        if backend == "qdrant":  # an optimisation (a child process) in the middle of the writes
            writes.insert(CONCURRENCY // 2, _optimize(target.adapter))
        await gather_all(writes)
        assert await target.census(keys) == Counter(dict.fromkeys(keys, 1))

        await gather_all([target.read(k) for k in keys])  # each checks its own record

        if backend == "postgres":
            stats = target.adapter.pool.get_stats()  # type: ignore[attr-defined]
            assert stats.get("requests_queued", 0) > 0, f"no caller had to wait: {stats}"
            assert stats.get("requests_errors", 0) == 0, stats


async def _optimize(adapter: Any) -> None:
    assert isinstance(await adapter.optimize(), bool)


async def test_postgres_numbers_1000_concurrent_turns_of_one_session_exactly(
    stack_outputs: dict[str, Any],
) -> None:
    """Auto-numbered turns (no ``turn_id``) under contention: exactly 1..1000, no gap, no twin."""
    async with open_target("postgres", stack_outputs, **SMALL_POOLS["postgres"]) as target:
        adapter: Any = target.adapter
        session = f"test-rel-pg-auto-{uuid.uuid4().hex[:10]}"
        try:
            numbers = await asyncio.gather(
                *(adapter.add_turn(session, f"message {i}") for i in range(CONCURRENCY))
            )
            assert sorted(numbers) == list(range(1, CONCURRENCY + 1))
            assert await adapter.count(session) == CONCURRENCY
        finally:
            await adapter.clear_session(session)
