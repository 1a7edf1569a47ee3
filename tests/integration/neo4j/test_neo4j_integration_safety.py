"""Safety against the real Neo4j: injection, read-only search, bad credentials, outages,
timeouts, and all-or-nothing batches. Every refusal leaves the graph unchanged."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
)
from mas_storage_neo4j import Neo4jAdapter

INJECTED_LABELS = [
    "TestPerson`) DETACH DELETE n //",
    "TestPerson) DETACH DELETE n //",
    "TestPerson {id: 'x'}) WITH n MATCH (m) DETACH DELETE m //",
    "Test Person",
    "Test`Person",
    "TestPerson;",
    "TestPerson; MATCH (n) DETACH DELETE n",
    "TestPerson:Entity",
    "TestPerson\n",
    "",
]
INJECTED_TYPES = [
    "KNOWS`]->(b) WITH a MATCH (n) DETACH DELETE n //",
    "KNOWS]->(b) DETACH DELETE a //",
    "KNO WS",
    "KNO`WS",
    "KNOWS;",
    "KNOWS; MATCH (n) DETACH DELETE n",
    "KNOWS|LIKES",
    "",
]


@pytest.fixture
async def seeded(adapter: Neo4jAdapter, graph: Any, run: str) -> tuple[int, int]:
    """Three linked TestPerson nodes; returns the database's (nodes, rels) totals."""
    ids = await adapter.store_many(
        [
            {"label": "TestPerson", "properties": {"id": f"{run}-{k}", "test_run": run}}
            for k in "abc"
        ]
    )
    await adapter.store_relationships_many(
        [{"from": ids[0], "to": ids[1], "relationship": "KNOWS"}]
    )
    return await graph.totals()


@pytest.mark.parametrize("label", INJECTED_LABELS)
async def test_injected_labels_are_rejected_and_change_nothing(
    adapter: Neo4jAdapter, graph: Any, run: str, seeded: tuple[int, int], label: str
) -> None:
    target = f"{run}-a"
    attempts = [
        adapter.store({"type": "entity", "label": label, "properties": {"id": target}}),
        adapter.store_many([{"label": label, "properties": {"id": target}}]),
        adapter.store(
            {
                "type": "relationship",
                "from": target,
                "to": f"{run}-b",
                "relationship": "KNOWS",
                "from_label": label,
            }
        ),
    ]
    for attempt in attempts:
        with pytest.raises(StorageDataError, match="Invalid label"):
            await attempt
    assert await graph.nodes(run) == 3
    assert await graph.totals() == seeded


@pytest.mark.parametrize("rel_type", INJECTED_TYPES)
async def test_injected_relationship_types_are_rejected_and_change_nothing(
    adapter: Neo4jAdapter, graph: Any, run: str, seeded: tuple[int, int], rel_type: str
) -> None:
    rel = {"from": f"{run}-a", "to": f"{run}-c", "relationship": rel_type}
    with pytest.raises(StorageDataError, match="Invalid relationship type"):
        await adapter.store({"type": "relationship", **rel})
    with pytest.raises(StorageDataError, match="Invalid relationship type"):
        await adapter.store_relationships_many([rel])
    with pytest.raises(StorageDataError, match="Invalid relationship type"):
        await adapter.get_neighbors(f"{run}-a", rel_types=[rel_type])
    assert await graph.relationships(run) == 1
    assert await graph.totals() == seeded


async def test_property_values_are_parameters_not_cypher(
    adapter: Neo4jAdapter, graph: Any, run: str, seeded: tuple[int, int]
) -> None:
    evil = "x'}) DETACH DELETE n //"
    await adapter.store(
        {"type": "entity", "label": "TestPerson", "properties": {"id": f"{run}-{evil}", "v": evil}}
    )
    assert (await adapter.retrieve(f"{run}-{evil}"))["properties"]["v"] == evil
    assert await graph.totals() == (seeded[0] + 1, seeded[1])


async def test_read_only_search_refuses_a_write(
    adapter: Neo4jAdapter, graph: Any, run: str, seeded: tuple[int, int]
) -> None:
    writes = [
        "CREATE (:TestScratch {test_run: $run})",
        "MATCH (n:TestPerson) WHERE n.test_run = $run DETACH DELETE n",
        "MATCH (n:TestPerson) WHERE n.test_run = $run SET n.hacked = true",
        "MERGE (n:TestScratch {test_run: $run}) RETURN n",
    ]
    for cypher in writes:
        with pytest.raises(StorageQueryError, match="read-only"):
            await adapter.search({"cypher": cypher, "params": {"run": run}})
    assert await graph.totals() == seeded
    assert (
        await graph.scalar(
            "MATCH (n) WHERE n.test_run = $run AND n.hacked IS NOT NULL RETURN count(n)", run=run
        )
        == 0
    )


async def test_cypher_syntax_error_is_a_query_error(adapter: Neo4jAdapter) -> None:
    with pytest.raises(StorageQueryError, match="SyntaxError"):
        await adapter.search({"cypher": "MATCH (n RETURN n"})


async def test_non_storable_property_is_a_data_error(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    with pytest.raises(StorageDataError):
        await adapter.store(
            {
                "type": "entity",
                "label": "TestPerson",
                "properties": {"id": f"{run}-m", "m": {"a": 1}},
            }
        )
    with pytest.raises(StorageDataError):  # mixed-type list: refused by the server
        await adapter.store(
            {
                "type": "entity",
                "label": "TestPerson",
                "properties": {"id": f"{run}-m", "l": [1, "a"]},
            }
        )
    assert await graph.nodes(run) == 0


async def test_constraint_violation_is_a_data_error(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    await adapter.store({"type": "entity", "label": "TestPerson", "properties": {"id": f"{run}-u"}})
    with pytest.raises(StorageDataError, match=r"ConstraintValidationFailed|already exists"):
        await adapter.search(
            {
                "cypher": "CREATE (:Entity:TestPerson {id: $id, test_run: $run})",
                "params": {"id": f"{run}-u", "run": run},
                "write": True,
            }
        )
    assert await graph.nodes(run) == 1


async def test_slow_query_times_out(neo4j_config: dict[str, Any]) -> None:
    async with Neo4jAdapter({**neo4j_config, "timeout": 0.5}) as adapter:
        with pytest.raises(StorageTimeoutError):
            await adapter.search(
                {
                    "cypher": "UNWIND range(1, 1000000000) AS x WITH x WHERE x < 0 "
                    "RETURN count(x) AS n"
                }
            )
        assert await adapter.search({"cypher": "RETURN 1 AS one"}) == [{"one": 1}]


async def test_store_many_is_all_or_nothing(adapter: Neo4jAdapter, graph: Any, run: str) -> None:
    await adapter.store({"type": "entity", "label": "TestCity", "properties": {"id": f"{run}-x"}})
    items = [
        {"label": "TestPerson", "properties": {"id": f"{run}-{i}", "test_run": run}}
        for i in range(1200)
    ]
    items.append({"label": "TestPerson", "properties": {"id": f"{run}-x"}})  # a TestCity id
    with pytest.raises(StorageDataError, match="not TestPerson"):
        await adapter.store_many(items)
    assert await graph.nodes(run) == 1


async def test_store_relationships_many_missing_endpoint_writes_nothing(
    adapter: Neo4jAdapter, graph: Any, run: str
) -> None:
    ids = await adapter.store_many(
        [{"label": "TestPerson", "properties": {"id": f"{run}-{i}"}} for i in range(10)]
    )
    rels = [{"from": ids[i], "to": ids[i + 1], "relationship": "NEXT"} for i in range(9)]
    rels.append({"from": ids[9], "to": f"{run}-missing", "relationship": "NEXT"})
    with pytest.raises(StorageNotFoundError, match=f"'to' node '{run}-missing'"):
        await adapter.store_relationships_many(rels)
    assert await graph.relationships(run) == 0


async def test_wrong_password(neo4j_config: dict[str, Any]) -> None:
    wrong = "not-the-password-4711"
    adapter = Neo4jAdapter({**neo4j_config, "password": wrong})
    with pytest.raises(StorageConnectionError, match="authentication failed") as info:
        await adapter.connect()
    assert wrong not in str(info.value)
    assert neo4j_config["password"] not in str(info.value)
    assert not adapter.is_connected
    await adapter.disconnect()


def _unused_port() -> int:
    """61687 when it is free (the brief's "stopped server"), else any free loopback port."""
    for port in (61687, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port")


async def test_stopped_server_is_a_connection_error(neo4j_config: dict[str, Any]) -> None:
    port = _unused_port()
    adapter = Neo4jAdapter({**neo4j_config, "url": f"bolt://127.0.0.1:{port}"})
    with pytest.raises(StorageConnectionError) as info:
        await adapter.connect()
    assert str(port) in str(info.value)
    assert neo4j_config["password"] not in str(info.value)
    assert not adapter.is_connected


async def test_unknown_database_is_not_found(neo4j_config: dict[str, Any]) -> None:
    adapter = Neo4jAdapter({**neo4j_config, "database": "nosuchdb"})
    with pytest.raises(StorageNotFoundError, match="nosuchdb"):
        await adapter.connect()
    assert not adapter.is_connected
