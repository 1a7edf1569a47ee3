"""The adapter's pool against the real server: no ping on a warm connection, most recently used
first, a dead connection found without a round trip and the whole pool replaced (issue #20).

``AsyncConnectionPool.check_connection`` (the ping) is counted through a spy; server processes
are told apart by ``pg_backend_pid()``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool

import mas_storage_postgres._pool as pool_module
from mas_storage_postgres import PostgresAdapter

Raw = psycopg.AsyncConnection[Any]


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Every ping the pool's check sends, by connection."""
    seen: list[object] = []
    real = AsyncConnectionPool.check_connection

    async def spy(conn: Any) -> None:
        seen.append(conn)
        await real(conn)

    monkeypatch.setattr(AsyncConnectionPool, "check_connection", staticmethod(spy))
    return seen


async def _backend_pid(adapter: PostgresAdapter) -> int:
    assert adapter.pool is not None
    async with adapter.pool.connection() as conn:
        cur = await conn.execute("SELECT pg_backend_pid()")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_warm_connections_are_not_pinged_and_the_newest_is_reused(
    pg_url: str, session_id: str, pings: list[object]
) -> None:
    async with PostgresAdapter({"url": pg_url, "pool_size": 5, "min_size": 5}) as adapter:
        await _backend_pid(adapter)  # the first checkout of a fresh pool
        pings.clear()
        for turn in range(20):
            record_id = await adapter.store(
                {"session_id": session_id, "turn_id": turn, "content": f"turn {turn}"}
            )
            record = await adapter.retrieve(record_id)
            assert record is not None and record["content"] == f"turn {turn}"
        pids = {await _backend_pid(adapter) for _ in range(10)}
        assert pings == []  # 51 checkouts, no round trip spent on checks
        assert len(pids) == 1  # sequential calls keep one warm server process
        assert await adapter.count(session_id) == 20


async def test_most_recently_returned_connection_comes_first(pg_url: str) -> None:
    async with PostgresAdapter({"url": pg_url, "pool_size": 3, "min_size": 3}) as adapter:
        pool = adapter.pool
        assert pool is not None
        first, second = await pool.getconn(), await pool.getconn()
        await pool.putconn(first)
        await pool.putconn(second)
        async with pool.connection() as conn:
            assert conn is second
        async with pool.connection() as conn:
            assert conn is second


async def test_a_connection_the_server_closed_is_replaced_with_the_whole_pool(
    pg_url: str, raw: Raw, session_id: str, pings: list[object]
) -> None:
    async with PostgresAdapter({"url": pg_url, "pool_size": 3, "min_size": 3}) as adapter:
        pool = adapter.pool
        assert pool is not None
        conns = [await pool.getconn() for _ in range(3)]
        pids = []
        for conn in conns:
            cur = await conn.execute("SELECT pg_backend_pid()")
            pids.append((await cur.fetchone())[0])  # type: ignore[index]
        for conn in conns:
            await pool.putconn(conn)
        # With a timeout, the call returns once the processes are gone: the sockets are closed.
        cur = await raw.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM unnest(%s::int[]) pid", [pids]
        )
        assert await cur.fetchall() == [(True,)] * 3
        pings.clear()
        # Warm (used moments ago), yet dead: the socket says so, no call fails.
        await adapter.store({"session_id": session_id, "turn_id": 1, "content": "after"})
        assert await adapter.count(session_id) == 1
        assert len(pings) == 1  # one ping, on the first dead connection; the rest were drained
        assert await _backend_pid(adapter) not in pids


async def test_an_idle_connection_is_pinged(
    pg_url: str, pings: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pool_module, "PING_AFTER_IDLE", 0.2)
    async with PostgresAdapter({"url": pg_url, "pool_size": 2, "min_size": 2}) as adapter:
        await adapter.count()
        pings.clear()
        await adapter.count()
        assert pings == []
        await asyncio.sleep(0.3)
        await adapter.count()
        assert len(pings) == 1
