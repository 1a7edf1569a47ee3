"""The :class:`Stack`: up, down, status, and stop/start of one service, all by PID file."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mirakuru.exceptions import AlreadyRunning, ProcessExitedWithError, TimeoutExpired
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from ._cluster import (
    TOPOLOGY_ENV,
    ClusterBackend,
    ClusterContext,
    Topology,
    cluster_class,
    resolve_topology,
    stop_node,
)
from ._cluster_postgres import PostgresCluster
from ._errors import DevstackError, ServiceStartError
from ._layout import PORT_BASE_ENV, SERVICE_NAMES, Layout, Ports, resolve_root
from ._migrate import apply_migrations
from ._network import HOSTS_ENV, HostNetwork, NetworkPlan, network_prefix, plan_network
from ._process import (
    LOOPBACK,
    DetachedExecutor,
    is_alive,
    kill_group,
    load_pid_file,
    log_tail,
    port_open,
    port_owner,
    read_pid_file,
    terminate,
    write_pid_file,
)
from ._secrets import Secrets, load_or_create_secrets, write_private_json
from ._services import SERVICE_CLASSES, Postgres, ProcessService, Service
from ._tls import StackCa
from ._versions import version_drift

#: How many times a server that exits during its start is started (see ``_start_process``).
START_ATTEMPTS = 3
#: ``0``/``false``/``no``: run the stack without TLS (the TLS-cost benchmark's plaintext arm).
TLS_ENV = "MAS_DEVSTACK_TLS"

log = logging.getLogger("mas_devstack")


@dataclass(frozen=True)
class ServiceStatus:
    """What ``status`` knows of one service."""

    name: str
    running: bool
    """True when it answers an authenticated request now."""
    pid: int | None
    address: str
    version: str | None
    state: str
    """``running``, ``stopped``, ``unresponsive`` (PID alive, no answer) or ``embedded``."""
    backend: str = ""
    """The backend it serves: its own name, or its cluster's for a node (``redis-0``)."""

    def __post_init__(self) -> None:
        if not self.backend:
            object.__setattr__(self, "backend", self.name)


@dataclass(frozen=True)
class UpResult:
    """What ``up`` did: the outputs written, the services it started (not reused)."""

    outputs: dict[str, Any]
    started: list[str]
    migrations: list[str] = field(default_factory=list)
    """Ids of the yoyo migrations applied by this call."""


class Stack:
    """The five backends of one root (``<root>/.mas``), as real processes on this machine.

    By default every server listens on 127.0.0.1. With ``hosts`` (a Pulumi stack file such as
    ``Pulumi.dev.yaml``, or ``$MAS_DEVSTACK_HOSTS``) the stack file's hosts become network
    namespaces on a private subnet and each server runs inside the namespace of the host its
    placement names, listening on that host's address only (see :mod:`._network`). The choice
    sticks until ``down``: it is kept in ``.mas/run/network.json``, so ``status``, ``stop``,
    ``start`` and ``down`` need not repeat it.

    ``topology="cluster"`` (``$MAS_DEVSTACK_TOPOLOGY``) runs each backend that has a cluster
    module as a cluster of node processes (see :mod:`._cluster`); it sticks until ``down`` too
    (``.mas/run/topology.json``). ``stop``, ``start`` and ``pid`` take node names as well
    (``"redis-0"``); :meth:`cluster` gives a backend's cluster.

    Every method is safe to call again: ``up`` reuses what runs and answers, ``down`` and
    ``stop`` touch only processes whose PID file this stack wrote. Calls from several
    processes are serialised by a lock file. Blocking: from async code use
    ``await asyncio.to_thread(stack.up)``.
    """

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        port_base: int | None = None,
        hosts: Path | str | None = None,
        tls: bool | None = None,
        topology: str | None = None,
    ) -> None:
        self.root = resolve_root(root)
        self._tls_wanted = tls
        if topology is None and os.environ.get(TOPOLOGY_ENV):
            topology = resolve_topology(None)
        self._topology_wanted = resolve_topology(topology) if topology is not None else None
        self._clusters: dict[str, ClusterBackend] | None = None
        self.layout = Layout(self.root)
        self.ports = Ports.resolve(port_base)
        named = hosts if hosts is not None else os.environ.get(HOSTS_ENV) or None
        self._hosts_file = Path(named).expanduser().resolve() if named else None
        self._plan: NetworkPlan | None = None
        self._secrets: Secrets | None = None
        self._services: dict[str, Service] = {}
        self._thread_lock = threading.RLock()
        self._state_lock = threading.RLock()  # secrets and service objects, across workers
        self._lock_depth = 0
        self._lock_handle: IO[str] | None = None

    def __repr__(self) -> str:
        where = f", hosts={self.plan.stack_file!r}" if self.plan else ""
        return f"Stack(root={str(self.root)!r}, ports={self.ports}{where})"

    @property
    def outputs_path(self) -> Path:
        """``<root>/.mas/stack-outputs.json``."""
        return self.layout.outputs_path

    @property
    def admin_outputs_path(self) -> Path:
        """``<root>/.mas/stack-admin.json``: the owner and admin credentials (0600)."""
        return self.layout.home / "stack-admin.json"

    @property
    def tls_path(self) -> Path:
        """``<root>/.mas/run/tls.json``: whether the running stack uses TLS (kept until down)."""
        return self.layout.run_dir / "tls.json"

    @property
    def tls(self) -> bool:
        """Whether the servers speak TLS: the running stack's choice, else the one asked for
        (``tls=``, ``$MAS_DEVSTACK_TLS``), else True (the default)."""
        if self.tls_path.is_file():
            return bool(json.loads(self.tls_path.read_text(encoding="utf-8")).get("tls", True))
        if self._tls_wanted is not None:
            return self._tls_wanted
        raw = os.environ.get(TLS_ENV, "").strip().lower()
        return raw not in ("0", "false", "no", "off")

    @property
    def ca(self) -> StackCa | None:
        """The stack's CA (``.mas/tls``), ``None`` when it runs without TLS."""
        return StackCa(self.layout.home / "tls") if self.tls else None

    @property
    def topology_path(self) -> Path:
        """``<root>/.mas/run/topology.json``: the running stack's topology (kept until down)."""
        return self.layout.run_dir / "topology.json"

    @property
    def topology(self) -> Topology:
        """``single`` or ``cluster``: the running stack's, else the one asked for
        (``topology=``, ``$MAS_DEVSTACK_TOPOLOGY``), else ``single``."""
        if self.topology_path.is_file():
            recorded = json.loads(self.topology_path.read_text(encoding="utf-8"))
            return resolve_topology(str(recorded.get("topology", "single")))
        return self._topology_wanted or resolve_topology(None)

    @property
    def clusters(self) -> dict[str, ClusterBackend]:
        """The backends that run as clusters in this topology (none in ``single``)."""
        with self._state_lock:
            if self._clusters is None:
                found: dict[str, ClusterBackend] = {}
                if self.topology == "cluster":
                    plan = self.plan
                    context = ClusterContext(
                        self.layout,
                        self.ports,
                        self._load_secrets(),
                        self.ca,
                        hosts=tuple(h.address for h in plan.hosts) if plan else (LOOPBACK,),
                        clients=plan.subnet if plan else f"{LOOPBACK}/32",
                    )
                    for name in SERVICE_NAMES:
                        cls = cluster_class(name)
                        if cls is not None:
                            found[name] = cls(context)
                self._clusters = found
            return self._clusters

    def cluster(self, backend: str) -> ClusterBackend:
        """``backend``'s cluster (its nodes, PIDs, outputs); an error when it runs single-node."""
        self._names([backend])
        found = self.clusters.get(backend)
        if found is None:
            raise DevstackError(
                f"{backend} runs single-node in the {self.topology} topology of {self.root}"
            )
        return found

    @property
    def network_path(self) -> Path:
        """``<root>/.mas/run/network.json``: the simulated hosts of the running stack."""
        return self.layout.run_dir / "network.json"

    @property
    def plan(self) -> NetworkPlan | None:
        """The simulated hosts: those of the running stack, else those asked for; None: loopback."""
        with self._state_lock:
            if self._plan is None:
                if self.network_path.is_file():
                    self._plan = NetworkPlan.model_validate_json(
                        self.network_path.read_text(encoding="utf-8")
                    )
                elif self._hosts_file is not None:
                    prefix = network_prefix(self.root, self.ports.postgres)
                    self._plan = plan_network(self._hosts_file, prefix)
            return self._plan

    @property
    def network(self) -> HostNetwork:
        """The simulated hosts' network, for faults (partition, blackhole, loss)."""
        plan = self.plan
        if plan is None:
            raise DevstackError("this stack runs on loopback: it has no simulated hosts")
        return HostNetwork(plan)

    # -- public API ------------------------------------------------------------------------

    def up(self, services: Iterable[str] | None = None) -> UpResult:
        """Start what is not running (concurrently), apply migrations, write the outputs."""
        names = self._names(services)
        with self._exclusive():
            self._load_secrets()
            self._fix_tls_mode()
            self._fix_topology()
            created = self._ensure_network()
            ran_before = set(self._running())
            results: dict[str, bool] = {}
            try:
                self._start_all(names, results)
            except BaseException:
                # All or nothing: what this call started stops (a server that runs but failed
                # its setup included), and the network it built goes.
                for name in self._running():
                    if name not in ran_before:
                        self._stop_one(name)
                if created:
                    self._remove_network()
                if not self._running():
                    self.topology_path.unlink(missing_ok=True)
                raise
            # The servers run: a failing migration is the schema's problem, not the stack's. It
            # is raised, and the outputs are written all the same (to inspect the database).
            migrations: list[str] = []
            try:
                if "postgres" in names:
                    migrations = self._migrate()
            finally:
                outputs = self._write_outputs()
            for problem in version_drift():
                log.warning("%s", problem)
            started = [n for n in names if results.get(n)]
            return UpResult(outputs=outputs, started=started, migrations=migrations)

    def _start_all(self, names: list[str], results: dict[str, bool]) -> None:
        """Start the servers (concurrently) and check the embedded Qdrant; ``results`` gets
        each server's "started now"."""
        procs = [n for n in names if not SERVICE_CLASSES[n].embedded]
        clusters = self.clusters
        errors: list[DevstackError] = []

        def start(name: str) -> bool:
            if name in clusters:
                return bool(clusters[name].start(self._ensure_service))
            return self._ensure_running(name)

        with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
            futures = {n: pool.submit(start, n) for n in procs}
            for name, future in futures.items():
                try:
                    results[name] = future.result()
                except DevstackError as exc:
                    errors.append(exc)
        for name in names:
            if SERVICE_CLASSES[name].embedded:
                try:
                    self._ensure_embedded(name)
                except DevstackError as exc:
                    errors.append(exc)
        if errors:
            if len(errors) == 1:
                raise errors[0]
            raise DevstackError("\n\n".join(str(exc) for exc in errors))

    def _ensure_network(self) -> bool:
        """Build the simulated hosts when asked for and not built yet; True when built now."""
        plan = self.plan
        if plan is None:
            return False
        if self.network_path.is_file():
            wanted = self._hosts_file
            if wanted is not None and Path(plan.stack_file) != wanted:
                raise DevstackError(
                    f"this stack runs the hosts of {plan.stack_file}, not {wanted}: "
                    "mas-devstack down first"
                )
            if not HostNetwork(plan).exists():
                raise DevstackError(
                    f"the simulated hosts of {self.network_path} are gone (a reboot?): "
                    "mas-devstack down, then up again"
                )
            return False
        running = self._running()
        if running:
            raise DevstackError(
                f"{', '.join(running)} run(s) on loopback in {self.root}: mas-devstack down "
                "first (one root runs one stack at a time)"
            )
        # The plan first: a crash while building leaves a file that says what to remove.
        write_private_json(self.network_path, plan.model_dump(mode="json"))
        try:
            HostNetwork(plan).create()
        except BaseException:
            self.network_path.unlink(missing_ok=True)
            raise
        log.info(
            "network: %s on %s (%s)",
            ", ".join(f"{h.name} {h.address} [{h.namespace}]" for h in plan.hosts),
            plan.subnet,
            plan.bridge,
        )
        return True

    def _remove_network(self) -> list[str]:
        """Remove the simulated hosts and forget them; returns what was removed."""
        if not self.network_path.is_file():  # loopback, or nothing built: nothing to read
            return []
        plan = self.plan
        if plan is None:
            return []
        removed = HostNetwork(plan).destroy()
        self.network_path.unlink(missing_ok=True)
        with self._state_lock:
            self._plan = None
            self._services.clear()
        if removed:
            log.info("network: removed %s", ", ".join(removed))
        return removed

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop (SIGTERM, then SIGKILL after a timeout) what this stack started; returns names."""
        everything = names is None
        chosen = [n for n in self._names(names) if not SERVICE_CLASSES[n].embedded]
        if not self.layout.run_dir.is_dir():
            return []  # never started here: nothing to stop, nothing to create
        with self._exclusive():
            with ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
                stopped = list(pool.map(self._stop_service, chosen))
            if everything or not self._running():
                self._remove_network()  # the simulated hosts go with the last server
                self.tls_path.unlink(missing_ok=True)  # the next up chooses again
                self.topology_path.unlink(missing_ok=True)
                with self._state_lock:
                    self._clusters = None
        return [name for name, done in zip(chosen, stopped, strict=True) if done]

    def _stop_service(self, name: str) -> bool:
        """Stop a service: its process, or every node of its cluster (and a single-node
        process left from the other topology)."""
        cluster = self.clusters.get(name)
        stopped = bool(cluster.stop()) if cluster is not None else False
        return self._stop_one(name) or stopped

    def stop(self, name: str, *, kill: bool = False) -> bool:
        """Stop one service by PID: graceful, or SIGKILL (its whole process group) if ``kill``.

        Returns False when it was not running. The embedded Qdrant has nothing to stop. A
        clustered backend's name stops all its nodes; a node's name (``"redis-0"``) that node.
        """
        node = self._node(name)
        if node is None:
            self._names([name])
        if not self.layout.run_dir.is_dir():
            return False
        with self._exclusive():
            if node is not None:
                return stop_node(self.layout, node, kill=kill)
            if SERVICE_CLASSES[name].embedded:
                return False
            cluster = self.clusters.get(name)
            if cluster is not None:
                return bool(cluster.stop(kill=kill))
            return self._stop_one(name, kill)

    def start(self, name: str) -> bool:
        """Start one service (or cluster node) again, on its existing data and secrets; False
        if it already ran. A clustered backend's name starts its missing nodes."""
        node = self._node(name)
        if node is None:
            self._names([name])
        with self._exclusive():
            self._load_secrets()
            if node is not None:
                started = self._ensure_service(node)
            elif SERVICE_CLASSES[name].embedded:
                self._ensure_embedded(name)
                return False
            elif name in self.clusters:
                started = bool(self.clusters[name].start(self._ensure_service))
            else:
                started = self._ensure_running(name)
            if not self.outputs_path.exists():
                self._write_outputs()
            return started

    def pid(self, name: str) -> int | None:
        """The PID of the running service or cluster node, None when stopped (or embedded)."""
        if self._node(name) is None:
            self._names([name])
        record = read_pid_file(self.layout.pid_path(name))
        return record.pid if record else None

    def status(self) -> dict[str, ServiceStatus]:
        """Each service: does it answer now, its PID, address and version."""
        if not self.layout.secrets_path.exists():
            return {name: self._stopped(name) for name in SERVICE_NAMES}
        self._load_secrets()
        clusters = self.clusters
        rows: list[tuple[Service, str]] = []
        for name in SERVICE_NAMES:
            members = clusters[name].nodes() if name in clusters else [self._service(name)]
            rows.extend((member, name) for member in members)
        with ThreadPoolExecutor(max_workers=len(rows)) as pool:
            found = list(pool.map(lambda row: self._status_one(*row), rows))
        return {status.name: status for status in found}

    def outputs(self) -> dict[str, Any]:
        """The stack-outputs dict (what ``up`` writes), from the secrets and ports.

        Each service writes its backend's keys, named as the adapters' settings models read
        them (``mas_storage.stack_output_keys()``; a unit test holds the two together).
        """
        self._load_secrets()
        ca = self.ca
        merged: dict[str, Any] = {"tls_ca": str(ca.ca_cert_path) if ca else None}
        clusters = self.clusters
        for name in SERVICE_NAMES:
            service = clusters.get(name) or self._service(name)
            merged.update(service.outputs())
        return dict(sorted(merged.items()))

    def admin_outputs(self) -> dict[str, Any]:
        """The admin outputs dict: the owner and admin credentials no adapter reads
        (``postgres_owner_url``, ``redis_admin_url``, ``typesense_admin_api_key``)."""
        self._load_secrets()
        merged: dict[str, Any] = {}
        clusters = self.clusters
        for name in SERVICE_NAMES:
            service = clusters.get(name) or self._service(name)
            merged.update(service.admin_outputs())
        return dict(sorted(merged.items()))

    def private_key_files(self) -> list[Path]:
        """Every private key of the stack's TLS (the CA's first): for secrets sweeps."""
        ca = StackCa(self.layout.home / "tls")
        return [p for p in ca.private_key_files() if p.is_file()]

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _names(names: Iterable[str] | None) -> list[str]:
        if names is None:
            return list(SERVICE_NAMES)
        if isinstance(names, str):
            names = [names]
        chosen = list(dict.fromkeys(names))
        unknown = [n for n in chosen if n not in SERVICE_CLASSES]
        if unknown:
            raise DevstackError(f"unknown service(s) {unknown}; known: {', '.join(SERVICE_NAMES)}")
        return [n for n in SERVICE_NAMES if n in chosen]

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One mutating call at a time: a thread lock here, a lock file between processes."""
        with self._thread_lock:
            if self._lock_depth == 0:
                self.layout.ensure()
                handle = self.layout.lock_path.open("a")
                fcntl.flock(handle, fcntl.LOCK_EX)
                self._lock_handle = handle
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_handle is not None:
                    fcntl.flock(self._lock_handle, fcntl.LOCK_UN)
                    self._lock_handle.close()
                    self._lock_handle = None

    def _fix_tls_mode(self) -> None:
        """Record the TLS choice for the stack's lifetime; a running stack keeps its own."""
        if self.tls_path.is_file():
            running = self.tls
            if self._tls_wanted is not None and self._tls_wanted != running:
                raise DevstackError(
                    f"this stack runs {'with' if running else 'without'} TLS: mas-devstack "
                    "down first to change it"
                )
            return
        tls = self.tls  # what the services built so far were given too
        write_private_json(self.tls_path, {"tls": tls})
        if tls:
            ca = self.ca
            assert ca is not None
            ca.ensure()

    def _load_secrets(self) -> Secrets:
        with self._state_lock:
            if self._secrets is None:
                self.layout.ensure()
                self._secrets = load_or_create_secrets(self.layout.secrets_path)
            return self._secrets

    def _service(self, name: str) -> Service:
        with self._state_lock:
            if name not in self._services:
                cls = SERVICE_CLASSES[name]
                plan = self.plan
                where: dict[str, str] = {}
                if plan is not None and not cls.embedded:
                    where = {"host": plan.host_for(name).address, "clients": plan.subnet}
                self._services[name] = cls(
                    self.layout, self.ports, self._load_secrets(), ca=self.ca, **where
                )
            return self._services[name]

    def _process_service(self, name: str) -> ProcessService:
        service = self._service(name)
        assert isinstance(service, ProcessService)
        return service

    def _running(self) -> list[str]:
        """The services and cluster nodes of this stack whose process runs now."""
        names = [n for n in SERVICE_NAMES if not SERVICE_CLASSES[n].embedded]
        for cluster in self.clusters.values():
            names.extend(node.name for node in cluster.nodes())
        return [n for n in names if read_pid_file(self.layout.pid_path(n)) is not None]

    def _node(self, name: str) -> ProcessService | None:
        """The cluster node called ``name`` in this topology; None for a service name."""
        if name in SERVICE_CLASSES:
            return None
        for cluster in self.clusters.values():
            for node in cluster.nodes():
                if node.name == name:
                    return node
        return None

    def _fix_topology(self) -> None:
        """Record the topology for the stack's lifetime; a running stack keeps its own."""
        wanted = self._topology_wanted
        running = self._running()
        if self.topology_path.is_file() or running:
            # A stack that runs without a record was started before topologies: single.
            current = self.topology if self.topology_path.is_file() else "single"
            if wanted is None or wanted == current:
                if not self.topology_path.is_file():
                    write_private_json(self.topology_path, {"topology": current})
                return
            if running:
                raise DevstackError(
                    f"this stack runs the {current} topology ({', '.join(running)}): "
                    f"mas-devstack down first to run the {wanted} topology"
                )
        write_private_json(self.topology_path, {"topology": wanted or "single"})
        with self._state_lock:
            self._clusters = None

    def _ensure_running(self, name: str) -> bool:
        """Reuse the service if its PID lives and it answers; else (re)start it. True: started."""
        return self._ensure_service(self._process_service(name))

    def _ensure_service(self, service: ProcessService) -> bool:
        """Reuse a service or cluster node if its PID lives and it answers; else (re)start it.
        True: started now."""
        name = service.name
        pid_path = self.layout.pid_path(name)
        stale = load_pid_file(pid_path)
        if stale is not None and not is_alive(stale):
            # What a SIGKILLed leader leaves behind (PostgreSQL backends still holding its
            # shared memory) would make the new server refuse to start.
            kill_group(stale)
        record = read_pid_file(pid_path)
        if record is not None:
            if service.check(service.reuse_timeout):
                log.info("%s: running (pid %d), reused", name, record.pid)
                return False
            log.warning("%s: pid %d is alive but does not answer: restarting it", name, record.pid)
            terminate(record, service.stop_signal, service.stop_timeout)
            pid_path.unlink(missing_ok=True)
        self._start_process(service)
        return True

    def _start_process(self, service: ProcessService) -> None:
        name = service.name
        began = time.monotonic()
        service.prepare()
        for port in service.ports_used():
            if port_open(port, service.host):
                raise DevstackError(
                    f"{name}: {service.host}:{port} is already taken by {port_owner(port)}, "
                    f"which this stack did not start (no PID file in {self.layout.run_dir}); "
                    f"stop it or set {PORT_BASE_ENV}"
                )
        command, popen_kwargs = service.command(), service.popen_kwargs()
        plan = self.plan
        if plan is not None:
            command, popen_kwargs = HostNetwork(plan).wrap(
                plan.host_at(service.host), command, popen_kwargs
            )
        log_path = self.layout.log_path(name)
        secrets = self._load_secrets().values()
        with log_path.open("ab") as out:
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            out.write(f"\n=== mas-devstack: starting {name} at {stamp} ===\n".encode())
            out.flush()
            executor = DetachedExecutor(
                command,
                port=service.port,
                host=service.host,
                check=lambda: service.check(2.0, ready=True),
                log=out,
                timeout=service.start_timeout,
                env=service.env(),
                cwd=service.data_dir,
                popen_kwargs=popen_kwargs,
            )
            # Our ports lie inside Linux's ephemeral range (32768-60999), so a client socket of
            # any process may briefly hold one of them as its local port, and the server then
            # exits at once ("Fail to listen"; seen once for Typesense's peering port). A server
            # that exits during its start is therefore started again, twice at most.
            retrying = Retrying(
                retry=retry_if_exception_type(ProcessExitedWithError),
                stop=stop_after_attempt(START_ATTEMPTS),
                wait=wait_fixed(2.0),
                before_sleep=lambda state: log.warning(
                    "%s: exited during its start; starting it again (attempt %d of %d)",
                    name,
                    state.attempt_number + 1,
                    START_ATTEMPTS,
                ),
                reraise=True,
            )
            try:
                retrying(executor.start)
            except ProcessExitedWithError as exc:
                tail = log_tail(log_path, redact=secrets)
                reason = f"it exited with status {exc.exit_code}"
                raise ServiceStartError(name, reason, tail) from None
            except TimeoutExpired:
                raise ServiceStartError(
                    name,
                    f"it did not answer within {service.start_timeout:.0f} s (killed)",
                    log_tail(log_path, redact=secrets),
                ) from None
            except AlreadyRunning:
                raise DevstackError(
                    f"{name}: port {service.port} was taken by {port_owner(service.port)} "
                    "while starting"
                ) from None
            except OSError as exc:
                raise ServiceStartError(name, f"could not run it: {exc}") from None
            record = executor.detach()
        write_pid_file(self.layout.pid_path(name), record)
        try:
            service.after_start()
        except Exception as exc:
            raise ServiceStartError(
                name,
                f"it runs (pid {record.pid}) but setting it up failed: {type(exc).__name__}: {exc}",
                log_tail(log_path, redact=secrets),
            ) from None
        log.info("%s: started (pid %d) in %.1f s", name, record.pid, time.monotonic() - began)

    def _ensure_embedded(self, name: str) -> None:
        service = self._service(name)
        service.prepare()
        try:
            service.probe(30.0)
        except Exception as exc:
            raise DevstackError(f"{name}: {service.address} is not usable: {exc}") from None
        log.info("%s: embedded, %s", name, service.address)

    def _stop_one(self, name: str, kill: bool = False) -> bool:
        node = self._node(name)
        if node is not None:
            return stop_node(self.layout, node, kill=kill)
        # The class suffices (no secrets needed to stop); a configured instance may differ.
        found = self._services.get(name)
        service = type(found) if found is not None else SERVICE_CLASSES[name]
        assert issubclass(service, ProcessService)
        return stop_node(self.layout, service, kill=kill)

    def _migrate(self) -> list[str]:
        # The cluster's URL names every node (target_session_attrs=read-write: the primary).
        service = self.clusters.get("postgres") or self._service("postgres")
        assert isinstance(service, Postgres | PostgresCluster)
        applied = apply_migrations(service.migrate_url, self.root / "migrations")
        if applied:
            log.info("postgres: applied migrations %s", ", ".join(applied))
        return applied

    def _write_outputs(self) -> dict[str, Any]:
        outputs = self.outputs()
        write_private_json(self.outputs_path, outputs)
        write_private_json(self.admin_outputs_path, self.admin_outputs())
        return outputs

    def _stopped(self, name: str) -> ServiceStatus:
        state = "embedded" if SERVICE_CLASSES[name].embedded else "stopped"
        return ServiceStatus(name, False, None, "", None, state)

    def _status_one(self, service: Service, backend: str) -> ServiceStatus:
        name, address = service.name, service.address
        if service.embedded:
            ok = service.check(10.0)
            version = service.version() if ok else None
            return ServiceStatus(name, ok, None, address, version, "embedded", backend)
        record = read_pid_file(self.layout.pid_path(name))
        if record is None:
            return ServiceStatus(name, False, None, address, None, "stopped", backend)
        if not service.check(2.0):
            return ServiceStatus(name, False, record.pid, address, None, "unresponsive", backend)
        try:
            version = service.version(2.0)
        except Exception:
            version = None
        return ServiceStatus(name, True, record.pid, address, version, "running", backend)
