"""Neo4jAdapter against the real Neo4j of the stack: entities, relationships, traversal, search.

Assertions check what the server holds (through a raw driver), not only return values.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from mas_storage import StorageDataError, StorageNotFoundError, create_adapter
from mas_storage_neo4j import Neo4jAdapter, Neo4jSettings


def entity(run: str, key: str, label: str = "TestPerson", **props: Any) -> dict[str, Any]:
    return {
        "type": "entity",
        "label": label,
        "properties": {"id": f"{run}-{key}", "test_run": run, **props},
    }


def rel(run: str, a: str, b: str, rel_type: str = "KNOWS", **props: Any) -> dict[str, Any]:
    return {
        "type": "relationship",
        "from": f"{run}-{a}",
        "to": f"{run}-{b}",
        "relationship": rel_type,
        "properties": props,
    }


async def test_entity_and_relationship_lifecycle(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    alice = entity(run, "alice", name="Alice", age=30)
    bob = entity(run, "bob", name="Bob")
    original = copy.deepcopy(alice)
    assert await adapter.store(alice) == f"{run}-alice"
    assert alice == original  # never mutates the caller's dict
    await adapter.store(bob)

    got = await adapter.retrieve(f"{run}-alice")
    assert got == {
        "type": "entity",
        "id": f"{run}-alice",
        "label": "TestPerson",
        "labels": ["TestPerson"],
        "properties": {"id": f"{run}-alice", "test_run": run, "name": "Alice", "age": 30},
    }
    rows = await graph.query(
        "MATCH (n:TestPerson:Entity {id: $id}) RETURN n.name AS name", id=f"{run}-alice"
    )
    assert rows == [{"name": "Alice"}]

    rel_id = await adapter.store(rel(run, "alice", "bob", since=2020))
    rows = await graph.query(
        "MATCH (a {id: $a})-[r:KNOWS]->(b {id: $b}) RETURN elementId(r) AS rid, r.since AS since",
        a=f"{run}-alice",
        b=f"{run}-bob",
    )
    assert rows == [{"rid": rel_id, "since": 2020}]

    assert await adapter.delete(f"{run}-alice") is True
    assert await graph.nodes(run) == 1
    assert (
        await graph.scalar("MATCH ()-[r]->() WHERE elementId(r) = $r RETURN count(r)", r=rel_id)
        == 0
    )
    assert await adapter.retrieve(f"{run}-alice") is None
    assert await adapter.delete(f"{run}-alice") is False


async def test_store_merges_on_id(adapter: Neo4jAdapter, graph: Any, run: str) -> None:
    await adapter.store(entity(run, "p", name="Old", keep="yes"))
    await adapter.store(entity(run, "p", name="New"))
    rows = await graph.query(
        "MATCH (n {id: $id}) RETURN n.name AS name, n.keep AS keep", id=f"{run}-p"
    )
    assert rows == [{"name": "New", "keep": "yes"}]  # one node, properties merged


async def test_entities_without_id_are_never_merged_by_name(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    data = {"type": "entity", "label": "TestPerson", "properties": {"name": "Sam", "test_run": run}}
    first = await adapter.store(data)
    second = await adapter.store(data)
    assert first != second
    assert "id" not in data["properties"]
    assert await graph.nodes(run) == 2


async def test_same_id_under_another_label_is_refused(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    await adapter.store(entity(run, "x", name="Person X"))
    with pytest.raises(StorageDataError, match="not TestCity"):
        await adapter.store(entity(run, "x", label="TestCity", name="City X"))
    rows = await graph.query(
        "MATCH (n {id: $id}) RETURN labels(n) AS l, n.name AS name", id=f"{run}-x"
    )
    assert len(rows) == 1
    assert sorted(rows[0]["l"]) == ["Entity", "TestPerson"]
    assert rows[0]["name"] == "Person X"


async def test_concurrent_stores_of_one_id_make_one_node(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    await asyncio.gather(*(adapter.store(entity(run, "same", n=i)) for i in range(20)))
    assert await graph.nodes(run) == 1


async def test_relationship_merge_is_idempotent(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    await adapter.store_many([entity(run, "a"), entity(run, "b")])
    first = await adapter.store(rel(run, "a", "b", weight=1))
    second = await adapter.store(rel(run, "a", "b", weight=2))
    assert first == second
    rows = await graph.query(
        "MATCH ({id: $a})-[r]->({id: $b}) RETURN count(r) AS n, max(r.weight) AS w",
        a=f"{run}-a",
        b=f"{run}-b",
    )
    assert rows == [{"n": 1, "w": 2}]


async def test_relationship_with_a_missing_endpoint(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    await adapter.store(entity(run, "a"))
    with pytest.raises(StorageNotFoundError, match=f"'to' node '{run}-ghost'"):
        await adapter.store(rel(run, "a", "ghost"))
    with pytest.raises(StorageNotFoundError, match=f"'from' node '{run}-nobody'"):
        await adapter.store(rel(run, "nobody", "a"))
    assert await graph.relationships(run) == 0
    assert await graph.nodes(run) == 1  # nothing was created on the way


async def test_relationship_endpoint_labels(adapter: Neo4jAdapter, graph: Any, run: str) -> None:
    await adapter.store(entity(run, "p"))
    await adapter.store(entity(run, "c", label="TestCity"))
    data = rel(run, "p", "c", "LIVES_IN")
    with pytest.raises(StorageNotFoundError, match="with label TestPerson"):
        await adapter.store({**data, "to_label": "TestPerson"})
    rel_id = await adapter.store({**data, "from_label": "TestPerson", "to_label": "TestCity"})
    assert await graph.relationships(run) == 1
    assert await adapter.delete_relationship(rel_id) is True
    assert await graph.relationships(run) == 0
    assert await adapter.delete_relationship(rel_id) is False
    assert await graph.nodes(run) == 2


async def test_traversal_to_depth_two(adapter: Neo4jAdapter, run: str) -> None:
    # e -KNOWS-> a -KNOWS-> b -WORKS_AT-> c -LOCATED_IN-> d
    await adapter.store_many(
        [entity(run, k) for k in "abe"]
        + [entity(run, "c", label="TestCompany"), entity(run, "d", label="TestCity")]
    )
    await adapter.store_relationships_many(
        [
            rel(run, "e", "a"),
            rel(run, "a", "b"),
            rel(run, "b", "c", "WORKS_AT"),
            rel(run, "c", "d", "LOCATED_IN"),
        ]
    )
    start = f"{run}-a"

    def summary(rows: list[dict[str, Any]]) -> list[tuple[str, int, list[str]]]:
        return [(r["id"].removeprefix(f"{run}-"), r["depth"], r["relationships"]) for r in rows]

    assert summary(await adapter.get_neighbors(start)) == [
        ("b", 1, ["KNOWS"]),
        ("e", 1, ["KNOWS"]),
    ]
    two = await adapter.get_neighbors(start, depth=2)
    assert summary(two) == [
        ("b", 1, ["KNOWS"]),
        ("e", 1, ["KNOWS"]),
        ("c", 2, ["KNOWS", "WORKS_AT"]),
    ]
    assert two[2]["label"] == "TestCompany"
    assert two[2]["properties"]["test_run"] == run
    assert summary(await adapter.get_neighbors(start, direction="out", depth=3)) == [
        ("b", 1, ["KNOWS"]),
        ("c", 2, ["KNOWS", "WORKS_AT"]),
        ("d", 3, ["KNOWS", "WORKS_AT", "LOCATED_IN"]),
    ]
    assert summary(await adapter.get_neighbors(start, direction="in", depth=2)) == [
        ("e", 1, ["KNOWS"])
    ]
    assert summary(await adapter.get_neighbors(start, rel_types=["KNOWS"], depth=2)) == [
        ("b", 1, ["KNOWS"]),
        ("e", 1, ["KNOWS"]),
    ]
    assert len(await adapter.get_neighbors(start, depth=5, limit=2)) == 2
    assert await adapter.get_neighbors(f"{run}-nowhere") == []


async def test_search_with_parameters(adapter: Neo4jAdapter, run: str) -> None:
    await adapter.store_many(
        [entity(run, "a", name="Ann", age=31), entity(run, "b", name="Ben", age=17)]
    )
    await adapter.store(rel(run, "a", "b"))
    rows = await adapter.search(
        {
            "cypher": "MATCH (p:TestPerson)-[:KNOWS]->(f) WHERE p.test_run = $run AND p.age > $min "
            "RETURN p.name AS name, f.name AS friend",
            "params": {"run": run, "min": 18},
        }
    )
    assert rows == [{"name": "Ann", "friend": "Ben"}]
    nodes = await adapter.search(
        {"cypher": "MATCH (p:TestPerson {id: $id}) RETURN p", "params": {"id": f"{run}-b"}}
    )
    assert nodes[0]["p"]["name"] == "Ben"


async def test_search_write_flag_allows_writes(adapter: Neo4jAdapter, graph: Any, run: str) -> None:
    await adapter.search(
        {"cypher": "CREATE (:TestScratch {test_run: $run})", "params": {"run": run}, "write": True}
    )
    assert await graph.nodes(run) == 1


async def test_schema_constraints_exist_and_ensure_is_idempotent(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    await adapter.store(entity(run, "a"))
    names = {
        row["name"]
        for row in await graph.query("SHOW CONSTRAINTS YIELD name, type RETURN name, type")
    }
    assert {"mas_Entity_id_unique", "mas_TestPerson_id_unique"} <= names
    assert await adapter.ensure_schema(["TestPerson"]) == await adapter.ensure_schema(
        ["TestPerson"]
    )


async def test_concurrent_schema_creators_race(neo4j_config: dict[str, Any], graph: Any) -> None:
    import uuid

    label = f"TestRace_{uuid.uuid4().hex[:8]}"
    adapters = [Neo4jAdapter(neo4j_config) for _ in range(4)]
    try:
        await asyncio.gather(*(a.connect() for a in adapters))
        await asyncio.gather(*(a.ensure_schema([label]) for a in adapters))
        rows = await graph.query(
            "SHOW CONSTRAINTS YIELD name, labelsOrTypes WHERE $label IN labelsOrTypes RETURN name",
            label=label,
        )
        assert rows == [{"name": f"mas_{label}_id_unique"}]
    finally:
        await asyncio.gather(*(a.disconnect() for a in adapters))
        await graph.query(f"DROP CONSTRAINT `mas_{label}_id_unique` IF EXISTS")


async def test_backend_metrics_count_what_was_written(adapter: Neo4jAdapter, run: str) -> None:
    await adapter.store_many([entity(run, str(i)) for i in range(3)])
    await adapter.delete(f"{run}-0")
    metrics = await adapter.get_metrics()
    backend = metrics["backend_specific"]
    assert backend["counters"]["nodes_created"] == 3
    assert backend["counters"]["nodes_deleted"] == 1
    assert backend["node_count"] >= 2
    assert metrics["operations"]["store_many"]["success_count"] == 1


async def test_settings_object_and_registry(
    neo4j_config: dict[str, Any], graph: Any, run: str
) -> None:
    settings = Neo4jSettings(
        url=neo4j_config["url"], user=neo4j_config["user"], password=neo4j_config["password"]
    )
    async with create_adapter("neo4j", settings) as adapter:
        await adapter.store(entity(run, "s"))
    assert await graph.nodes(run) == 1


async def test_reconnect_after_disconnect(neo4j_config: dict[str, Any], run: str) -> None:
    adapter = Neo4jAdapter(neo4j_config)
    await adapter.connect()
    await adapter.disconnect()
    await adapter.disconnect()
    await adapter.connect()
    try:
        assert await adapter.store(entity(run, "r")) == f"{run}-r"
    finally:
        await adapter.disconnect()
