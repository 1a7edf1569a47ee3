"""Fixtures for the RedisAdapter integration tests against the real local Redis.

Every session id of this run starts with ``RUN`` and, per test, with a token of that test, so
the guard can check, after each test and after the whole run, that no key it created is left.

The same tests run against a Redis Cluster (``scripts/test-cluster``): the outputs then name
its nodes (``redis_cluster_nodes``), the adapters built from ``redis_url`` find the cluster by
themselves, and the operator's client that looks at what Redis holds (``raw``) is redis-py's
cluster client: a one-server client would be answered ``MOVED`` for every key of another node.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from mas_storage_redis import RedisAdapter, session_key

RUN = f"test-redis-{uuid.uuid4().hex[:8]}"


def admin_client(url: str, cluster: bool) -> Any:
    """The operator's client of ``url``: a cluster client on a Redis Cluster."""
    if cluster:
        return RedisCluster.from_url(url)
    return aioredis.Redis.from_url(url)


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
def redis_cluster(stack_outputs: dict[str, Any]) -> bool:
    """Whether the stack's Redis is a cluster (its outputs name the nodes)."""
    return bool(stack_outputs.get("redis_cluster_nodes"))


@pytest.fixture(scope="session")
async def run_guard(redis_admin_url: str, redis_cluster: bool) -> AsyncIterator[None]:
    """After the whole run: no key of this run is left in Redis."""
    yield
    raw = admin_client(redis_admin_url, redis_cluster)
    try:
        left = await _leftovers(raw, RUN)
        if left:
            await raw.delete(*left)
        assert not left, f"keys left behind by the Redis tests: {left[:10]}"
    finally:
        await raw.aclose()


@pytest.fixture
async def raw(redis_admin_url: str, redis_cluster: bool) -> AsyncIterator[aioredis.Redis]:
    """A plain driver client (the admin user), to look at what Redis really holds."""
    client = admin_client(redis_admin_url, redis_cluster)
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
def proxy_routes() -> dict[str, str]:
    """On a cluster, the :func:`proxy` fixture's routes: node address -> its proxy's."""
    return {}


@pytest.fixture
async def make_adapter(
    redis_url: str, proxy_routes: dict[str, str]
) -> AsyncIterator[Callable[..., Any]]:
    """``await make_adapter(**config)``: a connected adapter, disconnected after the test.

    An adapter given the loopback proxy's URL (:func:`proxied_url`) on a stack whose Redis is
    on a simulated host connects with ``tls_insecure``: the server's certificate names its
    host's IP, not the proxy's 127.0.0.1. Those tests are about outages; verification of the
    certificate is ``tests/integration/test_tls.py``'s, and the loopback stack keeps it on.
    On a cluster, an adapter given a proxy's URL reaches every node through its proxy
    (``cluster_address_map``): the nodes announce their own addresses."""
    made: list[RedisAdapter] = []
    server = urlsplit(redis_url).hostname

    async def build(**config: Any) -> RedisAdapter:
        url = str(config.get("url", redis_url))
        parts = urlsplit(url)
        if f"{parts.hostname}:{parts.port}" in proxy_routes.values():
            config.setdefault("cluster_address_map", proxy_routes)
        if url.startswith("rediss://") and parts.hostname != server:
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


class ClusterProxy:
    """One :class:`TcpProxy` per node of a Redis Cluster, driven together: the cluster looks
    hung, cut or down as a whole. ``port`` is the proxy of ``redis_url``'s node."""

    def __init__(self, nodes: list[str], seed: str) -> None:
        self.proxies = {}
        for node in nodes:
            host, _, port = node.rpartition(":")
            self.proxies[node] = TcpProxy(host, int(port))
        self.seed = seed
        self.port = 0

    def routes(self) -> dict[str, str]:
        return {node: f"127.0.0.1:{p.port}" for node, p in self.proxies.items()}

    async def start(self) -> None:
        await asyncio.gather(*(p.start() for p in self.proxies.values()))
        self.port = self.proxies[self.seed].port

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self.proxies.values()))

    def cut(self) -> None:
        for p in self.proxies.values():
            p.cut()

    def freeze(self) -> None:
        for p in self.proxies.values():
            p.freeze()

    def thaw(self) -> None:
        for p in self.proxies.values():
            p.thaw()


@pytest.fixture
async def proxy(
    redis_url: str,
    redis_cluster: bool,
    stack_outputs: dict[str, Any],
    proxy_routes: dict[str, str],
) -> AsyncIterator[TcpProxy | ClusterProxy]:
    """A proxy in front of Redis: of its one server, or of every node of its cluster."""
    parts = urlsplit(redis_url)
    server: TcpProxy | ClusterProxy
    if redis_cluster:
        server = ClusterProxy(
            list(stack_outputs["redis_cluster_nodes"]), parts.netloc.rpartition("@")[2]
        )
    else:
        server = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379)
    await server.start()
    if isinstance(server, ClusterProxy):
        proxy_routes.update(server.routes())
    yield server
    server.thaw()
    await server.stop()


@pytest.fixture
def proxied_url(redis_url: str, proxy: TcpProxy | ClusterProxy) -> str:
    """``redis_url`` pointed at the proxy."""
    parts = urlsplit(redis_url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@127.0.0.1:{proxy.port}" if userinfo else f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=netloc))
