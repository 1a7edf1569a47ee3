"""The driver clients: one server (``redis.asyncio.Redis``) or a Redis Cluster (``RedisCluster``).

**Which one.** ``cluster: true``, or ``cluster_nodes`` given: a cluster client seeded with
``cluster_nodes`` (else the url's or host:port's node). ``cluster: false``: one server.
``cluster`` unset and no ``cluster_nodes``: the adapter asks the server of url (or host:port)
at connect, with ``INFO cluster`` in place of the ``PING`` it sends anyway
(:func:`runs_cluster`), and uses a cluster client seeded with that node when it says
``cluster_enabled:1``. So ``RedisAdapter({"url": ...})`` works against one server and against
any node of a cluster alike.

**The cluster client** is redis-py's: it reads the slot map (``CLUSTER SLOTS``) from a seed,
sends each command to its slot's primary, follows ``MOVED`` (and re-reads the map every few) and
``ASK``, and, after a connection error, a ``CLUSTERDOWN`` or an uncovered slot, re-reads the map
and tries again, up to ``retries`` more times: a failover is followed with no new ``connect()``.
Unlike the single-server client it retries after a timeout too (the node may be failing over),
so the adapter gives each session call one deadline, ``socket_timeout``, for all its attempts
(``RedisAdapter._one_call``): a call against a hung or cut-off node fails within it. The
seeds' own connections are closed once the map is read: the nodes' connections serve.
``max_connections`` bounds each node's connections; beyond it a call fails at once
(``StorageConnectionError``): redis-py's cluster client has no waiting pool.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from ._settings import RedisSettings

__all__ = [
    "Client",
    "close",
    "cluster_client",
    "open_cluster",
    "runs_cluster",
    "single_client",
    "tls_options",
]

logger = logging.getLogger(__name__)

Client = aioredis.Redis | RedisCluster
#: redis-py's cluster client needs a number; "unset" means no bound, as on one server.
_UNBOUNDED = 2**31 - 1


def _retry(cfg: RedisSettings) -> Retry:
    """Bounded retries after a connection error, jittered exponential backoff (20-200 ms)."""
    return Retry(
        ExponentialWithJitterBackoff(cap=0.2, base=0.02),
        cfg.retries,
        supported_errors=(rx.ConnectionError,),
    )


def tls_options(cfg: RedisSettings, where: str) -> dict[str, Any]:
    """redis-py's TLS options: the CA of ``tls_ca`` (else the system's), the server's name or
    IP checked, TLS 1.2 at least; with ``tls_insecure`` no check (and a WARNING)."""
    options: dict[str, Any] = {"ssl_min_version": ssl.TLSVersion.TLSv1_2}
    if cfg.tls_insecure:
        cfg.warn_if_insecure(f"redis at {where}")
        options.update(ssl_cert_reqs="none", ssl_check_hostname=False)
    else:
        options.update(ssl_cert_reqs="required", ssl_check_hostname=True, ssl_ca_data=cfg.ca_pem())
    return options


def single_client(cfg: RedisSettings, where: str) -> aioredis.Redis:
    """A client of one server with bounded retries on connection errors and idle health
    checks; a bounded pool (``max_connections``) makes callers wait, not fail."""
    options: dict[str, Any] = {
        "socket_timeout": cfg.socket_timeout,
        "socket_connect_timeout": cfg.socket_timeout,
        # Timeouts are not retried: an outage must fail within about socket_timeout.
        "retry": _retry(cfg),
        "health_check_interval": cfg.health_check_interval,
        "max_connections": cfg.max_connections,
    }
    if cfg.username is not None:
        options["username"] = cfg.username
    if cfg.password is not None:
        options["password"] = cfg.password.get_secret_value()
    if cfg.uses_tls():
        options.update(tls_options(cfg, where))
    url = cfg.url.get_secret_value() if cfg.url is not None else None
    if cfg.max_connections is None:
        if url:
            return aioredis.Redis.from_url(url, **options)
        return aioredis.Redis(host=cfg.host, port=cfg.port, db=cfg.db, ssl=cfg.tls, **options)
    # A bounded pool must make callers wait, not fail: redis-py's plain pool raises
    # MaxConnectionsError as soon as every connection is in use.
    options["timeout"] = cfg.pool_timeout
    if url:
        pool = aioredis.BlockingConnectionPool.from_url(url, **options)
    else:
        if cfg.tls:
            options["connection_class"] = aioredis.SSLConnection
        pool = aioredis.BlockingConnectionPool(host=cfg.host, port=cfg.port, db=cfg.db, **options)
    return aioredis.Redis.from_pool(pool)


def cluster_client(cfg: RedisSettings, where: str) -> RedisCluster:
    """A Redis Cluster client seeded with :meth:`RedisSettings.seed_nodes`; the user, the
    password and TLS come from the url (or ``username``, ``password``, ``tls``)."""
    username, password = cfg.username, cfg.password.get_secret_value() if cfg.password else None
    if cfg.url is not None:
        parts = urlsplit(cfg.url.get_secret_value())
        username = username or (unquote(parts.username) if parts.username else None)
        password = password or (unquote(parts.password) if parts.password else None)
    options: dict[str, Any] = {
        "socket_timeout": cfg.socket_timeout,
        "socket_connect_timeout": cfg.socket_timeout,
        "health_check_interval": cfg.health_check_interval,
        "max_connections": cfg.max_connections or _UNBOUNDED,
        "retry": _retry(cfg),  # the cluster client reads only its count (see the docstring)
        "require_full_coverage": False,  # one shard failing over leaves the others serving
        "username": username,
        "password": password,
    }
    if cfg.uses_tls():
        options.update(ssl=True, **tls_options(cfg, where))
    remap = cfg.address_remap()
    if remap:  # nodes behind NAT or a proxy: connect where they are reachable
        options["address_remap"] = lambda address: remap.get(address, address)
    seeds = [ClusterNode(host, port) for host, port in cfg.seed_nodes()]
    return RedisCluster(startup_nodes=seeds, **options)


async def open_cluster(client: RedisCluster) -> None:
    """Read the slot map, then close the seeds' own connections (the nodes' serve)."""
    await client.initialize()
    seeds = list(client.startup_nodes)
    await asyncio.gather(*(node.disconnect() for node in seeds), return_exceptions=True)


async def close(client: Client) -> None:
    """Close every connection of ``client``. A cluster client's ``aclose()`` does nothing while
    a failure has marked its slot map stale (it would re-read it on the next command), so its
    nodes' and seeds' connections are closed here in any case."""
    await client.aclose()
    if isinstance(client, RedisCluster):
        nodes = [*client.get_nodes(), *client.startup_nodes]
        await asyncio.gather(*(node.disconnect() for node in nodes), return_exceptions=True)


async def runs_cluster(client: aioredis.Redis) -> bool:
    """Whether the server runs in cluster mode: ``INFO cluster`` (also the connect check).

    A user not allowed ``INFO`` gets a ``PING`` instead and counts as one server.
    """
    try:
        info = await client.info("cluster")
    except rx.NoPermissionError:
        logger.debug("INFO refused: cannot tell whether Redis runs in cluster mode; PING")
        await client.ping()
        return False
    return bool(info.get("cluster_enabled"))
