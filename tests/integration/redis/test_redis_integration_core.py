"""The turn cache against real Redis: window, TTL, refresh on read, search, delete, and the
domain API (cache_turn, get_cached_turns, clear_session, ...).

Assertions look at what Redis holds (``LRANGE``, ``LLEN``, ``PTTL``, ``EXISTS`` through a plain
client) as well as at what the adapter returns.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import redis.asyncio as aioredis

from mas_storage import StorageConnectionError, StorageDataError
from mas_storage_redis import RedisAdapter, RedisSettings, session_key


async def held(raw: aioredis.Redis, session_id: str) -> list[dict[str, Any]]:
    """The session's list as Redis holds it, decoded."""
    return [json.loads(item) for item in await raw.lrange(session_key(session_id), 0, -1)]


async def test_connect_disconnect(redis_adapter: RedisAdapter) -> None:
    assert redis_adapter.is_connected
    await redis_adapter.disconnect()
    assert not redis_adapter.is_connected
    assert redis_adapter.client is None
    with pytest.raises(StorageConnectionError, match="not connected"):
        await redis_adapter.session_exists("x")


async def test_store_and_retrieve(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    data = {
        "session_id": session_id,
        "turn_id": 1,
        "content": "Test message",
        "metadata": {"role": "user"},
    }
    record_id = await redis_adapter.store(data)
    assert record_id == f"session:{session_id}:turns:1"
    [stored] = await held(raw, session_id)
    assert stored["content"] == "Test message"
    assert stored["metadata"] == {"role": "user"}
    assert stored["session_id"] == session_id

    retrieved = await redis_adapter.retrieve(record_id)
    assert retrieved == stored
    assert retrieved["turn_id"] == 1
    assert await redis_adapter.retrieve(f"session:{session_id}:turns:2") is None


async def test_store_sets_the_ttl(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": "x"})
    assert 3_500_000 < await raw.pttl(session_key(session_id)) <= 3_600_000


async def test_window_size_limiting(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    for i in range(10):
        await redis_adapter.store({"session_id": session_id, "turn_id": i, "content": f"M {i}"})
    assert await redis_adapter.get_session_size(session_id) == 5
    assert await raw.llen(session_key(session_id)) == 5
    results = await redis_adapter.search({"session_id": session_id, "limit": 10})
    assert [r["turn_id"] for r in results] == [9, 8, 7, 6, 5]
    assert [t["turn_id"] for t in await held(raw, session_id)] == [9, 8, 7, 6, 5]
    assert await redis_adapter.retrieve(f"session:{session_id}:turns:4") is None  # evicted


async def test_search_with_pagination(redis_adapter: RedisAdapter, session_id: str) -> None:
    for i in range(5):
        await redis_adapter.store({"session_id": session_id, "turn_id": i, "content": f"M {i}"})
    first = await redis_adapter.search({"session_id": session_id, "limit": 2})
    assert [r["turn_id"] for r in first] == [4, 3]
    page = await redis_adapter.search({"session_id": session_id, "limit": 2, "offset": 2})
    assert [r["turn_id"] for r in page] == [2, 1]
    last = await redis_adapter.search({"session_id": session_id, "limit": 2, "offset": 4})
    assert [r["turn_id"] for r in last] == [0]
    assert await redis_adapter.search({"session_id": session_id, "offset": 5}) == []


async def test_delete_session(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": "Message"})
    assert await redis_adapter.session_exists(session_id) is True
    assert await redis_adapter.clear_session(session_id) is True
    assert await redis_adapter.session_exists(session_id) is False
    assert await raw.exists(session_key(session_id)) == 0
    assert await redis_adapter.clear_session(session_id) is False


async def test_delete_by_id_one_turn_or_the_session(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    for i in range(3):
        await redis_adapter.store({"session_id": session_id, "turn_id": i, "content": f"M {i}"})
    await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": "again"})
    assert await redis_adapter.delete(f"session:{session_id}:turns:1") is True
    assert [t["turn_id"] for t in await held(raw, session_id)] == [2, 0]  # both copies gone
    assert await redis_adapter.delete(f"session:{session_id}:turns:1") is False
    assert await redis_adapter.delete(f"session:{session_id}:turns") is True
    assert await raw.exists(session_key(session_id)) == 0
    assert await redis_adapter.delete(f"session:{session_id}:turns") is False


async def test_deleting_the_last_turn_removes_the_key(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    rid = await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": "x"})
    assert await redis_adapter.delete(rid) is True
    assert await raw.exists(session_key(session_id)) == 0


async def test_ttl_refresh(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": "Message"})
    await raw.expire(session_key(session_id), 100)  # as if most of a day had passed
    assert await redis_adapter.refresh_ttl(session_id) is True
    assert await raw.pttl(session_key(session_id)) > 3_500_000
    assert await redis_adapter.refresh_ttl(session_id, ttl=50) is True
    assert 0 < await raw.pttl(session_key(session_id)) <= 50_000
    assert await redis_adapter.refresh_ttl(f"{session_id}-absent") is False


async def test_context_manager(redis_url: str) -> None:
    async with RedisAdapter({"url": redis_url, "window_size": 10}) as adapter:
        assert adapter.is_connected
        assert await adapter.session_exists("test-redis-never-written") is False
    assert not adapter.is_connected


async def test_missing_session_id(redis_adapter: RedisAdapter) -> None:
    with pytest.raises(StorageDataError, match="session_id"):
        await redis_adapter.search({})


async def test_settings_and_stack_outputs(redis_url: str, session_id: str) -> None:
    settings = RedisSettings(url=redis_url, window_size=2, ttl_seconds=60)
    async with RedisAdapter(settings) as adapter:
        for i in range(3):
            await adapter.store({"session_id": session_id, "turn_id": i, "content": "x"})
        assert await adapter.get_session_size(session_id) == 2
        await adapter.clear_session(session_id)


async def test_host_port_config(
    redis_url: str, stack_outputs: dict[str, Any], raw: aioredis.Redis, session_id: str
) -> None:
    """The adapter configured by host and port (no URL): the stack's user, over TLS when the
    stack speaks it, trusting the CA given as ``tls_ca``."""
    parts = urlsplit(redis_url)
    config = {
        "host": parts.hostname,
        "port": parts.port,
        "db": int(parts.path.strip("/") or 0),
        "username": unquote(parts.username) if parts.username else None,
        "password": unquote(parts.password) if parts.password else None,
        "tls": parts.scheme == "rediss",
        "tls_ca": stack_outputs.get("tls_ca") if parts.scheme == "rediss" else None,
    }
    async with RedisAdapter(config) as adapter:
        await adapter.cache_turn(session_id, 1, "via host and port")
        assert [t["content"] for t in await held(raw, session_id)] == ["via host and port"]


async def test_domain_api_cache_and_retrieve(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    assert await redis_adapter.cache_turn(session_id, 1, "Hello", {"role": "user"}) == (
        f"session:{session_id}:turns:1"
    )
    await redis_adapter.cache_turn(session_id, 2, "Hi!", {"role": "assistant"})
    turns = await redis_adapter.get_cached_turns(session_id)
    assert [(t["turn_id"], t["content"]) for t in turns] == [(2, "Hi!"), (1, "Hello")]
    assert turns[0]["metadata"] == {"role": "assistant"}
    assert len(await held(raw, session_id)) == 2
    await redis_adapter.clear_session(session_id)
    assert await redis_adapter.get_cached_turns(session_id) == []


async def test_domain_api_ttl_expiration(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    await redis_adapter.cache_turn(session_id, 1, "Expires soon", {}, ttl=1)
    assert 0 < await raw.pttl(session_key(session_id)) <= 1000
    assert len(await redis_adapter.get_cached_turns(session_id)) == 1
    await asyncio.sleep(1.3)
    assert await redis_adapter.get_cached_turns(session_id) == []
    assert await raw.exists(session_key(session_id)) == 0


async def test_backend_metrics(redis_adapter: RedisAdapter) -> None:
    metrics = await redis_adapter.get_metrics()
    backend = metrics["backend_specific"]
    assert backend["redis_version"]
    assert backend["used_memory"] > 0
    assert backend["window_size"] == 5


async def test_clients_are_closed(
    redis_url: str, app_connections: Callable[[], Awaitable[set[int]]]
) -> None:
    """disconnect() really closes the connections it opened (aclose): the server's client
    list (read as the admin) no longer shows them."""
    before = await app_connections()
    adapter = RedisAdapter({"url": redis_url})
    await adapter.connect()
    opened = await app_connections() - before
    assert opened  # the adapter's own connection, seen by the server
    await adapter.disconnect()
    for _ in range(40):  # the server notices the closed socket on its next loop turn
        if not opened & await app_connections():
            break
        await asyncio.sleep(0.05)
    assert not opened & await app_connections()


async def test_session_isolation(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, sessions: Callable[..., str]
) -> None:
    a, b = sessions(), sessions()
    for i in range(3):
        await redis_adapter.store({"session_id": a, "turn_id": i, "content": f"a{i}"})
        await redis_adapter.store({"session_id": b, "turn_id": i, "content": f"b{i}"})
    assert [t["content"] for t in await redis_adapter.search({"session_id": a})] == [
        "a2",
        "a1",
        "a0",
    ]
    assert {t["session_id"] for t in await held(raw, b)} == {b}
    assert (await redis_adapter.retrieve(f"session:{a}:turns:1") or {})["content"] == "a1"
    assert await redis_adapter.clear_session(a) is True
    assert await redis_adapter.get_session_size(b) == 3
    assert await redis_adapter.delete(f"session:{b}:turns:0") is True
    assert await redis_adapter.get_session_size(b) == 2
    assert await raw.exists(session_key(a)) == 0


async def test_window_is_per_session(
    redis_adapter: RedisAdapter, sessions: Callable[..., str]
) -> None:
    busy, quiet = sessions(), sessions()
    await redis_adapter.store({"session_id": quiet, "turn_id": 0, "content": "q"})
    for i in range(8):
        await redis_adapter.store({"session_id": busy, "turn_id": i, "content": "b"})
    assert await redis_adapter.get_session_size(busy) == 5
    assert await redis_adapter.get_session_size(quiet) == 1


async def test_colon_session_ids_stay_apart(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, sessions: Callable[..., str]
) -> None:
    plain = sessions()
    tricky = f"{plain}:turns:1"  # looks like turn 1 of ``plain``
    await redis_adapter.store({"session_id": plain, "turn_id": 1, "content": "plain"})
    await redis_adapter.store({"session_id": tricky, "turn_id": 1, "content": "tricky"})
    sessions_made = [plain, tricky]
    assert await raw.exists(*(session_key(s) for s in sessions_made)) == 2

    tricky_turn = await redis_adapter.retrieve(f"session:{tricky}:turns:1")
    assert tricky_turn is not None
    assert tricky_turn["content"] == "tricky"
    # The session id of ``tricky`` is not a turn of ``plain``: delete drops only that session.
    assert await redis_adapter.delete(f"session:{tricky}:turns") is True
    assert await redis_adapter.get_session_size(plain) == 1
    # And turn 1 of ``plain`` is not the session ``tricky``.
    await redis_adapter.store({"session_id": tricky, "turn_id": 1, "content": "tricky"})
    assert await redis_adapter.delete(f"session:{plain}:turns:1") is True
    assert await redis_adapter.get_session_size(tricky) == 1
    assert await redis_adapter.clear_session(tricky) is True
