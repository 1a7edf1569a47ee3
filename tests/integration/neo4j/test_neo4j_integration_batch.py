"""Batch writes against the real Neo4j: 5,000 entities and 5,000 relationships."""

from __future__ import annotations

from typing import Any

import pytest

from mas_storage_neo4j import Neo4jAdapter

N = 5_000


@pytest.mark.slow
async def test_store_many_5000_entities_and_relationships(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    entities = [
        {
            "label": "TestPerson" if i % 2 else "TestCompany",
            "properties": {"id": f"{run}-{i}", "test_run": run, "n": i},
        }
        for i in range(N)
    ]
    ids = await adapter.store_many(entities)
    assert ids == [f"{run}-{i}" for i in range(N)]
    assert await graph.nodes(run) == N
    assert (
        await graph.scalar("MATCH (n:TestCompany) WHERE n.test_run = $run RETURN count(n)", run=run)
        == N // 2
    )

    ring = [
        {"from": ids[i], "to": ids[(i + 1) % N], "relationship": "NEXT", "properties": {"i": i}}
        for i in range(N)
    ]
    rel_ids = await adapter.store_relationships_many(ring)
    assert len(rel_ids) == N
    assert len(set(rel_ids)) == N
    assert await graph.relationships(run) == N
    sample = await graph.query(
        "MATCH (a)-[r:NEXT]->(b) WHERE elementId(r) = $rid RETURN a.id AS a, b.id AS b, r.i AS i",
        rid=rel_ids[1234],
    )
    assert sample == [{"a": ids[1234], "b": ids[1235], "i": 1234}]

    # Idempotent: the same batches again merge into the same nodes and relationships.
    assert await adapter.store_many(entities) == ids
    assert await adapter.store_relationships_many(ring) == rel_ids
    assert await graph.nodes(run) == N
    assert await graph.relationships(run) == N

    far = await adapter.get_neighbors(ids[0], rel_types=["NEXT"], direction="out", depth=5)
    assert [r["id"] for r in far] == ids[1:6]
    assert far[-1]["relationships"] == ["NEXT"] * 5
