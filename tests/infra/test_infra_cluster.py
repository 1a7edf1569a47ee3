"""The cluster topology (issue 17) under mocks: nodes, placement, outputs, and the policy rules
"a Raft cluster has an odd number of nodes, at least 3" and "a primary and its replica never
share a host", each refused in config and in the policy pack."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from infra_harness import CONTAINER, Built, build_program
from mas_cluster_policies import CLUSTER_POLICIES, check_cluster_containers
from mas_infra import InfraConfigError, parse_config
from pulumi_policy import StackValidationArgs
from pulumi_policy.policy import PolicyResource
from test_infra_policies import RULES, _from_registration, _strip, violations


def _containers(built: Built) -> list[dict[str, Any]]:
    return [_strip(r.inputs) for r in built.of_type(CONTAINER)]


def _label(props: dict[str, Any], name: str) -> str | None:
    found = [lb["value"] for lb in props.get("labels", []) if lb["label"] == name]
    return found[0] if found else None


def _by_node(containers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {n: c for c in containers if (n := _label(c, "mas.node"))}


def _stack_violations(containers: list[dict[str, Any]]) -> list[str]:
    """The stack rule as the analyzer runs it: every resource of the stack at once."""
    resources = [
        PolicyResource(CONTAINER, props, f"urn:c{i}", f"c{i}", None, None, None, [], {})  # type: ignore[arg-type]
        for i, props in enumerate(containers)
    ]
    found: list[str] = []
    (policy,) = CLUSTER_POLICIES
    policy.validate(StackValidationArgs(resources, None), lambda m, urn=None: found.append(m))  # type: ignore[attr-defined]
    return found


# -- the shipped cluster stack -----------------------------------------------------------------


def test_cluster_nodes_are_placed_as_configured(cluster_built: Built) -> None:
    nodes = _by_node(_containers(cluster_built))
    assert sorted(nodes) == [
        *(f"postgres-{i}" for i in range(2)),
        *(f"redis-{i}" for i in range(6)),
        *(f"typesense-{i}" for i in range(3)),
    ]
    cfg = cluster_built.stack.config
    for name, props in nodes.items():
        backend, index = name.rsplit("-", 1)
        address = cfg.hosts[cfg.cluster[backend][int(index)]].address
        ips = {p["ip"] for p in props.get("ports", [])}
        assert ips <= {address}, name
        assert props["name"] == f"mas-{name}"
    # No single container for a clustered backend; Qdrant and Neo4j stay single.
    names = {r.name for r in cluster_built.of_type(CONTAINER)}
    assert {"redis-container", "typesense-container", "postgres-container"}.isdisjoint(names)
    assert {"qdrant-container", "neo4j-container"} <= names


def test_cluster_outputs_follow_the_local_stack_contract(cluster_built: Built) -> None:
    out = cluster_built.outputs
    # Lists, as the local stack writes them: the suites read them as such (the lab rehearsal
    # of issue 17 saw a comma-separated string taken apart character by character).
    seeds = out["redis_cluster_nodes"]
    assert isinstance(seeds, list)
    assert len(seeds) == 6 and seeds[0] == "192.168.107.172:6379"
    assert out["redis_url"].endswith("@192.168.107.172:6379/0")
    assert out["typesense_nodes"] == [
        "https://192.168.107.172:8108",
        "https://192.168.107.187:8109",
        "https://192.168.107.187:8110",
    ]
    assert out["postgres_url"].startswith("postgresql://mas_app:")
    assert out["postgres_url"].endswith(
        "@192.168.107.172:5432,192.168.107.187:5433/mas_memory"
        "?sslmode=verify-full&target_session_attrs=read-write"
    )
    assert {"postgres_url", "redis_url"} <= cluster_built.secret_outputs
    assert "postgres_replication_url" in cluster_built.admin_outputs
    assert "mas_replicator" not in json.dumps(out)


def test_redis_nodes_run_redis_cluster_over_tls(cluster_built: Built) -> None:
    nodes = _by_node(_containers(cluster_built))
    for i in range(6):
        command = nodes[f"redis-{i}"]["command"][-1]
        for flag in ("--cluster-enabled yes", "--tls-cluster yes", "--port 0", "--masteruser"):
            assert flag in command
        assert '--masterauth "$MAS_REDIS_ADMIN_PASSWORD"' in command
        assert ("cluster replicate" in command) == (i >= 3)
        assert ("addslotsrange" in command) == (i < 3)
    assert _label(nodes["redis-4"], "mas.follows") == "redis-1"


def test_the_standby_is_healthy_only_while_it_streams(cluster_built: Built) -> None:
    nodes = _by_node(_containers(cluster_built))
    primary = nodes["postgres-0"]["healthcheck"]["tests"]
    standby = nodes["postgres-1"]["healthcheck"]["tests"]
    assert primary[:2] == ["CMD", "pg_isready"]
    assert standby[0] == "CMD-SHELL"
    assert standby[1].startswith("pg_isready -d 'host=127.0.0.1 port=5432 user=mas_app")
    assert "pg_stat_wal_receiver WHERE status = 'streaming'" in standby[1]
    assert "NOT pg_is_in_recovery()" in standby[1]  # a promoted standby stays healthy
    assert '"$POSTGRES_PASSWORD"' in standby[1]  # the password from env, not in the test


def test_typesense_nodes_share_one_member_list(cluster_built: Built) -> None:
    nodes = _by_node(_containers(cluster_built))
    lists = set()
    for i in range(3):
        props = nodes[f"typesense-{i}"]
        assert props["networkMode"] == "host" and not props.get("ports")
        assert _label(props, "mas.raft") == "typesense"
        (upload,) = [u for u in props["uploads"] if u["file"] == "/etc/mas/typesense/nodes"]
        lists.add(upload["content"])
    assert lists == {
        "192.168.107.172:8208:8108,192.168.107.187:8209:8109,192.168.107.187:8210:8110\n"
    }


def test_postgres_standby_is_synchronous_and_made_by_pg_basebackup(cluster_built: Built) -> None:
    nodes = _by_node(_containers(cluster_built))
    primary, standby = nodes["postgres-0"]["command"][-1], nodes["postgres-1"]["command"][-1]
    assert "-c synchronous_standby_names=postgres_1" in primary
    assert "pg_basebackup" not in primary
    assert "pg_basebackup -D" in standby and " -R " in standby
    assert "host=192.168.107.172 port=5432" in standby and "sslmode=verify-full" in standby
    assert "synchronous_standby_names" not in standby
    assert all("synchronous_commit=remote_apply" in c for c in (primary, standby))
    assert _label(nodes["postgres-1"], "mas.follows") == "postgres-0"


@pytest.mark.parametrize("keep_marks", [False, True], ids=["validation", "with-secret-marks"])
def test_cluster_stack_passes_every_rule(cluster_built: Built, keep_marks: bool) -> None:
    for reg in cluster_built.registrations:
        if reg.type.startswith(("docker:index/", "tls:index/")):
            for rule in RULES:
                args = _from_registration(reg, keep_marks=keep_marks)
                assert violations(rule, args) == [], f"{reg.name} breaks {rule}"
    assert _stack_violations(_containers(cluster_built)) == []


def test_single_topology_has_no_cluster_node(dev_built: Built) -> None:
    assert dev_built.stack.config.topology == "single"
    assert dev_built.stack.clusters == {}
    assert _by_node(_containers(dev_built)) == {}
    assert "redis_cluster_nodes" not in dev_built.outputs


# -- the rules, broken: refused by the policy pack ---------------------------------------------


def test_policy_refuses_a_raft_group_of_two(cluster_built: Built) -> None:
    containers = [c for c in _containers(cluster_built) if _label(c, "mas.node") != "typesense-2"]
    (problem,) = _stack_violations(containers)
    assert "Raft group 'typesense' has 2 node(s)" in problem


def test_policy_refuses_a_raft_group_of_four(cluster_built: Built) -> None:
    containers = _containers(cluster_built)
    extra = copy.deepcopy(_by_node(containers)["typesense-2"])
    extra["labels"] = [
        {**lb, "value": "typesense-3"} if lb["label"] == "mas.node" else lb
        for lb in extra["labels"]
    ]
    (problem,) = _stack_violations([*containers, extra])
    assert "has 4 node(s)" in problem and "odd number" in problem


@pytest.mark.parametrize(
    ("replica", "primary"), [("redis-4", "redis-1"), ("postgres-1", "postgres-0")]
)
def test_policy_refuses_a_replica_beside_its_primary(
    cluster_built: Built, replica: str, primary: str
) -> None:
    containers = _containers(cluster_built)
    nodes = _by_node(containers)
    primary_ip = nodes[primary]["ports"][0]["ip"]
    for port in nodes[replica]["ports"]:
        port["ip"] = primary_ip
    (problem,) = check_cluster_containers(containers)
    assert f"{replica} replicates {primary} on the same host {primary_ip!r}" in problem


def test_policy_refuses_a_replica_of_a_missing_primary(cluster_built: Built) -> None:
    containers = [c for c in _containers(cluster_built) if _label(c, "mas.node") != "redis-0"]
    assert check_cluster_containers(containers) == [
        "redis-3 follows 'redis-0', which is no node of this stack"
    ]


# -- the rules, broken: refused by the config --------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "hosts", "problem"),
    [
        ("typesense", ["lab-a", "lab-b"], "has 2 node(s): a Raft cluster needs an odd number"),
        ("typesense", ["lab-a", "lab-b"] * 2, "has 4 node(s)"),
        ("typesense", ["lab-a"], "has 1 node(s)"),
        ("postgres", ["lab-a", "lab-a"], "postgres-1 replicates postgres-0 on the same host"),
        ("redis", ["lab-a", "lab-b", "lab-a", "lab-a", "lab-a", "lab-b"], "redis-3 replicates"),
        ("redis", ["lab-a"] * 5, "lists 5 hosts; it takes 6"),
        ("postgres", ["lab-a", "lab-c"], "names host(s) ['lab-c'] not in hosts"),
    ],
)
def test_config_refuses_a_cluster_that_breaks_the_rules(
    cluster_config: dict[str, Any], backend: str, hosts: list[str], problem: str
) -> None:
    config = copy.deepcopy(cluster_config)
    config["cluster"][backend] = hosts
    with pytest.raises(InfraConfigError, match="cluster." + backend) as caught:
        parse_config(config)
    assert problem in str(caught.value)


def test_config_needs_every_clustered_backend(cluster_config: dict[str, Any]) -> None:
    config = copy.deepcopy(cluster_config)
    del config["cluster"]["redis"]
    with pytest.raises(InfraConfigError, match=r"topology cluster needs cluster\.redis"):
        parse_config(config)


def test_config_refuses_a_cluster_port_clash(cluster_config: dict[str, Any]) -> None:
    config = copy.deepcopy(cluster_config)
    config["ports"] = {"redis": {"redis": 5431}}  # node 1's 5432 meets the primary's on lab-a
    config["cluster"]["redis"] = ["lab-b", "lab-a", "lab-b", "lab-a", "lab-b", "lab-a"]
    with pytest.raises(InfraConfigError, match="= 5432 is already published by"):
        parse_config(config)


def test_a_config_that_breaks_a_rule_builds_nothing(cluster_config: dict[str, Any]) -> None:
    config = copy.deepcopy(cluster_config)
    config["cluster"]["typesense"] = ["lab-a", "lab-b"]
    with pytest.raises(InfraConfigError, match="odd number"):
        build_program(config, stack="cluster")


def _rebind(flag: str, value: str | None) -> Any:
    def change(props: dict[str, Any]) -> None:
        kept = [a for a in props["command"] if not a.startswith(f"--{flag}=")]
        props["command"] = kept if value is None else [*kept, f"--{flag}={value}"]

    return change


@pytest.mark.parametrize(
    ("change", "public"),
    [
        (lambda props: None, False),
        (_rebind("peering-address", "0.0.0.0"), True),  # noqa: S104
        (_rebind("api-address", "::"), True),
        (_rebind("api-address", None), True),
        (lambda props: props.update(labels=[]), True),
    ],
    ids=["binds-lab-address", "peering-everywhere", "api-everywhere", "api-unbound", "no-label"],
)
def test_host_network_only_for_a_typesense_node_that_binds_its_address(
    cluster_built: Built, change: Any, public: bool
) -> None:
    from test_infra_policies import _args

    props = _by_node(_containers(cluster_built))["typesense-1"]
    change(props)
    found = violations("ports-not-public", _args(CONTAINER, props))
    assert found == (
        ["networkMode 'host' exposes every listening port on all interfaces"] if public else []
    )


def test_redis_nodes_get_a_peer_certificate_the_single_topology_has_none(
    cluster_built: Built, dev_built: Built
) -> None:
    certs = {
        r.name: r for r in cluster_built.of_type("tls:index/locallySignedCert:LocallySignedCert")
    }
    for host in ("lab-a", "lab-b"):
        # the cluster bus asks the connecting node for a client certificate
        assert "client_auth" in certs[f"tls-{host}-peer-cert"].inputs["allowedUses"]
        assert "client_auth" not in certs[f"tls-{host}-cert"].inputs["allowedUses"]
    nodes = _by_node(_containers(cluster_built))
    key = next(u for u in nodes["redis-0"]["uploads"] if u["file"].endswith("server.crt"))
    postgres = next(u for u in nodes["postgres-0"]["uploads"] if u["file"].endswith("server.crt"))
    assert key["content"] != postgres["content"]  # the peer certificate, not the host's
    dev_certs = dev_built.of_type("tls:index/locallySignedCert:LocallySignedCert")
    assert not [r.name for r in dev_certs if "peer" in r.name]
