"""``RedisSettings``: every key ``RedisAdapter`` reads, declared once.

It is both the settings source (arguments, ``REDIS_*`` variables, the stack outputs
``redis_url`` and ``redis_cluster_nodes``, defaults) and the adapter's validated config
(``adapter.config``). The README's configuration table is generated from it
(``scripts/settings-tables``).
"""

from __future__ import annotations

from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mas_storage import Integer, NodeList, Seconds, StackOutput, TlsSettings, mask_url

__all__ = ["MAX_TTL", "MAX_WINDOW", "RedisSettings"]

#: Longest TTL accepted (about 68 years). Redis refuses larger EXPIREs only when the write runs,
#: after the LPUSH was applied: a write would half-succeed and leave a key that never expires.
#: So larger values are refused before anything is sent.
MAX_TTL = 2**31 - 1
#: Largest window: LTRIM's bounds are signed 64-bit (same half-write hazard as the TTL).
MAX_WINDOW = 2**31 - 1
_SCHEMES = ("redis", "rediss", "unix")


class RedisSettings(TlsSettings):
    """Redis (L1 turn cache). ``url`` wins over ``host``/``port``/``db`` when both are set."""

    model_config = SettingsConfigDict(env_prefix="REDIS_")
    tls_hint = "rediss:// (or tls: true without url)"

    url: Annotated[SecretStr | None, StackOutput("redis_url")] = Field(
        None,
        description="`rediss://[user:password@]host:port/db` (TLS; or `redis://`, `unix://`); "
        "wins over host, port, db and tls. On the stacks: an ACL user limited to the "
        "adapter's commands and keys",
    )
    host: str = Field("127.0.0.1", min_length=1, description="used without url")
    port: Integer = Field(56379, ge=1, le=65535, description="used without url")
    db: Integer = Field(0, ge=0, description="logical database, used without url")
    tls: bool = Field(False, description="TLS, used without url (with a url: `rediss://`)")
    username: str | None = Field(None, description="ACL user (default: the URL's, if any)")
    password: SecretStr | None = Field(
        None, description="password; never logged, never in an error message"
    )
    socket_timeout: Seconds = Field(5.0, description="seconds, for connecting and every command")
    window_size: Integer = Field(
        10, ge=0, le=MAX_WINDOW, description="turns kept per session; 0 disables the cache"
    )
    ttl_seconds: Integer = Field(
        86400, ge=1, le=MAX_TTL, description="a session expires this long after its last write"
    )
    refresh_ttl_on_read: bool = Field(False, description="reads reset the TTL too")
    retries: Integer = Field(
        2, ge=0, description="driver retries after a connection error (timeouts are not retried)"
    )
    health_check_interval: float = Field(
        30.0,
        ge=0,
        allow_inf_nan=False,
        description="seconds idle after which a pooled connection is PINGed before use",
    )
    max_connections: Integer | None = Field(
        None,
        ge=1,
        description="pool size; when set, callers beyond it wait for a free connection "
        "(a BlockingConnectionPool) instead of failing; unset: unbounded",
    )
    pool_timeout: Seconds | None = Field(
        None,
        description="seconds a caller waits for a free connection when max_connections is "
        "set; unset: socket_timeout",
    )
    cluster: bool | None = Field(
        None,
        description="Redis Cluster: true = cluster mode, false = one server; unset: cluster "
        "mode when cluster_nodes are given or when the server of url (or host:port) runs "
        "in cluster mode (asked at connect)",
    )
    cluster_nodes: Annotated[NodeList, StackOutput("redis_cluster_nodes")] = Field(
        (),
        description="Redis Cluster seed nodes, `host:port` (a JSON array or comma-separated); "
        "the user, password and TLS come from url (or username, password, tls)",
    )
    cluster_address_map: dict[str, str] = Field(
        default_factory=dict,
        description="Redis Cluster behind NAT, port forwarding or a proxy: `host:port` a node "
        "announces -> `host:port` to connect to (redis-py's address_remap); unset: the "
        "announced addresses",
    )
    wait_replicas: Integer = Field(
        0,
        ge=0,
        description="acknowledge a write only once this many replicas have it (WAIT on the "
        "write's connection); 0: once the primary has it (replication is asynchronous: a "
        "failover can lose the last acknowledged writes)",
    )
    wait_timeout: Seconds = Field(
        1.0,
        description="seconds WAIT waits for wait_replicas replicas; a write they do not all "
        "confirm by then raises StorageTimeoutError (not acknowledged: retry it, writes are "
        "idempotent); less than socket_timeout",
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            scheme = value.get_secret_value().partition("://")[0].lower()
            if scheme not in _SCHEMES:
                raise ValueError(f"must be a {', '.join(_SCHEMES)} URL (scheme://...)")
        return value

    def uses_tls(self) -> bool | None:
        if self.url is None:
            return self.tls
        scheme = self.url.get_secret_value().partition("://")[0].lower()
        return None if scheme == "unix" else scheme == "rediss"

    @field_validator("cluster_nodes")
    @classmethod
    def _nodes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for node in value:
            _host_port(node)
        return value

    @field_validator("cluster_address_map")
    @classmethod
    def _address_map(cls, value: dict[str, str]) -> dict[str, str]:
        for announced, reachable in value.items():
            _host_port(announced)
            _host_port(reachable)
        return value

    @model_validator(mode="after")
    def _pool_timeout(self) -> Self:
        if self.pool_timeout is None:
            object.__setattr__(self, "pool_timeout", self.socket_timeout)
        return self

    @model_validator(mode="after")
    def _cluster_and_wait(self) -> Self:
        if self.cluster is False and self.cluster_nodes:
            raise ValueError("cluster_nodes are given but cluster is false")
        if self.cluster_mode:
            if self.url is not None and self.uses_tls() is None:
                raise ValueError("Redis Cluster does not run on unix sockets: use redis(s)://")
            if self.database != 0:
                raise ValueError(f"Redis Cluster has database 0 only, not {self.database}")
        if self.wait_replicas and self.wait_timeout >= self.socket_timeout:
            raise ValueError(
                f"wait_timeout ({self.wait_timeout:g} s) must be less than socket_timeout "
                f"({self.socket_timeout:g} s): the WAIT reply comes after it"
            )
        return self

    @property
    def cluster_mode(self) -> bool | None:
        """True: cluster mode; False: one server; None: ask the server at connect."""
        if self.cluster is not None:
            return self.cluster
        return True if self.cluster_nodes else None

    @property
    def database(self) -> int:
        """The logical database: the URL's path, else ``db``."""
        if self.url is None:
            return self.db
        path = urlsplit(self.url.get_secret_value()).path.strip("/")
        return int(path) if path.isdigit() else 0

    def seed_nodes(self) -> list[tuple[str, int]]:
        """Where a cluster client starts: ``cluster_nodes``, else the url's or host:port."""
        if self.cluster_nodes:
            return [_host_port(node) for node in self.cluster_nodes]
        if self.url is not None:
            parts = urlsplit(self.url.get_secret_value())
            return [(parts.hostname or "127.0.0.1", parts.port or 6379)]
        return [(self.host, self.port)]

    def address_remap(self) -> dict[tuple[str, int], tuple[str, int]]:
        """``cluster_address_map`` as redis-py's ``address_remap`` looks addresses up."""
        return {_host_port(a): _host_port(r) for a, r in self.cluster_address_map.items()}

    @property
    def address(self) -> str:
        """Where the adapter connects, password masked: for logs and messages."""
        if self.cluster_nodes:
            return f"cluster {','.join(self.cluster_nodes)}"
        if self.url is not None:
            return mask_url(self.url.get_secret_value())
        return f"{self.host}:{self.port}/{self.db}"


def _host_port(node: str) -> tuple[str, int]:
    """``host:port`` split and checked (ValueError naming the node otherwise)."""
    host, sep, port = node.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"a node is host:port, got {node!r}")
    return host, int(port)
