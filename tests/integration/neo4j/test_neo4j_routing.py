"""``neo4j+s://`` (routing, TLS verified against the stack's CA) against the single instance.

A Neo4j cluster (Enterprise) is reached through a routing URL: the driver fetches the routing
table and sends writes to the leader, reads to followers. Community answers the routing
procedure with itself in every role, so the same URL works on one instance: what the adapter
does on the lab stack now is what it does on a cluster later (packages/mas-storage-neo4j
README, "Clusters").
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from neo4j import AsyncNeo4jDriver

from mas_storage_neo4j import Neo4jAdapter


@pytest.fixture
def routing_config(neo4j_config: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(neo4j_config["url"])
    assert parts.scheme == "bolt+s", f"the stack serves Bolt over TLS, got {parts.scheme}"
    return {**neo4j_config, "url": urlunsplit(parts._replace(scheme="neo4j+s"))}


async def test_routing_url_with_tls_connects_writes_and_reads(
    routing_config: dict[str, Any], graph: Any, run: str
) -> None:
    async with Neo4jAdapter(routing_config) as adapter:
        assert adapter.uri.startswith("neo4j+s://")
        # The routing driver (not the direct one of bolt://), over TLS.
        assert isinstance(adapter._driver, AsyncNeo4jDriver)
        # TLS from the settings: the driver gets neo4j:// with an ssl_context that verifies
        # the server against the stack's CA (the driver takes a context only so).
        target, tls = adapter.config.driver_target()
        assert target.startswith("neo4j://")
        assert tls["ssl_context"].verify_mode == ssl.CERT_REQUIRED
        node_id = await adapter.store(
            {
                "type": "entity",
                "label": "TestPerson",
                "properties": {"id": f"{run}-r", "test_run": run, "name": "Routed"},
            }
        )
        assert node_id == f"{run}-r"
        got = await adapter.retrieve(node_id)
        assert got is not None and got["properties"]["name"] == "Routed"
    # What the server holds, through the plain Bolt driver of the fixtures.
    rows = await graph.query("MATCH (n:TestPerson {id: $id}) RETURN n.name AS name", id=node_id)
    assert rows == [{"name": "Routed"}]
