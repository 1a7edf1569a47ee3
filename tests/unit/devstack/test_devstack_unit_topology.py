"""The cluster topology's plumbing: ports, the recorded topology, the cluster module registry,
and a stand-in cluster (two echo nodes, ``devstack_fakes.EchoCluster``) run through the Stack:
its nodes start, stop, die and restart by name, its outputs replace the single node's.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from mas_devstack import ClusterBackend, DevstackError, Ports, Stack
from mas_devstack._cluster import CLUSTER_MODULES, TOPOLOGY_ENV, cluster_class
from mas_devstack._layout import PORT_SPAN
from mas_devstack._process import port_open


def _free_base() -> int:
    """A random base (the range the other devstack tests use) whose ports the echo cluster
    takes are free: two test runs at once must not meet."""
    for _ in range(100):
        base = random.randrange(62000, 64900 - PORT_SPAN, 10)
        if not any(port_open(port) for port in Ports.from_base(base).redis_cluster[:2]):
            return base
    raise AssertionError("no free ports in 62000-64900")


def test_cluster_ports_sit_at_fixed_offsets_inside_the_stack_span() -> None:
    ports = Ports.from_base(40000)
    assert ports.redis_cluster == tuple(range(40010, 40016))
    assert ports.redis_cluster_bus == tuple(range(40020, 40026))
    assert ports.typesense_nodes == (40030, 40031, 40032)
    assert ports.typesense_nodes_peering == (40033, 40034, 40035)
    assert ports.postgres_standby == 40040
    single = [ports.postgres, ports.redis, ports.neo4j, ports.typesense, ports.typesense_peering]
    cluster = [
        *ports.redis_cluster,
        *ports.redis_cluster_bus,
        *ports.typesense_nodes,
        *ports.typesense_nodes_peering,
        ports.postgres_standby,
    ]
    every = single + cluster
    assert len(set(every)) == len(every)
    assert all(40000 <= port < 40000 + PORT_SPAN for port in every)
    default = Ports()  # the default stack's cluster ports follow its PostgreSQL port
    assert default.redis_cluster[0] == 55442 and default.postgres_standby == 55472
    assert not set(default.redis_cluster) & {56379, 57687, 58108, 58107}


def test_a_port_base_must_leave_room_for_the_whole_span() -> None:
    assert Ports.from_base(65535 - PORT_SPAN + 1).postgres_standby <= 65535
    with pytest.raises(DevstackError, match="a stack owns 100 ports"):
        Ports.from_base(65535 - PORT_SPAN + 2)


def test_topology_is_single_unless_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TOPOLOGY_ENV, raising=False)
    assert Stack(tmp_path).topology == "single"
    assert Stack(tmp_path).clusters == {}
    assert Stack(tmp_path, topology="cluster").topology == "cluster"
    monkeypatch.setenv(TOPOLOGY_ENV, "cluster")
    assert Stack(tmp_path).topology == "cluster"
    monkeypatch.setenv(TOPOLOGY_ENV, "mesh")
    with pytest.raises(DevstackError, match=rf"unknown topology 'mesh' \(from {TOPOLOGY_ENV}\)"):
        Stack(tmp_path)
    with pytest.raises(DevstackError, match="known: single, cluster"):
        Stack(tmp_path, topology="ring")


@pytest.mark.parametrize("backend", sorted(CLUSTER_MODULES))
def test_each_cluster_module_loads_and_names_its_backend(backend: str) -> None:
    found = cluster_class(backend)
    assert found is None or (issubclass(found, ClusterBackend) and found.backend == backend)
    assert cluster_class("neo4j") is None  # no cluster mode: single-node in both topologies


def test_a_broken_cluster_module_fails_alone_with_its_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(CLUSTER_MODULES, "redis", "no_such_cluster_module_here")
    with pytest.raises(DevstackError, match="no_such_cluster_module_here of redis failed"):
        cluster_class("redis")
    monkeypatch.setitem(CLUSTER_MODULES, "redis", "json")  # imports, but has no CLUSTER
    assert cluster_class("redis") is None
    monkeypatch.setitem(CLUSTER_MODULES, "typesense", "devstack_fakes")  # a cluster of redis
    with pytest.raises(DevstackError, match="runs 'redis', not 'typesense'"):
        cluster_class("typesense")


@pytest.fixture
def cluster_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A stack whose Redis is the two-node echo cluster (the other backends' real cluster
    modules switched off: ``json`` has no ``CLUSTER``); everything stopped afterwards."""
    monkeypatch.delenv(TOPOLOGY_ENV, raising=False)
    monkeypatch.setitem(CLUSTER_MODULES, "redis", "devstack_fakes")
    for other in set(CLUSTER_MODULES) - {"redis"}:
        monkeypatch.setitem(CLUSTER_MODULES, other, "json")
    stack = Stack(tmp_path, port_base=_free_base(), topology="cluster")
    yield stack
    Stack(tmp_path, port_base=stack.ports.base).down()


def test_the_cluster_topology_runs_the_nodes_and_writes_their_outputs(
    cluster_stack: Stack,
) -> None:
    stack = cluster_stack
    result = stack.up(["redis"])
    assert result.started == ["redis"]
    cluster = stack.cluster("redis")
    pids = cluster.pids()
    assert list(pids) == ["redis-0", "redis-1"] and all(pids.values())
    assert stack.pid("redis-1") == pids["redis-1"]
    assert stack.pid("redis") is None  # no single-node Redis in this topology
    assert (stack.layout.run_dir / "echo-cluster-formed").is_file()
    assert stack.layout.log_path("redis-0").is_file()
    first = stack.ports.redis_cluster[0]
    assert result.outputs["redis_url"] == f"redis://127.0.0.1:{first}/0"
    written = json.loads(stack.outputs_path.read_text())
    assert written["redis_url"] == result.outputs["redis_url"]
    assert json.loads(stack.admin_outputs_path.read_text())["redis_admin_url"].endswith(
        f":{first}/0"
    )
    assert json.loads(stack.topology_path.read_text()) == {"topology": "cluster"}
    rows = stack.status()
    assert {"redis-0", "redis-1"} <= rows.keys() and "redis" not in rows
    assert rows["redis-0"].backend == "redis" and rows["redis-0"].state == "running"
    assert rows["postgres"].backend == "postgres"
    # A second up reuses the running nodes.
    assert stack.up(["redis"]).started == []


def test_a_running_topology_sticks_and_a_switch_is_refused(cluster_stack: Stack) -> None:
    stack = cluster_stack
    stack.up(["redis"])
    again = Stack(stack.root, port_base=stack.ports.base)  # no topology asked: the running one
    assert again.topology == "cluster" and list(again.clusters) == ["redis"]
    single = Stack(stack.root, port_base=stack.ports.base, topology="single")
    with pytest.raises(DevstackError, match=r"runs the cluster topology \(redis-0, redis-1\)"):
        single.up(["redis"])
    assert again.down() == ["redis"]
    assert not stack.topology_path.exists()
    assert cluster_stack.cluster("redis").pids() == {"redis-0": None, "redis-1": None}
    assert Stack(stack.root, port_base=stack.ports.base).topology == "single"


def test_a_node_is_killed_and_started_again_by_its_name(cluster_stack: Stack) -> None:
    stack = cluster_stack
    stack.up(["redis"])
    before = stack.pid("redis-0")
    assert stack.stop("redis-0", kill=True) is True
    assert stack.pid("redis-0") is None
    assert stack.pid("redis-1") is not None  # the other node is untouched
    assert stack.start("redis-0") is True
    assert stack.pid("redis-0") not in (None, before)
    assert stack.start("redis") is False  # every node runs: nothing to start
    assert stack.stop("redis") is True  # the backend's name: all its nodes
    assert stack.cluster("redis").pids() == {"redis-0": None, "redis-1": None}
    with pytest.raises(DevstackError, match="unknown service"):
        stack.pid("redis-7")


def test_single_node_backends_say_so(cluster_stack: Stack) -> None:
    with pytest.raises(DevstackError, match="neo4j runs single-node in the cluster topology"):
        cluster_stack.cluster("neo4j")
