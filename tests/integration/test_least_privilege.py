"""Least privilege (issue 18): each adapter credential of the stack outputs can do the adapter's
job and the server refuses it anything else. The admin outputs' credentials set up and check.

* PostgreSQL ``postgres_url`` (``mas_app``): DML on the two tables; no DDL (``DROP TABLE``,
  ``CREATE TABLE``, ``TRUNCATE``, ``ALTER``), no other database, no superuser or CREATEDB.
* Redis ``redis_url`` (ACL user): the adapter's commands on ``session:*``; ``FLUSHALL``,
  ``KEYS``, ``CONFIG`` and any other key prefix refused; the default user is off.
* Typesense ``typesense_api_key`` (scoped): documents of ``semantic_memory``; creating,
  dropping or reading another collection refused, and so is key management.
"""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis.asyncio as aioredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster

from mas_storage import StorageConnectionError, create_adapter
from mas_storage_typesense import TypesenseAdapter, default_schema


@pytest.fixture(scope="module")
def outputs(stack_outputs: dict[str, Any], stack_admin: dict[str, Any]) -> dict[str, Any]:
    if not stack_admin:
        pytest.fail("no admin outputs: the stack predates issue 18's least privilege")
    return stack_outputs


# -- PostgreSQL ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE active_context",
        "CREATE TABLE test_lp_intruder (id int)",
        "TRUNCATE working_memory",
        "ALTER TABLE working_memory ADD COLUMN test_lp int",
        "CREATE INDEX test_lp_idx ON active_context (content)",
    ],
)
async def test_postgres_app_role_may_not_change_the_schema(
    outputs: dict[str, Any], stack_admin: dict[str, Any], statement: str
) -> None:
    async with await psycopg.AsyncConnection.connect(outputs["postgres_url"], autocommit=True) as c:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await c.execute(statement)
    # The owner's view: the tables are as the migrations left them.
    async with await psycopg.AsyncConnection.connect(stack_admin["postgres_owner_url"]) as owner:
        cur = await owner.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
            "('active_context', 'working_memory', 'test_lp_intruder')"
        )
        assert await cur.fetchone() == (2,)
        cur = await owner.execute(
            "SELECT count(*) FROM information_schema.columns WHERE column_name = 'test_lp'"
        )
        assert await cur.fetchone() == (0,)


async def test_postgres_app_role_has_its_dml_only(outputs: dict[str, Any]) -> None:
    async with await psycopg.AsyncConnection.connect(outputs["postgres_url"]) as conn:
        cur = await conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user"
        )
        assert await cur.fetchone() == (False, False, False, False)
        cur = await conn.execute(
            "SELECT table_name, string_agg(privilege_type, ',' ORDER BY privilege_type) "
            "FROM information_schema.role_table_grants WHERE grantee = 'mas_memory_rw' "
            "AND table_name IN ('active_context', 'working_memory') GROUP BY table_name "
            "ORDER BY table_name"
        )
        assert await cur.fetchall() == [
            ("active_context", "DELETE,INSERT,SELECT,UPDATE"),
            ("working_memory", "DELETE,INSERT,SELECT,UPDATE"),
        ]
        cur = await conn.execute("SELECT has_schema_privilege('public', 'CREATE')")
        assert await cur.fetchone() == (False,)


async def test_postgres_app_role_reaches_no_other_database(outputs: dict[str, Any]) -> None:
    url = outputs["postgres_url"]
    other = urlunsplit(urlsplit(url)._replace(path="/postgres"))
    with pytest.raises(psycopg.OperationalError, match=r"no pg_hba\.conf entry"):
        await psycopg.AsyncConnection.connect(other, connect_timeout=5)


# -- Redis ---------------------------------------------------------------------------------------


def _keyspace(outputs: dict[str, Any], url: str) -> aioredis.Redis | RedisCluster:
    """A client of the whole key space: a cluster client when the outputs name a Redis Cluster
    (each key goes to its slot's primary; a one-node client would be answered MOVED)."""
    if outputs.get("redis_cluster_nodes"):
        return RedisCluster.from_url(url, socket_timeout=5)
    return aioredis.Redis.from_url(url, socket_timeout=5)


@pytest.fixture
async def app_redis(outputs: dict[str, Any]) -> AsyncIterator[aioredis.Redis | RedisCluster]:
    client = _keyspace(outputs, outputs["redis_url"])
    yield client
    await client.aclose()


@pytest.fixture
async def admin_keys(
    outputs: dict[str, Any], stack_admin: dict[str, Any]
) -> AsyncIterator[aioredis.Redis | RedisCluster]:
    client = _keyspace(outputs, stack_admin["redis_admin_url"])
    yield client
    await client.aclose()


@pytest.fixture
async def admin_redis(stack_admin: dict[str, Any]) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack_admin["redis_admin_url"], socket_timeout=5)
    yield client
    await client.aclose()


@pytest.mark.parametrize(
    "command",
    [("FLUSHALL",), ("FLUSHDB",), ("KEYS", "*"), ("CONFIG", "GET", "*"), ("ACL", "LIST")],
)
async def test_redis_app_user_may_not_run_other_commands(
    app_redis: aioredis.Redis | RedisCluster,
    admin_keys: aioredis.Redis | RedisCluster,
    command: tuple[str, ...],
) -> None:
    marker = f"test-lp-{uuid.uuid4().hex}"
    await admin_keys.set(marker, "1", ex=60)
    try:
        with pytest.raises(rx.NoPermissionError):
            await app_redis.execute_command(*command)
        assert await admin_keys.get(marker) == b"1"  # nothing was flushed
    finally:
        await admin_keys.delete(marker)


async def test_redis_app_user_reads_no_other_key_prefix(
    app_redis: aioredis.Redis | RedisCluster, admin_keys: aioredis.Redis | RedisCluster
) -> None:
    other = f"other:{uuid.uuid4().hex}"
    session = f"session:test-lp-{uuid.uuid4().hex}:turns"
    await admin_keys.rpush(other, "secret-row")
    try:
        with pytest.raises(rx.NoPermissionError):
            await app_redis.lrange(other, 0, -1)
        with pytest.raises(rx.NoPermissionError):
            await app_redis.delete(other)
        await app_redis.lpush(session, "x")  # its own prefix: allowed
        assert await admin_keys.lrange(session, 0, -1) == [b"x"]
        assert await admin_keys.lrange(other, 0, -1) == [b"secret-row"]
    finally:
        await admin_keys.delete(other)
        await admin_keys.delete(session)


async def test_redis_default_user_is_off(
    outputs: dict[str, Any], admin_redis: aioredis.Redis
) -> None:
    """No client gets in as ``default``: without credentials, or naming it with the admin's
    password. Its permissions stay (the AOF replay runs as it: ``mas_storage_redis._acl``)."""
    parts = urlsplit(outputs["redis_url"])
    anonymous = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port}"))
    admin_password = admin_redis.connection_pool.connection_kwargs["password"]
    as_default = urlunsplit(
        parts._replace(netloc=f"default:{admin_password}@{parts.hostname}:{parts.port}")
    )
    for url in (anonymous, as_default):
        client = aioredis.Redis.from_url(url, socket_timeout=5)
        try:
            with pytest.raises(rx.AuthenticationError):
                await client.get("session:x:turns")
        finally:
            await client.aclose()
    default = await admin_redis.acl_getuser("default")
    assert default["enabled"] is False
    assert default["passwords"] == []


async def test_redis_adapter_works_with_its_acl_user(outputs: dict[str, Any]) -> None:
    """Every adapter call, backend metrics included, passes the ACL (the suites cover the
    rest: they run as this user)."""
    sid = f"test-lp-{uuid.uuid4().hex}"
    async with create_adapter("redis", {"url": outputs["redis_url"]}) as cache:
        await cache.store_many(  # type: ignore[attr-defined]
            [{"session_id": sid, "turn_id": i, "content": str(i)} for i in range(3)]
        )
        assert [t["turn_id"] for t in await cache.search({"session_id": sid})] == [2, 1, 0]
        assert (await cache.get_metrics())["backend_specific"]["redis_version"]
        assert await cache.delete(f"session:{sid}:turns:1")
        assert await cache.delete(f"session:{sid}:turns")


# -- Typesense -----------------------------------------------------------------------------------


def _client(outputs: dict[str, Any], key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=outputs["typesense_url"],
        headers={"X-TYPESENSE-API-KEY": key},
        timeout=30,
        trust_env=False,
        verify=ssl.create_default_context(),  # the stack's CA (tests/conftest.py)
    )


@pytest.fixture
async def other_collection(
    outputs: dict[str, Any], stack_admin: dict[str, Any]
) -> AsyncIterator[str]:
    """A collection the admin made, outside the scoped key's collections."""
    name = f"test_lp_{uuid.uuid4().hex[:12]}"
    async with _client(outputs, stack_admin["typesense_admin_api_key"]) as admin:
        made = await admin.post("/collections", content=json.dumps(default_schema(name)))
        assert made.status_code == 201, made.text
        yield name
        await admin.delete(f"/collections/{name}")


async def test_typesense_scoped_key_may_not_drop_or_read_another_collection(
    outputs: dict[str, Any], stack_admin: dict[str, Any], other_collection: str
) -> None:
    async with _client(outputs, outputs["typesense_api_key"]) as scoped:
        assert (await scoped.delete(f"/collections/{other_collection}")).status_code == 401
        assert (await scoped.get(f"/collections/{other_collection}")).status_code == 401
        search = await scoped.get(
            f"/collections/{other_collection}/documents/search", params={"q": "*"}
        )
        assert search.status_code == 401
        assert (await scoped.delete("/collections/semantic_memory")).status_code == 401
        created = await scoped.post(
            "/collections", content=json.dumps(default_schema(f"{other_collection}_x"))
        )
        assert created.status_code == 401
        assert (await scoped.get("/keys")).status_code == 401
    async with _client(outputs, stack_admin["typesense_admin_api_key"]) as admin:
        assert (await admin.get(f"/collections/{other_collection}")).status_code == 200
        assert (await admin.get("/collections/semantic_memory")).status_code == 200
        assert (await admin.get(f"/collections/{other_collection}_x")).status_code == 404


async def test_typesense_adapter_works_with_the_scoped_key(outputs: dict[str, Any]) -> None:
    """The provisioned collection, with the key of the outputs: writes, reads, searches."""
    config = {"url": outputs["typesense_url"], "api_key": outputs["typesense_api_key"]}
    doc_id = f"test-lp-{uuid.uuid4().hex}"
    async with TypesenseAdapter(config) as ts:
        assert ts.collection_name == "semantic_memory"
        await ts.store(
            {
                "id": doc_id,
                "content": "least privilege",
                "session_id": doc_id,
                "fact_type": "test",
                "confidence": 0.9,
            }
        )
        assert (await ts.retrieve(doc_id) or {}).get("content") == "least privilege"
        assert await ts.delete(doc_id)


async def test_typesense_scoped_key_reaches_no_other_collection(
    outputs: dict[str, Any], stack_admin: dict[str, Any]
) -> None:
    """An adapter on a collection outside the key's scope fails at connect (its lookup is
    refused), and creates nothing."""
    name = f"test_lp_{uuid.uuid4().hex[:12]}"
    config = {"url": outputs["typesense_url"], "api_key": outputs["typesense_api_key"]}
    with pytest.raises(StorageConnectionError, match="lacks permission"):
        async with TypesenseAdapter({**config, "collection_name": name}):
            pass
    async with _client(outputs, stack_admin["typesense_admin_api_key"]) as admin:
        assert (await admin.get(f"/collections/{name}")).status_code == 404
