"""One ``ComponentResource`` per backend: pinned image, retained volume, healthy container, outputs.

Every component builds the same four things on the Docker provider of the host its placement
names:

* a ``RemoteImage`` of the exact tag from config; the container runs ``image.image_id`` (the
  pulled image's ID), so ``pulumi up`` does not churn the container while the tag is unchanged;
* a named ``Volume`` for the data, ``protect=True`` (the only retention a policy pack can see)
  and ``retain_on_delete=True`` (the Docker volume outlives the resource even once unprotected);
* a ``Container`` with ``restart="unless-stopped"``, a healthcheck that uses only what the image
  ships, ``wait=True`` with a ``wait_timeout`` above the healthcheck's start budget,
  ``delete_before_replace=True`` (fixed names and ports), and ports published on the host's lab
  address only;
* the credential: a ``RandomPassword`` (32 letters and digits, so URL-safe), or the value of a
  secret config key; secret from end to end (env, outputs, state).

Credentials reach the containers through env only. Where a command or a healthcheck needs one it
references the env variable (``"$REDISCLI_AUTH"``), so no secret sits in plain ``command`` or
``healthcheck`` properties.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

import pulumi
import pulumi_docker as docker
import pulumi_random as random

from ._config import InfraConfig, InfraConfigError

__all__ = [
    "BACKEND_COMPONENTS",
    "CREDENTIAL_LENGTH",
    "BackendService",
    "Healthcheck",
    "Neo4jService",
    "PostgresService",
    "QdrantService",
    "RedisService",
    "TypesenseService",
    "go_duration",
    "http_probe",
]

#: Length of generated credentials (letters and digits only: ~190 bits, no URL escaping needed).
CREDENTIAL_LENGTH = 32
#: A supplied credential must be at least this long.
MIN_SUPPLIED_LENGTH = 24
#: Seconds ``wait_timeout`` adds on top of the healthcheck's start budget.
WAIT_MARGIN_S = 30
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_PG_ISREADY_TARGET = ("-h", "127.0.0.1", "-p", "5432")


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


def http_probe(port: int, path: str) -> tuple[str, ...]:
    """A healthcheck that GETs ``path`` on loopback with bash alone and wants status 200.

    For images without curl or wget (Qdrant: debian-slim with only ca-certificates, tzdata and
    libunwind8 added; Typesense: ubuntu with only ca-certificates added). Both ship bash, whose
    ``/dev/tcp/HOST/PORT`` redirection opens a TCP socket; ``read`` takes the status line. Both
    endpoints answer without an API key.
    """
    script = (
        f"exec 3<>/dev/tcp/127.0.0.1/{port} && "
        f"printf 'GET {path} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 "
        "&& IFS= read -r status <&3 && [[ $status == *' 200 '* ]]"
    )
    return ("CMD", "bash", "-c", script)


class BackendService(pulumi.ComponentResource):
    """Image, data volume and container of one backend on the Docker host its placement names.

    Subclasses set the class attributes and fill in :meth:`envs`, :meth:`command`,
    :meth:`healthcheck` and :meth:`stack_outputs`.
    """

    kind: ClassVar[str]
    component_type: ClassVar[str]
    #: Where the image keeps its data; the named volume is mounted there.
    data_path: ClassVar[str]
    #: Port name -> port inside the container (published on the same name in ``config.ports``).
    container_ports: ClassVar[Mapping[str, int]]
    #: Secret config key that may supply the credential instead of a RandomPassword.
    credential_key: ClassVar[str]
    #: Characters the credential cannot hold (checked on supplied values).
    credential_forbidden: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        *,
        config: InfraConfig,
        provider: docker.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(self.component_type, name, None, opts)
        self.config = config
        self.host = config.host_for(self.kind)
        self.ports = config.ports[self.kind]
        self.credential = self._credential(name)
        prefix = config.name_prefix
        labels = [
            docker.ContainerLabelArgs(label="mas.backend", value=self.kind),
            docker.ContainerLabelArgs(label="mas.stack", value=pulumi.get_stack()),
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
            name=f"{prefix}-{self.kind}-data",
            labels=[docker.VolumeLabelArgs(label=lb.label, value=lb.value) for lb in labels],
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(protect=True, retain_on_delete=True)
            ),
        )
        self.health = self.healthcheck()
        self.container = docker.Container(
            f"{name}-container",
            name=f"{prefix}-{self.kind}",
            image=self.image.image_id,
            restart="unless-stopped",
            healthcheck=self.health.args(),
            wait=True,
            wait_timeout=self.health.wait_timeout_s,
            ports=[
                docker.ContainerPortArgs(
                    internal=internal,
                    external=self.ports[port_name],
                    ip=self.host.address,
                    protocol="tcp",
                )
                for port_name, internal in self.container_ports.items()
            ],
            volumes=[
                docker.ContainerVolumeArgs(
                    volume_name=self.volume.name, container_path=self.data_path
                )
            ],
            envs=self.envs(),
            command=self.command(),
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
                    # The engine keeps the env secret in state and outputs even if a future
                    # change passed a plain value; the policy pack checks this option.
                    additional_secret_outputs=["envs"],
                ),
            ),
        )
        self.outputs: dict[str, pulumi.Output[str]] = self.stack_outputs()
        self.register_outputs(dict(self.outputs))

    # -- per backend -------------------------------------------------------------------------

    def envs(self) -> list[pulumi.Input[str]]:
        """``KEY=VALUE`` entries; the credential one built from the secret ``self.credential``."""
        raise NotImplementedError

    def command(self) -> list[str] | None:
        """The container command, or None for the image's default."""
        return None

    def healthcheck(self) -> Healthcheck:
        """A check that runs with what the image ships and proves the service answers."""
        raise NotImplementedError

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        """This backend's stack outputs; those carrying a credential are secret."""
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------

    def _credential(self, name: str) -> pulumi.Output[str]:
        """The supplied secret config value, or a new RandomPassword; secret either way."""
        supplied = pulumi.Config().get_secret(self.credential_key)
        if supplied is not None:
            return pulumi.Output.secret(supplied.apply(self._check_supplied))
        password = random.RandomPassword(
            f"{name}-credential",
            length=CREDENTIAL_LENGTH,
            special=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return pulumi.Output.secret(password.result)

    def _check_supplied(self, value: str) -> str:
        key = self.credential_key
        if len(value) < MIN_SUPPLIED_LENGTH:
            raise InfraConfigError(f"{key} must be at least {MIN_SUPPLIED_LENGTH} characters")
        if _CONTROL.search(value):
            raise InfraConfigError(f"{key} must not contain control characters")
        bad = sorted({c for c in value if c in self.credential_forbidden})
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


class PostgresService(BackendService):
    """PostgreSQL: database ``mas_memory`` owned by ``mas``, scram-sha-256 on every TCP login."""

    kind = "postgres"
    component_type = "mas:infra:Postgres"
    data_path = "/var/lib/postgresql/data"
    container_ports: ClassVar[Mapping[str, int]] = {"postgres": 5432}
    credential_key = "postgresPassword"
    user = "mas"
    database = "mas_memory"

    def envs(self) -> list[pulumi.Input[str]]:
        return [
            f"POSTGRES_USER={self.user}",
            f"POSTGRES_DB={self.database}",
            # The image's entrypoint writes "host all all all <method>" into pg_hba.conf.
            "POSTGRES_HOST_AUTH_METHOD=scram-sha-256",
            "POSTGRES_INITDB_ARGS=--auth-host=scram-sha-256",
            self._env("POSTGRES_PASSWORD", self.credential),
        ]

    def healthcheck(self) -> Healthcheck:
        # pg_isready ships with the server. Over TCP on purpose: the entrypoint's temporary
        # init server listens on the socket only (listen_addresses=''), so the check turns
        # healthy only once the real server accepts network connections.
        return Healthcheck(
            test=("CMD", "pg_isready", *_PG_ISREADY_TARGET, "-U", self.user, "-d", self.database),
            interval_s=5,
            timeout_s=5,
            start_period_s=30,
            retries=6,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        userinfo = pulumi.Output.concat(self.user, ":", self.credential.apply(_quote), "@")
        url = self._url("postgresql", "postgres", userinfo, f"/{self.database}")
        return {"postgres_url": pulumi.Output.secret(url)}


class RedisService(BackendService):
    """Redis with ``requirepass`` and an append-only file on the data volume."""

    kind = "redis"
    component_type = "mas:infra:Redis"
    data_path = "/data"
    container_ports: ClassVar[Mapping[str, int]] = {"redis": 6379}
    credential_key = "redisPassword"

    def envs(self) -> list[pulumi.Input[str]]:
        # redis-cli reads REDISCLI_AUTH, so the healthcheck authenticates without the password
        # in its arguments; the server gets it from the same variable (see command()).
        return [self._env("REDISCLI_AUTH", self.credential)]

    def command(self) -> list[str]:
        # The official image has no password variable. Re-entering its entrypoint with
        # "redis-server" as first argument keeps its chown of /data and its drop to the redis
        # user; redis-server then overwrites its process title, so ps shows no password.
        return [
            "sh",
            "-c",
            'exec docker-entrypoint.sh redis-server --requirepass "$REDISCLI_AUTH" '
            "--appendonly yes",
        ]

    def healthcheck(self) -> Healthcheck:
        # PONG only when the server is up AND the password is accepted (NOAUTH/WRONGPASS
        # otherwise); plain POSIX sh, so it works on the alpine and debian variants alike.
        return Healthcheck(
            test=("CMD-SHELL", '[ "$(redis-cli -h 127.0.0.1 -p 6379 ping)" = PONG ]'),
            interval_s=5,
            timeout_s=3,
            start_period_s=10,
            retries=6,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        userinfo = pulumi.Output.concat(":", self.credential.apply(_quote), "@")
        return {"redis_url": pulumi.Output.secret(self._url("redis", "redis", userinfo, "/0"))}


class QdrantService(BackendService):
    """Qdrant server with an API key (REST on ``http``, gRPC on ``grpc``)."""

    kind = "qdrant"
    component_type = "mas:infra:Qdrant"
    data_path = "/qdrant/storage"
    container_ports: ClassVar[Mapping[str, int]] = {"http": 6333, "grpc": 6334}
    credential_key = "qdrantApiKey"

    def envs(self) -> list[pulumi.Input[str]]:
        return [
            self._env("QDRANT__SERVICE__API_KEY", self.credential),
            "QDRANT__TELEMETRY_DISABLED=true",
        ]

    def healthcheck(self) -> Healthcheck:
        # /readyz is on Qdrant's API-key whitelist (with /healthz and /livez) and answers 200
        # once all shards are loaded. The image has no curl: bash /dev/tcp (see http_probe).
        return Healthcheck(
            test=http_probe(6333, "/readyz"),
            interval_s=10,
            timeout_s=5,
            start_period_s=30,
            retries=6,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {
            "qdrant_url": self._url("http", "http"),
            "qdrant_api_key": pulumi.Output.secret(self.credential),
        }


class Neo4jService(BackendService):
    """Neo4j community with auth on; heap and page cache from config, inside the memory limit."""

    kind = "neo4j"
    component_type = "mas:infra:Neo4j"
    data_path = "/data"
    container_ports: ClassVar[Mapping[str, int]] = {"bolt": 7687, "http": 7474}
    credential_key = "neo4jPassword"
    # The image parses NEO4J_AUTH as user/password: a '/' in the password breaks it.
    credential_forbidden = "/"
    user = "neo4j"

    def envs(self) -> list[pulumi.Input[str]]:
        heap, pagecache = self.config.neo4j_heap, self.config.neo4j_pagecache
        return [
            self._env("NEO4J_AUTH", pulumi.Output.concat(self.user, "/", self.credential)),
            f"NEO4J_server_memory_heap_initial__size={heap}",
            f"NEO4J_server_memory_heap_max__size={heap}",
            f"NEO4J_server_memory_pagecache_size={pagecache}",
        ]

    def healthcheck(self) -> Healthcheck:
        # cypher-shell is in the image (on PATH via $NEO4J_HOME/bin); curl is purged from it.
        # A query over bolt proves the server is up and the password works; the shell strips
        # the "neo4j/" prefix from NEO4J_AUTH at run time, so no secret is in the test.
        return Healthcheck(
            test=(
                "CMD-SHELL",
                'cypher-shell -a bolt://127.0.0.1:7687 -u neo4j -p "${NEO4J_AUTH#neo4j/}" '
                '"RETURN 1" > /dev/null',
            ),
            interval_s=15,
            timeout_s=15,
            start_period_s=60,
            retries=8,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {
            "neo4j_url": self._url("bolt", "bolt"),
            "neo4j_user": pulumi.Output.from_input(self.user),
            "neo4j_password": pulumi.Output.secret(self.credential),
        }


class TypesenseService(BackendService):
    """Typesense with its admin API key; data dir on the volume."""

    kind = "typesense"
    component_type = "mas:infra:Typesense"
    data_path = "/data"
    container_ports: ClassVar[Mapping[str, int]] = {"http": 8108}
    credential_key = "typesenseApiKey"

    def envs(self) -> list[pulumi.Input[str]]:
        # typesense-server reads every flag from TYPESENSE_<FLAG> too: no key in the command.
        return [
            self._env("TYPESENSE_API_KEY", self.credential),
            f"TYPESENSE_DATA_DIR={self.data_path}",
        ]

    def healthcheck(self) -> Healthcheck:
        # GET /health needs no key and answers 200 {"ok":true} once the node is ready (503
        # before). The image has no curl or wget: bash /dev/tcp (see http_probe).
        return Healthcheck(
            test=http_probe(8108, "/health"),
            interval_s=10,
            timeout_s=5,
            start_period_s=20,
            retries=6,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {
            "typesense_url": self._url("http", "http"),
            "typesense_api_key": pulumi.Output.secret(self.credential),
        }


#: Backend name -> component class.
BACKEND_COMPONENTS: Mapping[str, type[BackendService]] = {
    cls.kind: cls
    for cls in (PostgresService, RedisService, QdrantService, Neo4jService, TypesenseService)
}


def _quote(value: str) -> str:
    """Percent-encode a credential for the userinfo part of a URL."""
    return quote(value, safe="")
