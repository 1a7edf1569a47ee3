"""The cluster topology's Redis: Redis Cluster, 3 primaries and 3 replicas, TLS and ACL users.

Six ``redis-server --cluster-enabled yes`` processes, ``redis-0`` .. ``redis-5``, each with its
own ``redis.conf`` (the single node's, plus the cluster lines below), data and AOF under
``.mas/redis-<i>/data`` and ``nodes.conf`` beside it. Clients on base+10..15, the cluster bus on
base+20..25 (``cluster-port``), both over TLS with the stack's CA (``tls-cluster``,
``tls-replication``).

**Forming** uses Redis's own cluster commands through redis-py, as ``redis-cli --cluster
create`` does, but with the placement chosen here rather than by redis-cli's heuristics:
``CLUSTER SET-CONFIG-EPOCH`` per node, ``CLUSTER MEET`` from ``redis-0`` to the others,
``CLUSTER ADDSLOTSRANGE`` on the primaries ``redis-0..2`` (the same three ranges redis-cli
assigns), then ``CLUSTER REPLICATE`` on ``redis-3..5`` (``redis-3`` replicates ``redis-0``, and
so on). With simulated hosts, primary *i* runs on host *i mod H* and its replica on host
*(i+1) mod H*: a primary and its replica never share a host when there are two or more. A
formed cluster (every node: state ok, 6 known nodes, 3 shards) is left as it is, whatever
failovers swapped roles; anything else is reset (``FLUSHALL``, ``CLUSTER RESET HARD``) and
formed anew.

**Timing**: ``cluster-node-timeout`` is :data:`NODE_TIMEOUT_MS` (1 s, Redis's default is 15 s):
a killed primary is flagged failing after about a second, and its replica is promoted about a
second later (Redis waits 500 ms plus up to 500 ms at random before an election). Low enough
for a CI failover test, high enough that a node stalled by a busy 2-core machine is not failed
over by mistake (measured: docs/reliability.md). ``cluster-require-full-coverage no``: the
shards that still have a primary keep serving while one fails over. ``repl-diskless-sync-delay
0``: a restarted node resyncs at once instead of waiting 5 s for more replicas.

**Credentials**: the adapter's ACL user ``mas_app`` gets :data:`mas_storage_redis.CLUSTER_COMMANDS`
besides its own; replicas log in to their primary as ``replicator``
(:func:`mas_storage_redis.replication_acl_rule`: ``PSYNC``, ``REPLCONF``, ``PING``;
``masteruser``/``masterauth``), whose password stays in ``secrets.json`` and the 0600
``redis.conf``, in no outputs file.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ._cluster import ClusterBackend, ClusterContext, Ensure
from ._errors import DevstackError
from ._services import Redis

__all__ = ["CLUSTER", "NODE_TIMEOUT_MS", "RedisCluster", "RedisNode"]

log = logging.getLogger("mas_devstack")

REPLICATION_USER = "replicator"
#: ``cluster-node-timeout`` in milliseconds (see the module docstring).
NODE_TIMEOUT_MS = 1000
PRIMARIES = 3
#: The primaries' slot ranges: 16384 slots in three, as ``redis-cli --cluster create`` splits.
SLOT_RANGES = ((0, 5460), (5461, 10922), (10923, 16383))
#: How long forming, and the cluster's reporting ``ok`` afterwards, may take (seconds).
FORM_TIMEOUT = 60.0

_T = TypeVar("_T")


class RedisNode(Redis):
    """One node of the Redis Cluster: the single node's config plus the cluster's lines.

    Its certificate serves both ways: the cluster bus authenticates both ends of every link
    (``tls-auth-clients`` does not apply to it), and a replica presents it to its primary.
    """

    mutual_tls = True

    def __init__(self, context: ClusterContext, index: int, host: str) -> None:
        options = context.node_options(host)
        super().__init__(context.layout, context.ports, context.secrets, **options)
        self.index = index
        self.name = f"redis-{index}"

    @property
    def port(self) -> int:
        return self.ports.redis_cluster[self.index]

    @property
    def bus_port(self) -> int:
        return self.ports.redis_cluster_bus[self.index]

    def ports_used(self) -> list[int]:
        return [self.port, self.bus_port]

    def app_commands(self) -> tuple[str, ...]:
        from mas_storage_redis import CLUSTER_COMMANDS

        return CLUSTER_COMMANDS

    def config_lines(self) -> list[str]:
        from mas_storage_redis import replication_acl_rule

        password = self.secrets.redis_replication_password
        return [
            *super().config_lines(),
            "cluster-enabled yes",
            "cluster-config-file nodes.conf",
            f"cluster-node-timeout {NODE_TIMEOUT_MS}",
            f"cluster-port {self.bus_port}",
            f"cluster-announce-ip {self.host}",
            "cluster-require-full-coverage no",
            "repl-diskless-sync-delay 0",
            replication_acl_rule(REPLICATION_USER, password),
            f"masteruser {REPLICATION_USER}",
            f"masterauth {password}",
        ]

    @contextlib.contextmanager
    def admin(self, timeout: float = 5.0) -> Iterator[Any]:
        """A sync redis-py client of this node as the admin user (str replies), then closed."""
        client = self._client(timeout, decode_responses=True)
        try:
            yield client
        finally:
            client.close()


class RedisCluster(ClusterBackend):
    """Redis Cluster on the local stack: ``redis-0..2`` primaries, ``redis-3..5`` replicas."""

    backend = "redis"

    def __init__(self, context: ClusterContext) -> None:
        super().__init__(context)
        hosts = context.hosts
        primaries = [RedisNode(context, i, hosts[i % len(hosts)]) for i in range(PRIMARIES)]
        replicas = [
            RedisNode(context, PRIMARIES + i, hosts[(i + 1) % len(hosts)]) for i in range(PRIMARIES)
        ]
        self._nodes = [*primaries, *replicas]

    def nodes(self) -> Sequence[RedisNode]:
        return self._nodes

    def start(self, ensure: Ensure) -> list[str]:
        with ThreadPoolExecutor(max_workers=len(self._nodes)) as pool:
            started = list(pool.map(ensure, self._nodes))
        infos = self._each(lambda c: c.cluster("info"))
        moved = self._moved()
        if moved:  # formed on other ports or hosts (another port base): its peers are gone
            log.warning("redis cluster: formed at other addresses (%s): formed anew", moved)
            self._reset()
            infos = self._each(lambda c: c.cluster("info"))
        if all(int(info.get("cluster_slots_assigned", 0)) == 0 for info in infos):
            self._form(infos)  # no slot anywhere: nothing was ever stored, (re)form it
        else:  # a cluster that ran: its nodes find each other again from nodes.conf
            log.info("redis cluster: formed before, kept (%d nodes)", len(self._nodes))
            self._close_open_slots()
        self._until("the cluster reports ok on every node", self.formed)
        self._until("every replica is in sync", self._replicas_in_sync)
        self._until("every node sees each primary's replica", self._replicas_seen)
        return [node.name for node, now in zip(self._nodes, started, strict=True) if now]

    def formed(self) -> bool:
        """Every node answers ``cluster_state:ok``, knows all six and counts three shards."""
        try:
            infos = self._each(lambda c: c.cluster("info"))
        except Exception:
            return False
        return all(
            str(info.get("cluster_state")) == "ok"
            and int(info.get("cluster_known_nodes", 0)) == len(self._nodes)
            and int(info.get("cluster_size", 0)) == PRIMARIES
            for info in infos
        )

    # -- forming -------------------------------------------------------------------------------

    def _each(self, fn: Callable[[Any], _T]) -> list[_T]:
        """``fn(admin client)`` on every node, in node order."""
        results = []
        for node in self._nodes:
            with node.admin() as client:
                results.append(fn(client))
        return results

    def _form(self, infos: list[dict[str, Any]]) -> None:
        """Form the cluster from nodes that own no slot; a node left from an earlier attempt
        (it knows others, or has an epoch) is reset first (it holds no key: no slot)."""
        began = time.monotonic()
        nodes = self._nodes
        for node, info in zip(nodes, infos, strict=True):
            if int(info.get("cluster_known_nodes", 1)) > 1 or int(info.get("cluster_my_epoch", 0)):
                log.warning("redis cluster: %s is left from an earlier attempt: reset", node.name)
                with node.admin() as client:
                    client.flushall()
                    client.cluster("reset", "hard")
        ids = self._each(lambda c: str(c.cluster("myid")))
        for epoch, node in enumerate(nodes, start=1):
            with node.admin() as client:
                client.cluster("set-config-epoch", epoch)
        with nodes[0].admin() as client:
            for node in nodes[1:]:
                client.cluster("meet", node.host, node.port, node.bus_port)
        self._until("every node knows the six", lambda: self._known_everywhere(set(ids)))
        for node, (low, high) in zip(nodes[:PRIMARIES], SLOT_RANGES, strict=True):
            with node.admin() as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", low, high)
        for primary_id, replica in zip(ids, nodes[PRIMARIES:], strict=False):
            self._until(
                f"{replica.name} replicates {primary_id}",
                functools.partial(_replicate, replica, primary_id),
            )
        log.info("redis cluster: formed in %.1f s", time.monotonic() - began)

    def _moved(self) -> list[str]:
        """The peer addresses the nodes know that are none of this stack's nodes (a cluster
        formed on another port base or other hosts: ``nodes.conf`` keeps the old ones)."""
        mine = {n.address for n in self._nodes}
        views = self._each(lambda c: set(c.cluster("nodes")))  # redis-py: keyed by ip:port
        return sorted({a for view in views for a in view if a not in mine})

    def _reset(self) -> None:
        """Every node back to a fresh, slotless node (its keys dropped: ``CLUSTER RESET``
        refuses a primary that holds keys)."""
        for node in self._nodes:
            with node.admin() as client:
                with contextlib.suppress(Exception):  # a replica refuses writes: no keys
                    client.flushall()
                client.cluster("reset", "hard")

    def _close_open_slots(self) -> None:
        """A slot left importing or migrating (a resharding interrupted before its
        ``SETSLOT NODE``; ``nodes.conf`` keeps it) would never be served by the node that
        holds it open: nothing migrates while the stack starts, so it is set ``STABLE`` and
        the node takes the owner's claim by gossip, as ``redis-cli --cluster fix`` does."""
        for node in self._nodes:
            with node.admin() as client:
                mine = next(n for n in client.cluster("nodes").values() if "myself" in n["flags"])
                for migration in mine["migrations"]:
                    slot = int(migration["slot"])
                    log.warning(
                        "redis cluster: %s had slot %d left %s: set stable",
                        node.name,
                        slot,
                        migration["state"],
                    )
                    client.cluster("setslot", slot, "stable")

    def _known_everywhere(self, ids: set[str]) -> bool:
        views = self._each(lambda c: {n["node_id"] for n in c.cluster("nodes").values()})
        return all(ids <= view for view in views)

    def _replicas_in_sync(self) -> bool:
        roles = self._each(lambda c: c.info("replication"))
        replicas = [r for r in roles if r.get("role") == "slave"]
        return len(replicas) == len(self._nodes) - PRIMARIES and all(
            r.get("master_link_status") == "up" for r in replicas
        )

    def _replicas_seen(self) -> bool:
        """Every node's ``CLUSTER SLOTS`` (the map clients read) lists the three ranges, each
        with its replica. Redis leaves out a replica until gossip has carried a replication
        offset for it, a moment after it synced: a client that read the map earlier would
        not know that replica."""
        maps = self._each(lambda c: c.execute_command("CLUSTER SLOTS"))
        return all(
            len(ranges) == PRIMARIES and all(len(entry) >= 4 for entry in ranges) for ranges in maps
        )

    def _until(self, what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + FORM_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if done():
                    return
            except Exception as exc:  # a node still joining answers with an error: try again
                last = exc
            time.sleep(0.1)
        detail = f" (last error: {type(last).__name__}: {last})" if last else ""
        raise DevstackError(f"redis cluster: not ready within {FORM_TIMEOUT:.0f} s: {what}{detail}")

    # -- outputs -------------------------------------------------------------------------------

    def outputs(self) -> dict[str, Any]:
        return {
            "redis_url": self._nodes[0].url,
            "redis_cluster_nodes": [node.address for node in self._nodes],
        }

    def admin_outputs(self) -> dict[str, Any]:
        return {"redis_admin_url": self._nodes[0].admin_url}


def _replicate(replica: RedisNode, primary_id: str) -> bool:
    """``CLUSTER REPLICATE``: refused until the replica's view has the primary (gossip)."""
    with replica.admin() as client:
        client.cluster("replicate", primary_id)
    return True


CLUSTER: type[ClusterBackend] | None = RedisCluster
