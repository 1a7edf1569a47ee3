"""The spec's 3A.2 (TTL on read) and 3A.3 (edge cases), batches, failures and recovery."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis

from mas_storage import StorageConnectionError, StorageDataError, StorageTimeoutError
from mas_storage_redis import RedisAdapter, session_key


async def held(raw: aioredis.Redis, session_id: str) -> list[dict[str, Any]]:
    return [json.loads(item) for item in await raw.lrange(session_key(session_id), 0, -1)]


def with_password(url: str, password: str | None) -> str:
    """``url`` with its user's password replaced (``None``: no credentials at all)."""
    parts = urlsplit(url)
    host = f"{parts.hostname}:{parts.port}"
    netloc = host if password is None else f"{parts.username or ''}:{password}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))


# -- 3A.2: TTL on read, read back with PTTL ----------------------------------------------------


async def test_reads_leave_the_ttl_alone_by_default(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    assert redis_adapter.refresh_ttl_on_read is False
    rid = await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": "x"})
    await raw.expire(session_key(session_id), 100)  # as if the session had aged
    await redis_adapter.search({"session_id": session_id})
    await redis_adapter.retrieve(rid)
    await redis_adapter.get_cached_turns(session_id)
    assert 0 < await raw.pttl(session_key(session_id)) <= 100_000


async def test_reads_extend_the_ttl_when_enabled(
    make_adapter: Callable[..., Any], raw: aioredis.Redis, session_id: str
) -> None:
    adapter = await make_adapter(window_size=5, ttl_seconds=3600, refresh_ttl_on_read=True)
    key = session_key(session_id)
    rid = await adapter.store({"session_id": session_id, "turn_id": 1, "content": "x"})
    for read in (
        lambda: adapter.search({"session_id": session_id}),
        lambda: adapter.retrieve(rid),
        lambda: adapter.get_cached_turns(session_id, limit=1),
    ):
        await raw.expire(key, 100)
        await read()
        assert await raw.pttl(key) > 3_500_000
    # Reading a session that does not exist creates nothing.
    assert await adapter.search({"session_id": f"{session_id}-absent"}) == []
    assert await raw.exists(session_key(f"{session_id}-absent")) == 0


# -- 3A.3: concurrency ---------------------------------------------------------------------------


async def test_concurrent_writes_same_session(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    results = await asyncio.gather(
        *(
            redis_adapter.store(
                {"session_id": session_id, "turn_id": i, "content": f"Concurrent {i}"}
            )
            for i in range(10)
        )
    )
    assert sorted(results) == sorted(f"session:{session_id}:turns:{i}" for i in range(10))
    assert await redis_adapter.get_session_size(session_id) == redis_adapter.window_size
    kept = await held(raw, session_id)  # whole, valid turns only: no corruption
    assert len({t["turn_id"] for t in kept}) == 5
    assert all(t["content"] == f"Concurrent {t['turn_id']}" for t in kept)


async def test_concurrent_writes_lose_nothing(
    make_adapter: Callable[..., Any], raw: aioredis.Redis, session_id: str
) -> None:
    adapter = await make_adapter(window_size=100)
    await asyncio.gather(
        *(adapter.cache_turn(session_id, i, f"m{i}") for i in range(40)),
    )
    assert sorted(t["turn_id"] for t in await held(raw, session_id)) == list(range(40))


async def test_concurrent_reads(redis_adapter: RedisAdapter, session_id: str) -> None:
    for i in range(5):
        await redis_adapter.store({"session_id": session_id, "turn_id": i, "content": f"M {i}"})
    results = await asyncio.gather(
        *(redis_adapter.search({"session_id": session_id, "limit": 5}) for _ in range(20))
    )
    assert len(results) == 20
    assert all(r == results[0] for r in results)
    assert [t["turn_id"] for t in results[0]] == [4, 3, 2, 1, 0]


# -- 3A.3: payloads ------------------------------------------------------------------------------


async def test_large_content(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    large = "x" * (1024 * 1024)
    rid = await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": large})
    stored = await raw.lindex(session_key(session_id), 0)
    assert stored is not None
    assert len(stored) > 1024 * 1024
    retrieved = await redis_adapter.retrieve(rid)
    assert retrieved is not None
    assert retrieved["content"] == large


async def test_large_metadata(redis_adapter: RedisAdapter, session_id: str) -> None:
    metadata = {
        "nested": {"level1": {"level2": {"level3": {"data": ["item"] * 1000}}}},
        "list": list(range(1000)),
        "strings": {f"key_{i}": f"value_{i}" for i in range(100)},
    }
    rid = await redis_adapter.store(
        {"session_id": session_id, "turn_id": 1, "content": "Test", "metadata": metadata}
    )
    retrieved = await redis_adapter.retrieve(rid)
    assert retrieved is not None
    assert retrieved["metadata"] == metadata


@pytest.mark.parametrize(
    "content",
    [
        "",
        "Test\n\t\r\x00emoji🎉unicode中文",
        'quotes " \' \\ and json {"a": [1]}',
        "lone surrogate \ud800 survives",
        "\u202eright-to-left\u202c and zero\u200bwidth",
    ],
)
async def test_special_and_empty_content(
    redis_adapter: RedisAdapter, session_id: str, content: str
) -> None:
    rid = await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": content})
    retrieved = await redis_adapter.retrieve(rid)
    assert retrieved is not None
    assert retrieved["content"] == content
    [found] = await redis_adapter.search({"session_id": session_id})
    assert found["content"] == content


async def test_unicode_session_ids(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, sessions: Callable[..., str]
) -> None:
    sid = sessions(":会话:🎉 with spaces")
    rid = await redis_adapter.store({"session_id": sid, "turn_id": 3, "content": "x"})
    assert await raw.exists(session_key(sid)) == 1
    assert (await redis_adapter.retrieve(rid) or {})["session_id"] == sid


# -- 3A.3: errors and boundaries -----------------------------------------------------------------


async def test_invalid_turn_id_format(redis_adapter: RedisAdapter) -> None:
    with pytest.raises(StorageDataError, match="Malformed"):
        await redis_adapter.retrieve("invalid:id:format")
    with pytest.raises(StorageDataError, match="Malformed"):
        await redis_adapter.retrieve("session:x:turns:one")


async def test_nonexistent_session(redis_adapter: RedisAdapter) -> None:
    assert await redis_adapter.search({"session_id": "test-redis-nonexistent", "limit": 10}) == []
    assert await redis_adapter.get_session_size("test-redis-nonexistent") == 0
    assert await redis_adapter.retrieve("session:test-redis-nonexistent:turns:1") is None


async def test_delete_nonexistent_session(redis_adapter: RedisAdapter) -> None:
    assert await redis_adapter.delete("session:test-redis-nonexistent:turns") is False
    assert await redis_adapter.delete("session:test-redis-nonexistent:turns:1") is False


async def test_zero_window_size(
    make_adapter: Callable[..., Any], raw: aioredis.Redis, session_id: str
) -> None:
    adapter = await make_adapter(window_size=0)
    await adapter.store({"session_id": session_id, "turn_id": 1, "content": "Test"})
    await adapter.store_many([{"session_id": session_id, "turn_id": 2, "content": "Test"}])
    assert await adapter.get_session_size(session_id) == 0
    assert await raw.exists(session_key(session_id)) == 0


async def test_negative_offset_counts_from_the_oldest(
    redis_adapter: RedisAdapter, session_id: str
) -> None:
    for i in range(5):
        await redis_adapter.store({"session_id": session_id, "turn_id": i, "content": f"M {i}"})

    async def ids(limit: int, offset: int) -> list[int]:
        query = {"session_id": session_id, "limit": limit, "offset": offset}
        return [t["turn_id"] for t in await redis_adapter.search(query)]

    assert await ids(5, -1) == [0]  # the oldest
    assert await ids(5, -2) == [1, 0]
    assert await ids(2, -4) == [3, 2]
    assert await ids(5, -10) == [4, 3, 2, 1, 0]  # past the end: from the head


async def test_corrupt_entry_is_a_data_error(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    rid = await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": "x"})
    await raw.lpush(session_key(session_id), b"{not json")
    with pytest.raises(StorageDataError, match="Corrupt entry"):
        await redis_adapter.search({"session_id": session_id})
    with pytest.raises(StorageDataError, match="Corrupt entry"):
        await redis_adapter.retrieve(rid)
    not_utf8: Any = b"\xff\xfe not utf-8"
    await raw.lset(session_key(session_id), 0, not_utf8)
    with pytest.raises(StorageDataError, match="Corrupt entry"):
        await redis_adapter.search({"session_id": session_id})
    # The connection is still usable afterwards.
    assert await redis_adapter.get_session_size(session_id) == 2


async def test_a_non_list_key_is_a_data_error(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    key = session_key(session_id)
    await raw.set(key, b"a string, not a list")
    with pytest.raises(StorageDataError, match="not a list"):
        await redis_adapter.search({"session_id": session_id})
    with pytest.raises(StorageDataError, match="not a list"):
        await redis_adapter.store({"session_id": session_id, "turn_id": 1, "content": "x"})
    assert await raw.get(key) == b"a string, not a list"


async def test_bad_input_writes_nothing(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, session_id: str
) -> None:
    with pytest.raises(StorageDataError):
        await redis_adapter.store(
            {"session_id": session_id, "turn_id": 1, "content": "x", "metadata": {"s": {1}}}
        )
    batch = [{"session_id": session_id, "turn_id": i, "content": "x"} for i in range(3)]
    batch.append({"session_id": session_id, "turn_id": 3})
    with pytest.raises(StorageDataError, match=r"turns\[3\]"):
        await redis_adapter.store_many(batch)
    assert await raw.exists(session_key(session_id)) == 0


# -- store_many ----------------------------------------------------------------------------------


async def test_store_many_across_50_sessions(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, sessions: Callable[..., str]
) -> None:
    sids = [sessions() for _ in range(50)]
    turns = [
        {"session_id": sid, "turn_id": turn, "content": f"{sid}/{turn}"}
        for turn in range(8)
        for sid in sids
    ]
    ids = await redis_adapter.store_many(turns)
    assert ids == [f"session:{t['session_id']}:turns:{t['turn_id']}" for t in turns]
    for sid in sids:
        kept = await held(raw, sid)
        assert [t["turn_id"] for t in kept] == [7, 6, 5, 4, 3]  # window 5, newest first
        assert all(t["content"] == f"{sid}/{t['turn_id']}" for t in kept)
        assert 3_500_000 < await raw.pttl(session_key(sid)) <= 3_600_000
    # A second batch on top of what is there keeps the window.
    await redis_adapter.store_many(
        [{"session_id": sids[0], "turn_id": 8 + i, "content": "more"} for i in range(2)]
    )
    assert [t["turn_id"] for t in await held(raw, sids[0])] == [9, 8, 7, 6, 5]


async def test_store_many_refuses_a_non_list_key_before_writing_any_session(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, sessions: Callable[..., str]
) -> None:
    good, bad = sessions(), sessions()
    await raw.set(session_key(bad), b"a string, not a list")
    turns = [{"session_id": sid, "turn_id": 1, "content": "x"} for sid in (good, bad)]
    with pytest.raises(StorageDataError, match="not a list"):
        await redis_adapter.store_many(turns)
    # The script checks every key first: the session before the bad one got nothing either.
    assert await raw.exists(session_key(good)) == 0
    assert await raw.get(session_key(bad)) == b"a string, not a list"


async def test_replaying_a_batch_caches_each_turn_once(
    redis_adapter: RedisAdapter, raw: aioredis.Redis, sessions: Callable[..., str]
) -> None:
    sids = [sessions() for _ in range(3)]
    stamp = "2025-10-20T10:00:00+00:00"  # a retry sends the very same entries
    batch = [
        {"session_id": sid, "turn_id": t, "content": f"{sid}/{t}", "timestamp": stamp}
        for t in range(3)
        for sid in sids
    ]
    await redis_adapter.store_many(batch)
    await redis_adapter.store_many(batch)
    await redis_adapter.store(batch[0])
    for sid in sids:
        kept = [t["turn_id"] for t in await held(raw, sid)]
        assert sorted(kept) == [0, 1, 2]
    # The replayed single store moved its entry to the head, still one copy.
    assert [t["turn_id"] for t in await held(raw, sids[0])] == [0, 2, 1]


@pytest.mark.parametrize("replayed", [3, 7, 8, 1500])
async def test_a_large_replay_into_a_long_window_keeps_one_copy_in_order(
    redis_url: str, raw: aioredis.Redis, session_id: str, replayed: int
) -> None:
    """Both de-duplication paths of the write script (one LREM per payload up to 8; one
    LRANGE pass and a rebuild beyond, which also crosses a 1,000-value RPUSH chunk): the
    replayed turns move to the head once each, the others keep their order, the TTL stays."""
    stamp = "2025-10-20T10:00:00+00:00"
    turns = [
        {"session_id": session_id, "turn_id": i, "content": f"t{i}", "timestamp": stamp}
        for i in range(3000)
    ]
    async with RedisAdapter({"url": redis_url, "window_size": 5000, "ttl_seconds": 600}) as a:
        await a.store_many(turns)
        # Replay a block from the middle of the list, plus one new turn.
        block = turns[1000 : 1000 + replayed]
        fresh = {"session_id": session_id, "turn_id": 9999, "content": "new", "timestamp": stamp}
        await a.store_many([*block, fresh])
    kept = [t["turn_id"] for t in await held(raw, session_id)]
    moved = list(range(1000, 1000 + replayed))
    rest = [i for i in range(2999, -1, -1) if not 1000 <= i < 1000 + replayed]
    assert kept == [9999, *reversed(moved), *rest]
    assert 0 < await raw.ttl(session_key(session_id)) <= 600


async def test_a_large_batch_without_duplicates_leaves_the_list_as_it_was(
    redis_url: str, raw: aioredis.Redis, session_id: str
) -> None:
    async with RedisAdapter({"url": redis_url, "window_size": 100}) as adapter:
        await adapter.store_many(
            [{"session_id": session_id, "turn_id": i, "content": "a"} for i in range(60)]
        )
        await adapter.store_many(
            [{"session_id": session_id, "turn_id": i, "content": "b"} for i in range(60, 120)]
        )
    kept = [(t["turn_id"], t["content"]) for t in await held(raw, session_id)]
    assert kept == [(i, "b") for i in range(119, 59, -1)] + [(i, "a") for i in range(59, 19, -1)]


async def test_store_many_pushes_more_than_one_lua_chunk(
    redis_url: str, raw: aioredis.Redis, session_id: str
) -> None:
    # The script pushes 1,000 values per LPUSH (Lua's unpack() is bounded): cross that line.
    async with RedisAdapter({"url": redis_url, "window_size": 2500}) as adapter:
        turns = [{"session_id": session_id, "turn_id": i, "content": "x"} for i in range(2345)]
        await adapter.store_many(turns)
    kept = [t["turn_id"] for t in await held(raw, session_id)]
    assert kept == list(range(2344, -1, -1))


# -- connection failures and recovery ------------------------------------------------------------


async def test_wrong_password_is_a_connection_error(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "wrong-Password-123"
    adapter = RedisAdapter({"url": with_password(redis_url, bad)})
    with caplog.at_level(logging.DEBUG), pytest.raises(StorageConnectionError) as info:
        await adapter.connect()
    assert "refused the credentials" in str(info.value)
    assert "redis connect failed" in caplog.text  # the failure was logged ...
    real = urlsplit(redis_url).password or "no-password-configured"
    for secret in (bad, real):  # ... without any password, as was the error
        assert secret not in str(info.value)
        assert secret not in caplog.text
        assert secret not in repr(adapter)
    assert not adapter.is_connected
    assert adapter.client is None


async def test_missing_password_is_a_connection_error(redis_url: str) -> None:
    if not urlsplit(redis_url).password:
        pytest.skip("this Redis has no password")
    with pytest.raises(StorageConnectionError):
        await RedisAdapter({"url": with_password(redis_url, None)}).connect()


async def test_refused_connection_is_a_connection_error() -> None:
    adapter = RedisAdapter({"url": "redis://127.0.0.1:1/0", "socket_timeout": 1})
    with pytest.raises(StorageConnectionError, match="connect"):
        await adapter.connect()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that accepts and never answers: the port."""
    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        while await reader.read(1024):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()


async def test_silent_server_is_a_timeout(silent_server: int) -> None:
    adapter = RedisAdapter({"url": f"redis://127.0.0.1:{silent_server}/0", "socket_timeout": 0.3})
    with pytest.raises(StorageTimeoutError):
        await adapter.connect()
    assert adapter.client is None


async def test_hung_server_is_a_timeout_then_recovers(
    make_adapter: Callable[..., Any], proxy: Any, proxied_url: str, session_id: str
) -> None:
    adapter = await make_adapter(url=proxied_url, socket_timeout=0.3)
    await adapter.cache_turn(session_id, 1, "before")
    proxy.freeze()
    with pytest.raises(StorageTimeoutError):
        await adapter.get_cached_turns(session_id)
    with pytest.raises(StorageTimeoutError):
        await adapter.cache_turn(session_id, 2, "during")
    proxy.thaw()
    turns = await adapter.get_cached_turns(session_id)
    assert turns[-1]["content"] == "before"


async def test_dropped_connections_are_recovered(
    make_adapter: Callable[..., Any], proxy: Any, proxied_url: str, session_id: str
) -> None:
    adapter = await make_adapter(url=proxied_url)
    await asyncio.gather(*(adapter.cache_turn(session_id, i, "x") for i in range(4)))
    proxy.cut()  # every pooled connection dies, as in a restart
    assert await adapter.get_session_size(session_id) == 4
    await adapter.cache_turn(session_id, 9, "after")
    assert await adapter.get_session_size(session_id) == 5


async def test_outage_fails_then_the_same_adapter_recovers(
    make_adapter: Callable[..., Any],
    raw: aioredis.Redis,
    proxy: Any,
    proxied_url: str,
    session_id: str,
) -> None:
    adapter = await make_adapter(url=proxied_url, socket_timeout=1)
    await adapter.cache_turn(session_id, 1, "before")
    await proxy.stop()  # Redis is unreachable: connections refused
    with pytest.raises(StorageConnectionError):
        await adapter.get_cached_turns(session_id)
    with pytest.raises(StorageConnectionError):
        await adapter.cache_turn(session_id, 2, "lost")
    assert adapter.is_connected  # still the same adapter, not torn down
    await proxy.start()  # back, on the same port
    assert [t["content"] for t in await adapter.get_cached_turns(session_id)] == ["before"]
    await adapter.cache_turn(session_id, 3, "after")
    assert [t["turn_id"] for t in await held(raw, session_id)] == [3, 1]


async def test_killed_connection_is_recovered_by_the_driver(
    make_adapter: Callable[..., Any],
    raw: aioredis.Redis,
    app_connections: Callable[[], Awaitable[set[int]]],
    session_id: str,
) -> None:
    """A server-side disconnect (as in a restart) is retried: the next call succeeds."""
    before = await app_connections()
    adapter = await make_adapter()
    await adapter.cache_turn(session_id, 1, "before")
    [conn_id] = await app_connections() - before  # the adapter's one connection
    killed = await raw.client_kill_filter(_id=conn_id)
    assert killed == 1
    assert [t["content"] for t in await adapter.get_cached_turns(session_id)] == ["before"]
    await adapter.cache_turn(session_id, 2, "after")
    assert [t["turn_id"] for t in await held(raw, session_id)] == [2, 1]
