"""Neo4jAdapter: the L3 entity graph (entities, typed relationships, traversals) on Neo4j.

Every entity the adapter writes carries a base label (``Entity`` by default) besides its own
label. A uniqueness constraint on ``Entity.id`` makes ids unique across labels and gives
``retrieve``/``delete``/relationship endpoints an index to look ids up by; a second constraint
per entity label (created the first time the label is written) gives user Cypher such as
``MATCH (p:Person {id: $id})`` the same index.

All work runs in managed transactions (``execute_read``/``execute_write``) on a session bound
to the configured database, so the driver retries transient failures within a bounded time
and no call pays a home-database round trip. Driver errors are translated in :mod:`._errors`.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from neo4j import AsyncDriver, AsyncGraphDatabase, AsyncManagedTransaction, unit_of_work
from neo4j import exceptions as nx

from mas_storage import (
    DatabaseFacts,
    StorageAdapter,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
    validate_required_fields,
)

from . import _cypher as cy
from ._errors import map_neo4j_error
from ._settings import Neo4jSettings

__all__ = ["Neo4jAdapter"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Query counters accumulated from committed work (the spec's "nodes/relationships created").
_COUNTERS = (
    "nodes_created",
    "nodes_deleted",
    "relationships_created",
    "relationships_deleted",
    "properties_set",
    "labels_added",
    "constraints_added",
)
_MAX_LIMIT = 10_000


class Neo4jAdapter(StorageAdapter):
    """Async Neo4j adapter for entities and relationships (L3).

    Configuration: a :class:`~mas_storage_neo4j.Neo4jSettings` (every key, its default and
    bounds; ``None`` reads it from ``NEO4J_*``, ``.env`` and the stack outputs), or a mapping
    (the spec's ``uri`` is accepted for ``url``) or URL string validated by it. ``timeout`` is
    the server-side transaction timeout, the connection-acquisition bound and the client-side
    deadline of every call (a frozen server raises ``StorageTimeoutError``);
    ``connection_timeout`` (at most 0.9 x ``timeout``) and ``max_retry_time`` are kept short
    so an outage fails fast and the same adapter recovers when the server is back.

    Pass ``driver=`` to use an existing :class:`neo4j.AsyncDriver`; the adapter then never
    closes it.
    """

    kind = "neo4j"
    settings_model = Neo4jSettings
    config: Neo4jSettings

    def __init__(self, config: Any = None, *, driver: AsyncDriver | None = None) -> None:
        super().__init__(config)
        cfg = self.config
        if driver is None and cfg.password is None:
            raise StorageDataError(
                "Neo4j needs a password (password=..., NEO4J_PASSWORD, or the stack output "
                "neo4j_password), or an injected driver=",
                backend=self.kind,
            )
        self.uri = cfg.url
        self.user = cfg.user
        self.database = cfg.database
        self.entity_label = cfg.entity_label
        self.timeout = cfg.timeout
        self.batch_size = cfg.batch_size
        self._driver = driver
        self._owns_driver = driver is None
        self._ensured: set[str] = set()
        self._schema_lock: asyncio.Lock | None = None
        self._counters: Counter[str] = Counter()

    def _telemetry_facts(self) -> DatabaseFacts:
        """Span/metric facts: the server of the bolt URI and the database as ``db.namespace``."""
        return DatabaseFacts.from_url("neo4j", self.uri, 7687, namespace=self.database)

    # -- lifecycle ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the driver, verify the server answers, and ensure the ``id`` constraints."""
        if self._connected:
            return
        if self._driver is None:
            password = self.config.password
            if password is None:  # only possible after an injected driver was dropped
                raise StorageDataError("Neo4j needs a password to build its driver")
            uri, tls = self.config.driver_target(f"neo4j at {self._server()}")
            self._driver = AsyncGraphDatabase.driver(
                uri,
                auth=(self.user, password.get_secret_value()),
                **self.config.driver_options(),
                **tls,
            )
        try:
            await self._driver.verify_connectivity()
            self._ensured.clear()  # the server may be a fresh one: check the schema again
            await self.ensure_schema()
        except BaseException:
            await self._close_driver()
            raise
        self._connected = True
        logger.debug("neo4j connected to %s (database %s)", self.uri, self.database)

    async def disconnect(self) -> None:
        """Close the driver if the adapter created it. Safe to call twice or before connect."""
        self._connected = False
        await self._close_driver()

    async def _close_driver(self) -> None:
        driver = self._driver
        if driver is not None and self._owns_driver:
            self._driver = None
            await driver.close()

    async def ensure_schema(self, labels: Sequence[str] = ()) -> list[str]:
        """Create the ``id`` uniqueness constraints of the base label and of ``labels``.

        Idempotent (``IF NOT EXISTS``) and safe against a concurrent creator. Returns the
        labels ensured so far. Every label is checked before any constraint is created (a
        string is refused, not split into one-letter labels).
        """
        wanted = [self.entity_label, *cy.check_list(labels, "labels")]
        for label in wanted:
            cy.ident(label)
        await self._ensure_labels(wanted)
        return sorted(self._ensured)

    # -- the generic contract ----------------------------------------------------------------

    async def store(self, data: dict[str, Any]) -> str:
        """Store an entity (returns its id) or a relationship (returns its ``elementId``).

        Entity: ``{"type": "entity", "label": "Person", "properties": {"id"?: ..., ...}}``,
        merged on ``id`` (a new UUID when absent). Relationship: ``{"type": "relationship",
        "from": id, "to": id, "relationship": "KNOWS", "properties"?: {...}, "from_label"?,
        "to_label"?}``, merged between the two existing nodes.
        """
        validate_required_fields(data, ["type"])
        if data["type"] == "entity":
            return await self._store_entity(data)
        if data["type"] == "relationship":
            return await self._store_relationship(data)
        raise StorageDataError(
            f"Unknown type {data['type']!r}: expected 'entity' or 'relationship'"
        )

    async def retrieve(self, id: str) -> dict[str, Any] | None:
        """The entity ``id`` as ``{"type", "id", "label", "labels", "properties"}``, or None."""
        cy.check_id(id, "id")
        query = (
            f"MATCH (n:{cy.ident(self.entity_label)} {{id: $id}}) "
            "RETURN labels(n) AS labels, properties(n) AS properties"
        )
        records = await self._read(query, {"id": id})
        if not records:
            return None
        return self._entity_view(id, records[0]["labels"], records[0]["properties"])

    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        """Run parameterised Cypher: ``{"cypher": ..., "params"?: {...}, "write"?: False}``.

        Read-only unless ``write`` is true: the query runs in a read transaction, which the
        server refuses to write in, and a query whose plan writes is rolled back and refused.
        Rows come back as dicts (nodes become their property maps).
        """
        validate_required_fields(query, ["cypher"])
        cypher = query["cypher"]
        if not isinstance(cypher, str) or not cypher.strip():
            raise StorageDataError("'cypher' must be a non-empty string")
        params = query.get("params") or {}
        if not isinstance(params, Mapping):
            raise StorageDataError(f"'params' must be a mapping, got {type(params).__name__}")
        write = query.get("write", False)
        if not isinstance(write, bool):
            raise StorageDataError("'write' must be a boolean")

        async def work(tx: AsyncManagedTransaction) -> tuple[list[dict[str, Any]], Any]:
            result = await tx.run(cypher, dict(params))
            rows = await result.data()
            summary = await result.consume()
            if not write and summary.query_type not in ("r", None):
                # Belt and braces: raising here rolls the transaction back.
                raise StorageQueryError(
                    f"search is read-only and this query writes (type {summary.query_type!r});"
                    " pass 'write': True to allow writes"
                )
            return rows, summary

        rows, summary = await self._transact(work, write=write)
        self._tally(summary)
        return rows

    async def delete(self, id: str) -> bool:
        """Detach-delete the entity ``id``; False only when no such entity exists."""
        cy.check_id(id, "id")
        query = f"MATCH (n:{cy.ident(self.entity_label)} {{id: $id}}) DETACH DELETE n"
        summary = await self._write(query, {"id": id})
        return bool(summary.counters.nodes_deleted > 0)

    # -- graph operations ---------------------------------------------------------------------

    async def delete_relationship(self, relationship_id: str) -> bool:
        """Delete a relationship by the ``elementId`` ``store`` returned; False if absent."""
        cy.check_id(relationship_id, "relationship_id")
        query = "MATCH ()-[r]->() WHERE elementId(r) = $rid DELETE r"
        summary = await self._write(query, {"rid": relationship_id})
        return bool(summary.counters.relationships_deleted > 0)

    async def get_neighbors(
        self,
        id: str,
        rel_types: Sequence[str] | str | None = None,
        direction: str = "both",
        depth: int = 1,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Entities within ``depth`` hops of ``id`` (each once, nearest first).

        Each item is the entity view of :meth:`retrieve` plus ``depth`` and ``relationships``,
        the relationship types along the shortest path found. ``direction`` is ``out``, ``in``
        or ``both``; ``depth`` is 1 to 5. An unknown ``id`` has no neighbours.
        """
        cy.check_id(id, "id")
        types = [rel_types] if isinstance(rel_types, str) else list(rel_types or ())
        for rel_type in types:
            cy.ident(rel_type, "relationship type")
        if direction not in cy.DIRECTIONS:
            raise StorageDataError(
                f"direction must be one of {sorted(cy.DIRECTIONS)}, got {direction!r}"
            )
        cy.check_int(depth, "depth", 1, cy.MAX_DEPTH)
        cy.check_int(limit, "limit", 1, _MAX_LIMIT)
        query = cy.neighbors_query(self.entity_label, types, direction, depth)
        records = await self._read(query, {"id": id, "limit": limit})
        return [
            {
                **self._entity_view(rec["id"], rec["labels"], rec["properties"]),
                "depth": rec["depth"],
                "relationships": rec["relationships"],
            }
            for rec in records
        ]

    async def store_many(self, entities: Sequence[Mapping[str, Any]]) -> list[str]:
        """Merge many entities in one transaction (``UNWIND`` batches); ids in input order.

        All or nothing: any bad item raises before a query is sent, and an id clash with a
        node of another label rolls the whole call back. One call is one server transaction,
        so very large loads (beyond tens of thousands of rows) belong in several calls.
        """
        groups: dict[str, list[dict[str, Any]]] = {}
        ids: list[str] = []
        for i, item in enumerate(cy.check_list(entities, "entities")):
            try:
                if isinstance(item, Mapping) and item.get("type", "entity") != "entity":
                    raise StorageDataError(f"type must be 'entity', got {item.get('type')!r}")
                label, node_id, props = self._entity_row(item)
            except StorageDataError as exc:
                raise StorageDataError(f"entities[{i}]: {exc.message}") from None
            groups.setdefault(label, []).append({"i": i, "id": node_id, "props": props})
            ids.append(node_id)
        if not ids:
            return []
        await self._ensure_labels(list(groups))
        statements = [
            (label, cy.entity_merge_many(self.entity_label, label), chunk)
            for label, rows in groups.items()
            for chunk in cy.chunks(rows, self.batch_size)
        ]

        async def work(tx: AsyncManagedTransaction) -> list[Any]:
            summaries = []
            for label, query, rows in statements:
                result = await tx.run(query, {"rows": rows})
                done = {rec["i"] async for rec in result}
                summaries.append(await result.consume())
                lost = [r["id"] for r in rows if r["i"] not in done]
                if lost:  # raising rolls the whole call back
                    shown = ", ".join(repr(x) for x in lost[:5])
                    raise StorageDataError(
                        f"{len(lost)} id(s) already belong to entities that are not {label}: "
                        f"{shown}"
                    )
            return summaries

        for summary in await self._transact(work, write=True):
            self._tally(summary)
        return ids

    async def store_relationships_many(
        self, relationships: Sequence[Mapping[str, Any]]
    ) -> list[str]:
        """Merge many relationships in one transaction; ``elementId``s in input order.

        Items take the keys of a relationship ``store`` (``type`` optional). A missing endpoint
        raises :class:`~mas_storage.StorageNotFoundError` naming it, and nothing is written.
        """
        groups: dict[tuple[str, str | None, str | None], list[dict[str, Any]]] = {}
        count = 0
        for i, item in enumerate(cy.check_list(relationships, "relationships")):
            try:
                if isinstance(item, Mapping) and item.get("type", "relationship") != "relationship":
                    raise StorageDataError(f"type must be 'relationship', got {item.get('type')!r}")
                key, from_id, to_id, props = cy.relationship_row(item)
            except StorageDataError as exc:
                raise StorageDataError(f"relationships[{i}]: {exc.message}") from None
            groups.setdefault(key, []).append(
                {"i": i, "from": from_id, "to": to_id, "props": props}
            )
            count += 1
        if not count:
            return []
        statements = [
            (key, cy.relationship_merge_many(self.entity_label, *key), chunk)
            for key, rows in groups.items()
            for chunk in cy.chunks(rows, self.batch_size)
        ]

        async def work(tx: AsyncManagedTransaction) -> tuple[dict[int, str], list[Any]]:
            found: dict[int, str] = {}
            summaries = []
            for key, query, rows in statements:
                result = await tx.run(query, {"rows": rows})
                async for rec in result:
                    found[rec["i"]] = rec["id"]
                summaries.append(await result.consume())
                lost = [r for r in rows if r["i"] not in found]
                if lost:
                    raise await self._missing_endpoints(tx, key, lost)
            return found, summaries

        found, summaries = await self._transact(work, write=True)
        for summary in summaries:
            self._tally(summary)
        return [found[i] for i in range(count)]

    # -- internals ---------------------------------------------------------------------------

    async def _store_entity(self, data: Mapping[str, Any]) -> str:
        label, node_id, props = self._entity_row(data)
        await self._ensure_labels([label])
        query = cy.entity_merge(self.entity_label, label)

        async def work(tx: AsyncManagedTransaction) -> Any:
            result = await tx.run(query, {"id": node_id, "props": props})
            records = [rec async for rec in result]
            summary = await result.consume()
            if not records:
                raise StorageDataError(
                    f"id {node_id!r} already belongs to an entity that is not {label}"
                )
            return summary

        self._tally(await self._transact(work, write=True))
        return node_id

    async def _store_relationship(self, data: Mapping[str, Any]) -> str:
        key, from_id, to_id, props = cy.relationship_row(data)
        query = cy.relationship_merge(self.entity_label, *key)
        params = {"a_id": from_id, "b_id": to_id, "props": props}

        async def work(tx: AsyncManagedTransaction) -> tuple[str, Any]:
            result = await tx.run(query, params)
            records = [rec async for rec in result]
            summary = await result.consume()
            if not records:
                raise await self._missing_endpoints(tx, key, [{"from": from_id, "to": to_id}])
            return records[0]["id"], summary

        rel_id, summary = await self._transact(work, write=True)
        self._tally(summary)
        return rel_id

    async def _missing_endpoints(
        self,
        tx: AsyncManagedTransaction,
        key: tuple[str, str | None, str | None],
        rows: list[dict[str, Any]],
    ) -> StorageNotFoundError:
        """The error naming the endpoints of ``rows`` that do not exist (the tx rolls back)."""
        _, from_label, to_label = key
        ends = [("from", from_label), ("to", to_label)]
        missing: list[str] = []
        for end, label in ends:
            wanted = sorted({r[end] for r in rows})
            lbl = cy.ident(label) if label is not None else cy.ident(self.entity_label)
            result = await tx.run(
                f"UNWIND $ids AS id OPTIONAL MATCH (n:{lbl} {{id: id}}) "
                "WITH id, n WHERE n IS NULL RETURN id",
                {"ids": wanted},
            )
            absent = [rec["id"] async for rec in result]
            where = f" with label {label}" if label else ""
            missing += [f"'{end}' node {node_id!r}{where}" for node_id in absent]
        detail = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        return StorageNotFoundError(f"relationship endpoint not found: {detail or 'unknown'}")

    async def _ensure_labels(self, labels: Sequence[str]) -> None:
        """Create the ``id`` constraint of each label not yet ensured by this adapter."""
        if all(label in self._ensured for label in labels):
            return
        if self._schema_lock is None:
            self._schema_lock = asyncio.Lock()
        async with self._schema_lock:
            for label in labels:
                if label in self._ensured:
                    continue
                query = (
                    f"CREATE CONSTRAINT {cy.constraint_name(label)} IF NOT EXISTS "
                    f"FOR (n:{cy.ident(label)}) REQUIRE n.id IS UNIQUE"
                )
                try:
                    await self._write(query, {})
                except nx.Neo4jError as exc:
                    # A concurrent creator won the race: the rule exists, which is the goal.
                    if not (exc.code or "").endswith("AlreadyExists"):
                        raise
                self._ensured.add(label)

    def _entity_row(self, data: Any) -> tuple[str, str, dict[str, Any]]:
        """Validate an entity item; returns its label, id and a copy of its properties."""
        validate_required_fields(data, ["label", "properties"])
        label = data["label"]
        cy.ident(label)
        if label == self.entity_label:
            raise StorageDataError(
                f"label {label!r} is the adapter's base label; give the entity its own label"
            )
        props = cy.check_properties(data["properties"])
        node_id = props.setdefault("id", str(uuid.uuid4()))
        cy.check_id(node_id, "properties['id']")
        return label, node_id, props

    def _entity_view(self, id: str, labels: list[str], props: dict[str, Any]) -> dict[str, Any]:
        own = cy.labels_without(labels, self.entity_label)
        return {
            "type": "entity",
            "id": id,
            "label": own[0] if own else None,
            "labels": own,
            "properties": props,
        }

    async def _transact(
        self, work: Callable[[AsyncManagedTransaction], Awaitable[_T]], *, write: bool
    ) -> _T:
        """Run ``work`` in a managed transaction (retried by the driver on transient errors).

        The whole call, retries included, is bounded by ``timeout`` on the client side too: a
        server that stops answering (frozen, or a half-open socket) cannot hang it, and the
        driver drops the connection of a call cancelled this way.
        """
        driver = self._driver
        if driver is None:  # connect() failed or disconnect() ran: the core checked before
            raise StorageQueryError("Neo4j driver is closed")
        fn = unit_of_work(timeout=self.timeout)(work)
        try:
            async with (
                asyncio.timeout(self.timeout),
                driver.session(database=self.database) as session,
            ):
                if write:
                    out = await session.execute_write(fn)
                else:
                    out = await session.execute_read(fn)
        except Exception:
            self._counters["transactions_failed"] += 1
            raise
        self._counters["transactions_committed"] += 1
        return out

    async def _read(self, query: str, params: dict[str, Any]) -> list[Any]:
        async def work(tx: AsyncManagedTransaction) -> list[Any]:
            result = await tx.run(query, params)
            return [rec async for rec in result]

        return await self._transact(work, write=False)

    async def _write(self, query: str, params: dict[str, Any]) -> Any:
        async def work(tx: AsyncManagedTransaction) -> Any:
            result = await tx.run(query, params)
            return await result.consume()

        summary = await self._transact(work, write=True)
        self._tally(summary)
        return summary

    def _tally(self, summary: Any) -> None:
        counters = summary.counters
        for name in _COUNTERS:
            self._counters[name] += getattr(counters, name, 0)

    def _map_error(self, exc: Exception, op: str) -> type[StorageError] | StorageError | None:
        mapped = map_neo4j_error(exc, op, user=self.user, uri=self.uri)
        if mapped is None and isinstance(exc, TimeoutError):  # the deadline of _transact
            return StorageTimeoutError(f"Neo4j did not answer within {self.timeout:g}s ('timeout')")
        return mapped

    async def _get_backend_metrics(self) -> dict[str, Any] | None:
        """Counters of committed work, plus node/relationship counts (one read query)."""
        base = cy.ident(self.entity_label)
        query = (
            f"RETURN COUNT {{ MATCH (n) }} AS nodes, COUNT {{ MATCH (:{base}) }} AS entities, "
            "COUNT { MATCH ()-[r]->() } AS relationships"
        )
        records = await self._read(query, {})
        counts = records[0] if records else {}
        return {
            "database": self.database,
            "counters": {name: self._counters[name] for name in _COUNTERS},
            "transactions_committed": self._counters["transactions_committed"],
            "transactions_failed": self._counters["transactions_failed"],
            "labels_ensured": sorted(self._ensured),
            "node_count": counts.get("nodes"),
            "entity_count": counts.get("entities"),
            "relationship_count": counts.get("relationships"),
        }
