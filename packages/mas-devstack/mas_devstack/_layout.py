"""Where the local stack lives: the root, the ``.mas/`` tree, the ports and the tool caches."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ._errors import DevstackError

HOME_ENV = "MAS_HOME"
PORT_BASE_ENV = "MAS_DEVSTACK_PORT_BASE"
CACHE_ENV = "MAS_DEVSTACK_CACHE"

SERVICE_NAMES: tuple[str, ...] = ("postgres", "redis", "typesense", "neo4j", "qdrant")
"""Every service the stack knows, in start order (the slow Neo4j is started concurrently)."""

#: How many ports a stack owns from its base: the single-node ports (base + 0..4) and the
#: cluster topology's nodes (below), each at a fixed offset, all set here and nowhere else.
PORT_SPAN = 100
#: Offsets from the base of the cluster topology's ports (see :class:`Ports`).
REDIS_CLUSTER_OFFSET, REDIS_CLUSTER_BUS_OFFSET, REDIS_CLUSTER_SIZE = 10, 20, 6
TYPESENSE_NODES_OFFSET, TYPESENSE_PEERING_OFFSET, TYPESENSE_NODES_SIZE = 30, 33, 3
POSTGRES_STANDBY_OFFSET = 40


def resolve_root(root: Path | str | None = None) -> Path:
    """The repository root that holds ``.mas/``: ``root`` if given, else ``$MAS_HOME``, else cwd."""
    if root is None:
        root = os.environ.get(HOME_ENV) or Path.cwd()
    return Path(root).expanduser().resolve()


def cache_dir() -> Path:
    """Per-user cache for downloaded tools (the Neo4j jars): survives ``rm -rf .mas``."""
    named = os.environ.get(CACHE_ENV)
    if named:
        return Path(named).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return (base / "mas-devstack").resolve()


@dataclass(frozen=True)
class Ports:
    """TCP ports, away from every backend's system default.

    The single-node servers have five ports (fields); the cluster topology's nodes sit at fixed
    offsets from the base, which is the PostgreSQL port (properties): Redis Cluster nodes
    base+10..15 and their cluster bus base+20..25, Typesense nodes base+30..32 and their
    peering base+33..35, the PostgreSQL standby base+40. A stack owns base..base+99.
    """

    postgres: int = 55432
    redis: int = 56379
    neo4j: int = 57687
    typesense: int = 58108
    typesense_peering: int = 58107

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """The ports of a stack based at ``base`` (a second stack beside the default one): the
        five single-node ports are consecutive from it."""
        top = 65535 - PORT_SPAN + 1
        if not 1024 <= base <= top:
            raise DevstackError(
                f"port base {base} is out of range (1024..{top}: a stack owns {PORT_SPAN} ports)"
            )
        return cls(base, base + 1, base + 2, base + 3, base + 4)

    @property
    def base(self) -> int:
        """The first of the stack's ports (the PostgreSQL port)."""
        return self.postgres

    def _run(self, offset: int, count: int) -> tuple[int, ...]:
        return tuple(range(self.base + offset, self.base + offset + count))

    @property
    def redis_cluster(self) -> tuple[int, ...]:
        """The Redis Cluster nodes' client ports (base+10..15)."""
        return self._run(REDIS_CLUSTER_OFFSET, REDIS_CLUSTER_SIZE)

    @property
    def redis_cluster_bus(self) -> tuple[int, ...]:
        """The Redis Cluster nodes' bus ports (``cluster-port``, base+20..25)."""
        return self._run(REDIS_CLUSTER_BUS_OFFSET, REDIS_CLUSTER_SIZE)

    @property
    def typesense_nodes(self) -> tuple[int, ...]:
        """The Typesense cluster nodes' API ports (base+30..32)."""
        return self._run(TYPESENSE_NODES_OFFSET, TYPESENSE_NODES_SIZE)

    @property
    def typesense_nodes_peering(self) -> tuple[int, ...]:
        """The Typesense cluster nodes' peering (Raft) ports (base+33..35)."""
        return self._run(TYPESENSE_PEERING_OFFSET, TYPESENSE_NODES_SIZE)

    @property
    def postgres_standby(self) -> int:
        """The PostgreSQL hot standby's port (base+40)."""
        return self.base + POSTGRES_STANDBY_OFFSET

    @classmethod
    def resolve(cls, base: int | None = None) -> Ports:
        """``base`` if given, else ``$MAS_DEVSTACK_PORT_BASE``, else the default ports."""
        if base is None:
            raw = os.environ.get(PORT_BASE_ENV)
            if not raw:
                return cls()
            try:
                base = int(raw)
            except ValueError:
                raise DevstackError(f"{PORT_BASE_ENV}={raw!r} is not an integer") from None
        return cls.from_base(base)


@dataclass(frozen=True)
class Layout:
    """Every path of one stack, all under ``<root>/.mas``."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / ".mas"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def secrets_path(self) -> Path:
        return self.home / "secrets.json"

    @property
    def outputs_path(self) -> Path:
        return self.home / "stack-outputs.json"

    @property
    def lock_path(self) -> Path:
        return self.run_dir / "devstack.lock"

    def data_dir(self, name: str) -> Path:
        return self.home / name

    def pid_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def ensure(self) -> None:
        """Create ``.mas/``, ``run/`` and ``logs/`` (traversable: the postgres user needs that)."""
        for path in (self.home, self.run_dir, self.logs_dir):
            path.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o755)
