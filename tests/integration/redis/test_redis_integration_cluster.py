"""Redis Cluster and WAIT on real servers: what only a cluster (or a replica) can show.

The rest of this directory runs unchanged on one server and on the cluster topology
(``scripts/test-cluster``). These tests check what the cluster adds, on the server's own
counters where they can: one ``EVAL`` per hash slot for a batch (``INFO commandstats`` of every
node), hash tags, the slot map the adapter follows, the backend metrics per node, and ``WAIT``
(``wait_replicas``) confirmed by the replica itself. The WAIT refusal runs on both topologies;
the rest skips, with the reason, on one server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from mas_storage import StorageQueryError, StorageTimeoutError, create_adapter
from mas_storage_redis import RedisAdapter, session_key


@pytest.fixture
def cluster_only(redis_cluster: bool) -> None:
    if not redis_cluster:
        pytest.skip("needs the cluster topology (scripts/test-cluster)")


async def commandstats(raw: Any) -> dict[str, int]:
    """Calls per command summed over the primaries (``INFO commandstats`` of each)."""
    if isinstance(raw, RedisCluster):
        per_node = await raw.info("commandstats", target_nodes=RedisCluster.PRIMARIES)
        infos = list(per_node.values())
    else:
        infos = [await raw.info("commandstats")]
    calls: dict[str, int] = {}
    for info in infos:
        for name, stats in info.items():
            calls[name] = calls.get(name, 0) + int(stats["calls"])
    return calls


async def delta(raw: Any, before: dict[str, int], name: str) -> int:
    return (await commandstats(raw)).get(name, 0) - before.get(name, 0)


async def replicas_of_slot(raw: Any, key: str) -> int:
    """How many replicas serve ``key``'s primary (``connected_slaves`` of it)."""
    if isinstance(raw, RedisCluster):
        await raw.initialize()
        node = raw.get_node_from_key(key)
        info = await raw.info("replication", target_nodes=node)
    else:
        info = await raw.info("replication")
    return int(info.get("connected_slaves", 0))


# -- on both topologies --------------------------------------------------------------------------


async def test_a_write_fewer_replicas_confirm_is_not_acknowledged(
    make_adapter: Callable[..., Any], raw: aioredis.Redis, session_id: str
) -> None:
    """``wait_replicas`` one more than the primary has: the write is applied on the primary,
    but WAIT times out short, and the caller gets a StorageTimeoutError saying so."""
    have = await replicas_of_slot(raw, session_key(session_id))
    adapter = await make_adapter(wait_replicas=have + 1, wait_timeout=0.2)
    with pytest.raises(StorageTimeoutError, match=rf"only {have} of {have + 1} replica"):
        await adapter.cache_turn(session_id, 1, "applied, not acknowledged")
    with pytest.raises(StorageTimeoutError, match="not acknowledged"):
        await adapter.store_many(
            [{"session_id": session_id, "turn_id": 2, "content": "batch, not acknowledged"}]
        )
    held = [json.loads(x)["turn_id"] for x in await raw.lrange(session_key(session_id), 0, -1)]
    assert held == [2, 1]  # the primary applied both
    metrics = await adapter.get_metrics()
    assert metrics["backend_specific"]["wait_replicas"] == have + 1


# -- the cluster ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("cluster_only")
async def test_the_outputs_give_a_cluster_adapter(stack_outputs: dict[str, Any]) -> None:
    adapter = create_adapter("redis")  # url, cluster_nodes and tls_ca from the outputs file
    async with adapter:
        assert isinstance(adapter, RedisAdapter) and adapter.is_cluster
        client = adapter.client
        assert isinstance(client, RedisCluster)
        assert len(client.get_primaries()) == 3
        assert len(client.get_nodes()) == len(stack_outputs["redis_cluster_nodes"]) == 6


@pytest.mark.usefixtures("cluster_only")
async def test_the_url_alone_finds_the_cluster_and_cluster_false_refuses_it(
    redis_url: str, raw: RedisCluster, sessions: Callable[..., str]
) -> None:
    async with RedisAdapter({"url": redis_url}) as found:
        assert found.is_cluster
    await raw.initialize()
    seed = raw.get_node(*_host_port(redis_url))
    assert seed is not None
    elsewhere = _session_off(raw, seed.name, sessions)
    async with RedisAdapter({"url": redis_url, "cluster": False}) as single:
        assert not single.is_cluster
        with pytest.raises(StorageQueryError, match="runs in cluster mode"):
            await single.cache_turn(elsewhere, 1, "MOVED")


@pytest.mark.usefixtures("cluster_only")
async def test_a_batch_is_one_eval_per_slot_and_each_session_whole(
    redis_adapter: RedisAdapter, raw: RedisCluster, sessions: Callable[..., str]
) -> None:
    sids = [sessions() for _ in range(30)]
    slots = {raw.keyslot(session_key(sid)) for sid in sids}
    turns = [{"session_id": s, "turn_id": t, "content": f"{s}/{t}"} for t in range(3) for s in sids]
    before = await commandstats(raw)
    await redis_adapter.store_many(turns)
    assert await delta(raw, before, "cmdstat_eval") == len(slots)
    assert await delta(raw, before, "cmdstat_type") == 2 * len(sids)  # the check, the scripts'
    for sid in sids:
        held = [json.loads(x) for x in await raw.lrange(session_key(sid), 0, -1)]
        assert [t["turn_id"] for t in held] == [2, 1, 0]


@pytest.mark.usefixtures("cluster_only")
async def test_hash_tags_keep_sessions_in_one_slot_and_one_eval(
    redis_adapter: RedisAdapter, raw: RedisCluster, sessions: Callable[..., str]
) -> None:
    """``{...}`` in a session id is a hash tag (Redis's rule): sessions sharing one share a
    slot, so their batch is one EVAL, with no separate TYPE check (one slot is atomic)."""
    tagged = [sessions(f"{{tenant-7}}-{i}") for i in range(5)]
    assert len({raw.keyslot(session_key(sid)) for sid in tagged}) == 1
    before = await commandstats(raw)
    await redis_adapter.store_many(
        [{"session_id": sid, "turn_id": 1, "content": "co-located"} for sid in tagged]
    )
    assert await delta(raw, before, "cmdstat_eval") == 1
    assert await delta(raw, before, "cmdstat_type") == len(tagged)  # inside the script only
    assert await raw.exists(*(session_key(sid) for sid in tagged)) == len(tagged)


@pytest.mark.usefixtures("cluster_only")
async def test_wait_returns_once_the_replica_holds_the_write(
    make_adapter: Callable[..., Any], raw: RedisCluster, redis_admin_url: str, session_id: str
) -> None:
    adapter = await make_adapter(wait_replicas=1, wait_timeout=1.0)
    key = session_key(session_id)
    await raw.initialize()
    replica = raw.get_node_from_key(key, replica=True)
    assert replica is not None
    await adapter.cache_turn(session_id, 1, "on the replica when acknowledged")
    # Read the replica itself (READONLY) right after the acknowledgement.
    direct = aioredis.Redis.from_url(_url_at(redis_admin_url, replica.host, int(replica.port)))
    try:
        await direct.execute_command("READONLY")
        held = await direct.lrange(key, 0, -1)
    finally:
        await direct.aclose()
    assert [json.loads(x)["content"] for x in held] == ["on the replica when acknowledged"]


@pytest.mark.usefixtures("cluster_only")
async def test_a_batch_with_wait_is_one_wait_per_node_and_whole(
    make_adapter: Callable[..., Any], raw: RedisCluster, sessions: Callable[..., str]
) -> None:
    """With ``wait_replicas`` a batch over many slots sends each node's EVALs and then one
    WAIT on the same connection: as many WAITs as primaries touched, every session whole."""
    adapter = await make_adapter(wait_replicas=1, wait_timeout=1.0)
    sids = [sessions() for _ in range(20)]
    await raw.initialize()
    owners = [raw.get_node_from_key(session_key(sid)) for sid in sids]
    nodes = {node.name for node in owners if node is not None}
    slots = {raw.keyslot(session_key(sid)) for sid in sids}
    turns = [{"session_id": s, "turn_id": t, "content": f"{s}/{t}"} for t in range(2) for s in sids]
    before = await commandstats(raw)
    await adapter.store_many(turns)
    assert await delta(raw, before, "cmdstat_wait") == len(nodes)
    assert await delta(raw, before, "cmdstat_eval") == len(slots)
    for sid in sids:
        held = [json.loads(x) for x in await raw.lrange(session_key(sid), 0, -1)]
        assert [t["turn_id"] for t in held] == [1, 0]


@pytest.mark.usefixtures("cluster_only")
async def test_a_slot_moved_under_the_adapter_is_followed_by_ask_then_moved(
    make_adapter: Callable[..., Any],
    raw: RedisCluster,
    redis_admin_url: str,
    sessions: Callable[..., str],
) -> None:
    """Resharding as ``redis-cli --cluster reshard`` does it, one slot: the session's slot
    MIGRATING on its primary and IMPORTING on another, its key MIGRATEd, then the slot
    assigned to the other. The connected adapter follows ``ASK`` (mid-migration) and then
    ``MOVED`` and its new slot map, with the same client and no new connect()."""
    adapter = await make_adapter()
    client = adapter.client
    sid = sessions()
    key = session_key(sid)
    await adapter.cache_turn(sid, 1, "before")
    await raw.initialize()
    slot = raw.keyslot(key)
    src = raw.get_node_from_key(key)
    assert src is not None
    dst = next(n for n in raw.get_primaries() if n.name != src.name)
    src_id = await raw.execute_command("CLUSTER MYID", target_nodes=src)
    dst_id = await raw.execute_command("CLUSTER MYID", target_nodes=dst)
    admin = urlsplit(redis_admin_url)
    try:
        await raw.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id, target_nodes=dst)
        await raw.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id, target_nodes=src)
        moved = await raw.execute_command(
            "MIGRATE", dst.host, dst.port, "", 0, 5000, "AUTH2", admin.username,
            admin.password, "KEYS", key, target_nodes=src,
        )  # fmt: skip
        assert moved in (b"OK", "OK")
        # Mid-migration: the key lives on dst, the adapter's map still says src: ASK.
        await adapter.cache_turn(sid, 2, "during")
        assert [t["turn_id"] for t in await adapter.get_cached_turns(sid)] == [2, 1]
        for node in raw.get_primaries():
            await raw.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id, target_nodes=node)
        # The slot is dst's now: MOVED, then the new map.
        await adapter.cache_turn(sid, 3, "after")
        assert [t["turn_id"] for t in await adapter.get_cached_turns(sid)] == [3, 2, 1]
        assert adapter.client is client
        direct = aioredis.Redis.from_url(_url_at(redis_admin_url, dst.host, int(dst.port)))
        try:
            assert await direct.llen(key) == 3  # on dst itself
            await direct.delete(key)
        finally:
            await direct.aclose()
    finally:  # the slot back where it was, as a migration again (no key left to move)
        await _give_back(raw, slot, src, dst, src_id, dst_id)


@pytest.mark.usefixtures("cluster_only")
async def test_backend_metrics_name_every_node(redis_adapter: RedisAdapter) -> None:
    backend = (await redis_adapter.get_metrics())["backend_specific"]
    nodes = backend["nodes"]
    assert len(nodes) == 6
    assert sorted(n["role"] for n in nodes.values()) == ["master"] * 3 + ["slave"] * 3
    assert all(n["master_link_status"] == "up" for n in nodes.values() if n["role"] == "slave")
    assert backend["primaries"] == 3 and backend["cluster_size"] == 3
    assert (backend["cluster_state"], backend["cluster_slots_ok"]) == ("ok", 16384)
    assert backend["used_memory"] == sum(n["used_memory"] for n in nodes.values())


@pytest.mark.usefixtures("cluster_only")
async def test_the_adapter_user_may_not_administer_the_cluster(
    redis_adapter: RedisAdapter,
) -> None:
    from redis import exceptions as rx

    client = redis_adapter.client
    assert isinstance(client, RedisCluster)
    node = client.get_random_node()
    for command in (("CLUSTER RESET",), ("CLUSTER FAILOVER",), ("FLUSHALL",), ("CONFIG GET", "*")):
        with pytest.raises(rx.NoPermissionError):
            await client.execute_command(*command, target_nodes=node)


# -- helpers -------------------------------------------------------------------------------------


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", int(parts.port or 6379)


def _url_at(url: str, host: str, port: int) -> str:
    """``url`` (its user and password kept) pointed at ``host:port``."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}:{port}"))


async def _give_back(
    raw: RedisCluster, slot: int, src: Any, dst: Any, src_id: Any, dst_id: Any
) -> None:
    """``slot`` back to ``src``, as a migration again (no key left in it), whatever step the
    test reached: src first (a node taking a slot it imports bumps its epoch, so every node,
    replicas too by gossip, takes src's claim over dst's), then the other primaries."""
    for node in (src, dst):
        await raw.execute_command("CLUSTER SETSLOT", slot, "STABLE", target_nodes=node)
    view = await raw.execute_command("CLUSTER SLOTS", target_nodes=src)
    owner = next(
        f"{e['primary'][0]}:{e['primary'][1]}" for (lo, hi), e in view.items() if lo <= slot <= hi
    )
    if owner != src.name:
        await raw.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", dst_id, target_nodes=src)
        await raw.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", src_id, target_nodes=dst)
        for node in [src, *(n for n in raw.get_primaries() if n.name != src.name)]:
            await raw.execute_command("CLUSTER SETSLOT", slot, "NODE", src_id, target_nodes=node)
    await _until_all_nodes_agree(raw, slot, src.name)


async def _until_all_nodes_agree(raw: RedisCluster, slot: int, owner: str) -> None:
    """Wait (5 s at most) until every node's CLUSTER SLOTS gives ``slot`` to ``owner``."""
    owners: set[str] = set()
    for _ in range(100):
        owners = set()
        for node in raw.get_nodes():
            view = await raw.execute_command("CLUSTER SLOTS", target_nodes=node)
            owners |= {
                f"{entry['primary'][0]}:{entry['primary'][1]}"
                for (low, high), entry in view.items()
                if low <= slot <= high
            }
        if owners == {owner}:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the nodes do not agree that {owner} serves slot {slot}: {owners}")


def _session_off(raw: RedisCluster, node_name: str, sessions: Callable[..., str]) -> str:
    """A session id whose slot another node than ``node_name`` serves."""
    for _ in range(100):
        sid = sessions()
        node = raw.get_node_from_key(session_key(sid))
        if node is not None and node.name != node_name:
            return sid
    raise AssertionError("every session landed on one node")
