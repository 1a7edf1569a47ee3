"""Smoke test of the stack: every backend answers a real, authenticated request; a wrong
password or key is refused; and (on a throwaway stack of its own) ``up`` is idempotent, a
stale PID file is handled, a restart keeps the data, and ``down`` leaves no port listening.

The first half uses the session's ``stack_outputs`` (the local stack or the lab). The second
half starts a separate stack in a temporary root on other ports, so it never touches the
stack the other tests use.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import ssl
import stat
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psutil
import psycopg
import pytest
import qdrant_edge as qe
import redis.asyncio as aioredis
from neo4j import AsyncGraphDatabase
from neo4j.exceptions import AuthError
from ownership import Ownership
from psycopg import sql
from qdrant_modes import Mode, raw_client, require_mode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError
from stack_tls import ca_pem

from mas_devstack import DevstackError, Stack
from mas_devstack._process import port_open
from mas_storage import stack_output_keys

WRONG = "wrong-" + uuid.uuid4().hex


def _with_password(url: str, password: str) -> str:
    """``url`` with its password replaced."""
    parts = urlsplit(url)
    user = parts.username or ""
    netloc = f"{user}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# -- the session's stack: real requests ---------------------------------------------------------


async def test_postgres_select_1_as_the_app_role(stack_outputs: dict[str, Any]) -> None:
    """The outputs' URL logs in as the adapter's least-privileged role ``mas_app`` (not the
    schema owner ``mas``), to its database, encrypted exactly when the stack speaks TLS."""
    async with await psycopg.AsyncConnection.connect(stack_outputs["postgres_url"]) as conn:
        cur = await conn.execute("SELECT 1, current_user, current_database()")
        assert await cur.fetchone() == (1, "mas_app", "mas_memory")
        cur = await conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        assert await cur.fetchone() == (bool(stack_outputs.get("tls_ca")),)


async def test_postgres_refuses_a_wrong_password(stack_outputs: dict[str, Any]) -> None:
    url = _with_password(stack_outputs["postgres_url"], WRONG)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        await psycopg.AsyncConnection.connect(url, connect_timeout=10)


async def test_redis_authenticated_ping(stack_outputs: dict[str, Any]) -> None:
    client = aioredis.from_url(stack_outputs["redis_url"])
    try:
        assert await client.ping() is True
        assert (await client.info("server"))["redis_version"]
    finally:
        await client.aclose()


@pytest.mark.parametrize("password", [WRONG, None], ids=["wrong-password", "no-password"])
async def test_redis_refuses_a_wrong_or_missing_password(
    stack_outputs: dict[str, Any], password: str | None
) -> None:
    """The outputs' ACL user with a wrong password, and a client with no credentials at all
    (the ``default`` user is off), are refused; over TLS when the stack speaks it, so that the
    refusal is the server's answer and not a failed handshake."""
    parts = urlsplit(stack_outputs["redis_url"])
    tls: dict[str, Any] = {}
    if parts.scheme == "rediss":
        tls = {"ssl": True, "ssl_ca_data": ca_pem(stack_outputs), "ssl_check_hostname": True}
    client = aioredis.Redis(
        host=parts.hostname or "",
        port=parts.port or 0,
        username=parts.username if password is not None else None,
        password=password,
        retry=Retry(NoBackoff(), 0),  # a refusal is final: no retries with backoff
        **tls,
    )
    try:
        with pytest.raises(AuthenticationError):
            await client.ping()
    finally:
        await client.aclose()


async def test_typesense_health_and_an_authenticated_request(
    stack_outputs: dict[str, Any],
) -> None:
    key = stack_outputs["typesense_api_key"]
    async with httpx.AsyncClient(
        base_url=stack_outputs["typesense_url"],
        timeout=30,
        trust_env=False,
        verify=ssl.create_default_context(),
    ) as client:
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json() == {"ok": True}
        # The outputs' key is scoped to the adapter's collection: it may read that one.
        collection = await client.get(
            "/collections/semantic_memory", headers={"X-TYPESENSE-API-KEY": key}
        )
        assert collection.status_code == 200
        assert collection.json()["name"] == "semantic_memory"


@pytest.mark.parametrize("key", [WRONG, None], ids=["wrong-key", "no-key"])
async def test_typesense_refuses_a_wrong_or_missing_key(
    stack_outputs: dict[str, Any], key: str | None
) -> None:
    headers = {"X-TYPESENSE-API-KEY": key} if key else {}
    async with httpx.AsyncClient(
        base_url=stack_outputs["typesense_url"],
        timeout=30,
        trust_env=False,
        verify=ssl.create_default_context(),
    ) as client:
        response = await client.get("/collections", headers=headers)
    assert response.status_code == 401


async def test_neo4j_return_1_with_basic_auth(stack_outputs: dict[str, Any]) -> None:
    auth = (stack_outputs["neo4j_user"], stack_outputs["neo4j_password"])
    async with AsyncGraphDatabase.driver(stack_outputs["neo4j_url"], auth=auth) as driver:
        records, _, _ = await driver.execute_query("RETURN 1 AS one")
    assert [record["one"] for record in records] == [1]


async def test_neo4j_refuses_a_wrong_password(stack_outputs: dict[str, Any]) -> None:
    # One attempt only: Neo4j locks the user for a few seconds after repeated failures.
    auth = (stack_outputs["neo4j_user"], WRONG)
    async with AsyncGraphDatabase.driver(stack_outputs["neo4j_url"], auth=auth) as driver:
        with pytest.raises(AuthError):
            await driver.execute_query("RETURN 1")


async def test_qdrant_answers(qdrant_mode: Mode, stack_outputs: dict[str, Any]) -> None:
    if qdrant_mode == "embedded":
        _edge_round_trip(Path(stack_outputs["qdrant_path"]))
        return
    # Over http with an API key (the lab), the client warns that the key goes in clear:
    # raw_client expects exactly that warning rather than let it fail the test (issue #23).
    async with raw_client(stack_outputs) as client:
        response = await client.get_collections()
    assert isinstance(response.collections, list)


def _edge_round_trip(root: Path) -> None:
    """Embedded: the stack's directory takes a Qdrant Edge collection of its own (one shard per
    collection), which answers a write and a search and is removed afterwards."""
    assert root.is_dir()
    assert not (root / "meta.json").exists()  # no qdrant-client local-mode data
    shard_dir = root / f"test-conn-{uuid.uuid4().hex[:8]}"
    config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(2, qe.Distance.Cosine))
    shard = qe.EdgeShard.create(str(shard_dir), config)
    try:
        shard.update(qe.UpdateOperation.upsert_points([qe.Point(5, [0.0, 1.0], {"k": "v"})]))
        hits = shard.query(qe.QueryRequest(limit=1, query=qe.Query.Nearest([0.0, 1.0])))
        assert [h.id for h in hits] == [5]
    finally:
        shard.close()
        shutil.rmtree(shard_dir)


async def test_qdrant_server_refuses_a_wrong_or_missing_key(stack_outputs: dict[str, Any]) -> None:
    require_mode(stack_outputs, "server")
    key = stack_outputs.get("qdrant_api_key")
    if not key:
        pytest.skip("the outputs name no qdrant_api_key: the server takes no key to refuse")
    async with httpx.AsyncClient(
        base_url=stack_outputs["qdrant_url"], timeout=30, trust_env=False
    ) as client:
        for headers in ({"api-key": WRONG}, {}):
            response = await client.get("/collections", headers=headers)
            assert response.status_code == 401, (sorted(headers), response.status_code)
        assert (await client.get("/collections", headers={"api-key": key})).status_code == 200


# -- a throwaway stack of its own: idempotent up, stale PID file, restart, down -------------------

PROCESS_SERVICES = ["postgres", "redis", "typesense", "neo4j"]
REPO_MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def _migration_ids() -> list[str]:
    """The yoyo migration ids of the repository (``*.sql`` without the rollbacks)."""
    return sorted(
        p.name.removesuffix(".sql")
        for p in REPO_MIGRATIONS.glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    )


def _free_port_base() -> int:
    """Five free consecutive ports from a random base in 62000-64900 (away from the shared
    stack, from 61000-61999 and from the ephemeral range), so that two runs do not collide."""
    for _ in range(200):
        base = random.randrange(62000, 64900, 5)
        if not any(port_open(port) for port in range(base, base + 5)):
            return base
    raise AssertionError("no five free consecutive ports in 62000-64900")


def _listening_ports(stack: Stack) -> dict[int, bool]:
    ports = stack.ports
    wanted = [ports.postgres, ports.redis, ports.typesense, ports.typesense_peering, ports.neo4j]
    return {port: port_open(port) for port in wanted}


def _process_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _owner(stack: Stack) -> psycopg.Connection[Any]:
    """A connection to ``stack``'s database as the schema owner (its admin outputs), which
    may read yoyo's table and create and drop tables (the outputs' app role may not),
    trusting ``stack``'s own CA (the session's ``PGSSLROOTCERT`` names the session stack's)."""
    tls = {"sslrootcert": str(stack.ca.ca_cert_path)} if stack.ca is not None else {}
    return psycopg.connect(stack.admin_outputs()["postgres_owner_url"], autocommit=True, **tls)


@pytest.fixture(scope="module")
def throwaway(ownership: Ownership) -> Iterator[Stack]:
    """A second stack with its own root and ports, removed with everything it started.

    The local stack's own tests: they run where the outputs are this checkout's local stack
    (its toolchain is here) and skip against servers this run did not start.

    Its root lies in a 0700 directory, which the postgres OS user cannot enter: when run as
    root this also exercises the cluster placed in the postgres user's home (a symlink in
    ``.mas``), the case of a checkout under /root.
    """
    if ownership.local_stack_reason:
        pytest.skip(ownership.local_stack_reason)
    parent = Path(tempfile.mkdtemp(prefix="mas-devstack-test-"))
    root = parent / "repo"
    root.mkdir()
    if REPO_MIGRATIONS.is_dir():
        shutil.copytree(REPO_MIGRATIONS, root / "migrations")
    stack = Stack(root, port_base=_free_port_base())
    try:
        yield stack
    finally:
        stack.down()
        cluster = root / ".mas" / "postgres"
        if cluster.is_symlink():
            shutil.rmtree(cluster.resolve(), ignore_errors=True)
        shutil.rmtree(parent, ignore_errors=True)


@pytest.fixture(scope="module")
def first_up(throwaway: Stack) -> dict[str, Any]:
    result = throwaway.up()
    pids = {name: throwaway.pid(name) for name in PROCESS_SERVICES}
    return {"result": result, "pids": pids}


@pytest.mark.slow
@pytest.mark.host_system
def test_up_starts_every_service_on_its_own_ports(
    throwaway: Stack, first_up: dict[str, Any]
) -> None:
    result = first_up["result"]
    assert result.started == PROCESS_SERVICES
    assert sorted(result.migrations) == _migration_ids()
    with _owner(throwaway) as conn:
        applied = conn.execute("SELECT migration_id FROM _yoyo_migration").fetchall()
    assert sorted(row[0] for row in applied) == _migration_ids()
    assert all(first_up["pids"].values())
    assert all(_listening_ports(throwaway).values()), _listening_ports(throwaway)
    written = json.loads(throwaway.outputs_path.read_text())
    assert list(written) == sorted(stack_output_keys())
    assert written == result.outputs
    assert stat.S_IMODE(throwaway.outputs_path.stat().st_mode) == 0o600
    assert f":{throwaway.ports.postgres}/mas_memory" in written["postgres_url"]
    assert written["qdrant_path"] == str(throwaway.root / ".mas" / "qdrant")
    assert written["tls_ca"] == str(throwaway.root / ".mas" / "tls" / "ca.pem")  # its own CA
    admin = json.loads(throwaway.admin_outputs_path.read_text())
    assert sorted(admin) == ["postgres_owner_url", "redis_admin_url", "typesense_admin_api_key"]
    assert stat.S_IMODE(throwaway.admin_outputs_path.stat().st_mode) == 0o600
    statuses = throwaway.status()
    assert {name: s.state for name, s in statuses.items()} == {
        "postgres": "running",
        "redis": "running",
        "typesense": "running",
        "neo4j": "running",
        "qdrant": "embedded",
    }
    assert statuses["typesense"].version == "0.24.1"
    assert statuses["qdrant"].version == "Qdrant Edge 0.9.0 (embedded)"
    assert (statuses["neo4j"].version or "").startswith("5.26.")


@pytest.mark.slow
@pytest.mark.host_system
def test_second_up_reuses_the_running_processes(throwaway: Stack, first_up: dict[str, Any]) -> None:
    again = throwaway.up()
    assert again.started == []
    assert again.migrations == []  # applied once, by the first up
    assert {name: throwaway.pid(name) for name in PROCESS_SERVICES} == first_up["pids"]
    assert again.outputs == first_up["result"].outputs


@pytest.mark.slow
@pytest.mark.host_system
def test_a_failing_migration_is_named_rolled_back_and_the_outputs_still_written(
    throwaway: Stack, first_up: dict[str, Any]
) -> None:
    bad = throwaway.root / "migrations" / "9999_test_broken.sql"
    bad.write_text("CREATE TABLE test_broken_half (v int);\nSELECT * FROM test_no_such_table;\n")
    throwaway.outputs_path.unlink()
    try:
        with pytest.raises(DevstackError, match="9999_test_broken") as caught:
            throwaway.up(["postgres"])
        assert "postgresql://" not in str(caught.value)  # the URL (with its password) is not shown
        assert throwaway.outputs_path.exists()
        with _owner(throwaway) as conn:
            half = conn.execute("SELECT to_regclass('test_broken_half')").fetchone()
            ids = conn.execute("SELECT migration_id FROM _yoyo_migration").fetchall()
        assert half == (None,)  # one transaction: nothing of it stays
        assert "9999_test_broken" not in {row[0] for row in ids}
    finally:
        bad.unlink()
    assert throwaway.up(["postgres"]).migrations == []


@pytest.mark.slow
@pytest.mark.host_system
def test_a_killed_service_leaves_a_stale_pid_file_that_up_replaces(
    throwaway: Stack, first_up: dict[str, Any]
) -> None:
    pid = throwaway.pid("redis")
    assert pid is not None
    pid_file = throwaway.layout.pid_path("redis")
    os.kill(pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(pid)], timeout=10)
    assert pid_file.exists()  # stale: nobody removed it
    assert throwaway.pid("redis") is None
    assert not pid_file.exists()
    result = throwaway.up(["redis"])
    assert result.started == ["redis"]
    new_pid = throwaway.pid("redis")
    assert new_pid not in (None, pid)
    assert throwaway.status()["redis"].running


@pytest.mark.slow
@pytest.mark.host_system
def test_postgres_restart_keeps_its_data_while_the_others_keep_running(
    throwaway: Stack, first_up: dict[str, Any]
) -> None:
    table = sql.Identifier(f"test_{uuid.uuid4().hex[:12]}")
    with _owner(throwaway) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (v int)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (42)").format(table))
    others = {name: throwaway.pid(name) for name in ("redis", "typesense", "neo4j")}
    old = throwaway.pid("postgres")
    assert throwaway.stop("postgres") is True
    assert throwaway.pid("postgres") is None
    assert not port_open(throwaway.ports.postgres)
    assert throwaway.start("postgres") is True
    assert throwaway.pid("postgres") not in (None, old)
    with _owner(throwaway) as conn:
        assert conn.execute(sql.SQL("SELECT v FROM {}").format(table)).fetchall() == [(42,)]
        conn.execute(sql.SQL("DROP TABLE {}").format(table))
    assert {name: throwaway.pid(name) for name in others} == others


@pytest.mark.slow
@pytest.mark.host_system
def test_postgres_restarts_after_a_kill_9_of_the_postmaster_alone(
    throwaway: Stack, first_up: dict[str, Any]
) -> None:
    # What the reliability suite does: SIGKILL the PID only; the backends it leaves behind
    # must not keep the new server from starting.
    table = sql.Identifier(f"test_{uuid.uuid4().hex[:12]}")
    with _owner(throwaway) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (v int)").format(table))
        conn.execute(sql.SQL("INSERT INTO {} VALUES (7)").format(table))
        pid = throwaway.pid("postgres")
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        psutil.wait_procs([psutil.Process(pid)], timeout=10)
    assert throwaway.start("postgres") is True
    with _owner(throwaway) as conn:
        assert conn.execute(sql.SQL("SELECT v FROM {}").format(table)).fetchall() == [(7,)]
        conn.execute(sql.SQL("DROP TABLE {}").format(table))


@pytest.mark.slow
@pytest.mark.host_system
def test_typesense_restart_after_kill_keeps_its_collections(
    throwaway: Stack, first_up: dict[str, Any]
) -> None:
    outputs = first_up["result"].outputs
    # Creating and dropping a collection takes the admin key (the outputs' key is scoped);
    # the throwaway stack's own CA signs its certificate.
    headers = {"X-TYPESENSE-API-KEY": throwaway.admin_outputs()["typesense_admin_api_key"]}
    name = f"test_{uuid.uuid4().hex[:12]}"
    schema = {"name": name, "fields": [{"name": "title", "type": "string"}]}
    with httpx.Client(
        base_url=outputs["typesense_url"],
        headers=headers,
        timeout=30,
        trust_env=False,
        verify=ssl.create_default_context(cafile=outputs["tls_ca"]),
    ) as client:
        assert client.post("/collections", json=schema).status_code == 201
        assert throwaway.stop("typesense", kill=True) is True
        assert throwaway.start("typesense") is True
        assert client.get(f"/collections/{name}").status_code == 200
        assert client.delete(f"/collections/{name}").status_code == 200


@pytest.mark.slow
@pytest.mark.host_system
def test_down_stops_everything_and_leaves_no_listening_port(
    throwaway: Stack, first_up: dict[str, Any]
) -> None:
    pids = {name: throwaway.pid(name) for name in PROCESS_SERVICES}
    assert all(pids.values())
    stopped = throwaway.down()
    assert sorted(stopped) == sorted(PROCESS_SERVICES)
    assert not any(_listening_ports(throwaway).values()), _listening_ports(throwaway)
    assert all(_process_gone(pid) for pid in pids.values() if pid)
    assert not list(throwaway.layout.run_dir.glob("*.pid"))
    assert throwaway.down() == []
    assert all(not s.running for n, s in throwaway.status().items() if n != "qdrant")


def test_the_outputs_fixture_never_shows_a_secret(stack_outputs: dict[str, Any]) -> None:
    """A failing test's report prints ``stack_outputs``: its repr masks every secret."""
    from urllib.parse import urlsplit

    secrets = [stack_outputs[k] for k in ("neo4j_password", "typesense_api_key")]
    secrets += [urlsplit(stack_outputs[k]).password for k in ("postgres_url", "redis_url")]
    assert all(secrets), "the local stack has a secret for every backend"
    shown = repr(stack_outputs)
    assert not [s for s in secrets if s in shown]
    assert stack_outputs["postgres_url"].startswith("postgresql://")  # the values are intact


@pytest.mark.slow
@pytest.mark.host_system
def test_a_restarted_typesense_is_up_only_once_its_replayed_log_is_served(
    ownership: Ownership,
) -> None:
    """A snapshot, then 600 writes, then a graceful restart: Typesense replays the 600 log
    entries after its snapshot, and while between 500 and 1000 wait ``/health`` is already ok
    but writes are refused (503) and unreplayed documents read as 404. When ``start``
    returns, a write is accepted and every document reads back (``Typesense.probe_ready``).
    """
    if ownership.local_stack_reason:
        pytest.skip(ownership.local_stack_reason)
    root = Path(tempfile.mkdtemp(prefix="mas-devstack-replay-"))
    stack = Stack(root, port_base=_free_port_base())
    try:
        outputs = stack.up(["typesense"]).outputs
        # The admin key: the outputs' key is scoped to the adapter's collection.
        headers = {"X-TYPESENSE-API-KEY": stack.admin_outputs()["typesense_admin_api_key"]}
        verify = ssl.create_default_context(cafile=outputs["tls_ca"])
        with httpx.Client(
            base_url=outputs["typesense_url"], headers=headers, verify=verify
        ) as client:
            schema = {"name": "replay", "fields": [{"name": "n", "type": "int32"}]}
            client.post("/collections", json=schema).raise_for_status()
            # An on-demand Raft snapshot (copied out to a path), so the replay is the 600 below.
            backup = root / "backup"
            client.post("/operations/snapshot", params={"snapshot_path": str(backup)}, timeout=60)
            assert (backup / "state" / "snapshot").is_dir(), "Typesense took no snapshot"
            for n in range(600):  # one log entry each
                client.post("/collections/replay/documents", json={"id": str(n), "n": n})
            stack.stop("typesense")
            stack.start("typesense")
            written = client.post("/collections/replay/documents", json={"id": "x", "n": -1})
            assert written.status_code == 201, f"a write right after start: {written.text}"
            statuses = [
                client.get(f"/collections/replay/documents/{n}").status_code for n in range(600)
            ]
            assert statuses == [200] * 600, Counter(statuses)
            assert client.get("/collections/replay").json()["num_documents"] == 601
    finally:
        stack.down()
        shutil.rmtree(root, ignore_errors=True)
