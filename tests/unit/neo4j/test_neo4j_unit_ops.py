"""Operations over a scripted driver: validation before any query, the Cypher and parameters
sent, access modes, batching, schema handling and the counters kept for metrics."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from neo4j import exceptions as nx

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageNotFoundError,
    StorageQueryError,
)
from mas_storage_neo4j import Neo4jAdapter

BAD_LABELS = [
    "Person`) DETACH DELETE n //",
    "Person) DETACH DELETE n //",
    "Per son",
    "Per`son",
    "Person;",
    "Person; MATCH (n) DETACH DELETE n",
    "Person:Admin",
    "1Person",
    "Person-x",
    "Pérson",
    "",
    None,
    42,
]
BAD_TYPES = ["KNOWS`]->() DETACH DELETE n //", "KNO WS", "KNOWS;", "KNO`WS", "", None, "A|B"]


def _neo4j_error(code: str, message: str = "boom") -> Exception:
    return nx.Neo4jError._hydrate_neo4j(code=code, message=message)


# -- lifecycle and schema ---------------------------------------------------------------------


async def test_operations_before_connect_are_refused(fake_driver: Any) -> None:
    adapter = Neo4jAdapter(None, driver=fake_driver)
    with pytest.raises(StorageConnectionError, match="not connected"):
        await adapter.retrieve("x")
    assert fake_driver.queries == []


async def test_connect_verifies_and_creates_the_base_constraint(fake_driver: Any) -> None:
    adapter = Neo4jAdapter({"database": "graphdb"}, driver=fake_driver)
    await adapter.connect()
    assert adapter.is_connected
    [(query, params, mode)] = fake_driver.queries
    assert query == (
        "CREATE CONSTRAINT `mas_Entity_id_unique` IF NOT EXISTS "
        "FOR (n:`Entity`) REQUIRE n.id IS UNIQUE"
    )
    assert (params, mode) == ({}, "WRITE")
    assert fake_driver.session_kwargs == [{"database": "graphdb"}]
    await adapter.connect()  # already connected: nothing more is sent
    assert len(fake_driver.queries) == 1
    await adapter.disconnect()
    assert fake_driver.closed == 0  # an injected driver belongs to the caller


async def test_connect_failure_closes_an_owned_driver(
    monkeypatch: pytest.MonkeyPatch, driver_class: Any
) -> None:
    fake = driver_class()
    fake.connectivity_error = nx.ServiceUnavailable("Couldn't connect to 127.0.0.1:1")
    monkeypatch.setattr(
        "mas_storage_neo4j._adapter.AsyncGraphDatabase.driver", lambda uri, **kw: fake
    )
    adapter = Neo4jAdapter({"uri": "bolt://127.0.0.1:1", "password": "pw-secret"})
    with pytest.raises(StorageConnectionError) as info:
        await adapter.connect()
    assert isinstance(info.value.orig, nx.ServiceUnavailable)
    assert fake.closed == 1
    assert not adapter.is_connected
    assert adapter._driver is None


@pytest.mark.parametrize(
    "code",
    [
        "Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists",
        "Neo.ClientError.Schema.ConstraintAlreadyExists",
        "Neo.ClientError.Schema.IndexAlreadyExists",
    ],
)
async def test_schema_race_with_a_concurrent_creator_is_tolerated(
    fake_driver: Any, code: str
) -> None:
    fake_driver.respond(lambda q, p, m: _neo4j_error(code))
    adapter = Neo4jAdapter(None, driver=fake_driver)
    await adapter.connect()
    assert adapter.is_connected
    assert await adapter.ensure_schema() == ["Entity"]


async def test_other_schema_failures_are_raised(fake_driver: Any) -> None:
    fake_driver.respond(
        lambda q, p, m: _neo4j_error("Neo.DatabaseError.Schema.ConstraintCreationFailed")
    )
    adapter = Neo4jAdapter(None, driver=fake_driver)
    with pytest.raises(StorageQueryError, match="ConstraintCreationFailed"):
        await adapter.connect()
    assert not adapter.is_connected


async def test_each_label_is_ensured_once_on_first_write(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.one({"id": p.get("id")}))
    await adapter.store({"type": "entity", "label": "Person", "properties": {"id": "p1"}})
    await adapter.store({"type": "entity", "label": "Person", "properties": {"id": "p2"}})
    constraints = [q for q in fake_driver.texts() if q.startswith("CREATE CONSTRAINT")]
    assert constraints == [
        "CREATE CONSTRAINT `mas_Person_id_unique` IF NOT EXISTS "
        "FOR (n:`Person`) REQUIRE n.id IS UNIQUE"
    ]
    assert await adapter.ensure_schema(["City"]) == ["City", "Entity", "Person"]


# -- entities ---------------------------------------------------------------------------------


class FakeRow:
    """Helpers building FakeResult answers without importing the conftest module."""

    result_cls: Any = None

    @classmethod
    def one(cls, row: dict[str, Any], **counters: int) -> Any:
        return cls.result_cls([row], **counters)

    @classmethod
    def none(cls, **counters: int) -> Any:
        return cls.result_cls([], **counters)


@pytest.fixture(autouse=True)
def _result_cls(fake_result: Any) -> None:
    FakeRow.result_cls = fake_result


async def test_store_entity_merges_on_id_with_values_as_parameters(
    adapter: Any, fake_driver: Any
) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.one({"id": "alice"}, nodes_created=1))
    data = {"type": "entity", "label": "Person", "properties": {"id": "alice", "name": "A'); x"}}
    before = copy.deepcopy(data)
    assert await adapter.store(data) == "alice"
    assert data == before  # the caller's dict is untouched
    query, params, mode = fake_driver.queries[-1]
    assert query == (
        "MERGE (n:`Entity` {id: $id}) ON CREATE SET n:`Person` "
        "WITH n WHERE n:`Person` SET n += $props RETURN n.id AS id"
    )
    assert params == {"id": "alice", "props": {"id": "alice", "name": "A'); x"}}
    assert mode == "WRITE"
    assert fake_driver.transactions[-1] == ("WRITE", adapter.timeout)
    assert all(kw == {"database": "graphdb"} for kw in fake_driver.session_kwargs)


async def test_store_entity_without_id_gets_a_uuid_not_its_name(
    adapter: Any, fake_driver: Any
) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.one({"id": p.get("id")}))
    data = {"type": "entity", "label": "Person", "properties": {"name": "Alice"}}
    first = await adapter.store(data)
    second = await adapter.store(data)
    assert first != second
    assert "Alice" not in (first, second)
    assert len(first) == 36
    assert "id" not in data["properties"]


async def test_store_entity_id_clash_with_another_label(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.none())
    with pytest.raises(StorageDataError, match="'x1' already belongs to an entity that is not"):
        await adapter.store({"type": "entity", "label": "City", "properties": {"id": "x1"}})


@pytest.mark.parametrize("label", BAD_LABELS)
async def test_bad_labels_are_rejected_before_any_query(
    adapter: Any, fake_driver: Any, label: Any
) -> None:
    with pytest.raises(StorageDataError):
        await adapter.store({"type": "entity", "label": label, "properties": {}})
    with pytest.raises(StorageDataError):
        await adapter.store_many([{"label": label, "properties": {}}])
    if label is not None:  # a None endpoint label means "any entity"
        with pytest.raises(StorageDataError):
            await adapter.store(
                {
                    "type": "relationship",
                    "from": "a",
                    "to": "b",
                    "relationship": "R",
                    "to_label": label,
                }
            )
    assert fake_driver.queries == []


@pytest.mark.parametrize("rel_type", BAD_TYPES)
async def test_bad_relationship_types_are_rejected_before_any_query(
    adapter: Any, fake_driver: Any, rel_type: Any
) -> None:
    rel = {"type": "relationship", "from": "a", "to": "b", "relationship": rel_type}
    with pytest.raises(StorageDataError):
        await adapter.store(rel)
    with pytest.raises(StorageDataError):
        await adapter.store_relationships_many([rel])
    if rel_type is not None:
        with pytest.raises(StorageDataError):
            await adapter.get_neighbors("a", rel_types=[rel_type])
    assert fake_driver.queries == []


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({}, "type"),
        ({"type": "node"}, "Unknown type"),
        ({"type": "entity", "properties": {}}, "label"),
        ({"type": "entity", "label": "Person"}, "properties"),
        ({"type": "entity", "label": "Entity", "properties": {}}, "base label"),
        ({"type": "entity", "label": "P", "properties": []}, "mapping"),
        ({"type": "entity", "label": "P", "properties": {"id": 5}}, "id"),
        ({"type": "entity", "label": "P", "properties": {"id": ""}}, "id"),
        ({"type": "entity", "label": "P", "properties": {"id": None}}, "id"),
        ({"type": "entity", "label": "P", "properties": {"a": {"b": 1}}}, "'a'.*mapping"),
        ({"type": "entity", "label": "P", "properties": {"a": [[1]]}}, "nested"),
        ({"type": "entity", "label": "P", "properties": {"": 1}}, "keys"),
        ({"type": "entity", "label": "P", "properties": {3: 1}}, "keys"),
        ({"type": "relationship", "from": "a", "relationship": "R"}, "to"),
        ({"type": "relationship", "from": 1, "to": "b", "relationship": "R"}, "from"),
        ({"type": "relationship", "from": "a", "to": "", "relationship": "R"}, "to"),
        (
            {"type": "relationship", "from": "a", "to": "b", "relationship": "R", "properties": 3},
            "mapping",
        ),
    ],
)
async def test_bad_store_input(adapter: Any, fake_driver: Any, data: Any, match: str) -> None:
    with pytest.raises(StorageDataError, match=match):
        await adapter.store(data)
    assert fake_driver.queries == []


async def test_store_rejects_a_non_mapping(adapter: Any) -> None:
    with pytest.raises(StorageDataError, match="mapping"):
        await adapter.store(["entity"])  # type: ignore[arg-type]


async def test_tuple_properties_become_lists(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.one({"id": "t"}))
    await adapter.store(
        {"type": "entity", "label": "P", "properties": {"id": "t", "tags": ("a", "b"), "n": None}}
    )
    assert fake_driver.queries[-1][1]["props"] == {"id": "t", "tags": ["a", "b"], "n": None}


# -- relationships ----------------------------------------------------------------------------


async def test_store_relationship_returns_the_element_id(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.one({"id": "5:abc:7"}, relationships_created=1))
    rel = {
        "type": "relationship",
        "from": "a",
        "to": "b",
        "relationship": "KNOWS",
        "properties": {"since": 2020},
        "from_label": "Person",
    }
    before = copy.deepcopy(rel)
    assert await adapter.store(rel) == "5:abc:7"
    assert rel == before
    query, params, _ = fake_driver.queries[-1]
    assert query == (
        "MATCH (a:`Person` {id: $a_id}) MATCH (b:`Entity` {id: $b_id}) "
        "MERGE (a)-[r:`KNOWS`]->(b) SET r += $props RETURN elementId(r) AS id"
    )
    assert params == {"a_id": "a", "b_id": "b", "props": {"since": 2020}}
    assert "id(r)" not in query.replace("elementId(r)", "")


async def test_missing_endpoint_names_it(adapter: Any, fake_driver: Any) -> None:
    def answer(query: str, params: dict[str, Any], mode: str) -> Any:
        if query.startswith("UNWIND $ids"):
            absent = [i for i in params["ids"] if i == "ghost"]
            return FakeRow.result_cls([{"id": i} for i in absent])
        return FakeRow.none()

    fake_driver.respond(answer)
    with pytest.raises(StorageNotFoundError, match="'to' node 'ghost'") as info:
        await adapter.store(
            {"type": "relationship", "from": "a", "to": "ghost", "relationship": "KNOWS"}
        )
    assert "'from'" not in str(info.value)
    checks = [q for q in fake_driver.texts() if q.startswith("UNWIND $ids")]
    assert len(checks) == 2  # both ends checked inside the (rolled back) transaction


# -- queries ----------------------------------------------------------------------------------


async def test_retrieve(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(
        lambda q, p, m: FakeRow.one(
            {"labels": ["Entity", "Person"], "properties": {"id": "a", "name": "Alice"}}
        )
    )
    assert await adapter.retrieve("a") == {
        "type": "entity",
        "id": "a",
        "label": "Person",
        "labels": ["Person"],
        "properties": {"id": "a", "name": "Alice"},
    }
    query, params, mode = fake_driver.queries[-1]
    assert query.startswith("MATCH (n:`Entity` {id: $id})")
    assert (params, mode) == ({"id": "a"}, "READ")


async def test_retrieve_missing_is_none(adapter: Any) -> None:
    assert await adapter.retrieve("nobody") is None


@pytest.mark.parametrize("bad", ["", None, 3, ["a"]])
async def test_bad_ids(adapter: Any, fake_driver: Any, bad: Any) -> None:
    for call in (adapter.retrieve, adapter.delete, adapter.delete_relationship):
        with pytest.raises(StorageDataError):
            await call(bad)
    with pytest.raises(StorageDataError):
        await adapter.get_neighbors(bad)
    assert fake_driver.queries == []


async def test_search_runs_read_only_with_parameters(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.one({"name": "Alice"}))
    rows = await adapter.search(
        {"cypher": "MATCH (p:Person {name: $name}) RETURN p.name AS name", "params": {"name": "A"}}
    )
    assert rows == [{"name": "Alice"}]
    assert fake_driver.queries[-1][1:] == ({"name": "A"}, "READ")


async def test_search_write_flag_uses_a_write_transaction(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.result_cls([], query_type="w", nodes_created=1))
    assert await adapter.search({"cypher": "CREATE (:X)", "write": True}) == []
    assert fake_driver.queries[-1][2] == "WRITE"
    assert adapter._counters["nodes_created"] == 1


async def test_search_refuses_a_writing_plan_even_if_the_server_allowed_it(
    adapter: Any, fake_driver: Any
) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.result_cls([], query_type="rw", nodes_created=1))
    with pytest.raises(StorageQueryError, match="read-only"):
        await adapter.search({"cypher": "MATCH (n) SET n.x = 1"})
    assert adapter._counters["nodes_created"] == 0  # rolled back: not counted


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ({}, "cypher"),
        ({"cypher": ""}, "cypher"),
        ({"cypher": 3}, "cypher"),
        ({"cypher": "RETURN 1", "params": [1]}, "params"),
        ({"cypher": "RETURN 1", "write": "yes"}, "write"),
    ],
)
async def test_bad_search_input(adapter: Any, fake_driver: Any, query: Any, match: str) -> None:
    with pytest.raises(StorageDataError, match=match):
        await adapter.search(query)
    assert fake_driver.queries == []


async def test_get_neighbors_query_and_rows(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(
        lambda q, p, m: FakeRow.one(
            {
                "id": "c",
                "labels": ["Entity", "City"],
                "properties": {"id": "c"},
                "depth": 2,
                "relationships": ["KNOWS", "LIVES_IN"],
            }
        )
    )
    rows = await adapter.get_neighbors(
        "a", rel_types=["KNOWS", "LIVES_IN"], direction="out", depth=2, limit=7
    )
    assert rows == [
        {
            "type": "entity",
            "id": "c",
            "label": "City",
            "labels": ["City"],
            "properties": {"id": "c"},
            "depth": 2,
            "relationships": ["KNOWS", "LIVES_IN"],
        }
    ]
    query, params, mode = fake_driver.queries[-1]
    assert "(s)-[:`KNOWS`|`LIVES_IN`*1..2]->(n)" in query
    assert (params, mode) == ({"id": "a", "limit": 7}, "READ")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"direction": "in"}, "(s)<-[*1..1]-(n)"),
        ({"direction": "both", "depth": 5}, "(s)-[*1..5]-(n)"),
        ({"rel_types": "KNOWS", "direction": "incoming"}, "(s)<-[:`KNOWS`*1..1]-(n)"),
    ],
)
async def test_get_neighbors_patterns(
    adapter: Any, fake_driver: Any, kwargs: dict[str, Any], pattern: str
) -> None:
    await adapter.get_neighbors("a", **kwargs)
    assert pattern in fake_driver.queries[-1][0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"direction": "sideways"},
        {"depth": 0},
        {"depth": 6},
        {"depth": True},
        {"depth": 1.5},
        {"limit": 0},
        {"limit": 10**6},
    ],
)
async def test_get_neighbors_bad_arguments(
    adapter: Any, fake_driver: Any, kwargs: dict[str, Any]
) -> None:
    with pytest.raises(StorageDataError):
        await adapter.get_neighbors("a", **kwargs)
    assert fake_driver.queries == []


async def test_delete_reports_whether_a_node_was_deleted(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.none(nodes_deleted=1, relationships_deleted=2))
    assert await adapter.delete("a") is True
    assert fake_driver.queries[-1][0] == "MATCH (n:`Entity` {id: $id}) DETACH DELETE n"
    fake_driver.respond(lambda q, p, m: FakeRow.none())
    assert await adapter.delete("a") is False


async def test_delete_failure_raises_instead_of_returning_false(
    adapter: Any, fake_driver: Any
) -> None:
    fake_driver.respond(lambda q, p, m: nx.SessionExpired("connection lost"))
    with pytest.raises(StorageConnectionError):
        await adapter.delete("a")


async def test_delete_relationship(adapter: Any, fake_driver: Any) -> None:
    fake_driver.respond(lambda q, p, m: FakeRow.none(relationships_deleted=1))
    assert await adapter.delete_relationship("5:abc:1") is True
    assert fake_driver.queries[-1][1] == {"rid": "5:abc:1"}
    fake_driver.respond(lambda q, p, m: FakeRow.none())
    assert await adapter.delete_relationship("5:abc:1") is False


# -- batches ----------------------------------------------------------------------------------


def _echo_rows(query: str, params: dict[str, Any], mode: str) -> Any:
    rows = params.get("rows", [])
    return FakeRow.result_cls(
        [{"i": r["i"], "id": f"rel-{r['i']}"} for r in rows], nodes_created=len(rows)
    )


async def test_store_many_batches_by_label_in_one_transaction(
    adapter: Any, fake_driver: Any
) -> None:
    adapter.batch_size = 500
    fake_driver.respond(_echo_rows)
    items = [{"label": "Person", "properties": {"id": f"p{i}"}} for i in range(1200)]
    items.insert(3, {"type": "entity", "label": "City", "properties": {"id": "c0"}})
    before = copy.deepcopy(items)
    ids = await adapter.store_many(items)
    assert items == before
    assert ids[:5] == ["p0", "p1", "p2", "c0", "p3"]
    assert len(ids) == 1201
    unwinds = [(q, p) for q, p, _ in fake_driver.queries if q.startswith("UNWIND")]
    assert [len(p["rows"]) for _, p in unwinds] == [500, 500, 200, 1]
    assert all("n:`Person`" in q for q, _ in unwinds[:3])
    assert "n:`City`" in unwinds[3][0]
    writes = [t for t in fake_driver.transactions if t[0] == "WRITE"]
    assert len(writes) == 3  # two constraints (Person, City) + one data transaction
    assert adapter._counters["nodes_created"] == 1201


async def test_store_many_clash_fails_the_whole_call(adapter: Any, fake_driver: Any) -> None:
    def answer(query: str, params: dict[str, Any], mode: str) -> Any:
        rows = [r for r in params.get("rows", []) if r["id"] != "taken"]
        return FakeRow.result_cls([{"i": r["i"]} for r in rows])

    fake_driver.respond(answer)
    with pytest.raises(StorageDataError, match="'taken'"):
        await adapter.store_many(
            [
                {"label": "Person", "properties": {"id": "ok"}},
                {"label": "Person", "properties": {"id": "taken"}},
            ]
        )
    assert adapter._counters["transactions_failed"] == 1


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ("abc", "list"),
        ({"label": "P"}, "list"),
        ([{"label": "P", "properties": {}}, "x"], r"entities\[1\]"),
        ([{"type": "relationship", "label": "P", "properties": {}}], r"entities\[0\].*type"),
    ],
)
async def test_store_many_bad_input_sends_nothing(
    adapter: Any, fake_driver: Any, items: Any, match: str
) -> None:
    with pytest.raises(StorageDataError, match=match):
        await adapter.store_many(items)
    assert fake_driver.queries == []


async def test_empty_batches_send_nothing(adapter: Any, fake_driver: Any) -> None:
    assert await adapter.store_many([]) == []
    assert await adapter.store_relationships_many([]) == []
    assert fake_driver.queries == []


async def test_store_relationships_many_returns_element_ids_in_order(
    adapter: Any, fake_driver: Any
) -> None:
    adapter.batch_size = 2
    fake_driver.respond(_echo_rows)
    rels = [
        {"from": "a", "to": "b", "relationship": "KNOWS"},
        {"from": "b", "to": "c", "relationship": "LIKES", "properties": {"w": 1}},
        {"from": "c", "to": "d", "relationship": "KNOWS"},
        {"from": "d", "to": "e", "relationship": "KNOWS", "to_label": "City"},
    ]
    assert await adapter.store_relationships_many(rels) == [f"rel-{i}" for i in range(4)]
    unwinds = [(q, p) for q, p, _ in fake_driver.queries]
    assert len(unwinds) == 3  # (KNOWS) x2 rows, (LIKES), (KNOWS -> City)
    assert "MATCH (b:`City` {id: row.to})" in unwinds[2][0]
    assert unwinds[1][1]["rows"] == [{"i": 1, "from": "b", "to": "c", "props": {"w": 1}}]
    assert len({mode for _, _, mode in fake_driver.queries}) == 1


async def test_store_relationships_many_missing_endpoint(adapter: Any, fake_driver: Any) -> None:
    def answer(query: str, params: dict[str, Any], mode: str) -> Any:
        if query.startswith("UNWIND $ids"):
            return FakeRow.result_cls([{"id": i} for i in params["ids"] if i.startswith("x")])
        rows = [r for r in params["rows"] if not r["to"].startswith("x")]
        return FakeRow.result_cls([{"i": r["i"], "id": "r"} for r in rows])

    fake_driver.respond(answer)
    rels = [{"from": "a", "to": f"x{i}", "relationship": "R"} for i in range(7)]
    with pytest.raises(StorageNotFoundError, match=r"'to' node 'x0'.*and 2 more"):
        await adapter.store_relationships_many(
            [{"from": "a", "to": "b", "relationship": "R"}, *rels]
        )


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([{"from": "a", "to": "b"}], r"relationships\[0\].*relationship"),
        ([{"type": "entity", "from": "a", "to": "b", "relationship": "R"}], "type"),
        ("ab", "list"),
    ],
)
async def test_store_relationships_many_bad_input(
    adapter: Any, fake_driver: Any, items: Any, match: str
) -> None:
    with pytest.raises(StorageDataError, match=match):
        await adapter.store_relationships_many(items)
    assert fake_driver.queries == []


# -- metrics ----------------------------------------------------------------------------------


async def test_backend_metrics_report_counters_and_counts(adapter: Any, fake_driver: Any) -> None:
    await adapter.ensure_schema(["P"])
    fake_driver.respond(lambda q, p, m: FakeRow.one({"id": "a"}, nodes_created=1))
    await adapter.store({"type": "entity", "label": "P", "properties": {"id": "a"}})
    fake_driver.respond(
        lambda q, p, m: FakeRow.one({"nodes": 10, "entities": 8, "relationships": 3})
    )
    data = await adapter.get_metrics()
    backend = data["backend_specific"]
    assert backend["counters"]["nodes_created"] == 1
    assert (backend["node_count"], backend["entity_count"], backend["relationship_count"]) == (
        10,
        8,
        3,
    )
    assert backend["transactions_committed"] >= 2
    assert backend["labels_ensured"] == ["Entity", "P"]
    assert data["operations"]["store"]["success_count"] == 1


async def test_closed_driver_is_reported(adapter: Any) -> None:
    adapter._driver = None
    with pytest.raises(StorageQueryError, match="closed"):
        await adapter.retrieve("a")
