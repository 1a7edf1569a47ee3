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
    """TCP ports on 127.0.0.1, away from every backend's system default."""

    postgres: int = 55432
    redis: int = 56379
    neo4j: int = 57687
    typesense: int = 58108
    typesense_peering: int = 58107

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """Five consecutive ports from ``base`` (for a second stack beside the default one)."""
        if not 1024 <= base <= 65535 - 4:
            raise DevstackError(f"port base {base} is out of range (1024..65531)")
        return cls(base, base + 1, base + 2, base + 3, base + 4)

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
