"""The stack configuration: hosts, placement, images, ports and limits, read once and checked.

Everything that differs between the lab and a laptop is config, not code:

* ``hosts``: a map of any size, ``name -> {address, docker?, user?, sshOpts?}``. ``address`` is
  the host's IP on the lab network: ports are published on it and the outputs' URLs point at it.
  ``docker`` is the daemon URL; without it the host is reached over SSH as
  ``ssh://<user>@<address>``, with ``user`` falling back to the stack's ``sshUser``.
* ``placement``: ``backend -> host name`` for all five backends. A third host is one more entry
  in ``hosts`` and a placement pointing at it.
* ``images``: ``backend -> image reference``, pinned to an exact tag (defaults below).
* ``ports``: ``backend -> {port name -> published port}`` overriding the defaults.
* ``memoryMb``: ``backend -> container memory limit in MB`` (Neo4j and Typesense have defaults).
* ``neo4jHeap`` / ``neo4jPagecache``: Neo4j memory settings, inside its container limit.
* ``namePrefix``: prefix of the Docker container and volume names (default ``mas``).

:func:`parse_config` is pure (plain dicts in, :class:`InfraConfig` out) so it is testable without
Pulumi; :func:`load_config` feeds it from ``pulumi.Config``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pulumi

__all__ = [
    "BACKENDS",
    "DEFAULT_IMAGES",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_PORTS",
    "Host",
    "InfraConfig",
    "InfraConfigError",
    "image_reference_problem",
    "load_config",
    "parse_config",
]

#: The five backends, in the order the components are built.
BACKENDS = ("postgres", "redis", "qdrant", "neo4j", "typesense")

#: Exact release tags (never ``latest``). Each exists on Docker Hub:
#: postgres 16.13 (docker-library/postgres ``16/bookworm``), redis 7.4.11, qdrant v1.19.0 (the
#: workspace's qdrant-client 1.20 accepts a server one minor version away), neo4j 5.26.28 LTS
#: community, typesense 29.0.
DEFAULT_IMAGES: Mapping[str, str] = MappingProxyType(
    {
        "postgres": "postgres:16.13-bookworm",
        "redis": "redis:7.4.11-alpine",
        "qdrant": "qdrant/qdrant:v1.19.0",
        "neo4j": "neo4j:5.26.28-community",
        "typesense": "typesense/typesense:29.0",
    }
)

#: Published (host-side) ports per backend and port name: the services' standard ports.
DEFAULT_PORTS: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "postgres": {"postgres": 5432},
        "redis": {"redis": 6379},
        "qdrant": {"http": 6333, "grpc": 6334},
        "neo4j": {"bolt": 7687, "http": 7474},
        "typesense": {"http": 8108},
    }
)

#: Container memory limits (MB). Neo4j: 1 GB heap + 512 MB page cache + JVM and native overhead.
DEFAULT_MEMORY_MB: Mapping[str, int] = MappingProxyType({"neo4j": 3072, "typesense": 1024})

_HOST_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")
_NAME_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,30}$")
_NEO4J_MEMORY = re.compile(r"^[1-9][0-9]*[kKmMgG]?$")
_DOCKER_SCHEMES = ("ssh://", "unix://", "tcp://", "npipe://")


class InfraConfigError(ValueError):
    """A stack config value is missing or wrong; the message names the config key."""


@dataclass(frozen=True)
class Host:
    """One Docker host: where its daemon is and which address its ports are published on."""

    name: str
    address: str
    docker_host: str
    ssh_opts: tuple[str, ...] = ()

    @property
    def url_host(self) -> str:
        """The address as it goes into a URL (IPv6 in brackets)."""
        return f"[{self.address}]" if ":" in self.address else self.address


@dataclass(frozen=True)
class InfraConfig:
    """The checked stack config."""

    hosts: Mapping[str, Host]
    placement: Mapping[str, str]
    images: Mapping[str, str]
    ports: Mapping[str, Mapping[str, int]]
    memory_mb: Mapping[str, int]
    neo4j_heap: str = "1G"
    neo4j_pagecache: str = "512M"
    name_prefix: str = "mas"
    used_hosts: tuple[str, ...] = field(default=())

    def host_for(self, backend: str) -> Host:
        """The host the placement puts ``backend`` on."""
        return self.hosts[self.placement[backend]]


def image_reference_problem(ref: object) -> str | None:
    """Why ``ref`` is not an image pinned to an exact version, or None when it is.

    Pinned means an explicit tag other than ``latest``, or a ``@sha256:`` digest. The tag is
    looked for after the last ``/`` so that a registry port (``host:5000/img``) is not taken for
    one.
    """
    if not isinstance(ref, str) or not ref.strip():
        return "the image reference is empty"
    if "@sha256:" in ref:
        return None
    last = ref.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image '{ref}' has no tag (it would pull 'latest'); pin an exact version"
    tag = last.rsplit(":", 1)[1]
    if not tag:
        return f"image '{ref}' has an empty tag; pin an exact version"
    if tag.lower() == "latest":
        return f"image '{ref}' uses the moving tag 'latest'; pin an exact version"
    return None


def parse_config(raw: Mapping[str, Any]) -> InfraConfig:
    """Check the raw config values (keys without the project prefix) and build the config.

    Raises :class:`InfraConfigError` naming the key at fault.
    """
    ssh_user = raw.get("sshUser")
    hosts = _parse_hosts(raw.get("hosts"), ssh_user)
    placement = _parse_placement(raw.get("placement"), hosts)
    images = _merge_known("images", DEFAULT_IMAGES, raw.get("images"))
    for backend, ref in images.items():
        problem = image_reference_problem(ref)
        if problem:
            raise InfraConfigError(f"images.{backend}: {problem}")
    ports = _parse_ports(raw.get("ports"))
    _check_port_clashes(ports, placement)
    memory = _merge_known("memoryMb", DEFAULT_MEMORY_MB, raw.get("memoryMb"))
    for backend, mb in memory.items():
        if isinstance(mb, bool) or not isinstance(mb, int) or mb < 64:
            raise InfraConfigError(
                f"memoryMb.{backend} must be a whole number of MB, at least 64, got {mb!r}"
            )
    heap = str(raw.get("neo4jHeap") or "1G")
    pagecache = str(raw.get("neo4jPagecache") or "512M")
    for key, value in (("neo4jHeap", heap), ("neo4jPagecache", pagecache)):
        if not _NEO4J_MEMORY.match(value):
            raise InfraConfigError(f"{key} must look like '512M' or '1G', got {value!r}")
    prefix = str(raw.get("namePrefix") or "mas")
    if not _NAME_PREFIX.match(prefix):
        raise InfraConfigError(f"namePrefix {prefix!r} is not a valid Docker name prefix")
    used = tuple(dict.fromkeys(placement[b] for b in BACKENDS))
    return InfraConfig(
        hosts=MappingProxyType(hosts),
        placement=MappingProxyType(placement),
        images=MappingProxyType(images),
        ports=MappingProxyType({k: MappingProxyType(v) for k, v in ports.items()}),
        memory_mb=MappingProxyType(memory),
        neo4j_heap=heap,
        neo4j_pagecache=pagecache,
        name_prefix=prefix,
        used_hosts=used,
    )


def load_config(config: pulumi.Config | None = None) -> InfraConfig:
    """Read and check the current stack's config (namespace: the project name)."""
    cfg = config or pulumi.Config()
    raw: dict[str, Any] = {}
    for key in ("hosts", "placement", "images", "ports", "memoryMb"):
        raw[key] = cfg.get_object(key)
    for key in ("sshUser", "neo4jHeap", "neo4jPagecache", "namePrefix"):
        raw[key] = cfg.get(key)
    return parse_config(raw)


def _parse_hosts(value: Any, ssh_user: Any) -> dict[str, Host]:
    if not isinstance(value, Mapping) or not value:
        raise InfraConfigError(
            "hosts must be a map of host name -> {address, docker?, user?, sshOpts?} "
            "with at least one host"
        )
    hosts: dict[str, Host] = {}
    for name, spec in value.items():
        if not isinstance(name, str) or not _HOST_NAME.match(name):
            raise InfraConfigError(
                f"hosts: name {name!r} must be lower-case letters, digits and '-' (max 31)"
            )
        if not isinstance(spec, Mapping):
            raise InfraConfigError(f"hosts.{name} must be a map with at least 'address'")
        address = _parse_address(name, spec.get("address"))
        docker_host = spec.get("docker")
        if docker_host is None:
            user = spec.get("user") or ssh_user
            if not user:
                raise InfraConfigError(
                    f"hosts.{name} is reached over SSH and needs a user: set sshUser "
                    f"(pulumi config set sshUser <user>) or hosts.{name}.user, "
                    f"or give hosts.{name}.docker"
                )
            docker_host = f"ssh://{user}@{address if ':' not in address else f'[{address}]'}"
        if not isinstance(docker_host, str) or not docker_host.startswith(_DOCKER_SCHEMES):
            raise InfraConfigError(
                f"hosts.{name}.docker must be a Docker daemon URL "
                f"({', '.join(_DOCKER_SCHEMES)}), got {docker_host!r}"
            )
        ssh_opts = spec.get("sshOpts") or []
        if not isinstance(ssh_opts, list) or not all(isinstance(o, str) for o in ssh_opts):
            raise InfraConfigError(f"hosts.{name}.sshOpts must be a list of strings")
        hosts[name] = Host(name, address, docker_host, tuple(ssh_opts))
    return hosts


def _parse_address(host: str, value: Any) -> str:
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        raise InfraConfigError(
            f"hosts.{host}.address must be the host's IP address (ports are published on it), "
            f"got {value!r}"
        ) from None
    if ip.is_unspecified:
        raise InfraConfigError(
            f"hosts.{host}.address {value} would publish ports on every interface; "
            "give the host's lab address"
        )
    return str(ip)


def _parse_placement(value: Any, hosts: Mapping[str, Host]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InfraConfigError(f"placement must be a map of backend -> host for {BACKENDS}")
    unknown = sorted(set(value) - set(BACKENDS))
    if unknown:
        raise InfraConfigError(f"placement: unknown backend(s) {unknown}; known: {BACKENDS}")
    placement: dict[str, str] = {}
    for backend in BACKENDS:
        host = value.get(backend)
        if host is None:
            raise InfraConfigError(f"placement.{backend} is missing: name the host it runs on")
        if host not in hosts:
            raise InfraConfigError(
                f"placement.{backend} names host {host!r}, which is not in hosts "
                f"({', '.join(sorted(hosts))})"
            )
        placement[backend] = host
    return placement


def _merge_known(key: str, defaults: Mapping[str, Any], value: Any) -> dict[str, Any]:
    if value is None:
        return dict(defaults)
    if not isinstance(value, Mapping):
        raise InfraConfigError(f"{key} must be a map of backend -> value")
    unknown = sorted(set(value) - set(BACKENDS))
    if unknown:
        raise InfraConfigError(f"{key}: unknown backend(s) {unknown}; known: {BACKENDS}")
    return {**defaults, **value}


def _parse_ports(value: Any) -> dict[str, dict[str, int]]:
    overrides = _merge_known("ports", {}, value)
    ports: dict[str, dict[str, int]] = {}
    for backend in BACKENDS:
        merged = dict(DEFAULT_PORTS[backend])
        override = overrides.get(backend) or {}
        if not isinstance(override, Mapping):
            raise InfraConfigError(f"ports.{backend} must be a map of port name -> number")
        unknown = sorted(set(override) - set(merged))
        if unknown:
            raise InfraConfigError(
                f"ports.{backend}: unknown port name(s) {unknown}; known: {sorted(merged)}"
            )
        merged.update(override)
        for name, port in merged.items():
            if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
                raise InfraConfigError(f"ports.{backend}.{name} must be 1-65535, got {port!r}")
        ports[backend] = merged
    return ports


def _check_port_clashes(
    ports: Mapping[str, Mapping[str, int]], placement: Mapping[str, str]
) -> None:
    taken: dict[tuple[str, int], str] = {}
    for backend in BACKENDS:
        for name, port in ports[backend].items():
            key = (placement[backend], port)
            if key in taken:
                raise InfraConfigError(
                    f"ports.{backend}.{name} = {port} is already published by {taken[key]} "
                    f"on host {placement[backend]}"
                )
            taken[key] = f"{backend}.{name}"
