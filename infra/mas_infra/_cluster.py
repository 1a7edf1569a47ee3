"""The cluster topology (``topology: cluster``, issue 17): each backend's own distributed mode.

Nothing home-made: every node is the single-node component (same image, volume, TLS with its
host's certificate, credentials, healthcheck, policies) plus the backend's own cluster settings.
Node ``i`` of a backend runs on the host ``cluster.<backend>[i]`` names and publishes its ports
at the configured port + ``i`` (``_config.node_ports``). Each container carries the labels the
policy pack's cluster rules read (``mas.node``, ``mas.raft``, ``mas.follows``).

* **Redis Cluster** (6 nodes): 3 primaries with the slot ranges ``redis-cli --cluster create``
  gives, and replica ``3+i`` of primary ``i``. ``cluster-enabled yes``, the bus over TLS
  (``tls-cluster``) with the host's peer certificate (the bus asks the connecting node for a
  client certificate whatever ``tls-auth-clients`` says), each node announcing its host's
  address and published ports. Each node joins at start, idempotently, with the cluster commands
  ``redis-cli --cluster create`` itself sends (``CLUSTER ADDSLOTSRANGE``, ``CLUSTER MEET``,
  ``CLUSTER REPLICATE``), as the ACL admin user; replicas authenticate to their primary as that
  user (``masteruser``/``masterauth`` from env). Outputs: ``redis_cluster_nodes`` (every node,
  ``host:port``; a list, as the local stack writes it) and ``redis_url`` (node 0, a seed).
* **Typesense Raft** (an odd number >= 3): one ``--nodes`` file shared by every node
  (``address:peering_port:api_port``). A Raft member is known by the address it binds, which
  must be the one in that list, so the nodes run on the host's network and bind the host's
  lab address (API over TLS; peering is plaintext: Typesense 0.24.1 has no TLS for it - keep
  the lab network private). Outputs: ``typesense_nodes`` (every node's URL, a list),
  ``typesense_url`` (node 0).
* **PostgreSQL** primary + hot standby: streaming replication over TLS as the replication role
  ``mas_replicator`` (``REPLICATION LOGIN`` only). The standby's first start makes its data
  with ``pg_basebackup -R -X stream`` from the primary (``sslmode=verify-full``; ``-R`` keeps
  the connection settings in the standby's ``postgresql.auto.conf``, owner-only, in its
  volume). The primary names the standby in ``synchronous_standby_names`` and every node runs
  ``synchronous_commit=remote_apply`` (a commit is acknowledged once the standby has applied
  it: a read on the standby after an acknowledged write sees it, as the local stack does). The
  primary's first-start sessions (the image's init) commit locally: no standby exists yet.
  Failover is the operator's (or Patroni's): ``pg_ctl promote`` on the standby; the primary's
  ``synchronous_standby_names`` stays in its command. Output: ``postgres_url`` with both hosts
  and ``target_session_attrs=read-write``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import pulumi
import pulumi_docker as docker

from mas_storage_redis import CLUSTER_COMMANDS

from ._backends import PostgresService, RedisService, TypesenseService, _quote
from ._config import Host, InfraConfig, follows, node_name, node_ports
from ._service import TLS_DIR, BackendService, Credential, Healthcheck, Upload, https_probe
from ._tls import StackCertificates

__all__ = [
    "CLUSTER_CLIENT_COMMANDS",
    "CLUSTER_NODE_COMPONENTS",
    "REDIS_SLOT_RANGES",
    "REPLICATION_USER",
    "ClusterNode",
    "ClusterService",
    "PostgresNode",
    "RedisNode",
    "TypesenseNode",
]

#: The primaries' slot ranges, as ``redis-cli --cluster create`` splits 16384 slots in three.
REDIS_SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))
#: PostgreSQL's replication role (docs/security.md): REPLICATION LOGIN and nothing else.
REPLICATION_USER = "mas_replicator"
#: What redis-py's cluster client sends besides the adapter's commands: the topology, its
#: command table, redirections, and CLUSTER INFO for the backend metrics (the adapter
#: package's own list, so the lab's ACL and the local stack's cannot drift apart).
CLUSTER_CLIENT_COMMANDS = CLUSTER_COMMANDS
_REDIS_BUS = 16379
_NODES_FILE = "/etc/mas/typesense/nodes"


@dataclass(frozen=True)
class ClusterNode:
    """One node: its name, host, published ports and its place in the cluster."""

    backend: str
    index: int
    host: Host
    ports: Mapping[str, int]
    #: The node it replicates (a Redis replica, the PostgreSQL standby).
    primary: ClusterNode | None = None
    #: Every node of the backend's cluster, in order.
    members: tuple[ClusterNode, ...] = field(default=(), repr=False)

    @property
    def name(self) -> str:
        return node_name(self.backend, self.index)

    @property
    def raft(self) -> bool:
        return self.backend == "typesense"

    def labels(self) -> list[docker.ContainerLabelArgs]:
        """What the policy pack's cluster rules read."""
        found = {"mas.node": self.name}
        if self.raft:
            found["mas.raft"] = self.backend
        if self.primary is not None:
            found["mas.follows"] = self.primary.name
        return [docker.ContainerLabelArgs(label=k, value=v) for k, v in found.items()]

    def address(self, port_name: str) -> str:
        """``host:port`` of one of its published ports."""
        return f"{self.host.url_host}:{self.ports[port_name]}"


def plan(config: InfraConfig, backend: str) -> tuple[ClusterNode, ...]:
    """The nodes of ``backend``'s cluster, with their primaries and the member list."""
    base = [
        ClusterNode(backend, i, config.hosts[host], node_ports(backend, config.ports[backend], i))
        for i, host in enumerate(config.cluster[backend])
    ]
    members = tuple(base)
    linked = []
    for node in base:
        primary = follows(backend, node.index)
        linked.append(
            replace(node, members=members, primary=None if primary is None else base[primary])
        )
    return tuple(linked)


class _Node(BackendService):
    """The node-only parts every cluster node shares."""

    @property
    def cluster_node(self) -> ClusterNode:
        assert self.node is not None, "a cluster node component needs its node"
        return self.node

    @classmethod
    def cluster_outputs(
        cls, nodes: Sequence[BackendService]
    ) -> tuple[dict[str, pulumi.Output[Any]], dict[str, pulumi.Output[str]]]:
        """The cluster's outputs and admin outputs, from its nodes."""
        raise NotImplementedError


class RedisNode(RedisService, _Node):
    """A Redis Cluster node (see the module doc)."""

    container_ports: ClassVar[Mapping[str, int]] = {"redis": 6379, "bus": _REDIS_BUS}
    #: The cluster bus always asks the connecting node for a certificate (``_tls``).
    mutual_tls = True
    app_extra_commands = CLUSTER_CLIENT_COMMANDS

    def envs(self) -> list[pulumi.Input[str]]:
        # masterauth from env: the command references it, so it carries no secret.
        return [*super().envs(), self._env("MAS_REDIS_ADMIN_PASSWORD", self.credentials["admin"])]

    def extra_args(self) -> list[str]:
        node = self.cluster_node
        return [
            "--cluster-enabled yes",
            "--cluster-config-file /data/nodes.conf",
            f"--cluster-port {_REDIS_BUS}",
            "--cluster-require-full-coverage no",
            f"--cluster-announce-ip {node.host.address}",
            f"--cluster-announce-tls-port {node.ports['redis']}",
            f"--cluster-announce-bus-port {node.ports['bus']}",
            f"--masteruser {self.admin_user}",
            '--masterauth "$MAS_REDIS_ADMIN_PASSWORD"',
        ]

    def before_start(self) -> list[str]:
        """Join in the background once the local server answers (idempotent at each start):
        a primary takes its slots and meets node 0; a replica meets its primary and follows
        it. The MEET is repeated until it took: one sent while its peer is not up yet fails
        its handshake and is forgotten (seen: two replicas that never joined)."""
        node = self.cluster_node
        cli = f"redis-cli --tls --cacert {TLS_DIR}/ca.crt --user {self.admin_user}"
        local = f"{cli} -h 127.0.0.1 -p 6379"
        seed = node.primary or node.members[0]
        meet = (
            f"{local} cluster meet {seed.host.address} {seed.ports['redis']} {seed.ports['bus']}"
            " >/dev/null 2>&1"
        )
        if node.primary is None:
            low, high = REDIS_SLOT_RANGES[node.index]
            join = f"{local} cluster addslotsrange {low} {high} >/dev/null 2>&1"
            if seed.index != node.index:
                # Node 0 is met by the others. Each retries until node 0 itself is a known,
                # handshaken peer: any other count misleads, since its own replica may meet it
                # first (seen: primary 2 and its replica, an island of two).
                known = f" {seed.host.address}:{seed.ports['redis']}@"
                join += (
                    f"; until {local} cluster nodes | grep -F '{known}' | grep -qv handshake; "
                    f"do {meet}; sleep 2; done"
                )
        else:
            primary = f"{cli} -h {seed.host.address} -p {seed.ports['redis']}"
            join = (
                f'until {meet}; id=$({primary} cluster myid) && [ -n "$id" ] && '
                f'{local} cluster replicate "$id" | grep -q OK; do sleep 2; done'
            )
        script = (
            'export REDISCLI_AUTH="$MAS_REDIS_ADMIN_PASSWORD"; '
            f"until {local} ping >/dev/null 2>&1; do sleep 1; done; {join}"
        )
        # In the background, its answers in the container's log (``docker logs``).
        return [f"( ( {script} ) & )"]

    @classmethod
    def cluster_outputs(
        cls, nodes: Sequence[BackendService]
    ) -> tuple[dict[str, pulumi.Output[Any]], dict[str, pulumi.Output[str]]]:
        first = nodes[0]
        seeds = [n.cluster_node.address("redis") for n in nodes if isinstance(n, _Node)]
        outputs: dict[str, pulumi.Output[Any]] = {
            **first.outputs,
            "redis_cluster_nodes": pulumi.Output.from_input(seeds),
        }
        return outputs, dict(first.admin)


class TypesenseNode(TypesenseService, _Node):
    """A Typesense Raft member on the host's network (see the module doc)."""

    @property
    def host_network(self) -> bool:
        return True

    def command(self) -> list[str]:
        node = self.cluster_node
        return [
            *super().command(),
            f"--api-address={node.host.address}",
            f"--api-port={node.ports['http']}",
            f"--peering-address={node.host.address}",
            f"--peering-port={node.ports['peering']}",
            f"--nodes={_NODES_FILE}",
        ]

    def uploads(self) -> Sequence[Upload]:
        members = ",".join(
            f"{n.host.address}:{n.ports['peering']}:{n.ports['http']}"
            for n in self.cluster_node.members
        )
        return [*super().uploads(), Upload(_NODES_FILE, members + "\n")]

    def healthcheck(self) -> Healthcheck:
        # /health is ok once the node has joined the group and caught up; it binds the lab
        # address only, so the probe goes there.
        node = self.cluster_node
        return Healthcheck(
            test=https_probe(node.ports["http"], "/health", host=node.host.address),
            interval_s=10,
            timeout_s=5,
            start_period_s=60,
            retries=6,
        )

    @classmethod
    def cluster_outputs(
        cls, nodes: Sequence[BackendService]
    ) -> tuple[dict[str, pulumi.Output[Any]], dict[str, pulumi.Output[str]]]:
        first = nodes[0]
        urls = [n.outputs["typesense_url"] for n in nodes]
        listed: pulumi.Output[Any] = pulumi.Output.all(*urls)
        return {**first.outputs, "typesense_nodes": listed}, dict(first.admin)


class PostgresNode(PostgresService, _Node):
    """The PostgreSQL primary (node 0) or its synchronous hot standby (node 1)."""

    cluster_credential_specs: ClassVar[Mapping[str, Credential]] = {
        "replication": Credential("postgresReplicationPassword"),
    }
    replication_user = REPLICATION_USER

    def envs(self) -> list[pulumi.Input[str]]:
        secret = self._env("MAS_REPLICATION_PASSWORD", self.credentials["replication"])
        # The image's first-start sessions (CREATE DATABASE, the roles script) run on a
        # temporary server with the command's flags, synchronous_standby_names included, and no
        # standby exists yet: committed locally, they do not wait for one forever.
        local = (
            ["PGOPTIONS=-c synchronous_commit=local"] if self.cluster_node.primary is None else []
        )
        return [*super().envs(), secret, *local]

    def healthcheck(self) -> Healthcheck:
        """The primary's check; a standby is healthy only while its WAL receiver streams (or
        once promoted). ``pg_isready`` alone says yes to a hot standby that cannot reach its
        primary: the lab rehearsal of issue 17 had one reported healthy, ``pulumi up`` exit 0,
        and every commit on the primary then waited for it forever (``SyncRep``). Only the
        superuser sees ``pg_stat_wal_receiver.status``: on the socket, its password from env."""
        check = super().healthcheck()
        if self.cluster_node.primary is None:
            return check
        conninfo = check.test[-1]  # pg_isready -d <conninfo>, as on one node
        local = f"host=/var/run/postgresql port=5432 user={self.superuser} dbname=postgres"
        query = (
            "SELECT NOT pg_is_in_recovery() OR EXISTS "
            "(SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')"
        )
        streams = (
            f'[ "$(PGPASSWORD="$POSTGRES_PASSWORD" psql -XAtq -d \'{local}\' -c "{query}")" = t ]'
        )
        return replace(check, test=("CMD-SHELL", f"pg_isready -d '{conninfo}' && {streams}"))

    def extra_settings(self) -> list[str]:
        node = self.cluster_node
        found = ["-c synchronous_commit=remote_apply"]
        if node.primary is None:
            standbys = [n for n in node.members if follows(n.backend, n.index) == node.index]
            found += [f"-c synchronous_standby_names={_app_name(n)}" for n in standbys[:1]]
        return found

    def extra_hba(self) -> list[str]:
        return [
            f"hostssl replication {self.replication_user}  {network}  scram-sha-256"
            for network in ("0.0.0.0/0", "::/0")
        ]

    def extra_roles(self) -> str:
        return f"""\
docker_process_sql --set replication_password="$MAS_REPLICATION_PASSWORD" <<'EOSQL'
CREATE ROLE {self.replication_user} REPLICATION LOGIN PASSWORD :'replication_password';
EOSQL
"""

    def before_start(self) -> list[str]:
        """A standby's first start: a base backup of the primary, retried until it is up."""
        node = self.cluster_node
        if node.primary is None:
            return []
        source = (
            f"host={node.primary.host.address} port={node.primary.ports['postgres']} "
            f"user={self.replication_user} application_name={_app_name(node)} "
            f"sslmode=verify-full sslrootcert={TLS_DIR}/ca.crt"
        )
        backup = (
            'gosu postgres env PGPASSWORD="$MAS_REPLICATION_PASSWORD" '
            f'pg_basebackup -D "$PGDATA" -R -X stream -d "{source}"'
        )
        return [
            'if [ ! -s "$PGDATA/PG_VERSION" ]; then '
            'mkdir -p "$PGDATA" && chown postgres:postgres "$PGDATA" && chmod 700 "$PGDATA" && '
            f'until {backup}; do rm -rf "$PGDATA"/*; sleep 5; done; fi'
        ]

    @classmethod
    def cluster_outputs(
        cls, nodes: Sequence[BackendService]
    ) -> tuple[dict[str, pulumi.Output[Any]], dict[str, pulumi.Output[str]]]:
        first = nodes[0]
        assert isinstance(first, PostgresNode)
        creds = first.credentials
        outputs: dict[str, pulumi.Output[Any]] = {
            "postgres_url": first.multi_host_url(nodes, first.app_user, creds["app"])
        }
        admin = {
            "postgres_owner_url": first.multi_host_url(nodes, first.owner, creds["owner"]),
            "postgres_replication_url": first.multi_host_url(
                nodes, first.replication_user, creds["replication"], database=""
            ),
        }
        return outputs, admin

    def multi_host_url(
        self,
        nodes: Sequence[BackendService],
        user: str,
        password: pulumi.Output[str],
        database: str | None = None,
    ) -> pulumi.Output[str]:
        """libpq's multi-host URL of every node, for the read-write one (the primary)."""
        hosts = ",".join(n.cluster_node.address("postgres") for n in nodes if isinstance(n, _Node))
        dbname = self.database if database is None else database
        query = "sslmode=verify-full&target_session_attrs=read-write"
        return pulumi.Output.secret(
            pulumi.Output.concat(
                "postgresql://", user, ":", password.apply(_quote), "@", hosts,
                f"/{dbname}?{query}",
            )
        )  # fmt: skip


def _app_name(node: ClusterNode) -> str:
    """The standby's ``application_name`` (and so its name in ``synchronous_standby_names``)."""
    return node.name.replace("-", "_")


#: Backend -> node component class.
CLUSTER_NODE_COMPONENTS: Mapping[str, type[_Node]] = {
    "redis": RedisNode,
    "typesense": TypesenseNode,
    "postgres": PostgresNode,
}


class ClusterService(pulumi.ComponentResource):
    """One clustered backend: its nodes (children) and the cluster's outputs."""

    def __init__(
        self,
        kind: str,
        *,
        config: InfraConfig,
        providers: Mapping[str, docker.Provider],
        certificates: StackCertificates,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mas:infra:Cluster", kind, None, opts)
        component = CLUSTER_NODE_COMPONENTS[kind]
        nodes: list[BackendService] = []
        for node in plan(config, kind):
            nodes.append(
                component(
                    node.name,
                    config=config,
                    provider=providers[node.host.name],
                    certificates=certificates,
                    node=node,
                    # The first node makes the credentials; every node shares them.
                    credentials=nodes[0].credentials if nodes else None,
                    opts=pulumi.ResourceOptions(parent=self),
                )
            )
        self.kind = kind
        self.nodes: tuple[BackendService, ...] = tuple(nodes)
        self.outputs, self.admin = component.cluster_outputs(nodes)
        self.register_outputs({**self.outputs, **self.admin})
