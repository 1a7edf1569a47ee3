"""Fixtures for the RedisAdapter integration tests against the real local Redis.

Every session id of this run starts with ``RUN`` and, per test, with a token of that test, so
the guard can check, after each test and after the whole run, that no key it created is left.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis

from mas_storage_redis import RedisAdapter, session_key

RUN = f"test-redis-{uuid.uuid4().hex[:8]}"


async def _leftovers(raw: aioredis.Redis, prefix: str) -> list[bytes]:
    return [key async for key in raw.scan_iter(match=f"session:{prefix}*", count=1000)]


@pytest.fixture(scope="session")
def redis_url(stack_outputs: dict[str, Any]) -> str:
    url = stack_outputs.get("redis_url")
    assert url, "the stack outputs have no redis_url"
    return str(url)


@pytest.fixture(scope="session")
def redis_admin_url(stack_admin: dict[str, Any], redis_url: str) -> str:
    """The operator's URL (admin outputs): the bare client that looks at and cleans up what
    Redis holds (SCAN and the rest, which the adapter's ACL user may not send)."""
    return str(stack_admin.get("redis_admin_url") or redis_url)


@pytest.fixture(scope="session")
async def run_guard(redis_admin_url: str) -> AsyncIterator[None]:
    """After the whole run: no key of this run is left in Redis."""
    yield
    raw = aioredis.Redis.from_url(redis_admin_url)
    try:
        left = await _leftovers(raw, RUN)
        if left:
            await raw.delete(*left)
        assert not left, f"keys left behind by the Redis tests: {left[:10]}"
    finally:
        await raw.aclose()


@pytest.fixture
async def raw(redis_admin_url: str) -> AsyncIterator[aioredis.Redis]:
    """A plain driver client (the admin user), to look at what Redis really holds."""
    client = aioredis.Redis.from_url(redis_admin_url)
    yield client
    await client.aclose()


@pytest.fixture
def app_connections(
    raw: aioredis.Redis, redis_url: str
) -> Callable[[], Coroutine[Any, Any, set[int]]]:
    """``await app_connections()``: the ids of the server's connections of the adapter's user
    (the URL's), read as the admin (the adapter's user may not send ``CLIENT``). A test takes
    them before and after it connects an adapter: the difference is the adapter's."""
    user = unquote(urlsplit(redis_url).username or "") or "default"

    async def ids() -> set[int]:
        return {int(c["id"]) for c in await raw.client_list() if c.get("user") == user}

    return ids


@pytest.fixture
async def key_guard(raw: aioredis.Redis, run_guard: None) -> AsyncIterator[str]:
    """The test's session-id prefix; after the test, no key with it may remain."""
    prefix = f"{RUN}-{uuid.uuid4().hex[:10]}"
    yield prefix
    left = await _leftovers(raw, prefix)
    if left:
        await raw.delete(*left)
    assert not left, f"test left keys behind: {left[:10]}"


@pytest.fixture
async def sessions(key_guard: str, raw: aioredis.Redis) -> AsyncIterator[Callable[..., str]]:
    """``sessions(suffix="")`` returns a fresh session id, deleted after the test."""
    made: list[str] = []

    def new(suffix: str = "") -> str:
        sid = f"{key_guard}-{len(made)}{suffix}"
        made.append(sid)
        return sid

    yield new
    if made:
        await raw.delete(*(session_key(sid) for sid in made))


@pytest.fixture
def session_id(sessions: Callable[..., str]) -> str:
    return sessions()


@pytest.fixture
async def make_adapter(redis_url: str) -> AsyncIterator[Callable[..., Any]]:
    """``await make_adapter(**config)``: a connected adapter, disconnected after the test.

    An adapter given the loopback proxy's URL (:func:`proxied_url`) on a stack whose Redis is
    on a simulated host connects with ``tls_insecure``: the server's certificate names its
    host's IP, not the proxy's 127.0.0.1. Those tests are about outages; verification of the
    certificate is ``tests/integration/test_tls.py``'s, and the loopback stack keeps it on."""
    made: list[RedisAdapter] = []
    server = urlsplit(redis_url).hostname

    async def build(**config: Any) -> RedisAdapter:
        url = str(config.get("url", redis_url))
        if url.startswith("rediss://") and urlsplit(url).hostname != server:
            config.setdefault("tls_insecure", True)
        adapter = RedisAdapter({"url": redis_url, **config})
        await adapter.connect()
        made.append(adapter)
        return adapter

    yield build
    for adapter in made:
        await adapter.disconnect()


@pytest.fixture
async def redis_adapter(make_adapter: Callable[..., Any]) -> RedisAdapter:
    """The spec's fixture: window 5, TTL one hour."""
    return await make_adapter(window_size=5, ttl_seconds=3600)  # type: ignore[no-any-return]


class TcpProxy:
    """A loopback TCP proxy in front of Redis that a test can freeze, cut or stop.

    It simulates a hung server (replies held back), dropped connections and an outage with a
    restart on the same port, without touching the shared Redis itself.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and cut every connection: Redis looks down.

        The connections are cut before ``wait_closed()``: since Python 3.12.1 it waits for every
        accepted connection to end (3.11 returned at once), and the adapter's pool keeps its
        connections open.
        """
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def cut(self) -> None:
        """Drop every open connection (as a server restart does)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def freeze(self) -> None:
        """Hold back the server's replies: Redis looks hung."""
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for task in (
            asyncio.create_task(self._pipe(reader, up_writer, hold=False)),
            asyncio.create_task(self._pipe(up_reader, writer, hold=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, hold: bool
    ) -> None:
        try:
            while data := await reader.read(65536):
                if hold:
                    await self.flowing.wait()
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


@pytest.fixture
async def proxy(redis_url: str) -> AsyncIterator[TcpProxy]:
    parts = urlsplit(redis_url)
    server = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await server.start()
    yield server
    server.thaw()
    await server.stop()


@pytest.fixture
def proxied_url(redis_url: str, proxy: TcpProxy) -> str:
    """``redis_url`` pointed at the proxy."""
    parts = urlsplit(redis_url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))
