"""The cluster topology's Typesense module, without a server: the three nodes' names, ports,
command lines and ``--nodes`` list, their placement on simulated hosts, the outputs, and how a
cluster that never forms is reported. (The real three-node cluster runs in
``scripts/test-cluster``: ``tests/reliability/test_reliability_cluster_typesense.py``.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mas_devstack import DevstackError, Ports, Stack
from mas_devstack._cluster import ClusterContext, cluster_class
from mas_devstack._cluster_typesense import TypesenseCluster, TypesenseNode
from mas_devstack._layout import PORT_BASE_ENV, Layout
from mas_devstack._process import LOOPBACK
from mas_devstack._secrets import load_or_create_secrets
from mas_devstack._tls import StackCa
from mas_storage import stack_output_keys

BASE = 62800


def _context(tmp_path: Path, *, hosts: tuple[str, ...] = (LOOPBACK,), tls: bool = True) -> Any:
    layout = Layout(tmp_path)
    layout.ensure()
    secrets = load_or_create_secrets(layout.secrets_path)
    ca = StackCa(layout.home / "tls") if tls else None
    if ca is not None:
        ca.ensure()
    return ClusterContext(layout, Ports.from_base(BASE), secrets, ca, hosts=hosts)


def test_the_module_is_the_typesense_cluster() -> None:
    assert cluster_class("typesense") is TypesenseCluster


def test_three_nodes_with_their_own_names_ports_data_and_one_nodes_list(tmp_path: Path) -> None:
    cluster = TypesenseCluster(_context(tmp_path))
    nodes = cluster.nodes()
    assert [n.name for n in nodes] == ["typesense-0", "typesense-1", "typesense-2"]
    assert [n.port for n in nodes] == [BASE + 30, BASE + 31, BASE + 32]
    assert [n.peering_port for n in nodes] == [BASE + 33, BASE + 34, BASE + 35]
    assert [n.ports_used() for n in nodes][1] == [BASE + 31, BASE + 34]
    group = nodes[0].data_dir.name
    assert group.startswith("group-") and len(group) == 18
    assert [n.data_dir for n in nodes] == [
        tmp_path / ".mas" / f"typesense-{i}" / group for i in range(3)
    ]
    assert [n.peer_id for n in nodes] == [
        f"127.0.0.1:{BASE + 33}:{BASE + 30}",
        f"127.0.0.1:{BASE + 34}:{BASE + 31}",
        f"127.0.0.1:{BASE + 35}:{BASE + 32}",
    ]
    command = nodes[2].command()
    assert f"--nodes={cluster.peers}" in command
    assert f"--api-port={BASE + 32}" in command and f"--peering-port={BASE + 35}" in command
    assert "--api-address=127.0.0.1" in command and "--peering-address=127.0.0.1" in command
    cert = [arg for arg in command if arg.startswith("--ssl-certificate=")]
    assert cert and "typesense-2" in cert[0]  # a certificate per node
    secrets = json.loads(cluster.context.layout.secrets_path.read_text())
    assert not any(secret in " ".join(command) for secret in secrets.values())


def test_three_nodes_on_two_hosts_put_two_on_the_first(tmp_path: Path) -> None:
    hosts = ("10.216.7.10", "10.216.7.11")
    nodes = TypesenseCluster(_context(tmp_path, hosts=hosts)).nodes()
    assert [n.host for n in nodes] == [hosts[0], hosts[1], hosts[0]]
    assert nodes[1].peer_id.startswith("10.216.7.11:") and nodes[1].url.startswith("https://10.")
    # Another member list is another Raft group: its own data, the loopback one's untouched.
    loopback = TypesenseCluster(_context(tmp_path)).nodes()
    assert nodes[0].data_dir.parent == loopback[0].data_dir.parent
    assert nodes[0].data_dir != loopback[0].data_dir


def test_outputs_list_every_node_the_first_as_the_single_url(tmp_path: Path) -> None:
    cluster = TypesenseCluster(_context(tmp_path))
    secrets = json.loads(cluster.context.layout.secrets_path.read_text())
    urls = [f"https://127.0.0.1:{BASE + 30 + i}" for i in range(3)]
    assert cluster.outputs() == {
        "typesense_url": urls[0],
        "typesense_nodes": urls,
        "typesense_api_key": secrets["typesense_app_api_key"],  # the scoped key
    }
    assert cluster.admin_outputs() == {"typesense_admin_api_key": secrets["typesense_api_key"]}
    plain = TypesenseCluster(_context(tmp_path, tls=False))
    assert plain.outputs()["typesense_nodes"][0] == f"http://127.0.0.1:{BASE + 30}"
    assert all(node.outputs() == {} for node in cluster.nodes())


def test_the_stack_writes_the_clusters_keys_in_the_cluster_topology(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PORT_BASE_ENV, raising=False)
    outputs = Stack(tmp_path, port_base=BASE, topology="cluster").outputs()
    assert list(outputs) == sorted(stack_output_keys())
    assert outputs["typesense_nodes"] == [f"https://127.0.0.1:{BASE + 30 + i}" for i in range(3)]
    assert outputs["typesense_url"] == outputs["typesense_nodes"][0]
    single = Stack(tmp_path / "single", port_base=BASE).outputs()
    assert single["typesense_nodes"] == [single["typesense_url"]]


def test_start_writes_the_nodes_list_and_starts_every_node_before_forming(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = TypesenseCluster(_context(tmp_path))
    steps: list[str] = []
    monkeypatch.setattr(cluster, "wait_formed", lambda within, nodes=None: steps.append("formed"))
    monkeypatch.setattr(
        cluster, "lead_from", lambda node, within: steps.append(f"lead {node.name}")
    )
    monkeypatch.setattr(cluster, "_provision", lambda: steps.append("provisioned"))

    def ensure(node: Any) -> bool:
        assert cluster.peers.read_text() == ",".join(n.peer_id for n in cluster.nodes())
        steps.append(node.name)
        return node.name != "typesense-1"  # typesense-1 ran already

    assert cluster.start(ensure) == ["typesense-0", "typesense-2"]
    assert sorted(steps[:3]) == ["typesense-0", "typesense-1", "typesense-2"]
    assert steps[3:] == ["formed", "lead typesense-0", "provisioned"]


def test_a_cluster_that_does_not_form_is_an_error_naming_the_nodes(tmp_path: Path) -> None:
    cluster = TypesenseCluster(_context(tmp_path))  # nothing runs: no node answers
    with pytest.raises(
        DevstackError, match=r"did not form within 0 s \(not healthy: typesense-0, "
    ):
        cluster.wait_formed(0.1)
    assert cluster.leader() is None
    assert isinstance(cluster.node("typesense-1"), TypesenseNode)


def _answering_node(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    healthy: bool,
    pending: int,
    write_status: int = 404,
) -> TypesenseNode:
    node = TypesenseCluster(_context(tmp_path)).nodes()[1]
    answers: dict[str, Any] = {
        "/debug": {"state": 4},  # a follower
        "/health": {"ok": healthy},
        "/stats.json": {"pending_write_batches": pending},
    }

    def fake_get(path: str, timeout: float, *, auth: bool = True) -> Any:
        return answers[path]

    monkeypatch.setattr(node, "_get", fake_get)
    monkeypatch.setattr(node, "_write_through_log", lambda timeout: write_status)
    return node


@pytest.mark.parametrize(
    ("healthy", "pending", "write_status", "why"),
    [
        (False, 0, 404, "no leader yet, or lagging"),
        (True, 0, 500, "HTTP 500"),  # 'Could not find a leader.'
        (True, 0, 503, "HTTP 503"),  # replaying its log
        (True, 12, 404, "12 write batches queued"),
    ],
)
def test_a_node_is_up_only_once_the_group_serves_it_and_its_queue_is_empty(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    healthy: bool,
    pending: int,
    write_status: int,
    why: str,
) -> None:
    """A node's start keeps the single node's test (a write through the Raft log, an empty
    write queue) and adds a leader: /debug alone answers on a node that has none."""
    node = _answering_node(
        tmp_path, monkeypatch, healthy=healthy, pending=pending, write_status=write_status
    )
    assert node.check(2.0) is True  # status and reuse: it answers
    assert node.check(2.0, ready=True) is False
    with pytest.raises(RuntimeError, match=why):
        node.probe_ready(2.0)
    assert _answering_node(tmp_path, monkeypatch, healthy=True, pending=0).check(2.0, ready=True)


def test_a_node_waits_as_long_as_the_group_may_take_to_form() -> None:
    assert TypesenseNode.start_timeout >= 120.0
