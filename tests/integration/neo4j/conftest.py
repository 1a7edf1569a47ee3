"""Fixtures for the Neo4j integration tests: the real server of the stack outputs.

Every test gets a unique ``run`` id (``test-…``). Entities it creates use ids starting with it
and carry ``test_run = run``; after the test every such node is detach-deleted through a raw
driver, and the cleanup is checked. Labels are a fixed ``Test*`` set, so the uniqueness
constraints the adapter creates for them are a handful reused by every run.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase

from mas_storage_neo4j import Neo4jAdapter


@pytest.fixture(scope="session")
def neo4j_config(stack_outputs: dict[str, Any]) -> dict[str, Any]:
    """Adapter config from the stack outputs (``neo4j_url``, ``neo4j_user``, ``neo4j_password``)."""
    missing = [k for k in ("neo4j_url", "neo4j_password") if not stack_outputs.get(k)]
    if missing:
        pytest.fail(f"stack outputs lack {missing}: is Neo4j part of the stack?")
    return {
        "url": stack_outputs["neo4j_url"],
        "user": stack_outputs.get("neo4j_user") or "neo4j",
        "password": stack_outputs["neo4j_password"],
    }


class Graph:
    """A raw-driver view of the database, to check what the server holds."""

    def __init__(self, driver: AsyncDriver) -> None:
        self.driver = driver

    async def query(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        records, _, _ = await self.driver.execute_query(cypher, params, database_="neo4j")
        return [r.data() for r in records]

    async def scalar(self, cypher: str, **params: Any) -> Any:
        rows = await self.query(cypher, **params)
        return next(iter(rows[0].values()))

    async def nodes(self, run: str) -> int:
        """Nodes of this test run (by ``test_run`` or by id prefix)."""
        return await self.scalar(
            "MATCH (n) WHERE n.test_run = $run OR n.id STARTS WITH $run RETURN count(n)", run=run
        )

    async def relationships(self, run: str) -> int:
        return await self.scalar(
            "MATCH (a)-[r]->() WHERE a.test_run = $run OR a.id STARTS WITH $run RETURN count(r)",
            run=run,
        )

    async def totals(self) -> tuple[int, int]:
        rows = await self.query(
            "RETURN COUNT { MATCH (n) } AS nodes, COUNT { MATCH ()-[r]->() } AS rels"
        )
        return rows[0]["nodes"], rows[0]["rels"]


@pytest.fixture(scope="session")
async def graph(neo4j_config: dict[str, Any]) -> AsyncIterator[Graph]:
    driver = AsyncGraphDatabase.driver(
        neo4j_config["url"],
        auth=(neo4j_config["user"], neo4j_config["password"]),
        notifications_min_severity="OFF",
    )
    await driver.verify_connectivity()
    yield Graph(driver)
    await driver.close()


@pytest.fixture
async def run(graph: Graph) -> AsyncIterator[str]:
    """A unique id prefix for this test; its nodes are deleted (and checked gone) afterwards."""
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    yield run_id
    await graph.query(
        "MATCH (n) WHERE n.test_run = $run OR n.id STARTS WITH $run DETACH DELETE n", run=run_id
    )
    assert await graph.nodes(run_id) == 0


@pytest.fixture
async def adapter(neo4j_config: dict[str, Any], run: str) -> AsyncIterator[Neo4jAdapter]:
    """A connected adapter (depends on ``run`` so it closes before the cleanup runs)."""
    async with Neo4jAdapter(neo4j_config) as connected:
        yield connected
