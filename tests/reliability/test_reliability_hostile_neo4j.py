"""Hostile input against Neo4jAdapter on the real server (issue #11).

500 generated calls per method that takes caller data: random entity and relationship
records, Cypher injection in labels, relationship types and ids, huge strings, lone
surrogates, NaN and 2**64 in properties, nested maps, and raw Cypher (writes included) through
the read-only ``search``. Each call returns or raises a StorageError; a refused call leaves the
graph as it was.

The module's entities carry a private base label (``HostileEntity<hex>``). The state compared
before and after each call is every node of that label (labels and properties), every
relationship between them, the adapter's constraints of this run, and the node, relationship
and constraint counts of the whole database (an injected ``DETACH DELETE`` or ``CREATE``
anywhere, or a constraint created for a stray label, would show). Accepted writes are checked
against the graph, then the namespace is reset to its seed entities. Hostile labels and types
are never valid identifiers by accident, so the run creates no constraint but its own three,
dropped at the end.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hostile import (
    INJECTIONS,
    HostileFixture,
    any_value,
    arguments,
    explore,
    hostile_session,
    hostile_text,
    huge_text,
    maybe,
    records,
)
from hypothesis import strategies as st
from neo4j import AsyncDriver, AsyncGraphDatabase

from mas_storage_neo4j import Neo4jAdapter

pytestmark = pytest.mark.slow

NS = uuid.uuid4().hex[:10]
BASE = f"HostileEntity{NS}"
PERSON = f"HostilePerson{NS}"
PLACE = f"HostilePlace{NS}"
KNOWS = f"HOSTILE_KNOWS_{NS}"
LIVES = f"HOSTILE_LIVES_{NS}"
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SEED_NODES: dict[str, tuple[str, dict[str, Any]]] = {
    f"seed-{NS}-p1": (PERSON, {"name": "Ada \u202e\u05e9", "age": 36}),
    f"seed-{NS}-p2": (PERSON, {"name": "Bob \U0001f600", "tags": ["a", "b"]}),
    f"seed-{NS}-p3": (PERSON, {"name": "Cy"}),
    f"seed-{NS}-x1": (PLACE, {"name": "Paris"}),
}
_P1, _P2, _P3, _X1 = SEED_NODES
SEED_RELS = ((_P1, KNOWS, _P2), (_P2, KNOWS, _P3), (_P1, LIVES, _X1))

#: The state: the namespace's nodes and relationships, and whole-database counts, in one
#: query; the constraints (``SHOW`` stands alone) in a second one.
SNAPSHOT = (
    f"CALL {{ MATCH (n:`{BASE}`) RETURN collect([n.id, labels(n), properties(n)]) AS nodes }} "
    f"CALL {{ MATCH (a:`{BASE}`)-[r]->(b:`{BASE}`) "
    "RETURN collect([a.id, type(r), b.id, properties(r)]) AS rels } "
    "RETURN nodes, rels, COUNT { MATCH (n) } AS all_nodes, "
    "COUNT { MATCH ()-[r]->() } AS all_rels",
    "SHOW CONSTRAINTS YIELD name "
    "RETURN count(name) AS all_constraints, [x IN collect(name) WHERE x CONTAINS $ns] AS ours",
)


@dataclass(repr=False)
class Nj(HostileFixture):
    """The module's adapter, a raw driver for checks and resets, and the seed relationships."""

    adapter: Neo4jAdapter
    raw: AsyncDriver
    database: str
    rel_ids: list[str] = field(default_factory=list)

    def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        async def go() -> list[dict[str, Any]]:
            records, _, _ = await self.raw.execute_query(cypher, params, database_=self.database)
            return [r.data() for r in records]

        return self.run(go())

    def reset(self) -> None:
        """The namespace back to the seed entities and relationships (new elementIds)."""
        self.query(f"MATCH (n:`{BASE}`) DETACH DELETE n")
        for label in (PERSON, PLACE):
            rows = [
                {"id": nid, **props} for nid, (lbl, props) in SEED_NODES.items() if lbl == label
            ]
            self.query(f"UNWIND $rows AS row CREATE (n:`{BASE}`:`{label}`) SET n = row", rows=rows)
        self.rel_ids = []
        for a, rel_type, b in SEED_RELS:
            found = self.query(
                f"MATCH (a:`{BASE}` {{id: $a}}), (b:`{BASE}` {{id: $b}}) "
                f"CREATE (a)-[r:`{rel_type}` {{since: 2020}}]->(b) RETURN elementId(r) AS id",
                a=a,
                b=b,
            )
            self.rel_ids.append(found[0]["id"])


def _canonical(row: dict[str, Any]) -> str:
    """JSON text of a result row (NaN-safe: NaN != NaN would make equal states unequal)."""
    return json.dumps(row, sort_keys=True, default=repr)


def _sorted(value: Any) -> Any:
    """A collected list in a stable order (``collect`` has none)."""
    return sorted(value, key=repr) if isinstance(value, list) else value


@pytest.fixture(autouse=True)
def _fresh(nj: Nj) -> None:
    """Each property starts from the seeds, whatever an earlier one left behind."""
    nj.fresh()


@pytest.fixture(scope="module")
def nj(stack_outputs: dict[str, Any]) -> Iterator[Nj]:
    url, user = stack_outputs["neo4j_url"], stack_outputs.get("neo4j_user") or "neo4j"
    password = stack_outputs["neo4j_password"]
    with hostile_session(stack_outputs, "neo4j") as session:
        loop = session.loop
        adapter = Neo4jAdapter(
            {"url": url, "user": user, "password": password, "entity_label": BASE}
        )
        raw = AsyncGraphDatabase.driver(url, auth=(user, password))
        loop.run(adapter.connect())
        loop.run(adapter.ensure_schema([PERSON, PLACE]))

        async def snapshot() -> tuple[str, ...]:
            async with raw.session(database=adapter.database) as s:
                out = []
                for cypher in SNAPSHOT:
                    result = await s.run(cypher, {"ns": NS})
                    row = await result.single(strict=True)
                    out.append(_canonical({k: _sorted(v) for k, v in row.items()}))
                return tuple(out)

        env = Nj(session, session.guard(snapshot), adapter, raw, adapter.database)
        env.reset()
        try:
            yield env
        finally:
            env.query(f"MATCH (n:`{BASE}`) DETACH DELETE n")
            for label in (BASE, PERSON, PLACE):
                env.query(f"DROP CONSTRAINT `mas_{label}_id_unique` IF EXISTS")
            left = env.query(SNAPSHOT[1], ns=NS)[0]["ours"]
            loop.run(adapter.disconnect())
            loop.run(raw.close())
            assert not left, f"constraints left behind: {left}"


# -- strategies --------------------------------------------------------------------------------


def _not_an_identifier(value: Any) -> bool:
    """Hostile names must not be valid identifiers by chance (they would be written)."""
    return not (isinstance(value, str) and IDENTIFIER.fullmatch(value))


cypher_text = hostile_text(injections=INJECTIONS["cypher"])
bad_names = st.one_of(cypher_text, any_value()).filter(_not_an_identifier)
labels = st.one_of(st.sampled_from([PERSON, PLACE]), st.sampled_from([PERSON, BASE]), bad_names)
rel_types = st.one_of(st.sampled_from([KNOWS, LIVES]), st.sampled_from([KNOWS, LIVES]), bad_names)
node_ids = st.one_of(
    st.sampled_from(list(SEED_NODES)),
    st.text(min_size=1, max_size=30),
    cypher_text,
    st.just(""),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([2**63, -(2**63) - 1, 2**64]),
    st.floats(),  # NaN and infinities: Neo4j stores them
    st.text(max_size=30),
    huge_text(),
    st.binary(max_size=16),
)
prop_values = st.one_of(
    scalars,
    scalars,
    st.lists(st.text(max_size=5), max_size=3),
    st.lists(st.integers(-10, 10), max_size=3),
    st.lists(scalars, max_size=3),  # mixed or holding None: refused by the server
    st.dictionaries(st.text(max_size=5), scalars, max_size=2),  # maps: refused
)
properties = st.one_of(
    st.none(),
    st.dictionaries(st.text(max_size=12), prop_values, max_size=3),
    st.fixed_dictionaries({"id": node_ids}, optional={"name": st.text(max_size=10)}),
    st.fixed_dictionaries({"id": node_ids}, optional={"x": prop_values}),
)
#: Relationship ends: mostly the seed entities (so that some relationships can be made).
ends = st.one_of(st.sampled_from(list(SEED_NODES)), st.sampled_from(list(SEED_NODES)), node_ids)
_wrong = st.one_of(hostile_text(), any_value()).filter(_not_an_identifier)
ENTITY_FIELDS = {
    "type": st.sampled_from(["entity"]),
    "label": labels,
    "properties": properties,
}
RELATIONSHIP_FIELDS = {
    "type": st.sampled_from(["relationship"]),
    "from": ends,
    "to": ends,
    "relationship": rel_types,
    "properties": properties,
    "from_label": st.one_of(st.none(), labels),
    "to_label": st.one_of(st.none(), labels),
}
entities = records(ENTITY_FIELDS, wrong_values=_wrong)
relationships = records(RELATIONSHIP_FIELDS, wrong_values=_wrong)


# -- checks ------------------------------------------------------------------------------------


def check_entity(nj: Nj, node_id: str, record: dict[str, Any]) -> None:
    """The graph holds the accepted entity, under its label, with its string properties."""
    found = nj.query(
        f"MATCH (n:`{BASE}` {{id: $id}}) RETURN labels(n) AS labels, properties(n) AS props",
        id=node_id,
    )
    assert len(found) == 1, f"accepted entity {node_id!r} is not in the graph once"
    assert record["label"] in found[0]["labels"]
    given = record.get("properties") or {}
    for key, value in given.items():
        if isinstance(value, str):
            assert found[0]["props"].get(key) == value, f"property {key!r} differs"


def check_relationship(nj: Nj, rel_id: str, record: dict[str, Any]) -> None:
    found = nj.query(
        "MATCH (a)-[r]->(b) WHERE elementId(r) = $rid RETURN a.id AS a, type(r) AS t, b.id AS b",
        rid=rel_id,
    )
    assert found == [{"a": record["from"], "t": record["relationship"], "b": record["to"]}]


# -- the properties ----------------------------------------------------------------------------


def test_store(nj: Nj) -> None:
    def body(record: Any) -> None:
        out = nj.guard.attempt("store", lambda: nj.adapter.store(record), inputs=[record])
        if out.ok:
            if record["type"] == "entity":
                check_entity(nj, out.value, record)
            else:
                check_relationship(nj, out.value, record)
            nj.reset()

    explore("neo4j.store", st.one_of(entities, relationships), body)
    nj.guard.assert_exercised("store")


def test_store_many(nj: Nj) -> None:
    batches = st.one_of(st.lists(entities, max_size=4), any_value())

    def body(batch: Any) -> None:
        out = nj.guard.attempt("store_many", lambda: nj.adapter.store_many(batch), inputs=[batch])
        if out.ok:
            batch = list(batch)
            assert len(out.value) == len(batch)
            for node_id, record in zip(out.value, batch, strict=True):
                check_entity(nj, node_id, record)
            nj.reset()

    explore("neo4j.store_many", batches, body)
    nj.guard.assert_exercised("store_many")


def test_store_relationships_many(nj: Nj) -> None:
    batches = st.one_of(st.lists(relationships, max_size=4), any_value())
    op = "store_relationships_many"

    def body(batch: Any) -> None:
        out = nj.guard.attempt(
            op, lambda: nj.adapter.store_relationships_many(batch), inputs=[batch]
        )
        if out.ok:
            batch = list(batch)
            assert len(out.value) == len(batch)
            for rel_id, record in zip(out.value, batch, strict=True):
                check_relationship(nj, rel_id, record)
            nj.reset()

    explore("neo4j.store_relationships_many", batches, body)
    nj.guard.assert_exercised(op)


def test_retrieve(nj: Nj) -> None:
    def body(node_id: Any) -> None:
        out = nj.guard.attempt("retrieve", lambda: nj.adapter.retrieve(node_id), pure=True)
        if out.ok and out.value is not None:
            assert node_id in SEED_NODES
            assert out.value["label"] == SEED_NODES[node_id][0]

    explore("neo4j.retrieve", maybe(node_ids), body)
    nj.guard.assert_exercised("retrieve")


#: Queries that write, aimed at this run's namespace only (should the read-only guard fail).
WRITES = (
    f"MATCH (n:`{BASE}`) DETACH DELETE n",
    f"CREATE (:`{BASE}` {{id: 'pwned'}})",
    f"MATCH (n:`{BASE}`) SET n.pwned = true RETURN n",
    f"MATCH (n:`{BASE}`) REMOVE n:`{PERSON}` RETURN count(n)",
    f"MERGE (n:`{BASE}` {{id: 'pwned'}}) RETURN n",
    f"CREATE CONSTRAINT pwned_{NS} IF NOT EXISTS FOR (n:`{BASE}`) REQUIRE n.pwned IS UNIQUE",
    f"CREATE INDEX pwned_{NS} IF NOT EXISTS FOR (n:`{BASE}`) ON (n.pwned)",
    f"MATCH (n:`{BASE}`) WITH n LIMIT 1 CALL {{ WITH n DETACH DELETE n }} RETURN 1",
    f"MATCH (n:`{BASE}`) RETURN n UNION MATCH (n:`{BASE}`) DETACH DELETE n RETURN n",
)
READS = (
    f"MATCH (n:`{BASE}`) RETURN n",
    f"MATCH (n:`{BASE}`) WHERE n.id = $id RETURN n.name AS name",
    "RETURN $x AS x",
    "RETURN 1 AS one",
    "RETURN 1/0",
    "UNWIND range(1, 5) AS i RETURN i",
)


@st.composite
def search_queries(draw: st.DrawFn) -> Any:
    """Search queries; ``write`` is never true (hostile Cypher must stay read-only)."""
    query = draw(
        st.one_of(
            st.fixed_dictionaries(
                {
                    "cypher": st.one_of(
                        st.sampled_from(WRITES),
                        st.sampled_from(READS),
                        st.sampled_from(READS),
                        cypher_text,
                    )
                },
                optional={
                    "params": st.one_of(
                        st.dictionaries(st.sampled_from(["id", "x"]), prop_values, max_size=2),
                        any_value(),
                    ),
                    "write": st.one_of(st.just(False), any_value()),
                },
            ),
            any_value(),
        )
    )
    if isinstance(query, dict) and query.get("write") is True:
        query["write"] = False
    return query


def test_search(nj: Nj) -> None:
    def body(query: Any) -> None:
        out = nj.guard.attempt("search", lambda: nj.adapter.search(query), pure=True)
        if out.ok:
            assert query["cypher"] not in WRITES, f"search ran a write: {query['cypher']}"

    explore("neo4j.search", search_queries(), body)
    nj.guard.assert_exercised("search")


def test_delete(nj: Nj) -> None:
    def body(node_id: Any) -> None:
        out = nj.guard.attempt(
            "delete", lambda: nj.adapter.delete(node_id), pure=lambda v: v is False
        )
        if out.ok and out.value:
            assert node_id in SEED_NODES
            nj.reset()

    explore("neo4j.delete", maybe(node_ids), body)
    nj.guard.assert_exercised("delete")


def test_delete_relationship(nj: Nj) -> None:
    rel_ids = st.one_of(
        st.sampled_from(range(len(SEED_RELS))).map(lambda i: nj.rel_ids[i]),
        st.sampled_from(range(len(SEED_RELS))).map(lambda i: nj.rel_ids[i] + "0"),
        maybe(node_ids),
    )

    def body(rel_id: Any) -> None:
        op = "delete_relationship"
        out = nj.guard.attempt(
            op, lambda: nj.adapter.delete_relationship(rel_id), pure=lambda v: v is False
        )
        if out.ok and out.value:
            assert rel_id in nj.rel_ids
            nj.reset()

    explore("neo4j.delete_relationship", rel_ids, body)
    nj.guard.assert_exercised("delete_relationship")


def test_get_neighbors(nj: Nj) -> None:
    args = arguments(
        node_ids,
        st.one_of(st.none(), rel_types, st.lists(rel_types, max_size=3)),
        st.sampled_from(["out", "in", "both", "outgoing", "incoming", "BOTH"]),
        st.integers(1, 5),
        st.integers(1, 100),
    )

    def body(example: Any) -> None:
        node_id, types, direction, depth, limit = example
        out = nj.guard.attempt(
            "get_neighbors",
            lambda: nj.adapter.get_neighbors(node_id, types, direction, depth, limit),
            pure=True,
        )
        if out.ok:
            assert len(out.value) <= limit
            assert all(item["id"] in SEED_NODES and item["id"] != node_id for item in out.value)

    explore("neo4j.get_neighbors", args, body)
    nj.guard.assert_exercised("get_neighbors")


def test_ensure_schema(nj: Nj) -> None:
    label_lists = st.one_of(
        st.lists(labels, max_size=3),
        st.lists(st.sampled_from([PERSON, PLACE, BASE]), max_size=3),
        any_value().filter(
            lambda v: (
                _not_an_identifier(v)
                and not (isinstance(v, (list, tuple)) and not all(map(_not_an_identifier, v)))
            )
        ),
    )

    def body(names: Any) -> None:
        # The run's own labels are ensured already: a success must change nothing either.
        out = nj.guard.attempt("ensure_schema", lambda: nj.adapter.ensure_schema(names), pure=True)
        if out.ok:
            assert set(out.value) <= {BASE, PERSON, PLACE}

    explore("neo4j.ensure_schema", label_lists, body)
    nj.guard.assert_exercised("ensure_schema")


def test_no_secret_in_logs(nj: Nj) -> None:
    """Every record the calls above logged, at DEBUG (the driver's Bolt messages included), is
    free of the stack's secrets."""
    assert nj.session.watch.by_logger["neo4j"] > 0, "the driver logged nothing at DEBUG"
    nj.session.watch.assert_clean()
