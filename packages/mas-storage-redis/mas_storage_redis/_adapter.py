"""Redis adapter: the L1 turn cache, a sliding window of each session's recent turns with a TTL.

Each session's recent turns live in one Redis LIST, ``session:{session_id}:turns``, most recent
first, as compact JSON objects. A write is one ``EVAL`` of the write script
(:mod:`._writes`; one for a whole ``store_many`` batch on one server, one per hash slot on a
Redis Cluster): atomic on the server, it de-duplicates, pushes, trims to ``window_size`` and
sets the TTL. A read is one ``LRANGE`` (plus ``EXPIRE`` in the same round trip when
``refresh_ttl_on_read`` is on).

**One server or a Redis Cluster** (:mod:`._connection`): the same adapter, the same keys and
the same calls; redis-py's ``RedisCluster`` routes each command to its slot's primary and
follows ``MOVED``/``ASK`` and failovers by itself, with no new ``connect()``.

Performance is measured by ``tests/benchmarks/bench_redis.py`` against the raw driver doing the
same work (``scripts/bench`` writes the report, ``docs/benchmarks.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster

from mas_storage import (
    DatabaseFacts,
    StorageAdapter,
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageQueryError,
    StorageTimeoutError,
    validate_required_fields,
)

from ._connection import (
    Client,
    close,
    cluster_client,
    open_cluster,
    runs_cluster,
    single_client,
)
from ._keys import KEY_PREFIX, KEY_SUFFIX, parse_record_id, session_key
from ._settings import MAX_TTL, RedisSettings
from ._turns import decode_turn, decode_turns, encode_turn, list_range
from ._writes import PUSH_SCRIPT, Wait, push

__all__ = ["RedisAdapter"]

logger = logging.getLogger(__name__)

_REQUIRED = ("session_id", "turn_id", "content")
#: The one-server client's calls need no deadline of their own: it never retries a timeout.
_NO_DEADLINE: contextlib.AbstractAsyncContextManager[object] = contextlib.nullcontext()
_SEARCH_KEYS = frozenset({"session_id", "limit", "offset"})

#: Driver exception -> storage error; the first match wins (subclasses before their bases).
_ERROR_RULES: tuple[tuple[type[Exception], type[StorageError]], ...] = (
    (rx.TimeoutError, StorageTimeoutError),
    (rx.ConnectionError, StorageConnectionError),  # includes AuthenticationError, BusyLoading
    (rx.ClusterDownError, StorageConnectionError),  # a cluster failing over: unavailable now
    (rx.TryAgainError, StorageConnectionError),  # a slot in migration: transient
    (rx.NoPermissionError, StorageConnectionError),  # ACL refused these credentials the command
    (rx.InvalidResponse, StorageConnectionError),  # protocol garbage: the connection is unusable
    (rx.DataError, StorageDataError),  # the driver refused an argument
    (rx.RedisError, StorageQueryError),  # ResponseError and the rest
)


class RedisAdapter(StorageAdapter):
    """L1 cache of each session's most recent conversation turns, on Redis.

    Configuration: a :class:`~mas_storage_redis.RedisSettings` (every key, its default and
    bounds; ``None`` reads it from ``REDIS_*``, ``.env`` and the stack outputs), or a mapping
    or URL string validated by it. ``url`` wins over ``host``/``port``/``db``.

    A ready client can be passed as ``client=``: the adapter uses it and never closes it.

    **Records.** ``store(data)`` needs ``session_id`` (non-empty str), ``turn_id`` (int) and
    ``content`` (str, may be empty); ``metadata`` (a JSON-able mapping, default ``{}``) and
    ``timestamp`` (timezone-aware ``datetime`` or ISO 8601 string, default now in UTC) are
    optional; other keys are not cached. A cached turn reads back as ``{"session_id",
    "turn_id", "content", "timestamp", "metadata"}``. Storing a turn id again with another
    content or timestamp caches it twice (``retrieve`` returns the newer, ``delete`` removes
    both); replaying the very same entry (a retry) keeps one copy, moved to the head.

    **Ids.** ``store`` returns ``session:{session_id}:turns:{turn_id}``. ``retrieve`` takes that
    form; ``delete`` takes it (one turn) or ``session:{session_id}:turns`` (the whole session).
    Session ids may hold any character, ``:`` included: see :mod:`mas_storage_redis._keys`.

    **Search.** ``search({"session_id", "limit", "offset"})`` returns turns most recent first;
    ``limit`` defaults to ``window_size``. A negative ``offset`` counts from the oldest end,
    like a Python slice: ``offset=-k`` returns ``turns[-k:][:limit]`` (``offset=-2`` gives
    the two oldest cached turns, still most recent first).

    **TTL.** Every write sets the session's TTL to ``ttl_seconds`` (``cache_turn(ttl=...)``
    overrides it per call). With ``refresh_ttl_on_read`` off (the default) a session expires
    ``ttl_seconds`` after its last write however often it is read; with it on, ``retrieve``,
    ``search`` and ``get_cached_turns`` also reset the TTL, in the same round trip as the
    read, so sessions in use stay cached and idle ones expire.

    **Window.** ``window_size=0`` caches nothing: writes validate their input and return ids
    but send nothing to Redis, so the session's size stays 0.

    **Recovery.** The driver retries a command ``retries`` times after a connection error
    (never after a timeout), reconnecting with a short jittered backoff, so the first call
    after a Redis restart succeeds on the same adapter and calls during an outage fail within
    about ``socket_timeout`` seconds. Every write removes an identical entry (``LREM``) before
    pushing it, in the same script run, so a write retried after a lost reply, by the driver
    or by the caller with the same ``timestamp``, is never cached twice.

    **Errors.** Connection loss or refused credentials raise
    :class:`~mas_storage.StorageConnectionError`, a timeout
    :class:`~mas_storage.StorageTimeoutError`, bad input, a malformed id, a corrupt (non-JSON)
    entry or a key that is not a list :class:`~mas_storage.StorageDataError`, any other Redis
    error :class:`~mas_storage.StorageQueryError`. No redis exception escapes.
    """

    kind = "redis"
    settings_model = RedisSettings
    config: RedisSettings

    def __init__(self, config: Any = None, *, client: Client | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        # Read on every call: plain attributes (a property lookup per call costs measurably).
        self.window_size = cfg.window_size
        self.ttl_seconds = cfg.ttl_seconds
        self.refresh_ttl_on_read = cfg.refresh_ttl_on_read
        self._wait = Wait(cfg.wait_replicas, cfg.wait_timeout) if cfg.wait_replicas else None
        self._client: Client | None = client
        self._owns_client = client is None
        # The writes' fast path: one server, no WAIT (one EVAL, nothing to decide per call).
        self._plain = False
        self._deadline: float | None = None  # on a cluster: see _one_call

    # -- lifecycle ---------------------------------------------------------------------------

    def _telemetry_facts(self) -> DatabaseFacts:
        """Span/metric facts: the server (a cluster's first seed), and the database index as
        ``db.namespace`` (the URL's path when a URL is given)."""
        cfg = self.config
        if cfg.cluster_nodes:
            host, port = cfg.seed_nodes()[0]
            return DatabaseFacts("redis", host, port, "0", namespace_in_span_name=False)
        if cfg.url is None:
            return DatabaseFacts(
                "redis", cfg.host, cfg.port, str(cfg.db), namespace_in_span_name=False
            )
        url = cfg.url.get_secret_value()
        index = urlsplit(url).path.strip("/") or "0"
        return DatabaseFacts.from_url(
            "redis", url, 6379, namespace=index, namespace_in_span_name=False
        )

    @property
    def client(self) -> Client | None:
        """The driver client: a ``redis.asyncio.Redis``, or a ``RedisCluster`` on a cluster
        (``None`` before ``connect()`` unless one was passed in)."""
        return self._client

    @property
    def is_cluster(self) -> bool:
        """Whether the adapter talks to a Redis Cluster (known once connected)."""
        return isinstance(self._client, RedisCluster)

    @property
    def _where(self) -> str:
        """Where the adapter connects, password masked: for logs and messages."""
        return self.config.address

    def _create_client(self) -> aioredis.Redis:
        """A client of one server (see :func:`~._connection.single_client`)."""
        return single_client(self.config, self._server())

    def _create_cluster_client(self) -> RedisCluster:
        """A Redis Cluster client (see :func:`~._connection.cluster_client`)."""
        return cluster_client(self.config, self._server())

    async def connect(self) -> None:
        """Create the client (unless one was given) and check that Redis answers: ``PING``,
        or, on a cluster, its slot map. With ``cluster`` unset and no ``cluster_nodes``, the
        server of url (or host:port) is asked whether it runs in cluster mode (see
        :mod:`._connection`)."""
        if self._connected:
            return
        client = self._client
        created = client is None
        try:
            if client is not None:
                if isinstance(client, RedisCluster):
                    await client.initialize()
                else:
                    await client.ping()
            elif self.config.cluster_mode:
                client = await self._open_cluster()
            else:
                client = self._create_client()
                if self.config.cluster_mode is None and await runs_cluster(client):
                    single, client = client, None
                    await single.aclose()
                    client = await self._open_cluster()
                elif self.config.cluster_mode is False:
                    await client.ping()
        except BaseException:
            if created and client is not None:
                with contextlib.suppress(Exception):
                    await client.aclose()
            raise
        self._client = client
        self._plain = not isinstance(client, RedisCluster) and self._wait is None
        self._deadline = self.config.socket_timeout if isinstance(client, RedisCluster) else None
        self._connected = True
        logger.info(
            "Connected to Redis%s at %s (window %d, ttl %ds, refresh on read %s, wait %s)",
            " Cluster" if self.is_cluster else "",
            self._where,
            self.window_size,
            self.ttl_seconds,
            self.refresh_ttl_on_read,
            f"{self._wait.replicas} replica(s)" if self._wait else "off",
        )

    async def _open_cluster(self) -> RedisCluster:
        client = self._create_cluster_client()
        try:
            await open_cluster(client)
        except BaseException:
            with contextlib.suppress(Exception):
                await client.aclose()
            raise
        return client

    async def disconnect(self) -> None:
        """Close the client this adapter created (``aclose``); a client passed in stays open."""
        was_connected, self._connected = self._connected, False
        client = self._client
        if client is not None and self._owns_client:
            self._client = None
            try:
                await close(client)
            except Exception as exc:  # the client is dropped either way
                logger.warning("Closing the Redis client failed: %s", type(exc).__name__)
        if was_connected:
            logger.info("Disconnected from Redis at %s", self._where)

    @property
    def _redis(self) -> Client:
        client = self._client
        if client is None:
            raise StorageConnectionError("RedisAdapter has no client: call connect() first")
        return client

    def _map_error(self, exc: Exception, op: str) -> type[StorageError] | StorageError | None:
        if isinstance(exc, rx.RedisClusterException) and not isinstance(exc, rx.RedisError):
            # redis-py's cluster client: no reachable seed, uncovered slots, a bad command.
            cause = exc.__cause__
            if isinstance(cause, Exception) and not isinstance(cause, rx.RedisClusterException):
                return self._map_error(cause, op)
            return StorageConnectionError(f"Redis Cluster at {self._where}: {exc}")
        if isinstance(exc, TimeoutError) and self._deadline is not None:
            return StorageTimeoutError(
                f"Redis Cluster at {self._where} did not answer within {self._deadline:g} s "
                "(one deadline for the call and the cluster client's retries)"
            )
        if isinstance(exc, rx.AuthenticationError):
            return StorageConnectionError(f"Redis at {self._where} refused the credentials: {exc}")
        if isinstance(exc, rx.ResponseError) and _is_wrongtype(exc):
            return StorageDataError(f"a session key holds a value that is not a list: {exc}")
        if isinstance(exc, rx.AskError) and self.is_cluster:  # MovedError is an AskError
            return StorageConnectionError(f"Redis Cluster at {self._where} kept redirecting: {exc}")
        if isinstance(exc, rx.AskError) or (
            isinstance(exc, rx.ResponseError) and str(exc).startswith(("MOVED ", "ASK "))
        ):
            return StorageQueryError(
                f"Redis at {self._where} runs in cluster mode, the adapter not ({exc}): leave "
                "`cluster` unset or set it to true"
            )
        for driver_error, storage_error in _ERROR_RULES:
            if isinstance(exc, driver_error):
                return storage_error
        return None

    # -- the generic contract ----------------------------------------------------------------

    async def store(self, data: dict[str, Any]) -> str:
        """Cache one turn at the head of its session's list; return its record id."""
        key, payload, rid = self._encode_turn(data)
        await self._push(key, [payload], self.ttl_seconds)
        return rid

    async def retrieve(self, id: str) -> dict[str, Any] | None:
        """The cached turn ``session:{session_id}:turns:{turn_id}``, or ``None``."""
        session_id, turn_id = parse_record_id(id)
        if turn_id is None:
            raise StorageDataError(
                f"retrieve() takes a turn id 'session:{{session_id}}:turns:{{turn_id}}', got "
                f"the session id {id!r}; use search() for a session's turns"
            )
        key = KEY_PREFIX + session_id + KEY_SUFFIX
        for raw in await self._read(key, 0, -1):
            turn = decode_turn(raw, key)
            if turn.get("turn_id") == turn_id:
                return turn
        return None

    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """A session's cached turns, most recent first: ``session_id``, ``limit``, ``offset``."""
        if type(query) is not dict and not isinstance(query, Mapping):
            raise StorageDataError(f"search() takes a mapping, got {type(query).__name__}")
        if "session_id" not in query:
            raise StorageDataError("search() needs 'session_id' in the query")
        if not query.keys() <= _SEARCH_KEYS:
            unknown = sorted(map(str, query.keys() - _SEARCH_KEYS))
            raise StorageDataError(
                f"Unknown search keys {unknown}; accepted: session_id, limit, offset"
            )
        return await self._recent(query["session_id"], query.get("limit"), query.get("offset", 0))

    async def delete(self, id: str) -> bool:
        """Delete one turn (turn id) or a whole session (session id); ``False`` if absent."""
        session_id, turn_id = parse_record_id(id)
        key = KEY_PREFIX + session_id + KEY_SUFFIX
        client = self._redis
        async with self._one_call():
            if turn_id is None:
                return bool(await client.delete(key))
            # LREM by value: immune to concurrent pushes shifting positions.
            items: list[Any] = await client.lrange(key, 0, -1)
            matches = {r: None for r in items if decode_turn(r, key).get("turn_id") == turn_id}
            if not matches:
                return False
            pipe = client.pipeline(transaction=True)
            for raw in matches:
                pipe.lrem(key, 0, raw)
            return any(await pipe.execute())

    # -- batch -------------------------------------------------------------------------------

    async def store_many(self, turns: Iterable[Mapping[str, Any]]) -> list[str]:
        """Cache many turns, across sessions, in one atomic round trip; return their ids.

        Every turn is validated before anything is sent. Then one ``EVAL`` of the write script
        (on a Redis Cluster one per hash slot, pipelined per node: :mod:`._writes`) pushes each
        session's turns in the order given (the last one given becomes the most
        recent) with one ``LPUSH``, then one ``LTRIM`` and one ``EXPIRE`` per session. Turns
        without a ``timestamp`` share the batch's (one clock read per call).
        """
        if isinstance(turns, (Mapping, str, bytes)):
            raise StorageDataError("store_many() takes an iterable of turn mappings")
        ids: list[str] = []
        groups: dict[str, list[str]] = {}
        keys: dict[Any, str] = {}  # session id -> key, built (and checked) once per session
        now = datetime.now(UTC).isoformat()  # the turns without a timestamp share the batch's
        for index, turn in enumerate(turns):
            try:
                sid = turn.get("session_id") if type(turn) is dict else None
                known = keys.get(sid) if type(sid) is str else None
                key, payload, rid = self._encode_turn(turn, key=known, now=now)
            except StorageDataError as exc:
                raise StorageDataError(f"turns[{index}]: {exc.message}") from exc
            ids.append(rid)
            if known is None and type(sid) is str:
                keys[sid] = key
            group = groups.get(key)
            if group is None:
                groups[key] = [payload]
            else:
                group.append(payload)
        window = self.window_size
        if not groups or not window:
            return ids
        # Older turns beyond the window would be trimmed at once: push() does not send them.
        await push(self._redis, groups, window, self.ttl_seconds, self._wait)
        return ids

    # -- session utilities and the domain API (cache_turn, get_cached_turns, ...) -------------

    async def cache_turn(
        self,
        session_id: str,
        turn_id: int,
        content: str,
        metadata: Mapping[str, Any] | None = None,
        *,
        timestamp: datetime | str | None = None,
        ttl: int | None = None,
    ) -> str:
        """Cache one turn (typed :meth:`store`); ``ttl`` overrides ``ttl_seconds`` for it."""
        key, payload, rid = encode_turn(session_id, turn_id, content, metadata, timestamp)
        await self._push(key, [payload], self._ttl(ttl))
        return rid

    async def get_cached_turns(
        self, session_id: str, limit: int | None = None, offset: int = 0
    ) -> list[dict[str, Any]]:
        """A session's cached turns, most recent first (typed :meth:`search`)."""
        return await self._recent(session_id, limit, offset)

    async def clear_session(self, session_id: str) -> bool:
        """Drop a session's cache; ``True`` if it existed."""
        async with self._one_call():
            return bool(await self._redis.delete(session_key(session_id)))

    async def get_session_size(self, session_id: str) -> int:
        """How many turns are cached for the session (0 when none)."""
        async with self._one_call():
            return int(await self._redis.llen(session_key(session_id)))

    async def session_exists(self, session_id: str) -> bool:
        """Whether the session has cached turns."""
        async with self._one_call():
            return bool(await self._redis.exists(session_key(session_id)))

    async def refresh_ttl(self, session_id: str, ttl: int | None = None) -> bool:
        """Reset the session's TTL to ``ttl`` (default ``ttl_seconds``); ``False`` if absent."""
        async with self._one_call():
            return bool(await self._redis.expire(session_key(session_id), self._ttl(ttl)))

    # -- internals ---------------------------------------------------------------------------

    def _encode_turn(
        self, data: Mapping[str, Any], *, key: str | None = None, now: str | None = None
    ) -> tuple[str, str, str]:
        if type(data) is not dict or not (
            "session_id" in data and "turn_id" in data and "content" in data
        ):
            validate_required_fields(data, _REQUIRED)  # names what is missing
        return encode_turn(
            data["session_id"],
            data["turn_id"],
            data["content"],
            data.get("metadata"),
            data.get("timestamp"),
            key=key,
            now=now,
        )

    def _ttl(self, ttl: object) -> int:
        if ttl is None:
            return self.ttl_seconds
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 1 <= ttl <= MAX_TTL:
            raise StorageDataError(
                f"ttl must be a positive int of seconds, at most {MAX_TTL}, got {ttl!r}"
            )
        return ttl

    async def _push(self, key: str, payloads: list[str], ttl: int) -> None:
        window = self.window_size
        if not window:
            return
        if self._plain:
            await self._redis.eval(PUSH_SCRIPT, 1, key, window, ttl, len(payloads), *payloads)
        else:
            async with self._one_call():
                await push(self._redis, {key: payloads}, window, ttl, self._wait)

    def _one_call(self) -> contextlib.AbstractAsyncContextManager[object]:
        """One deadline, ``socket_timeout``, for a session call on a cluster: redis-py's
        cluster client retries after a timeout too (the node may be failing over), which
        would let a call against a node cut off from the network take (``retries`` + 1) x
        ``socket_timeout``; one server's client never retries a timeout, so no deadline."""
        deadline = self._deadline
        return _NO_DEADLINE if deadline is None else asyncio.timeout(deadline)

    async def _read(self, key: str, start: int, end: int) -> list[Any]:
        client = self._redis
        async with self._one_call():
            if self.refresh_ttl_on_read:
                pipe = client.pipeline(transaction=False)
                pipe.lrange(key, start, end)
                pipe.expire(key, self.ttl_seconds)
                items, _ = await pipe.execute()
                return cast(list[Any], items)
            return cast(list[Any], await client.lrange(key, start, end))  # stubs: Any

    async def _recent(self, session_id: Any, limit: Any, offset: Any) -> list[dict[str, Any]]:
        key = session_key(session_id)
        bounds = list_range(self.window_size if limit is None else limit, offset)
        if bounds is None:
            return []
        start, end, cap = bounds
        items = await self._read(key, start, end)
        return decode_turns(items[:cap] if cap is not None else items, key)

    async def _get_backend_metrics(self) -> dict[str, Any] | None:
        """The server's figures (``INFO``); on a cluster each node's, their sums, and the
        cluster's state (``CLUSTER INFO``)."""
        client = self._redis
        if isinstance(client, RedisCluster):
            per_node, state = await asyncio.gather(
                client.info(target_nodes=RedisCluster.ALL_NODES), client.cluster_info()
            )
            figures = cluster_figures(per_node, state)
        else:
            figures = node_figures(await client.info())
        figures.update(
            window_size=self.window_size,
            ttl_seconds=self.ttl_seconds,
            refresh_ttl_on_read=self.refresh_ttl_on_read,
            wait_replicas=self._wait.replicas if self._wait else 0,
        )
        return figures


# -- helpers -----------------------------------------------------------------------------------

#: The ``INFO`` figures the backend metrics report (per node, and summed on a cluster).
_NODE_FIGURES: tuple[str, ...] = (
    "used_memory",
    "connected_clients",
    "keyspace_hits",
    "keyspace_misses",
    "expired_keys",
    "evicted_keys",
)


def node_figures(info: Mapping[str, Any]) -> dict[str, Any]:
    """One server's figures from its ``INFO``."""
    return {name: info.get(name) for name in ("redis_version", *_NODE_FIGURES)}


def cluster_figures(per_node: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    """A cluster's figures: the sums over its nodes (``INFO`` of each), each node's own
    (with its role and, for a replica, its link to the primary), the cluster's state."""
    nodes = {
        name: {
            **node_figures(info),
            "role": info.get("role"),
            "master_link_status": info.get("master_link_status"),
        }
        for name, info in sorted(per_node.items())
    }
    versions = sorted({str(n["redis_version"]) for n in nodes.values()})
    figures: dict[str, Any] = {"redis_version": ", ".join(versions)}
    for name in _NODE_FIGURES:
        figures[name] = sum(int(n[name] or 0) for n in nodes.values())
    figures.update(
        cluster_state=state.get("cluster_state"),
        cluster_slots_ok=int(state.get("cluster_slots_ok", 0)),
        cluster_known_nodes=int(state.get("cluster_known_nodes", 0)),
        cluster_size=int(state.get("cluster_size", 0)),
        primaries=sum(1 for n in nodes.values() if n["role"] == "master"),
        nodes=nodes,
    )
    return figures


def _is_wrongtype(exc: Exception) -> bool:
    """A WRONGTYPE reply, raw or as annotated by a pipeline ("... caused error: ...")."""
    message = str(exc)
    return message.startswith("WRONGTYPE") or "caused error: ('WRONGTYPE" in message
