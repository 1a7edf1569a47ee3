"""QdrantAdapter: L3 episodic memory as vectors in one Qdrant collection.

Two modes, one public API, the same payloads and filter semantics:

* **server** (the lab): ``url`` (or ``host``/``port``) plus ``api_key``, through
  ``AsyncQdrantClient``. Truly async (httpx).
* **embedded** (the local stack, CI): ``path`` (or ``location=":memory:"``). Qdrant's own engine
  in this process, Qdrant Edge (``qdrant-edge-py``, pinned: its API is pre-1.0); see
  ``_edge.py`` for its layout, threading and durability.

When both a server address and ``path`` are given, the server wins (see ``QdrantSettings``).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import math
import warnings
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import grpc
import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.common.client_exceptions import ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from mas_storage import (
    DatabaseFacts,
    StorageAdapter,
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
    error_for_status,
)

from ._edge import EdgeCollection, edge_point
from ._points import (
    SEARCH_KEYS,
    TIMESTAMP_FIELD,
    build_filter,
    build_point,
    filter_conditions,
    format_id,
    parse_id,
    validate_record,
    validate_vector,
)
from ._settings import DEFAULT_BATCH_SIZE, QdrantSettings

__all__ = ["DEFAULT_BATCH_SIZE", "QdrantAdapter"]

logger = logging.getLogger(__name__)
#: The pinned engine version (qdrant-edge-py is pre-1.0: its API changes between minors).
EDGE_VERSION = importlib.metadata.version("qdrant-edge-py")
#: Records validated between two yields to the event loop in ``store_many``.
_VALIDATION_SLICE = 64
_P = ParamSpec("_P")
_T = TypeVar("_T")
#: Payload indexes on the fields the adapter filters on, created in both modes.
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    "session_id": models.PayloadSchemaType.KEYWORD,
    TIMESTAMP_FIELD: models.PayloadSchemaType.DATETIME,
}
_INSECURE_KEY_WARNING = "Api key is used with an insecure connection"
_GRPC_ERRORS: dict[grpc.StatusCode, type[StorageError]] = {
    grpc.StatusCode.UNAVAILABLE: StorageConnectionError,
    grpc.StatusCode.UNAUTHENTICATED: StorageConnectionError,
    grpc.StatusCode.PERMISSION_DENIED: StorageConnectionError,
    grpc.StatusCode.DEADLINE_EXCEEDED: StorageTimeoutError,
    grpc.StatusCode.INVALID_ARGUMENT: StorageDataError,
    grpc.StatusCode.ALREADY_EXISTS: StorageDataError,
    grpc.StatusCode.NOT_FOUND: StorageNotFoundError,
}


def _finite_number(value: Any, key: str, *, positive: bool = False) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not number or not math.isfinite(value) or (positive and value <= 0):
        kind = "a positive" if positive else "a finite"
        raise StorageDataError(f"'{key}' must be {kind} number, got {value!r}")
    return float(value)


def _positive_int(query: Mapping[str, Any], key: str, default: int) -> int:
    value = query.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise StorageDataError(f"'{key}' must be a positive integer, got {value!r}")
    return value


class QdrantAdapter(StorageAdapter):
    """Vector storage and similarity search for episodic memory (L3).

    Configuration: a :class:`~mas_storage_qdrant.QdrantSettings` (every key, its default and
    bounds; ``None`` reads it from ``QDRANT_*``, ``.env`` and the stack outputs), or a mapping
    or URL string validated by it. Server mode: ``url`` (or ``host``) plus ``api_key``;
    embedded mode (Qdrant Edge): ``path`` (a directory of collections; each collection is
    locked exclusively while connected) or ``location=":memory:"`` (a private temporary
    directory), and ``auto_optimize``.

    Records are ``{"vector", "content", "session_id", "metadata", "created_at", "id"}``; only
    ``vector`` is required. ``id`` may be given (a UUID or an unsigned integer) to make a write
    idempotent: storing it again replaces the point. Returned records are flat:
    ``{"id", "content", "session_id", "metadata", "created_at"}`` plus ``score`` from ``search``
    and ``vector`` when asked for. With ``Cosine`` the engine stores vectors normalized, so a
    returned vector is the unit-length copy.

    Example::

        async with QdrantAdapter({"path": ".mas/qdrant"}) as episodes:
            pid = await episodes.store({"vector": emb, "content": "hi", "session_id": "s1"})
            hits = await episodes.search({"vector": emb, "limit": 5, "session_id": "s1"})
    """

    kind = "qdrant"
    settings_model = QdrantSettings
    config: QdrantSettings

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        cfg = self.config
        self.collection_name = cfg.collection_name
        self.vector_size = cfg.vector_size
        self.batch_size = cfg.batch_size
        self.distance = models.Distance(cfg.distance)
        self.mode, self._client_kwargs = self._client_options(cfg)
        self.auto_optimize = cfg.auto_optimize
        # Distributed Qdrant (server mode): passed only when set, so the server's defaults hold.
        self._write_options: dict[str, Any] = (
            {"ordering": models.WriteOrdering(cfg.write_ordering)} if cfg.write_ordering else {}
        )
        consistency = cfg.read_consistency
        self._read_options: dict[str, Any] = (
            {} if consistency is None else {"consistency": _consistency(consistency)}
        )
        self._client: AsyncQdrantClient | None = None
        self._edge: EdgeCollection | None = None

    @staticmethod
    def _client_options(cfg: QdrantSettings) -> tuple[str, dict[str, Any]]:
        """``("server" | "embedded", AsyncQdrantClient kwargs)`` from the settings."""
        if cfg.mode == "server":
            key = cfg.read_only_api_key if cfg.read_only and cfg.read_only_api_key else cfg.api_key
            kwargs: dict[str, Any] = {
                "api_key": key.get_secret_value() if key else None,
                # The client takes whole seconds (it rounds up itself).
                "timeout": math.ceil(cfg.timeout),
                "prefer_grpc": cfg.prefer_grpc,
                # The compatibility probe is a blocking request in a thread that can only warn;
                # connect() probes the server itself, asynchronously, and raises.
                "check_compatibility": cfg.check_compatibility,
            }
            if cfg.url:
                kwargs["url"] = cfg.url
            else:
                kwargs["host"] = cfg.host or "127.0.0.1"
                kwargs["port"] = cfg.port
            if cfg.prefer_grpc:
                kwargs["grpc_port"] = cfg.grpc_port
            if cfg.https is not None:
                kwargs["https"] = cfg.https
            if cfg.prefix is not None:
                kwargs["prefix"] = cfg.prefix
            if cfg.max_connections is not None:
                # Passed to the REST client's httpx pool; qdrant-client's own pool_size is
                # ignored towards localhost, where it opens a connection per concurrent call.
                kwargs["limits"] = httpx.Limits(
                    max_connections=cfg.max_connections,
                    max_keepalive_connections=cfg.max_connections,
                )
            return "server", kwargs
        if cfg.location:
            return "embedded", {"location": ":memory:"}
        return "embedded", {"path": str(cfg.path)}

    def _telemetry_facts(self) -> DatabaseFacts:
        """Span/metric facts: the server (none for the embedded engine, whose spans are
        ``INTERNAL``) and the adapter's collection."""
        kwargs = self._client_kwargs
        if self.mode == "embedded":
            return DatabaseFacts("qdrant", collection=self.collection_name, in_process=True)
        if kwargs.get("url"):
            return DatabaseFacts.from_url(
                "qdrant", kwargs["url"], 6333, collection=self.collection_name
            )
        return DatabaseFacts(
            "qdrant", kwargs["host"], int(kwargs["port"]), collection=self.collection_name
        )

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the client, then create the collection or check the existing one matches.

        An existing collection with another vector size or distance raises
        :class:`StorageDataError` naming both configurations; nothing is written to it.
        """
        if self._connected:
            return
        try:
            if self.mode == "embedded":
                await self._open_edge()
            else:
                self._client = self._open_server()
                await self._ensure_collection()
        except BaseException:
            await self._close()
            raise
        self._connected = True
        logger.debug("qdrant connected (%s mode, collection %s)", self.mode, self.collection_name)

    def _open_server(self) -> AsyncQdrantClient:
        """Create the server client; its plain-http API key warning becomes a log warning.

        The lab serves Qdrant over http on a private network, so qdrant-client warns on every
        connect; as a Python warning that would fail any run with warnings as errors.
        """
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = AsyncQdrantClient(**self._client_kwargs, **self._tls_kwargs())
        for warning in caught:
            if _INSECURE_KEY_WARNING in str(warning.message):
                logger.warning("qdrant api_key is sent over plain http to %s", self._address())
            else:
                warnings.warn_explicit(
                    warning.message, warning.category, warning.filename, warning.lineno
                )
        return client

    def _tls_kwargs(self) -> dict[str, Any]:
        """TLS for the server client: REST through httpx's ``verify`` (the core's verified
        context, or the insecure one with a WARNING), gRPC through ``root_certificates``."""
        cfg = self.config
        if not cfg.uses_tls():
            return {}
        where = f"qdrant at {self._server()}"
        options: dict[str, Any] = {"verify": cfg.ssl_context(where)}
        pem = cfg.ca_pem()
        if cfg.prefer_grpc and pem is not None:
            options["grpc_options"] = {"root_certificates": pem.encode()}
        return options

    async def _open_edge(self) -> None:
        """Open (or create) the embedded collection, refusing a mismatched one untouched."""
        path = self._client_kwargs.get("path")
        edge = EdgeCollection(
            Path(path) if path else None,
            self.collection_name,
            self.vector_size,
            self.distance.value,
            {field: schema.value for field, schema in PAYLOAD_INDEXES.items()},
        )
        self._edge = edge
        stored = edge.stored_vectors()
        if stored is not None:
            if isinstance(stored, dict):
                self._check_vectors(stored)
            else:
                size, distance = stored
                self._check_vectors(models.VectorParams(size=size, distance=distance))
        edge.open()
        if self.auto_optimize and edge.optimization_due(edge.shard()):
            await self._optimize_edge(edge)

    async def disconnect(self) -> None:
        """Close the client; embedded, flush and close the collection (releasing its lock)."""
        await self._close()
        self._connected = False

    async def _close(self) -> None:
        client, edge = self._client, self._edge
        self._client = self._edge = None
        if edge is not None:
            await edge.idle()  # an optimisation under way reopens the shard when it ends
            edge.close()
        if client is not None:
            await client.close()

    @property
    def _qdrant(self) -> AsyncQdrantClient:
        """The open client (a ``disconnect()`` may have raced with a queued operation)."""
        if self._client is None:
            raise StorageConnectionError("Qdrant client is closed", backend=self.kind)
        return self._client

    async def _run(
        self, call: Callable[_P, Awaitable[_T]], /, *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        """Await a server client method (``self._qdrant.upsert``, ...): its arguments and its
        result are type-checked against qdrant-client's signatures."""
        return await call(*args, **kwargs)

    async def _shard(self) -> tuple[EdgeCollection, Any]:
        """The embedded collection and its open shard (after any optimisation under way)."""
        edge = self._edge
        if edge is None:
            raise StorageConnectionError("Qdrant client is closed", backend=self.kind)
        return edge, await edge.ready()

    async def _ensure_collection(self) -> None:
        name = self.collection_name
        if self.config.read_only:  # a reader creates nothing: the collection must be there
            info = await self._run(self._qdrant.get_collection, collection_name=name)
            self._check_vectors(info.config.params.vectors)
            return
        if not await self._run(self._qdrant.collection_exists, collection_name=name):
            try:
                await self._run(
                    self._qdrant.create_collection,
                    collection_name=name,
                    vectors_config=models.VectorParams(
                        size=self.vector_size, distance=self.distance
                    ),
                )
                logger.info("created qdrant collection %s", name)
            except UnexpectedResponse as exc:
                if exc.status_code != 409:  # created concurrently: check it like any other
                    raise
        info = await self._run(self._qdrant.get_collection, collection_name=name)
        self._check_vectors(info.config.params.vectors)
        if self.mode == "server" and self.config.create_payload_indexes:
            existing = info.payload_schema or {}
            for field, schema in PAYLOAD_INDEXES.items():
                if field not in existing:
                    await self._run(
                        self._qdrant.create_payload_index,
                        collection_name=name,
                        field_name=field,
                        field_schema=schema,
                        wait=True,
                    )

    def _check_vectors(self, vectors: Any) -> None:
        """Refuse a collection whose vectors differ from the configured size and distance."""
        wanted = f"size={self.vector_size}, distance={self.distance.value}"
        if not isinstance(vectors, models.VectorParams):
            names = ", ".join(sorted(vectors or {}))
            raise StorageDataError(
                f"Qdrant collection '{self.collection_name}' has named vectors ({names}); "
                f"this adapter needs one unnamed vector with {wanted}"
            )
        if vectors.size != self.vector_size or vectors.distance != self.distance:
            raise StorageDataError(
                f"Qdrant collection '{self.collection_name}' exists with size={vectors.size}, "
                f"distance={vectors.distance.value}, but this adapter is configured for "
                f"{wanted}. Nothing was written: use another collection_name or match its "
                "configuration."
            )

    # -- the generic contract ----------------------------------------------------------------

    async def store(self, data: dict[str, Any]) -> str:
        """Store one vector with its payload and return its id (the caller's or a new UUID)."""
        if self._edge is not None:
            point_id, vector, payload = validate_record(data, self.vector_size)
            edge, shard = await self._shard()
            edge.upsert(shard, [edge_point(point_id, vector, payload)])
            return format_id(point_id)
        point = build_point(data, self.vector_size)
        await self._run(
            self._qdrant.upsert,
            collection_name=self.collection_name,
            points=[point],
            wait=True,
            **self._write_options,
        )
        return format_id(point.id)

    async def store_many(self, items: Iterable[dict[str, Any]]) -> list[str]:
        """Store many records in ``batch_size`` upserts; return their ids in input order.

        Every record is validated before the first request, so bad input writes nothing. A
        backend failure part-way leaves the earlier batches stored; pass ``id`` values to make
        a retry idempotent. Embedded, with ``auto_optimize``, the HNSW index is built before
        returning once a segment's worth of points is unindexed (see ``optimize``).
        """
        if self._edge is not None:
            return await self._store_many_edge(items)
        points = []
        for index, data in enumerate(items):
            if index and not index % _VALIDATION_SLICE:
                await asyncio.sleep(0)  # validation is CPU work: let the loop breathe
            try:
                points.append(build_point(data, self.vector_size))
            except StorageDataError as exc:
                raise StorageDataError(f"Record {index}: {exc.message}") from None
        for start in range(0, len(points), self.batch_size):
            chunk = points[start : start + self.batch_size]
            await self._run(
                self._qdrant.upsert,
                collection_name=self.collection_name,
                points=chunk,
                wait=True,
                **self._write_options,
            )
        return [format_id(p.id) for p in points]

    async def _store_many_edge(self, items: Iterable[dict[str, Any]]) -> list[str]:
        """``store_many`` on the embedded engine: one ``update`` per batch, a yield between."""
        ids: list[str] = []
        points = []
        for index, data in enumerate(items):
            if index and not index % _VALIDATION_SLICE:
                await asyncio.sleep(0)  # validation is CPU work: let the loop breathe
            try:
                point_id, vector, payload = validate_record(data, self.vector_size)
                points.append(edge_point(point_id, vector, payload))
            except StorageDataError as exc:
                raise StorageDataError(f"Record {index}: {exc.message}") from None
            ids.append(format_id(point_id))
        for start in range(0, len(points), self.batch_size):
            if start:
                await asyncio.sleep(0)  # each batch holds the GIL: the loop runs between them
            edge, shard = await self._shard()
            edge.upsert(shard, points[start : start + self.batch_size])
        edge, shard = await self._shard()
        if self.auto_optimize and edge.optimization_due(shard):
            await self._optimize_edge(edge)
        return ids

    async def retrieve(self, id: str, with_vector: bool = False) -> dict[str, Any] | None:
        """The record stored under ``id`` (with its vector if asked), or ``None``."""
        if self._edge is not None:
            point_id = parse_id(id)
            edge, shard = await self._shard()
            found = edge.retrieve(shard, point_id, bool(with_vector))
            if found is None:
                return None
            result = {"id": format_id(found.id), **(found.payload or {})}
            if with_vector:
                result["vector"] = found.vector
            return result
        records = await self._run(
            self._qdrant.retrieve,
            collection_name=self.collection_name,
            ids=[parse_id(id)],
            with_payload=True,
            with_vectors=with_vector,
            **self._read_options,
        )
        if not records:
            return None
        record = records[0]
        result = {"id": format_id(record.id), **(record.payload or {})}
        if with_vector:
            result["vector"] = record.vector
        return result

    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Nearest records to ``query["vector"]``, best first, through ``query_points``.

        Keys: ``vector`` (required), ``limit`` (10), ``score_threshold`` (for ``Cosine`` and
        ``Dot`` a minimum score; for ``Euclid`` and ``Manhattan`` a maximum distance),
        ``session_id``, ``filter`` (a mapping of equality conditions, see
        :func:`build_filter`), ``with_vector`` (false).
        """
        if not isinstance(query, Mapping):
            raise StorageDataError(f"A search query must be a mapping, got {type(query).__name__}")
        unknown = sorted(str(k) for k in query if k not in SEARCH_KEYS)
        if unknown:
            raise StorageDataError(
                f"Unknown search keys: {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(SEARCH_KEYS))})"
            )
        if "vector" not in query:
            raise StorageDataError("Missing required fields: vector")
        vector = validate_vector(query["vector"], self.vector_size)
        limit = _positive_int(query, "limit", 10)
        threshold = query.get("score_threshold")
        if threshold is not None:
            threshold = _finite_number(threshold, "score_threshold")
        with_vector = query.get("with_vector", False)
        if not isinstance(with_vector, bool):
            raise StorageDataError("'with_vector' must be a boolean")
        if self._edge is not None:
            conditions = filter_conditions(query.get("session_id"), query.get("filter"))
            edge, shard = await self._shard()
            hits = edge.query(shard, vector, conditions, limit, threshold, with_vector)
            return [_hit(point, with_vector) for point in hits]
        response = await self._run(
            self._qdrant.query_points,
            collection_name=self.collection_name,
            query=vector,
            query_filter=build_filter(query.get("session_id"), query.get("filter")),
            limit=limit,
            score_threshold=threshold,
            with_payload=True,
            with_vectors=with_vector,
            **self._read_options,
        )
        return [_hit(point, with_vector) for point in response.points]

    async def delete(self, id: str) -> bool:
        """Delete ``id``: ``True`` when a point was removed, ``False`` when there was none."""
        point_id = parse_id(id)
        if self._edge is not None:
            edge, shard = await self._shard()
            return edge.delete(shard, point_id)
        found = await self._run(
            self._qdrant.retrieve,
            collection_name=self.collection_name,
            ids=[point_id],
            with_payload=False,
            with_vectors=False,
            **self._read_options,
        )
        if not found:
            return False
        await self._run(
            self._qdrant.delete,
            collection_name=self.collection_name,
            points_selector=models.PointIdsList(points=[point_id]),
            wait=True,
            **self._write_options,
        )
        return True

    # -- helpers -----------------------------------------------------------------------------

    async def count(
        self, session_id: str | None = None, filter: Mapping[str, Any] | None = None
    ) -> int:
        """Exact number of points, optionally only those matching ``session_id``/``filter``."""
        if self._edge is not None:
            conditions = filter_conditions(session_id, filter)
            edge, shard = await self._shard()
            return edge.count(shard, conditions)
        result = await self._run(
            self._qdrant.count,
            collection_name=self.collection_name,
            count_filter=build_filter(session_id, filter),
            exact=True,
        )
        return int(result.count)

    async def drop_collection(self) -> bool:
        """Delete this adapter's whole collection (tests, resets). Irreversible.

        Returns whether it existed. Later operations raise :class:`StorageNotFoundError` until
        the adapter reconnects, which creates it again.
        """
        if self._edge is not None:
            await self._edge.idle()
            return self._edge.drop()
        name = self.collection_name
        existed = bool(await self._run(self._qdrant.collection_exists, collection_name=name))
        if existed:
            await self._run(self._qdrant.delete_collection, collection_name=name)
        return existed

    async def optimize(self) -> bool:
        """Build the HNSW and payload indexes now; whether anything was optimised.

        Embedded: Qdrant Edge's ``optimize()`` (index, merge, vacuum), run in a child process
        on the closed collection, because in-process it would hold the GIL throughout; this
        collection's calls wait for it, the event loop does not. Worth calling after a bulk
        load made with ``auto_optimize`` off. Server: a no-op returning ``False``; the server's
        own optimizers index in the background.
        """
        if self._edge is None:
            if self._client is None:
                raise StorageConnectionError("Qdrant client is closed", backend=self.kind)
            return False
        edge, _ = await self._shard()
        return await self._optimize_edge(edge)

    async def _optimize_edge(self, edge: EdgeCollection) -> bool:
        result = await edge.optimize()
        logger.info(
            "qdrant edge optimised %s in %.1f s, %.1f s of CPU (%s of %s vectors indexed)",
            self.collection_name,
            result["seconds"],
            result["cpu_seconds"],
            result["indexed"],
            result["points"],
        )
        return bool(result["optimized"])

    async def _get_backend_metrics(self) -> dict[str, Any] | None:
        figures: dict[str, Any] = {
            "mode": self.mode,
            "collection_name": self.collection_name,
            "vector_size": self.vector_size,
            "distance": self.distance.value,
        }
        if self._edge is not None:
            edge, shard = await self._shard()
            figures["point_count"] = edge.count(shard, [])
            figures["engine"] = f"qdrant-edge-py {EDGE_VERSION}"
            figures.update(edge.index_status(shard))
            return figures
        result = await self._run(
            self._qdrant.count, collection_name=self.collection_name, exact=True
        )
        figures["point_count"] = int(result.count)
        return figures

    # -- error mapping -----------------------------------------------------------------------

    def _map_error(self, exc: Exception, op: str) -> type[StorageError] | StorageError | None:
        """qdrant-client, httpx and gRPC errors to storage errors (see the README's table)."""
        if isinstance(exc, UnexpectedResponse):
            return error_for_status(exc.status_code or 0)
        if isinstance(exc, ResponseHandlingException):
            source = exc.source
            if isinstance(source, (httpx.TransportError, OSError)):
                return self._map_error(source, op)
            return StorageQueryError(
                f"unreadable response from Qdrant: {type(source).__name__}: {source}"
            )
        if isinstance(exc, httpx.TimeoutException):
            return StorageTimeoutError(f"Qdrant did not answer in time: {exc!r}")
        if isinstance(exc, (httpx.TransportError, OSError)) and not isinstance(exc, TimeoutError):
            return StorageConnectionError(
                f"cannot reach Qdrant at {self._address()}: {type(exc).__name__}: {exc}"
            )
        if isinstance(exc, ResourceExhaustedResponse):
            return StorageQueryError(
                f"Qdrant is rate limiting (retry after {exc.retry_after_s}s): {exc}"
            )
        if isinstance(exc, grpc.RpcError):
            code = getattr(exc, "code", None)
            grpc_code = code() if callable(code) else None
            return _GRPC_ERRORS.get(grpc_code, StorageQueryError)
        if isinstance(exc, RuntimeError) and "closed" in str(exc):
            return StorageConnectionError
        if isinstance(exc, ValueError) and "not found" in str(exc).lower():
            return StorageNotFoundError
        return None

    def _address(self) -> str:
        kwargs = self._client_kwargs
        if "url" in kwargs:
            return str(kwargs["url"])
        if "host" in kwargs:
            return f"{kwargs['host']}:{kwargs['port']}"
        return str(kwargs.get("path") or kwargs.get("location"))


def _hit(point: Any, with_vector: bool) -> dict[str, Any]:
    """A search hit as the flat record the adapter returns (either engine's scored point)."""
    hit = {"id": format_id(point.id), "score": point.score, **(point.payload or {})}
    if with_vector:
        hit["vector"] = point.vector
    return hit


def _consistency(value: int | str) -> int | models.ReadConsistencyType:
    """``read_consistency`` as qdrant-client takes it: a count or a named level."""
    return value if isinstance(value, int) else models.ReadConsistencyType(value)
