"""The Redis Cluster module without servers: placement, node config, outputs.

The cluster itself (formed, failed over, used by the adapter) is tested on real servers by
``scripts/test-cluster``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mas_devstack import Ports
from mas_devstack._cluster import ClusterContext, cluster_class
from mas_devstack._cluster_redis import NODE_TIMEOUT_MS, REPLICATION_USER, RedisCluster
from mas_devstack._layout import Layout
from mas_devstack._secrets import load_or_create_secrets

BASE = 40_000


def _cluster(tmp_path: Path, hosts: tuple[str, ...]) -> RedisCluster:
    layout = Layout(tmp_path)
    layout.home.mkdir(parents=True)
    secrets = load_or_create_secrets(layout.home / "secrets.json")
    context = ClusterContext(layout, Ports.from_base(BASE), secrets, None, hosts=hosts)
    return RedisCluster(context)


def test_the_registry_runs_redis_cluster() -> None:
    assert cluster_class("redis") is RedisCluster


@pytest.mark.parametrize(
    "hosts", [("127.0.0.1",), ("10.9.0.2", "10.9.0.3"), ("10.9.0.2", "10.9.0.3", "10.9.0.4")]
)
def test_six_nodes_and_a_replica_never_beside_its_primary(
    tmp_path: Path, hosts: tuple[str, ...]
) -> None:
    nodes = _cluster(tmp_path, hosts).nodes()
    assert [n.name for n in nodes] == [f"redis-{i}" for i in range(6)]
    assert [n.port for n in nodes] == [BASE + 10 + i for i in range(6)]
    assert [n.bus_port for n in nodes] == [BASE + 20 + i for i in range(6)]
    primaries, replicas = nodes[:3], nodes[3:]  # redis-3 replicates redis-0, and so on
    assert {n.host for n in nodes} == set(hosts)
    if len(hosts) > 1:
        assert all(p.host != r.host for p, r in zip(primaries, replicas, strict=True))


def test_a_node_config_adds_the_cluster_and_the_replication_user(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, ("127.0.0.1",))
    node = cluster.nodes()[4]
    lines = node.config_lines()
    assert "cluster-enabled yes" in lines
    assert f"cluster-port {BASE + 24}" in lines
    assert f"cluster-node-timeout {NODE_TIMEOUT_MS}" in lines
    assert "cluster-require-full-coverage no" in lines
    assert f"masteruser {REPLICATION_USER}" in lines
    password = node.secrets.redis_replication_password
    [rule] = [line for line in lines if line.startswith(f"user {REPLICATION_USER} ")]
    assert password not in rule and "+psync" in rule and "~" not in rule  # no key at all
    [app] = [line for line in lines if line.startswith("user mas_app ")]
    assert "+cluster|slots" in app and "+asking" in app and "+wait" in app


def test_outputs_name_every_node_and_keep_redis_url(tmp_path: Path) -> None:
    cluster = _cluster(tmp_path, ("127.0.0.1",))
    outputs = cluster.outputs()
    assert outputs["redis_cluster_nodes"] == [f"127.0.0.1:{BASE + 10 + i}" for i in range(6)]
    assert outputs["redis_url"].endswith(f"@127.0.0.1:{BASE + 10}/0")
    secret = cluster.nodes()[0].secrets.redis_replication_password
    assert secret not in repr(outputs) and secret not in repr(cluster.admin_outputs())
