"""What every backend component shares: image, retained volume, healthy container, TLS, secrets.

Every component builds the same things on the Docker provider of the host its placement names:

* a ``RemoteImage`` of the exact tag from config; the container runs ``image.image_id`` (the
  pulled image's ID), so ``pulumi up`` does not churn the container while the tag is unchanged;
* a named ``Volume`` for the data, ``protect=True`` (the only retention a policy pack can see)
  and ``retain_on_delete=True`` (the Docker volume outlives the resource even once unprotected);
* a ``Container`` with ``restart="unless-stopped"``, a healthcheck that uses only what the image
  ships (and speaks TLS), ``wait=True`` with a ``wait_timeout`` above the healthcheck's start
  budget, ``delete_before_replace=True`` (fixed names and ports) and a replacement when its
  healthcheck changes (the provider cannot change it in place), ports published on the host's
  lab address only, and **uploads**: the host's certificate, its private key and the CA
  (:mod:`._tls`), plus the backend's own files (``pg_hba.conf``, the Redis ACL file, ...);
* its credentials: each a ``RandomPassword`` (32 letters and digits, so URL-safe) or the value
  of a secret config key; secret from end to end (env, uploads, outputs, state).

Credentials reach the containers through env (or, hashed, through an uploaded file). Where a
command or a healthcheck needs one it references the env variable (``"$REDISCLI_AUTH"``), so
no secret sits in plain ``command`` or ``healthcheck`` properties. ``envs`` and ``uploads``
are additional secret outputs: the engine keeps them encrypted whatever a future change passes.

**Keys in the containers.** Docker's upload API writes files as root, so every private key is
uploaded root-only (``0600``). A server that runs as root (Typesense, Qdrant) reads it there; a
server that drops to its own user (PostgreSQL, Redis) gets an owner-only copy made by the
container's command at each start (``install -m 0600 -o <user>``), and Neo4j's entrypoint
hands its certificates directory to the ``neo4j`` user itself. No key is ever group- or
world-readable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from ._config import InfraConfig, InfraConfigError

if TYPE_CHECKING:
    from ._cluster import ClusterNode
from ._tls import HostCertificate, StackCertificates

__all__ = [
    "CREDENTIAL_LENGTH",
    "MIN_SUPPLIED_LENGTH",
    "TLS_DIR",
    "BackendService",
    "Credential",
    "Healthcheck",
    "Upload",
    "go_duration",
    "https_probe",
    "own_copy",
]

#: Length of generated credentials (letters and digits only: ~190 bits, no URL escaping needed).
CREDENTIAL_LENGTH = 32
#: A supplied credential must be at least this long.
MIN_SUPPLIED_LENGTH = 24
#: Seconds ``wait_timeout`` adds on top of the healthcheck's start budget.
WAIT_MARGIN_S = 30
#: Where the host's certificate, key and the CA are uploaded (root-owned; see the module doc).
TLS_DIR = "/etc/mas/tls"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PUBLIC_MODE = "0644"  # certificates, configs
_OWNER_ONLY_MODE = "0600"  # keys, hashed credentials


def go_duration(seconds: int) -> str:
    """``seconds`` as Go's ``time.Duration.String()`` prints it: ``5s``, ``1m0s``, ``1h2m3s``.

    The Docker provider reads durations back from the engine in that form and compares them as
    strings, so ``"60s"`` in the program against ``"1m0s"`` in state is a diff on every preview
    (issue 16). Whole seconds only: the healthchecks need nothing finer.
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 0:
        raise ValueError(f"a duration is a whole, non-negative number of seconds, got {seconds!r}")
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


@dataclass(frozen=True)
class Healthcheck:
    """A Docker healthcheck and the time it may take to report healthy."""

    test: tuple[str, ...]
    interval_s: int
    timeout_s: int
    start_period_s: int
    retries: int

    @property
    def start_budget_s(self) -> int:
        """Worst case before Docker calls a still-starting container unhealthy.

        Failures in the start period do not count; after it, ``retries`` failed probes in a row
        (each taking up to ``interval + timeout``) make it unhealthy.
        """
        return self.start_period_s + self.retries * (self.interval_s + self.timeout_s)

    @property
    def wait_timeout_s(self) -> int:
        """``Container.wait_timeout``: above the start budget, so a slow first start passes."""
        return self.start_budget_s + WAIT_MARGIN_S

    def args(self) -> docker.ContainerHealthcheckArgs:
        """The pulumi-docker form of this healthcheck."""
        return docker.ContainerHealthcheckArgs(
            tests=list(self.test),
            interval=go_duration(self.interval_s),
            timeout=go_duration(self.timeout_s),
            start_period=go_duration(self.start_period_s),
            retries=self.retries,
        )


def https_probe(
    port: int, path: str, ca_file: str = f"{TLS_DIR}/ca.crt", host: str = "127.0.0.1"
) -> tuple[str, ...]:
    """A healthcheck that GETs ``path`` over TLS on loopback and wants status 200.

    For images without curl or wget (Qdrant: debian-slim with ca-certificates, tzdata and
    libunwind8; Typesense: ubuntu with ca-certificates). ``ca-certificates`` depends on
    ``openssl``, so both ship ``openssl s_client``: it verifies the server's chain against the
    stack's CA (``-verify_return_error``: a certificate that does not chain fails the check;
    the name is not checked, the probe connects to 127.0.0.1), sends the request and prints
    the response; the first line must say 200. Plain POSIX ``sh``; both endpoints answer
    without an API key.
    """
    request = f"GET {path} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n"
    script = (
        f"printf '{request}' | openssl s_client -connect {host}:{port} -CAfile {ca_file} "
        "-verify_return_error -quiet 2>/dev/null | head -n 1 | grep -q ' 200 '"
    )
    return ("CMD-SHELL", script)


def own_copy(source: str, target: str, user: str) -> str:
    """Shell: copy a root-only upload to ``target``, owned by ``user`` and readable by it only.

    For servers that drop from root to their own user before reading their key (PostgreSQL
    also refuses a key that group or others may read). Runs at every start, before the image's
    entrypoint; ``install`` is coreutils, in every image here.
    """
    return f"install -D -m {_OWNER_ONLY_MODE} -o {user} -g {user} {source} {target}"


@dataclass(frozen=True)
class Upload:
    """A file the container gets before its first start: path, content and mode."""

    path: str
    content: pulumi.Input[str]
    secret: bool = False

    @property
    def mode(self) -> str:
        """``0600`` for anything secret (keys, hashed credentials), else ``0644``."""
        return _OWNER_ONLY_MODE if self.secret else _PUBLIC_MODE

    def args(self) -> docker.ContainerUploadArgs:
        """The pulumi-docker form; secret content stays a secret output."""
        content = pulumi.Output.secret(self.content) if self.secret else self.content
        return docker.ContainerUploadArgs(file=self.path, content=content, permissions=self.mode)


@dataclass(frozen=True)
class Credential:
    """One credential of a backend: the secret config key that may supply it instead of a
    generated one, and the characters it cannot hold."""

    config_key: str
    forbidden: str = ""


class BackendService(pulumi.ComponentResource):
    """Image, data volume and TLS container of one backend on the Docker host it is placed on.

    Subclasses set the class attributes and fill in :meth:`envs`, :meth:`command`,
    :meth:`uploads`, :meth:`healthcheck`, :meth:`stack_outputs` and, when they have any,
    :meth:`admin_outputs`.
    """

    kind: ClassVar[str]
    component_type: ClassVar[str]
    #: Where the image keeps its data; the named volume is mounted there.
    data_path: ClassVar[str]
    #: Port name -> port inside the container (published on the same name in ``config.ports``).
    container_ports: ClassVar[Mapping[str, int]]
    #: Role -> credential. The first one keeps the resource name ``<backend>-credential`` (the
    #: single credential before least privilege), so existing stacks keep its value.
    credential_specs: ClassVar[Mapping[str, Credential]]
    #: Whether its servers authenticate each other with the host's peer certificate (``_tls``).
    mutual_tls: ClassVar[bool] = False
    #: Credentials only a cluster node needs (replication), added after ``credential_specs``.
    cluster_credential_specs: ClassVar[Mapping[str, Credential]] = {}

    def __init__(
        self,
        name: str,
        *,
        config: InfraConfig,
        provider: docker.Provider,
        certificates: StackCertificates,
        node: ClusterNode | None = None,
        credentials: Mapping[str, pulumi.Output[str]] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.component_type, name, None, opts)
        self.config = config
        #: The cluster node this container is (None: the single-node topology).
        self.node = node
        self.host = config.host_for(self.kind) if node is None else node.host
        self.ports: Mapping[str, int] = config.ports[self.kind] if node is None else node.ports
        self.tls: HostCertificate = certificates.for_host(self.host, peer=self.mutual_tls)
        specs = {**self.credential_specs, **(self.cluster_credential_specs if node else {})}
        self.credentials = (
            dict(credentials)
            if credentials is not None
            else {
                role: self._credential(name, role, spec, first=index == 0)
                for index, (role, spec) in enumerate(specs.items())
            }
        )
        prefix = config.name_prefix
        unit = self.kind if node is None else node.name
        labels = [
            docker.ContainerLabelArgs(label="mas.backend", value=self.kind),
            docker.ContainerLabelArgs(label="mas.stack", value=pulumi.get_stack()),
            *(node.labels() if node is not None else []),
        ]
        child = pulumi.ResourceOptions(parent=self, provider=provider)

        self.image = docker.RemoteImage(
            f"{name}-image",
            name=config.images[self.kind],
            keep_locally=True,
            opts=child,
        )
        self.volume = docker.Volume(
            f"{name}-data",
            name=f"{prefix}-{unit}-data",
            labels=[docker.VolumeLabelArgs(label=lb.label, value=lb.value) for lb in labels],
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(protect=True, retain_on_delete=True)
            ),
        )
        self.health = self.healthcheck()
        self.container = docker.Container(
            f"{name}-container",
            name=f"{prefix}-{unit}",
            image=self.image.image_id,
            restart="unless-stopped",
            healthcheck=self.health.args(),
            wait=True,
            wait_timeout=self.health.wait_timeout_s,
            # A container on the host's network publishes nothing: its servers bind the
            # host's lab address themselves (a Typesense cluster node, see _cluster.py).
            network_mode="host" if self.host_network else None,
            ports=[
                docker.ContainerPortArgs(
                    internal=internal,
                    external=self.ports[port_name],
                    ip=self.host.address,
                    protocol="tcp",
                )
                for port_name, internal in self.published_ports().items()
            ],
            volumes=[
                docker.ContainerVolumeArgs(
                    volume_name=self.volume.name, container_path=self.data_path
                )
            ],
            envs=self.envs(),
            command=self.command(),
            uploads=[upload.args() for upload in self.uploads()],
            # Memory and swap together: with only ``memory`` set, Docker gives the container
            # twice that in memory+swap and the provider reads it back as a diff on every
            # preview (issue 16). Swap = memory means no swap: a database that swaps stalls
            # every client; one that hits its limit restarts (unless-stopped) and says so.
            memory=config.memory_mb[self.kind],
            memory_swap=config.memory_mb[self.kind],
            labels=labels,
            log_driver="json-file",
            log_opts={"max-size": "10m", "max-file": "3"},
            # Stop cleanly (SIGTERM/SIGINT, then wait) on replace and destroy: a killed database
            # may need crash recovery on its next start.
            stop_timeout=60,
            destroy_grace_seconds=60,
            opts=pulumi.ResourceOptions.merge(
                child,
                pulumi.ResourceOptions(
                    delete_before_replace=True,
                    # pulumi-docker updates a healthcheck in place in state only (the engine
                    # cannot change it; the provider's update applies restart and limits only):
                    # a changed check would never run and every refresh would show it again.
                    replace_on_changes=["healthcheck"],
                    # The engine keeps the env and the uploads (keys, hashed passwords) secret
                    # in state and outputs even if a future change passed a plain value; the
                    # policy pack checks this option.
                    additional_secret_outputs=["envs", "uploads"],
                ),
            ),
        )
        self.outputs: dict[str, pulumi.Output[str]] = self.stack_outputs()
        self.admin: dict[str, pulumi.Output[str]] = self.admin_outputs()
        self.register_outputs({**self.outputs, **self.admin})

    @property
    def credential(self) -> pulumi.Output[str]:
        """The first credential (the one a single-user backend has)."""
        return next(iter(self.credentials.values()))

    # -- per backend -------------------------------------------------------------------------

    @property
    def host_network(self) -> bool:
        """Whether the container runs on the host's network (publishing nothing)."""
        return False

    def published_ports(self) -> Mapping[str, int]:
        """Port name -> port inside the container, each published on ``self.ports[name]``."""
        return {} if self.host_network else self.container_ports

    def envs(self) -> list[pulumi.Input[str]]:
        """``KEY=VALUE`` entries; credential ones built from the secret ``self.credentials``."""
        raise NotImplementedError

    def command(self) -> list[str] | None:
        """The container command, or None for the image's default."""
        return None

    def uploads(self) -> Sequence[Upload]:
        """The files the container gets: by default the CA, the host's certificate and key
        in :data:`TLS_DIR` (``ca.crt``, ``server.crt``, ``server.key``)."""
        return self.tls_uploads(TLS_DIR, cert="server.crt", key="server.key", ca="ca.crt")

    def healthcheck(self) -> Healthcheck:
        """A check that runs with what the image ships and proves the service answers."""
        raise NotImplementedError

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        """What the adapters read; those carrying a credential are secret."""
        raise NotImplementedError

    def admin_outputs(self) -> dict[str, pulumi.Output[str]]:
        """The owner and admin credentials no adapter reads (the admin outputs file)."""
        return {}

    # -- helpers -----------------------------------------------------------------------------

    def tls_uploads(self, directory: str, *, cert: str, key: str, ca: str | None) -> list[Upload]:
        """The host's certificate (public), its private key (secret) and the CA, if asked."""
        files = [
            Upload(f"{directory}/{cert}", self.tls.cert_pem),
            Upload(f"{directory}/{key}", self.tls.key_pem, secret=True),
        ]
        if ca is not None:
            files.append(Upload(f"{directory}/{ca}", self.tls.ca_pem))
        return files

    def _credential(
        self, name: str, role: str, spec: Credential, *, first: bool
    ) -> pulumi.Output[str]:
        """The supplied secret config value, or a new RandomPassword; secret either way."""
        supplied = pulumi.Config().get_secret(spec.config_key)
        if supplied is not None:
            return pulumi.Output.secret(
                supplied.apply(lambda value: self._check_supplied(spec, value))
            )
        password = random.RandomPassword(
            f"{name}-credential" if first else f"{name}-{role}-credential",
            length=CREDENTIAL_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.secret(password.result)

    def _check_supplied(self, spec: Credential, value: str) -> str:
        key = spec.config_key
        if len(value) < MIN_SUPPLIED_LENGTH:
            raise InfraConfigError(f"{key} must be at least {MIN_SUPPLIED_LENGTH} characters")
        if _CONTROL.search(value):
            raise InfraConfigError(f"{key} must not contain control characters")
        bad = sorted({c for c in value if c in spec.forbidden})
        if bad:
            raise InfraConfigError(f"{key} must not contain {''.join(bad)!r} ({self.kind})")
        return value

    def _env(self, name: str, value: pulumi.Input[str]) -> pulumi.Output[str]:
        return pulumi.Output.concat(name, "=", value)

    def _url(
        self, scheme: str, port_name: str, userinfo: pulumi.Input[str] = "", path: str = ""
    ) -> pulumi.Output[str]:
        """``scheme://[userinfo]host:port[path]`` on this backend's host and published port."""
        return pulumi.Output.concat(
            scheme, "://", userinfo, self.host.url_host, ":", str(self.ports[port_name]), path
        )
