"""Redis Cluster and WAIT settings, and the write path's slot grouping, without a server.

The cluster's behaviour on real servers is tests/integration/redis/test_redis_integration_cluster.py
and tests/reliability/test_reliability_cluster_redis.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from mas_storage import StorageDataError, StorageTimeoutError
from mas_storage_redis import RedisAdapter, session_key
from mas_storage_redis._writes import Wait, by_slot, script_call

URL = "rediss://mas_app:pw@127.0.0.1:6380/0"


@pytest.mark.parametrize(
    "nodes", ["127.0.0.1:7000,127.0.0.1:7001", ["127.0.0.1:7000", "127.0.0.1:7001"]]
)
def test_cluster_nodes_from_a_list_or_a_comma_separated_string(nodes: Any) -> None:
    cfg = RedisAdapter({"url": URL, "cluster_nodes": nodes}).config
    assert cfg.cluster_mode is True
    assert cfg.seed_nodes() == [("127.0.0.1", 7000), ("127.0.0.1", 7001)]
    assert cfg.address == "cluster 127.0.0.1:7000,127.0.0.1:7001"
    assert "pw" not in repr(cfg)


def test_cluster_mode_is_asked_at_connect_unless_told() -> None:
    assert RedisAdapter({"url": URL}).config.cluster_mode is None
    assert RedisAdapter({"url": URL, "cluster": False}).config.cluster_mode is False
    seeded = RedisAdapter({"url": URL, "cluster": True}).config
    assert seeded.seed_nodes() == [("127.0.0.1", 6380)]


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"cluster_nodes": "127.0.0.1"}, "a node is host:port"),
        ({"cluster_nodes": "127.0.0.1:99999"}, "a node is host:port"),
        ({"cluster_nodes": "127.0.0.1:7000", "cluster": False}, "cluster is false"),
        ({"url": "rediss://127.0.0.1:6380/2", "cluster": True}, "database 0 only"),
        ({"url": "unix:///tmp/r.sock", "cluster": True}, "unix sockets"),
        ({"wait_replicas": 1, "wait_timeout": 2, "socket_timeout": 2}, "less than socket"),
        ({"wait_replicas": -1}, "wait_replicas"),
        ({"cluster_address_map": {"10.0.0.1:7000": "127.0.0.1"}}, "a node is host:port"),
    ],
)
def test_bad_cluster_or_wait_settings_are_refused_by_name(
    config: dict[str, Any], problem: str
) -> None:
    with pytest.raises(StorageDataError, match=problem):
        RedisAdapter({"url": URL, **config})


def test_address_map_is_redis_py_address_remap() -> None:
    cfg = RedisAdapter(
        {"url": URL, "cluster_address_map": {"10.0.0.1:7000": "127.0.0.1:17000"}}
    ).config
    assert cfg.address_remap() == {("10.0.0.1", 7000): ("127.0.0.1", 17000)}


def test_wait_counts_replicas_and_refuses_fewer() -> None:
    wait = Wait(2, 0.25)
    assert wait.timeout_ms == 250
    wait.check(2)
    wait.check(3)
    with pytest.raises(StorageTimeoutError, match="only 1 of 2 replica"):
        wait.check(1)


def test_a_session_is_one_slot_and_a_batch_one_script_call_per_slot() -> None:
    cluster = RedisCluster(host="127.0.0.1", port=7000)  # not connected: keyslot only
    sessions = [f"s{i}" for i in range(20)]
    groups = {session_key(s): [f"p-{s}"] for s in sessions}
    parts = by_slot(cluster, groups)
    slots = {key_slot(session_key(s).encode()) for s in sessions}
    assert len(parts) == len(slots)
    for part in parts:
        assert len({key_slot(k.encode()) for k in part}) == 1
    assert sorted(k for part in parts for k in part) == sorted(groups)
    # One key per session; sessions whose ids share a ``{hash tag}`` share a slot: one part.
    tagged = {session_key(f"{{tenant-7}}-{i}"): ["p"] for i in range(5)}
    assert len(by_slot(cluster, tagged)) == 1


def test_script_call_sends_only_the_window() -> None:
    call = script_call({"k1": ["a", "b", "c"], "k2": ["d"]}, window=2, ttl=60)
    assert call.keys == ("k1", "k2")
    assert call.argv == (2, 60, 2, 1, "b", "c", "d")
    assert call.command()[:5] == ("EVAL", call.command()[1], 2, "k1", "k2")
