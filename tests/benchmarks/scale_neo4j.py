"""How the Neo4jAdapter's paths cost as the entity graph grows (10^3 .. 10^5 entities).

The graph: N entities of one label, each with 2 outgoing ``KNOWS`` relationships to random
entities (average degree 4), so a node's neighbourhood has the same size at every N. Every
path starts from an id looked up through the ``id`` uniqueness constraints, so none should
depend on N.

Paths: ``store`` (MERGE a new entity), ``store_relationship`` (MERGE between two existing
entities), ``store_many`` (500 entities, one UNWIND), ``retrieve``, ``search`` (caller Cypher
``MATCH (p:Label {id: $id})``), ``get_neighbors`` at depth 1 and 2.

Evidence: at every size, the median db hits of each path's statement (``PROFILE`` from 9
random nodes, as ``db_hits``): the server's work, which the machine's load does not blur; at
the largest size, the ``PROFILE`` tree of each statement (operators, rows and db hits). The
run's label is unique (``Scale_<hex>``); its nodes and its constraint are removed at the end.
"""

from __future__ import annotations

import random
import statistics
import uuid
from typing import Any

import scalekit as sk
from neo4j import AsyncGraphDatabase

from mas_storage_neo4j import Neo4jAdapter
from mas_storage_neo4j import _cypher as cy

CAP = 100_000
NOTES = [
    "Every path starts from an id found through a uniqueness constraint's index "
    "(NodeUniqueIndexSeek in each PROFILE below: a few db hits whatever N). A traversal "
    "then touches the start's neighbourhood, whose size here does not grow with N (average "
    "degree 4): get_neighbors is O(degree^depth), and a hub whose degree grows with the graph "
    "would make it grow with that degree, which is the data, not a missing index. MERGE of a "
    "relationship checks the pair with Expand(Into) from the two seeked nodes.",
]
DEGREE = 2
BATCH = 500
LOAD_CHUNK = 5_000


def _profile_text(plan: Any, depth: int = 0) -> list[str]:
    """An operator tree as indented lines: operator, details, rows, db hits."""
    args = plan.get("args", {}) if isinstance(plan, dict) else {}
    op = plan.get("operatorType", "?") if isinstance(plan, dict) else "?"
    details = args.get("Details", "")
    rows = plan.get("rows", args.get("Rows", "?"))
    hits = plan.get("dbHits", args.get("DbHits", "?"))
    line = f"{'  ' * depth}{op.split('@')[0]}  rows={rows} dbHits={hits}"
    if details:
        line += f"  [{str(details)[:110]}]"
    out = [line]
    for child in plan.get("children", []) if isinstance(plan, dict) else []:
        out += _profile_text(child, depth + 1)
    return out


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Grow the graph size by size and measure every path (see the module docstring)."""
    series = sk.series_for("neo4j", quick, cap=CAP)
    sizes = series.sizes
    # The JVM compiles what runs often: a longer warm-up than the other backends.
    calls, warmup = (10, 2) if quick else (200, 150)
    label = f"Scale_{uuid.uuid4().hex[:8]}"
    config = {
        "url": outputs["neo4j_url"],
        "user": outputs.get("neo4j_user") or "neo4j",
        "password": outputs["neo4j_password"],
    }
    adapter = Neo4jAdapter(config)
    await adapter.connect()
    driver = AsyncGraphDatabase.driver(
        config["url"], auth=(config["user"], config["password"]), notifications_min_severity="OFF"
    )
    try:
        await adapter.ensure_schema([label])
        version = await _study(adapter, driver, series, sizes, label, calls, warmup)
    finally:
        async with driver.session() as session:
            result = await session.run(
                f"MATCH (n:{cy.ident(label)}) CALL {{ WITH n DETACH DELETE n }} "
                "IN TRANSACTIONS OF 10000 ROWS"
            )
            await result.consume()
            result = await session.run(f"DROP CONSTRAINT {cy.constraint_name(label)} IF EXISTS")
            await result.consume()
        await driver.close()
        await adapter.disconnect()
    return sk.scaling_result(
        series,
        version=version,
        shape=(
            f"N entities of one label, each with {DEGREE} outgoing KNOWS relationships to "
            f"random entities (average degree {2 * DEGREE}); up to {CAP:,}"
        ),
        facts={"label": label},
        notes=NOTES,
    )


async def _study(
    adapter: Neo4jAdapter,
    driver: Any,
    series: sk.Series,
    sizes: list[int],
    label: str,
    calls: int,
    warmup: int,
) -> str:
    rng = random.Random(11)
    ids: list[str] = []

    def entity(key: str) -> dict[str, Any]:
        return {"label": label, "properties": {"id": f"{label}-{key}", "n": key}}

    async def load(start: int, size: int) -> None:
        new: list[str] = []
        for at in range(start, size, LOAD_CHUNK):
            chunk = [entity(str(j)) for j in range(at, min(size, at + LOAD_CHUNK))]
            new += await adapter.store_many(chunk)
        ids.extend(new)
        edges = [
            {
                "from": node,
                "to": rng.choice(ids),
                "relationship": "KNOWS",
                "from_label": label,
                "to_label": label,
            }
            for node in new
            for _ in range(DEGREE)
        ]
        for at in range(0, len(edges), LOAD_CHUNK):
            await adapter.store_relationships_many(edges[at : at + LOAD_CHUNK])

    loaded = 0
    for size in sizes:
        await series.grow(size, size - loaded, load(loaded, size))
        loaded = size
        series.at(size)
        await _paths(adapter, driver, series, size, label, ids, calls, warmup)
        await _work(driver, series, size, label, ids)
        if size == sizes[-1]:
            await _evidence(driver, series, size, label, ids)
    async with driver.session() as session:
        result = await session.run(
            "CALL dbms.components() YIELD versions, edition RETURN versions[0] + ' ' + edition"
        )
        record = await result.single()
    return str(record[0]) if record else "?"


async def _paths(
    adapter: Neo4jAdapter,
    driver: Any,
    series: sk.Series,
    size: int,
    label: str,
    ids: list[str],
    calls: int,
    warmup: int,
) -> None:
    def pick(i: int) -> str:
        return ids[random.Random(i).randrange(len(ids))]

    async def undo(_: int) -> None:
        async with driver.session() as session:
            result = await session.run(
                f"MATCH (n:{cy.ident(label)}) WHERE n.n STARTS WITH 'w' DETACH DELETE n"
            )
            await result.consume()
            result = await session.run("MATCH ()-[r:WROTE]->() DELETE r")
            await result.consume()

    async def store(i: int) -> int:
        await adapter.store(
            {"type": "entity", "label": label, "properties": {"id": f"{label}-w{i}", "n": f"w{i}"}}
        )
        return 1

    async def store_relationship(i: int) -> int:
        await adapter.store(
            {
                "type": "relationship",
                "from": pick(i),
                "to": pick(i + 7),
                "relationship": "WROTE",
                "from_label": label,
                "to_label": label,
            }
        )
        return 1

    async def store_many(i: int) -> int:
        batch = [
            {"label": label, "properties": {"id": f"{label}-wm{i}-{k}", "n": f"wm{i}-{k}"}}
            for k in range(BATCH)
        ]
        return len(await adapter.store_many(batch))

    async def retrieve(i: int) -> int:
        return 1 if await adapter.retrieve(pick(i)) else 0

    search_cypher = f"MATCH (p:{cy.ident(label)} {{id: $id}}) RETURN p.id AS id, p.n AS n"

    async def search(i: int) -> int:
        return len(await adapter.search({"cypher": search_cypher, "params": {"id": pick(i)}}))

    async def neighbors1(i: int) -> int:
        return len(await adapter.get_neighbors(pick(i), depth=1, limit=100))

    async def neighbors2(i: int) -> int:
        return len(await adapter.get_neighbors(pick(i), depth=2, limit=100))

    few = max(5, calls // 5)
    plan: list[tuple[str, str, str, str, sk.Call, int, bool]] = [
        ("store", "write", "entities", "MERGE one new entity", store, calls, True),
        (
            "store_relationship",
            "write",
            "relationships",
            "MERGE a relationship between two entities",
            store_relationship,
            calls,
            True,
        ),
        (
            "store_many",
            "write",
            "entities",
            f"store_many of {BATCH} entities",
            store_many,
            few,
            True,
        ),
        ("retrieve", "read", "entities", "retrieve an entity by id", retrieve, calls, False),
        (
            "search",
            "read",
            "rows",
            "caller Cypher: MATCH (p:Label {id: $id})",
            search,
            calls,
            False,
        ),
        ("get_neighbors_1", "read", "entities", "get_neighbors, depth 1", neighbors1, calls, False),
        ("get_neighbors_2", "read", "entities", "get_neighbors, depth 2", neighbors2, calls, False),
    ]
    for name, kind, unit, what, call, n, with_undo in plan:
        await series.measure(
            size,
            name,
            (kind, unit, what),
            call,
            calls=n,
            warmup=warmup,
            undo=undo if with_undo else None,
        )


def _statements(label: str, start: str, other: str) -> dict[str, tuple[str, dict[str, Any]]]:
    """Each path's Cypher as the adapter sends it, by path name, from node ``start``."""
    base = "Entity"
    return {
        "store": (
            cy.entity_merge(base, label),
            {"id": f"{label}-profile", "props": {"id": f"{label}-profile", "n": "profile"}},
        ),
        "store_relationship": (
            cy.relationship_merge(base, "PROFILED", label, label),
            {"a_id": start, "b_id": other, "props": {}},
        ),
        "retrieve": (
            f"MATCH (n:{cy.ident(base)} {{id: $id}}) "
            "RETURN labels(n) AS labels, properties(n) AS properties",
            {"id": start},
        ),
        "search": (
            f"MATCH (p:{cy.ident(label)} {{id: $id}}) RETURN p.id AS id, p.n AS n",
            {"id": start},
        ),
        "get_neighbors_1": (cy.neighbors_query(base, None, "both", 1), {"id": start, "limit": 100}),
        "get_neighbors_2": (cy.neighbors_query(base, None, "both", 2), {"id": start, "limit": 100}),
    }


async def _profile(driver: Any, query: str, params: dict[str, Any]) -> Any:
    """The PROFILE tree of ``query``, run in a transaction that is rolled back."""
    async with driver.session() as session:
        tx = await session.begin_transaction()
        try:
            result = await tx.run(f"PROFILE {query}", params)
            summary = await result.consume()
        finally:
            await tx.rollback()
    return summary.profile or {}


def _db_hits(plan: Any) -> int:
    """Total db hits of a PROFILE tree: the server's work, which load does not change."""
    own = plan.get("dbHits", plan.get("args", {}).get("DbHits", 0)) or 0
    return int(own) + sum(_db_hits(child) for child in plan.get("children", []))


async def _work(
    driver: Any, series: sk.Series, size: int, label: str, ids: list[str], starts: int = 9
) -> None:
    """Median db hits of each path's statement from ``starts`` random nodes, recorded as
    ``db_hits`` of the path's point at ``size``."""
    rng = random.Random(size)
    picks = [(rng.choice(ids), rng.choice(ids)) for _ in range(starts)]
    for name in _statements(label, ids[0], ids[0]):
        curve = series.paths.get(name)
        if curve is None or not curve.points or curve.points[-1]["size"] != size:
            continue
        hits = []
        for start, other in picks:
            query, params = _statements(label, start, other)[name]
            hits.append(_db_hits(await _profile(driver, query, params)))
        curve.points[-1]["db_hits"] = statistics.median(hits)


async def _evidence(driver: Any, series: sk.Series, size: int, label: str, ids: list[str]) -> None:
    """PROFILE of each statement the adapter sends, on the largest graph, and the db hits of
    every path at every size."""
    statements = _statements(label, ids[len(ids) // 2], ids[len(ids) // 3])
    for title, (query, params) in statements.items():
        text = "\n".join(_profile_text(await _profile(driver, query, params)))
        series.note_evidence(f"Neo4j: PROFILE {title}", size, text)
    lines = ["path                  " + "".join(f"{n:>12,}" for n in series.sizes)]
    for name, curve in series.paths.items():
        cells = {p["size"]: p.get("db_hits") for p in curve.points}
        if any(cells.values()):
            lines.append(
                f"{name:<22}" + "".join(f"{cells.get(n) or '-':>12}" for n in series.sizes)
            )
    series.note_evidence(
        "Neo4j: median db hits per call (PROFILE, 9 random starts)", size, "\n".join(lines)
    )
