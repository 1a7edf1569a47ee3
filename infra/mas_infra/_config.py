"""The stack configuration: hosts, placement, images, ports and limits, read once and checked.

Everything that differs between the lab and a laptop is config, not code:

* ``hosts``: a map of any size, ``name -> {address, docker?, user?, sshOpts?}``. ``address`` is
  the host's IP on the lab network: ports are published on it and the outputs' URLs point at it.
  ``docker`` is the daemon URL; without it the host is reached over SSH as
  ``ssh://<user>@<address>``, with ``user`` falling back to the stack's ``sshUser``.
* ``placement``: ``backend -> host name`` for all five backends. A third host is one more entry
  in ``hosts`` and a placement pointing at it.
* ``images``: ``backend -> image reference``, pinned to an exact tag (default: the tested
  versions, from the backend versions manifest).
* ``ports``: ``backend -> {port name -> published port}`` overriding the defaults.
* ``memoryMb``: ``backend -> container memory limit in MB`` (every backend has a default; the
  container gets no swap on top).
* ``neo4jHeap`` / ``neo4jPagecache``: Neo4j memory settings, inside its container limit.
* ``namePrefix``: prefix of the Docker container and volume names (default ``mas``).
* ``topology``: ``single`` (default: one container per backend) or ``cluster``: the backends'
  own distributed modes (issue 17), with ``cluster``: ``backend -> [host of each node]``:
  ``redis``: 6 hosts, the 3 primaries then their replicas (replica ``i`` follows primary ``i``);
  ``typesense``: the Raft members (an odd number, at least 3); ``postgres``: the primary, then
  its synchronous hot standby. Qdrant and Neo4j stay single (``placement``). A replica never
  shares its primary's host; both rules are the policy pack's own (``mas_cluster_policies``).
  Node ``i`` publishes each of its backend's ports at the configured port + ``i``.

:func:`parse_config` is pure (plain dicts in, :class:`InfraConfig` out) so it is testable without
Pulumi; :func:`load_config` feeds it from ``pulumi.Config``. The raw values are validated by one
pydantic model (``_StackConfig``), whose errors name the config key at fault; the pinned-image
rule is the policy pack's own (``mas_policies.image_reference_problem``), imported, not copied.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Literal

import pulumi
from mas_cluster_policies import raft_size_problem, shared_host_problems
from mas_policies import image_reference_problem
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails

from mas_storage import backend_versions

__all__ = [
    "BACKENDS",
    "CLUSTER_BACKENDS",
    "CLUSTER_SIZES",
    "DEFAULT_IMAGES",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_PORTS",
    "Host",
    "InfraConfig",
    "InfraConfigError",
    "follows",
    "image_reference_problem",
    "load_config",
    "node_name",
    "node_ports",
    "parse_config",
]

#: The five backends, in the order the components are built.
BACKENDS = ("postgres", "redis", "qdrant", "neo4j", "typesense")

#: The backends with a distributed mode, and how many nodes their ``cluster`` lists hold
#: (None: any odd number, at least 3 - a Raft group).
CLUSTER_SIZES: Mapping[str, int | None] = MappingProxyType(
    {"postgres": 2, "redis": 6, "typesense": None}
)
CLUSTER_BACKENDS = tuple(CLUSTER_SIZES)

#: The lab's default images: those of the backend versions manifest (``mas_storage``'s
#: ``backend-versions.toml``), the very versions every test suite runs against locally. Each is an
#: official image of that exact version (docs/lab.md: "Versions"); a stack's ``images`` config
#: overrides them, knowingly.
DEFAULT_IMAGES: Mapping[str, str] = MappingProxyType(
    {backend: backend_versions()[backend].image for backend in BACKENDS}
)

#: Published (host-side) ports per backend and port name: the services' standard ports.
DEFAULT_PORTS: Mapping[str, Mapping[str, int]] = MappingProxyType(
    {
        "postgres": {"postgres": 5432},
        "redis": {"redis": 6379},
        "qdrant": {"http": 6333, "grpc": 6334},
        "neo4j": {"bolt": 7687, "https": 7473},
        "typesense": {"http": 8108},
    }
)

#: Container memory limits (MB), one per backend: every container runs with a limit and no swap
#: (``memory_swap`` = ``memory``). Neo4j: 1 GB heap + 512 MB page cache + JVM and native overhead.
DEFAULT_MEMORY_MB: Mapping[str, int] = MappingProxyType(
    {"postgres": 2048, "redis": 1024, "qdrant": 2048, "neo4j": 3072, "typesense": 1024}
)


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
    topology: str = "single"
    #: ``backend -> host name of each node`` (cluster topology only).
    cluster: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def host_for(self, backend: str) -> Host:
        """The host the placement puts ``backend`` on."""
        return self.hosts[self.placement[backend]]

    @property
    def clustered(self) -> tuple[str, ...]:
        """The backends that run as clusters (none in the single topology)."""
        return tuple(b for b in CLUSTER_BACKENDS if b in self.cluster)


def parse_config(raw: Mapping[str, Any]) -> InfraConfig:
    """Check the raw config values (keys without the project prefix) and build the config.

    The values are validated by one pydantic model (:class:`_StackConfig`); raises
    :class:`InfraConfigError` naming the key at fault.
    """
    values = {key: value for key, value in raw.items() if value is not None}
    try:
        spec = _StackConfig.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors(include_input=False))
        raise InfraConfigError(problems) from None
    hosts = {name: _host(name, host, spec.ssh_user) for name, host in spec.hosts.items()}
    ports = {b: {**DEFAULT_PORTS[b], **spec.ports.get(b, {})} for b in BACKENDS}
    cluster = {b: tuple(n) for b, n in spec.cluster.items()} if spec.topology == "cluster" else {}
    _check_port_clashes(ports, spec.placement, cluster)
    used = tuple(
        dict.fromkeys(
            [spec.placement[b] for b in BACKENDS if b not in cluster]
            + [host for b in CLUSTER_BACKENDS for host in cluster.get(b, ())]
        )
    )
    return InfraConfig(
        hosts=MappingProxyType(hosts),
        placement=MappingProxyType(dict(spec.placement)),
        images=MappingProxyType({**DEFAULT_IMAGES, **spec.images}),
        ports=MappingProxyType({k: MappingProxyType(v) for k, v in ports.items()}),
        memory_mb=MappingProxyType({**DEFAULT_MEMORY_MB, **spec.memory_mb}),
        neo4j_heap=spec.neo4j_heap,
        neo4j_pagecache=spec.neo4j_pagecache,
        name_prefix=spec.name_prefix,
        used_hosts=used,
        topology=spec.topology,
        cluster=MappingProxyType(cluster),
    )


def load_config(config: pulumi.Config | None = None) -> InfraConfig:
    """Read and check the current stack's config (namespace: the project name)."""
    cfg = config or pulumi.Config()
    raw: dict[str, Any] = {}
    for key in ("hosts", "placement", "images", "ports", "memoryMb", "cluster"):
        raw[key] = cfg.get_object(key)
    for key in ("sshUser", "neo4jHeap", "neo4jPagecache", "namePrefix", "topology"):
        raw[key] = cfg.get(key)
    return parse_config(raw)


# -- the model of the stack config --------------------------------------------------------------


def _known_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend(s) [{name!r}]; known: {BACKENDS}")
    return name


Backend = Annotated[str, AfterValidator(_known_backend)]
HostName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,30}$")]
NamePrefix = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,30}$")]
Neo4jMemory = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]*[kKmMgG]?$")]
Port = Annotated[int, Field(strict=True, ge=1, le=65535)]
_DOCKER_SCHEMES = ("ssh://", "unix://", "tcp://", "npipe://")


def _pinned(ref: object) -> object:
    problem = image_reference_problem(ref)
    if problem:
        raise ValueError(problem)
    return ref


def _lab_address(value: object) -> str:
    try:
        ip = ipaddress.ip_address(str(value))
    except ValueError:
        raise ValueError(
            f"must be the host's IP address (ports are published on it), got {value!r}"
        ) from None
    if ip.is_unspecified:
        raise ValueError(
            f"{value} would publish ports on every interface; give the host's lab address"
        )
    return str(ip)


def _docker_url(value: object) -> object:
    if not isinstance(value, str) or not value.startswith(_DOCKER_SCHEMES):
        raise ValueError(f"must be a Docker daemon URL ({', '.join(_DOCKER_SCHEMES)})")
    return value


class _HostSpec(BaseModel):
    """``hosts.<name>``: where the daemon is and which address ports are published on."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    address: Annotated[str, BeforeValidator(_lab_address)]
    docker: Annotated[str, BeforeValidator(_docker_url)] | None = None
    user: str | None = Field(None, min_length=1)
    ssh_opts: list[str] = Field([], alias="sshOpts")


class _StackConfig(BaseModel):
    """The stack config as ``pulumi config`` holds it (camelCase keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    hosts: dict[HostName, _HostSpec] = Field(min_length=1)
    placement: dict[Backend, str]
    images: dict[Backend, Annotated[str, BeforeValidator(_pinned)]] = {}
    ports: dict[Backend, dict[str, Port]] = {}
    memory_mb: dict[Backend, Annotated[int, Field(strict=True, ge=64)]] = Field(
        {}, alias="memoryMb"
    )
    neo4j_heap: Neo4jMemory = Field("1G", alias="neo4jHeap")
    neo4j_pagecache: Neo4jMemory = Field("512M", alias="neo4jPagecache")
    name_prefix: NamePrefix = Field("mas", alias="namePrefix")
    ssh_user: str | None = Field(None, alias="sshUser", min_length=1)
    topology: Literal["single", "cluster"] = "single"
    cluster: dict[Backend, list[str]] = {}

    @model_validator(mode="after")
    def _placement_and_ports(self) -> _StackConfig:
        for backend in BACKENDS:
            host = self.placement.get(backend)
            if host is None:
                raise ValueError(f"placement.{backend} is missing: name the host it runs on")
            if host not in self.hosts:
                raise ValueError(
                    f"placement.{backend} names host {host!r}, which is not in hosts "
                    f"({', '.join(sorted(self.hosts))})"
                )
        for backend, named in self.ports.items():
            unknown = sorted(set(named) - set(DEFAULT_PORTS[backend]))
            if unknown:
                raise ValueError(
                    f"ports.{backend}: unknown port name(s) {unknown}; "
                    f"known: {sorted(DEFAULT_PORTS[backend])}"
                )
        self._check_cluster()
        return self

    def _check_cluster(self) -> None:
        """The cluster lists: known hosts, the right sizes, no replica beside its primary."""
        if self.topology == "single":
            return
        missing = [b for b in CLUSTER_BACKENDS if b not in self.cluster]
        if missing:
            raise ValueError(f"topology cluster needs cluster.{missing[0]}: the host of each node")
        problems: list[str] = []
        for backend, nodes in self.cluster.items():
            size = CLUSTER_SIZES.get(backend, 0)
            if size == 0:
                raise ValueError(
                    f"cluster.{backend}: {backend} has no cluster mode here; "
                    f"clustered: {CLUSTER_BACKENDS}"
                )
            unknown = sorted(set(nodes) - set(self.hosts))
            if unknown:
                raise ValueError(f"cluster.{backend} names host(s) {unknown} not in hosts")
            if size is None:
                problem = raft_size_problem(backend, len(nodes))
                if problem:
                    problems.append(f"cluster.{backend}: {problem}")
            elif len(nodes) != size:
                problems.append(f"cluster.{backend} lists {len(nodes)} hosts; it takes {size}")
        for backend, pairs in _replication_pairs(self.cluster).items():
            problems += [f"cluster.{backend}: {p}" for p in shared_host_problems(pairs)]
        if problems:
            raise ValueError("; ".join(problems))


def node_name(backend: str, index: int) -> str:
    """The name of a cluster node: ``redis-0`` ... (resources, containers, labels)."""
    return f"{backend}-{index}"


def follows(backend: str, index: int) -> int | None:
    """Which node node ``index`` replicates (None: a primary or a Raft member)."""
    half = (CLUSTER_SIZES.get(backend) or 0) // 2
    if backend in ("redis", "postgres") and index >= half:
        return index - half
    return None


def _replication_pairs(
    cluster: Mapping[str, Sequence[str]],
) -> dict[str, list[tuple[str, str, str, str]]]:
    pairs: dict[str, list[tuple[str, str, str, str]]] = {}
    for backend, hosts in cluster.items():
        for index, host in enumerate(hosts):
            primary = follows(backend, index)
            if primary is not None and primary < len(hosts):
                pairs.setdefault(backend, []).append(
                    (node_name(backend, index), host, node_name(backend, primary), hosts[primary])
                )
    return pairs


_MESSAGES = {
    "hosts": "hosts must be a map of host name -> {address, docker?, user?, sshOpts?} with at "
    "least one host",
    "placement": f"placement must be a map of backend -> host for {BACKENDS}",
}


def _problem(err: ErrorDetails) -> str:
    """One error of the model, as ``key.path: rule`` with the config's own key names."""
    loc = [str(part) for part in err["loc"]]
    message = err["msg"].removeprefix("Value error, ")
    if not loc:
        return message  # a rule over several keys names them itself
    if len(loc) == 1 and loc[0] in _MESSAGES and err["type"] in _SHAPE_ERRORS:
        return _MESSAGES[loc[0]]
    if len(loc) >= 2 and loc[0] == "hosts" and loc[-1] == "[key]":
        return f"hosts: name {loc[1]!r} must be lower-case letters, digits and '-' (max 31)"
    path = ".".join(part for part in loc if part != "[key]")
    return f"{path}: {message}"


_SHAPE_ERRORS = frozenset({"missing", "dict_type", "too_short"})


def _host(name: str, spec: _HostSpec, ssh_user: str | None) -> Host:
    docker_host = spec.docker
    if docker_host is None:
        user = spec.user or ssh_user
        if not user:
            raise InfraConfigError(
                f"hosts.{name} is reached over SSH and needs a user: set sshUser "
                f"(pulumi config set sshUser <user>) or hosts.{name}.user, "
                f"or give hosts.{name}.docker"
            )
        address = spec.address if ":" not in spec.address else f"[{spec.address}]"
        docker_host = f"ssh://{user}@{address}"
    return Host(name, spec.address, docker_host, tuple(spec.ssh_opts))


def node_ports(backend: str, ports: Mapping[str, int], index: int) -> dict[str, int]:
    """The ports of cluster node ``index``: each configured port + ``index``, plus its
    peer port: Redis's cluster bus (``redis`` + 10000) and Typesense's Raft peering
    (``http`` + 100)."""
    found = {name: port + index for name, port in ports.items()}
    if backend == "redis":
        found["bus"] = ports["redis"] + 10000 + index
    elif backend == "typesense":
        found["peering"] = ports["http"] + 100 + index
    return found


def _check_port_clashes(
    ports: Mapping[str, Mapping[str, int]],
    placement: Mapping[str, str],
    cluster: Mapping[str, Sequence[str]],
) -> None:
    taken: dict[tuple[str, int], str] = {}
    published: list[tuple[str, str, str, int]] = []
    for backend in BACKENDS:
        if backend in cluster:
            for index, host in enumerate(cluster[backend]):
                for name, port in node_ports(backend, ports[backend], index).items():
                    published.append((host, node_name(backend, index), name, port))
        else:
            for name, port in ports[backend].items():
                published.append((placement[backend], backend, name, port))
    for host, owner, name, port in published:
        key = (host, port)
        if key in taken:
            raise InfraConfigError(
                f"ports.{owner}.{name} = {port} is already published by {taken[key]} on host {host}"
            )
        taken[key] = f"{owner}.{name}"
