"""The cluster topology: the interface of a backend's cluster module, and their registry.

``mas-devstack up --topology cluster`` (``$MAS_DEVSTACK_TOPOLOGY``) runs each backend that has
a cluster module in its own distributed mode, never anything home-made: Redis Cluster
(``_cluster_redis``), a Typesense Raft cluster (``_cluster_typesense``), a PostgreSQL primary
and hot standby (``_cluster_postgres``). The others (Neo4j, the embedded Qdrant) run
single-node in both topologies.

A module sets ``CLUSTER`` to its :class:`ClusterBackend` subclass (``None``: not built yet,
the backend runs single-node). The stack drives it through four calls:

* :meth:`ClusterBackend.nodes`: every node, a :class:`~._services.ProcessService` with its own
  ``name`` (its PID file ``run/<name>.pid``, log ``logs/<name>.log``, data ``.mas/<name>``),
  host and ports; the stack stops, kills, restarts and reports them by that name;
* :meth:`ClusterBackend.start`: start what does not run, through the stack's own starter (PID
  files, readiness, the simulated hosts' namespaces), then form the cluster; idempotent;
* :meth:`ClusterBackend.stop`: stop the nodes by PID file (gracefully, or SIGKILL);
* :meth:`ClusterBackend.outputs` / :meth:`ClusterBackend.admin_outputs`: the backend's keys of
  the two outputs files. The single-node keys keep their meaning; node lists are new keys.

Ports come from :class:`~._layout.Ports` (one place); with simulated hosts a module spreads its
nodes one per host where it can, a primary and its replica never on one host.
"""

from __future__ import annotations

import importlib
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast, get_args

from ._errors import DevstackError
from ._layout import Layout, Ports
from ._process import LOOPBACK, kill_group, read_pid_file, terminate
from ._secrets import Secrets
from ._services import ProcessService
from ._tls import StackCa

__all__ = [
    "CLUSTER_MODULES",
    "TOPOLOGIES",
    "TOPOLOGY_ENV",
    "ClusterBackend",
    "ClusterContext",
    "Topology",
    "cluster_class",
    "resolve_topology",
    "stop_node",
]

Topology = Literal["single", "cluster"]
TOPOLOGIES: tuple[str, ...] = get_args(Topology)
TOPOLOGY_ENV = "MAS_DEVSTACK_TOPOLOGY"

log = logging.getLogger("mas_devstack")

#: The backends that have a cluster mode, and the module that runs it.
CLUSTER_MODULES: dict[str, str] = {
    "postgres": f"{__package__}._cluster_postgres",
    "redis": f"{__package__}._cluster_redis",
    "typesense": f"{__package__}._cluster_typesense",
}

#: ``ensure(node)``: the stack starts ``node`` unless it runs and answers; True: started now.
Ensure = Callable[[ProcessService], bool]


def resolve_topology(value: str | None) -> Topology:
    """``value`` if given, else ``$MAS_DEVSTACK_TOPOLOGY``, else ``single``; checked."""
    chosen = value if value is not None else (os.environ.get(TOPOLOGY_ENV) or "single")
    if chosen not in TOPOLOGIES:
        where = "" if value is not None else f" (from {TOPOLOGY_ENV})"
        raise DevstackError(f"unknown topology {chosen!r}{where}; known: {', '.join(TOPOLOGIES)}")
    return cast(Topology, chosen)


@dataclass(frozen=True)
class ClusterContext:
    """What a cluster module gets from the stack."""

    layout: Layout
    ports: Ports
    secrets: Secrets
    ca: StackCa | None
    """The stack's CA (TLS, the default), ``None`` for ``up --no-tls``."""
    hosts: tuple[str, ...] = (LOOPBACK,)
    """Addresses to place nodes on: loopback, or the simulated hosts' in stack-file order."""
    clients: str = f"{LOOPBACK}/32"
    """The network the clients connect from (what a server's access rules admit)."""

    def node_options(self, host: str) -> dict[str, Any]:
        """The keyword arguments of a node's :class:`~._services.Service` on ``host``."""
        return {"host": host, "clients": self.clients, "ca": self.ca}


class ClusterBackend(ABC):
    """One backend's cluster on the local stack: its nodes, how they form, its outputs."""

    backend: ClassVar[str]
    """The service it stands for in the cluster topology (``"redis"``)."""

    def __init__(self, context: ClusterContext) -> None:
        self.context = context

    def __repr__(self) -> str:
        return f"{type(self).__name__}(nodes={[n.name for n in self.nodes()]})"

    @abstractmethod
    def nodes(self) -> Sequence[ProcessService]:
        """Every node, in start order (the same objects on every call)."""

    @abstractmethod
    def start(self, ensure: Ensure) -> list[str]:
        """Start the nodes that do not run (each with ``ensure``) and form the cluster.

        Idempotent: a formed cluster whose nodes run is left as it is. Returns the names of
        the nodes started now. Raises :class:`~._errors.DevstackError` (naming the node and
        the step) when the cluster does not form.
        """

    @abstractmethod
    def outputs(self) -> dict[str, Any]:
        """This backend's entries of the stack-outputs file (single-node keys included)."""

    def admin_outputs(self) -> dict[str, Any]:
        """This backend's entries of the admin outputs file."""
        return {}

    def node(self, name: str) -> ProcessService:
        """The node called ``name``."""
        for node in self.nodes():
            if node.name == name:
                return node
        known = ", ".join(n.name for n in self.nodes())
        raise DevstackError(f"{self.backend} has no node {name!r}; nodes: {known}")

    def pids(self) -> dict[str, int | None]:
        """Each node's PID (``None``: not running), from the PID files."""
        layout = self.context.layout
        found = {n.name: read_pid_file(layout.pid_path(n.name)) for n in self.nodes()}
        return {name: record.pid if record else None for name, record in found.items()}

    def stop(self, *, kill: bool = False) -> list[str]:
        """Stop every running node (its own stop signal, or SIGKILL), concurrently; returns
        the names stopped. A module that needs an order overrides this."""
        nodes = list(self.nodes())
        with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
            done = list(pool.map(lambda n: stop_node(self.context.layout, n, kill=kill), nodes))
        return [n.name for n, stopped in zip(nodes, done, strict=True) if stopped]


def stop_node(
    layout: Layout, node: ProcessService | type[ProcessService], *, kill: bool = False
) -> bool:
    """Stop one service or node by its PID file (its stop signal, SIGKILL after its stop
    timeout; or SIGKILL at once); False when it was not running."""
    name = node.name
    pid_path = layout.pid_path(name)
    record = read_pid_file(pid_path)
    if record is None:
        return False
    if kill:
        kill_group(record)
        log.info("%s: killed (pid %d)", name, record.pid)
    elif terminate(record, node.stop_signal, node.stop_timeout):
        log.info("%s: stopped (pid %d)", name, record.pid)
    else:
        log.warning("%s: pid %d ignored the stop signal: killed", name, record.pid)
    pid_path.unlink(missing_ok=True)
    return True


def cluster_class(backend: str) -> type[ClusterBackend] | None:
    """The cluster class of ``backend``: ``None`` when it has no cluster mode (yet)."""
    module_name = CLUSTER_MODULES.get(backend)
    if module_name is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # one broken module is one error, with its name
        raise DevstackError(
            f"the cluster module {module_name} of {backend} failed to import: "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    found = getattr(module, "CLUSTER", None)
    if found is None:
        return None
    if not (isinstance(found, type) and issubclass(found, ClusterBackend)):
        raise DevstackError(f"{module_name}.CLUSTER is not a ClusterBackend subclass: {found!r}")
    if found.backend != backend:
        raise DevstackError(f"{module_name}.CLUSTER runs {found.backend!r}, not {backend!r}")
    return found
