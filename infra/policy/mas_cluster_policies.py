"""The cluster rules (issue 17): a Raft group has an odd number of members, at least 3; a
primary and its replica never share a host.

Both rules look at several containers at once, so they are ``StackValidationPolicy`` rules over
every container of the stack. A container says what it is through labels (the program sets
them, :mod:`mas_infra._cluster`):

* ``mas.node``: the node's name (``redis-0``, ``postgres-1``, ...);
* ``mas.raft``: the Raft group it is a member of (Typesense: ``typesense``);
* ``mas.follows``: the node a replica or standby replicates from.

Where a container runs is the address its ports are published on or, for a container on the
host's network, the address its servers bind (``--api-address``): both are the host's lab
address (``ports-not-public`` refuses anything else). The same pure checks back the program's
config validation (``mas_infra._config``), so config and policy cannot disagree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mas_policy_values import known_items, label, plain
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    StackValidationArgs,
    StackValidationPolicy,
)

__all__ = [
    "CLUSTER_POLICIES",
    "FOLLOWS_LABEL",
    "NODE_LABEL",
    "RAFT_LABEL",
    "check_cluster_containers",
    "raft_size_problem",
    "shared_host_problems",
]

CONTAINER = "docker:index/container:Container"
NODE_LABEL = "mas.node"
RAFT_LABEL = "mas.raft"
FOLLOWS_LABEL = "mas.follows"
_BIND_FLAG = re.compile(r"--api-address=(\S+)")


def raft_size_problem(group: str, members: int) -> str | None:
    """Why a Raft group of ``members`` nodes cannot be a cluster (None when it can).

    Raft needs a majority: 3 nodes survive one loss, 4 survive one too (an even count adds a
    node and no tolerance), 1 or 2 survive none."""
    if members >= 3 and members % 2 == 1:
        return None
    return (
        f"Raft group {group!r} has {members} node(s): a Raft cluster needs an odd number of "
        "nodes, at least 3 (a majority must survive the loss of a node)"
    )


def shared_host_problems(pairs: Iterable[tuple[str, str, str, str]]) -> list[str]:
    """``(replica, its host, primary, its host)`` pairs: one problem per pair on one host."""
    return [
        f"{replica} replicates {primary} on the same host {host!r}: losing that host loses "
        "both copies; place them on different hosts"
        for replica, host, primary, primary_host in pairs
        if host == primary_host
    ]


def _host_of(props: Mapping[str, Any]) -> str | None:
    for port in known_items(props.get("ports")):
        ip = plain(port.get("ip")) if isinstance(port, Mapping) else None
        if ip:
            return str(ip)
    command = " ".join(str(plain(p)) for p in known_items(props.get("command")))
    found = _BIND_FLAG.search(command)
    return found.group(1) if found else None


def check_cluster_containers(containers: Sequence[Mapping[str, Any]]) -> list[str]:
    """Both cluster rules over the stack's containers (their properties)."""
    nodes: dict[str, str | None] = {}
    groups: dict[str, int] = {}
    follows: list[tuple[str, str]] = []
    for props in containers:
        name = label(props, NODE_LABEL)
        if name is None:
            continue
        nodes[name] = _host_of(props)
        group = label(props, RAFT_LABEL)
        if group is not None:
            groups[group] = groups.get(group, 0) + 1
        primary = label(props, FOLLOWS_LABEL)
        if primary is not None:
            follows.append((name, primary))
    problems = [p for g, n in sorted(groups.items()) if (p := raft_size_problem(g, n))]
    pairs = []
    for replica, primary in follows:
        if primary not in nodes:
            problems.append(f"{replica} follows {primary!r}, which is no node of this stack")
            continue
        pairs.append((replica, str(nodes[replica]), primary, str(nodes[primary])))
    return problems + shared_host_problems(pairs)


def _validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    containers = [r.props for r in args.resources if r.resource_type == CONTAINER]
    for problem in check_cluster_containers(containers):
        report_violation(problem, None)


#: The cluster rules, one stack policy (both read the same labels in one pass).
CLUSTER_POLICIES: list[Policy] = [
    StackValidationPolicy(
        name="cluster-placement",
        description="A Raft cluster has an odd number of nodes, at least 3; a primary and its "
        "replica never share a host.",
        validate=_validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )
]
