"""The cluster topology's Typesense: three ``typesense-server`` processes, one Raft group.

Typesense's own clustering, nothing home-made: every node gets the same ``--nodes`` file
(``<peering address>:<peering port>:<api port>`` per node, comma-separated), the same bootstrap
admin key, and its own data directory, API port (base+30..32) and peering port (base+33..35).
The nodes elect a leader among themselves; a write sent to a follower is forwarded by it to the
leader, and the leader acknowledges it only once a majority of the nodes (2 of 3) hold it in
their Raft log and the leader has applied it.

``start`` starts the three nodes concurrently (a node alone never becomes healthy: there is no
leader without a majority), waits until the group has a leader and every node answers
``/health``, makes ``typesense-0`` the leader (``POST /operations/vote`` on it, with the admin
key), then provisions through it exactly as the single node is provisioned (the collection and
the adapter's scoped key, :mod:`mas_storage_typesense.provision`) and waits until every node
serves both: collections and keys are Raft writes, replicated like documents.

Why ``typesense-0`` leads after every ``up``: a follower applies a write up to one Raft
heartbeat (0.5 s, measured) after the leader acknowledged it, so a client that reads its own
writes must read from the leader. The outputs' single-node key ``typesense_url`` names
``typesense-0``, so a client that only knows it (the unchanged suites) reads its writes as on
one server; ``typesense_nodes`` lists all three, ``typesense-0`` first. After a failover the
leader is wherever Raft put it, until the next ``up``.

TLS: the API port serves TLS as on one node (``--ssl-certificate``, a certificate per node for
its address); a follower forwards a write to the leader over HTTPS too (it does not verify the
leader's certificate: 0.24.1's forwarding client turns verification off). The **peering port
cannot do TLS** in 0.24.1: its brpc server is started without SSL options and there is no flag
for it, and the peering protocol has no authentication. It listens on the node's own address
only (loopback, or the simulated host's on the private subnet); on the lab it must stay on a
private network (docs/security.md).

With simulated hosts (``--hosts``), node *i* runs on host *i mod n*: three nodes on the lab's
two hosts means two of them share the first host, and losing that host loses the majority.

A Raft group keeps its membership in its data: nodes started with other addresses (loopback,
then the simulated hosts) find the old members there, refuse to elect among the new ones, and
0.24.1 resets the peers of a single node only. So each member list (addresses and ports) has
its own data directory, ``.mas/typesense-<i>/group-<digest of the list>``: switching between
loopback and simulated hosts switches between two clusters, and neither's data is lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

from ._cluster import ClusterBackend, ClusterContext, Ensure
from ._errors import DevstackError
from ._services import Typesense

__all__ = ["CLUSTER", "TypesenseCluster", "TypesenseNode"]

log = logging.getLogger("mas_devstack")

#: Raft state codes of ``GET /debug`` (braft's ``State``).
LEADER, FOLLOWER = 1, 4
#: Seconds for a fresh group to elect a leader and report healthy (0.24.1's election timeout is
#: a fixed 5 s, randomised up to 10 s; measured 9 to 15 s here on a loaded machine).
FORM_TIMEOUT = 120.0
#: Seconds for ``typesense-0`` to win the election a vote starts (measured 2 to 4 s).
VOTE_TIMEOUT = 30.0


class TypesenseNode(Typesense):
    """One Raft node: its own name, data, ports and certificate, and the shared ``--nodes``."""

    #: A node is ready only once the group has formed (a leader needs 2 of the 3 nodes).
    start_timeout: ClassVar[float] = FORM_TIMEOUT

    def __init__(self, context: ClusterContext, index: int, host: str, peers: Path) -> None:
        super().__init__(
            context.layout, context.ports, context.secrets, **context.node_options(host)
        )
        self.name = f"typesense-{index}"
        self.index = index
        self.peers = peers
        """The ``--nodes`` file every node reads (Typesense re-reads it every few seconds)."""
        self.group = ""
        """The digest of the member list: its data directory (set by the cluster)."""

    @property
    def data_dir(self) -> Path:
        """``.mas/typesense-<i>/group-<digest>``: one directory per member list."""
        return self.layout.data_dir(self.name) / f"group-{self.group}"

    @property
    def port(self) -> int:
        return self.ports.typesense_nodes[self.index]

    @property
    def peering_port(self) -> int:
        return self.ports.typesense_nodes_peering[self.index]

    @property
    def peer_id(self) -> str:
        """This node in the ``--nodes`` list: ``address:peering_port:api_port``."""
        return f"{self.host}:{self.peering_port}:{self.port}"

    def command(self) -> list[str]:
        return [*super().command(), f"--nodes={self.peers}"]

    def probe(self, timeout: float) -> None:
        """The node answers an authenticated request (``/debug``, admin key). ``/health``
        waits for a leader, which a node alone never has: the cluster's ``start`` waits for
        that."""
        if self._get("/debug", timeout).get("state") is None:
            raise RuntimeError("/debug has no Raft state")

    def probe_ready(self, timeout: float) -> None:
        """A started node is up once the group serves it: ``/health`` ok (it has a leader and
        is within ``healthy-read-lag`` of it), then the single node's test
        (:meth:`Typesense.probe_ready`: a write through the Raft log answered 404, and this
        node's ``pending_write_batches`` 0). A follower forwards that write to the leader, so
        the 404 says the log is writable through it; the empty queue says what this node
        received is indexed. A restarted node serves reads while it replays: a start waits for
        this, and the failover tests also wait until it holds what the leader holds."""
        if not self.healthy(timeout):
            raise RuntimeError("/health is not ok: no leader yet, or lagging behind it")
        super().probe_ready(timeout)

    def after_start(self) -> None:
        """Nothing per node: the cluster provisions once it has a leader."""

    def state(self, timeout: float = 3.0) -> int | None:
        """Its Raft state (:data:`LEADER`, :data:`FOLLOWER`, ...), ``None`` when it does not
        answer."""
        try:
            found = self._get("/debug", timeout).get("state")
        except Exception:
            return None
        return int(found) if found is not None else None

    def healthy(self, timeout: float = 3.0) -> bool:
        """``/health`` says ok: it has a leader and has caught up with it."""
        try:
            return self._get("/health", timeout, auth=False).get("ok") is True
        except Exception:
            return False

    def vote(self, timeout: float = 5.0) -> None:
        """Ask this follower to start an election now (``POST /operations/vote``)."""
        import httpx

        response = httpx.post(
            f"{self.url}/operations/vote",
            headers={"X-TYPESENSE-API-KEY": self.secrets.typesense_api_key},
            timeout=timeout,
            verify=self._verify(),
            trust_env=False,
        )
        response.raise_for_status()

    def outputs(self) -> dict[str, Any]:
        return {}  # the cluster writes the outputs

    def admin_outputs(self) -> dict[str, Any]:
        return {}


class TypesenseCluster(ClusterBackend):
    """Three Typesense nodes in one Raft group; ``typesense-0`` leads after ``start``."""

    backend = "typesense"

    def __init__(self, context: ClusterContext) -> None:
        super().__init__(context)
        peers = context.layout.run_dir / "typesense-nodes"
        hosts = context.hosts
        self._nodes = tuple(
            TypesenseNode(context, index, hosts[index % len(hosts)], peers)
            for index in range(len(context.ports.typesense_nodes))
        )
        self.peers = peers
        members = self.members.encode()
        for node in self._nodes:
            node.group = hashlib.sha256(members).hexdigest()[:12]

    @property
    def members(self) -> str:
        """The ``--nodes`` list: ``address:peering_port:api_port`` of each node."""
        return ",".join(node.peer_id for node in self._nodes)

    def nodes(self) -> Sequence[TypesenseNode]:
        return self._nodes

    @property
    def urls(self) -> list[str]:
        """Every node's API URL, ``typesense-0`` first (the outputs' ``typesense_nodes``)."""
        return [node.url for node in self._nodes]

    def start(self, ensure: Ensure) -> list[str]:
        self.context.layout.ensure()
        self.peers.write_text(self.members, encoding="utf-8")
        with ThreadPoolExecutor(max_workers=len(self._nodes)) as pool:
            started = list(pool.map(ensure, self._nodes))
        self.wait_formed(FORM_TIMEOUT)
        self.lead_from(self._nodes[0], VOTE_TIMEOUT)
        self._provision()
        return [node.name for node, now in zip(self._nodes, started, strict=True) if now]

    def leader(self) -> TypesenseNode | None:
        """The node that says it leads, ``None`` when none does (an election runs)."""
        for node in self._nodes:
            if node.state() == LEADER:
                return node
        return None

    def wait_formed(self, within: float, nodes: Sequence[TypesenseNode] | None = None) -> None:
        """Wait until one node leads and ``nodes`` (default: all) report healthy."""
        wanted = list(nodes) if nodes is not None else list(self._nodes)
        deadline = time.monotonic() + within
        while True:
            sick = [node.name for node in wanted if not node.healthy()]
            if not sick and self.leader() is not None:
                return
            if time.monotonic() > deadline:
                raise DevstackError(
                    f"typesense: the Raft cluster did not form within {within:.0f} s "
                    f"(not healthy: {', '.join(sick) or 'none'}; leader: none; see "
                    f"{self.context.layout.logs_dir}/typesense-*.log)"
                )
            time.sleep(0.5)

    def lead_from(self, node: TypesenseNode, within: float) -> None:
        """Make ``node`` the leader (a vote started on it), unless it leads already."""
        if node.state() == LEADER:
            return
        began = time.monotonic()
        deadline = began + within
        next_vote = began
        while node.state() != LEADER:
            now = time.monotonic()
            if now > deadline:
                raise DevstackError(
                    f"typesense: {node.name} did not become the leader in {within:.0f} s"
                )
            if now >= next_vote:  # a vote that lost (a peer's timer fired first) is repeated
                node.vote()
                next_vote = now + 10.0
            time.sleep(0.25)
        self.wait_formed(FORM_TIMEOUT)
        log.info("typesense: %s leads the Raft group (%.1f s)", node.name, time.monotonic() - began)

    def _provision(self) -> None:
        """The collection and the scoped key, through the leader; then on every node."""
        from mas_storage_typesense import DEFAULT_COLLECTION, TypesenseAdminSettings
        from mas_storage_typesense.provision import provision

        leader = self._nodes[0]
        admin = TypesenseAdminSettings.from_config(
            {
                "url": leader.url,
                "api_key": self.context.secrets.typesense_api_key,
                "tls_ca": leader.ca_file,
            }
        )
        done = asyncio.run(provision(admin, adapter_key=self.context.secrets.typesense_app_api_key))
        if done.collections_created or done.key_created:
            log.info(
                "typesense: provisioned through %s (collections %s, scoped key %s)",
                leader.name,
                ", ".join(done.collections_created) or "kept",
                "created" if done.key_created else "kept",
            )
        self._wait_replicated(f"/collections/{DEFAULT_COLLECTION}", FORM_TIMEOUT)

    def _wait_replicated(self, path: str, within: float) -> None:
        """Every node answers ``path`` with the **scoped** key: the collection and the key
        both reached it through Raft."""
        import httpx

        key = self.context.secrets.typesense_app_api_key
        deadline = time.monotonic() + within
        for node in self._nodes:
            while True:
                try:
                    status = httpx.get(
                        f"{node.url}{path}",
                        headers={"X-TYPESENSE-API-KEY": key},
                        timeout=3.0,
                        verify=node._verify(),
                        trust_env=False,
                    ).status_code
                except httpx.HTTPError:
                    status = 0
                if status == 200:
                    break
                if time.monotonic() > deadline:
                    raise DevstackError(
                        f"typesense: {node.name} does not serve {path} with the scoped key "
                        f"(HTTP {status}) {within:.0f} s after provisioning"
                    )
                time.sleep(0.25)

    def outputs(self) -> dict[str, Any]:
        return {
            "typesense_url": self._nodes[0].url,
            "typesense_nodes": self.urls,
            "typesense_api_key": self.context.secrets.typesense_app_api_key,
        }

    def admin_outputs(self) -> dict[str, Any]:
        return {"typesense_admin_api_key": self.context.secrets.typesense_api_key}


CLUSTER: type[ClusterBackend] | None = TypesenseCluster
