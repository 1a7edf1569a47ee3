"""Every server the outputs point at runs the version of the backend versions manifest.

Locally this proves the suite tests the versions the lab's images run; pointed at the lab's
outputs (``MAS_STACK_OUTPUTS``) it proves the lab runs what the suite tested. Qdrant in each mode
the outputs name: a server reports its version; embedded, there is no server to ask, and the
client's compatibility with the lab's server version is what can be checked.
"""

from __future__ import annotations

import ssl
from importlib.metadata import version as dist_version
from typing import Any

import httpx
import psycopg
import redis.asyncio as aioredis
from neo4j import AsyncGraphDatabase
from qdrant_modes import require_mode

from mas_storage import backend_versions

TESTED = backend_versions()


async def test_postgres_runs_the_tested_version(stack_outputs: dict[str, Any]) -> None:
    async with await psycopg.AsyncConnection.connect(stack_outputs["postgres_url"]) as conn:
        row = await (await conn.execute("SHOW server_version")).fetchone()
    assert row is not None
    assert TESTED["postgres"].matches(row[0]), f"{row[0]} != {TESTED['postgres'].version}"


async def test_redis_runs_the_tested_version(stack_outputs: dict[str, Any]) -> None:
    client = aioredis.from_url(stack_outputs["redis_url"])
    try:
        reported = (await client.info("server"))["redis_version"]
    finally:
        await client.aclose()
    assert reported == TESTED["redis"].version


async def test_neo4j_runs_the_tested_version(stack_outputs: dict[str, Any]) -> None:
    auth = (stack_outputs["neo4j_user"], stack_outputs["neo4j_password"])
    async with AsyncGraphDatabase.driver(stack_outputs["neo4j_url"], auth=auth) as driver:
        records, _, _ = await driver.execute_query(
            "CALL dbms.components() YIELD versions, edition RETURN versions[0] AS v, edition AS e"
        )
    assert (records[0]["v"], records[0]["e"]) == (TESTED["neo4j"].version, "community")


async def test_typesense_runs_the_tested_version(
    stack_outputs: dict[str, Any], stack_admin: dict[str, Any]
) -> None:
    # /debug (the only place with the version) takes the admin key: the adapter's scoped key
    # may read its own collection and documents only.
    headers = {"X-TYPESENSE-API-KEY": stack_admin["typesense_admin_api_key"]}
    async with httpx.AsyncClient(
        base_url=stack_outputs["typesense_url"], timeout=10, verify=ssl.create_default_context()
    ) as client:
        response = await client.get("/debug", headers=headers)
    response.raise_for_status()
    assert response.json()["version"] == TESTED["typesense"].version


async def test_qdrant_server_runs_the_tested_version(stack_outputs: dict[str, Any]) -> None:
    require_mode(stack_outputs, "server")
    headers = {"api-key": stack_outputs.get("qdrant_api_key") or ""}
    async with httpx.AsyncClient(
        timeout=10, trust_env=False, verify=ssl.create_default_context()
    ) as client:
        response = await client.get(stack_outputs["qdrant_url"], headers=headers)
    response.raise_for_status()
    assert response.json()["version"] == TESTED["qdrant"].version


async def test_embedded_qdrant_client_fits_the_tested_server_version(
    stack_outputs: dict[str, Any],
) -> None:
    # Embedded (Qdrant Edge): no server to ask. The client of server mode must be one that
    # accepts the lab's server (one minor version away).
    require_mode(stack_outputs, "embedded")
    client_major, client_minor = (int(p) for p in dist_version("qdrant-client").split(".")[:2])
    server_major, server_minor = (int(p) for p in TESTED["qdrant"].version.split(".")[:2])
    assert client_major == server_major and abs(client_minor - server_minor) <= 1
