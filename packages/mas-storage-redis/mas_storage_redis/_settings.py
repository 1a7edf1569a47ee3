"""``RedisSettings``: every key ``RedisAdapter`` reads, declared once.

It is both the settings source (arguments, ``REDIS_*`` variables, the stack output
``redis_url``, defaults) and the adapter's validated config (``adapter.config``). The README's
configuration table is generated from it (``scripts/settings-tables``).
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mas_storage import Integer, Seconds, StackOutput, TlsSettings, mask_url

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

    @model_validator(mode="after")
    def _pool_timeout(self) -> Self:
        if self.pool_timeout is None:
            object.__setattr__(self, "pool_timeout", self.socket_timeout)
        return self

    @property
    def address(self) -> str:
        """Where the adapter connects, password masked: for logs and messages."""
        if self.url is not None:
            return mask_url(self.url.get_secret_value())
        return f"{self.host}:{self.port}/{self.db}"
