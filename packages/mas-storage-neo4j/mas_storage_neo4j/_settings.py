"""``Neo4jSettings``: every key ``Neo4jAdapter`` reads, declared once.

It is both the settings source (arguments, ``NEO4J_*`` variables, the stack outputs
``neo4j_url``, ``neo4j_user`` and ``neo4j_password``, defaults) and the adapter's validated
config (``adapter.config``). A mapping may use the spec's ``uri`` for ``url``; credentials in the
URL's userinfo are used (explicit ``user``/``password`` win) and stripped from it, so the URL
the adapter logs holds none. The README's table is generated from it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mas_storage import Integer, Seconds, StackOutput, TlsSettings

from ._cypher import IDENTIFIER

__all__ = ["Neo4jSettings"]

_SCHEMES = frozenset({"bolt", "bolt+s", "bolt+ssc", "neo4j", "neo4j+s", "neo4j+ssc"})
#: The driver's connection timeout is at most this share of the call deadline.
CONNECT_SHARE = 0.9


class Neo4jSettings(TlsSettings):
    """Neo4j (L3 entity graph)."""

    model_config = SettingsConfigDict(env_prefix="NEO4J_")
    tls_hint = "bolt+s:// or neo4j+s://"

    url: Annotated[str, StackOutput("neo4j_url")] = Field(
        "bolt://127.0.0.1:57687",
        description="`bolt://` or `neo4j://` address; `+s` for TLS, verified against tls_ca "
        "(`+ssc`: unverified, like tls_insecure); the spec's `uri` is accepted in a mapping",
    )
    user: Annotated[str, StackOutput("neo4j_user")] = Field(
        "neo4j", min_length=1, description="user name"
    )
    password: Annotated[SecretStr | None, StackOutput("neo4j_password")] = Field(
        None, min_length=1, description="password; needed unless a driver is injected"
    )
    database: str = Field("neo4j", min_length=1, description="database every session is bound to")
    timeout: Seconds = Field(
        10.0,
        description="server-side transaction timeout and client-side deadline of every call",
    )
    connection_timeout: Seconds = Field(
        5.0,
        description="seconds the driver tries to connect; at most 0.9 x timeout is used, so "
        "that the driver's own timeout, not the call deadline, ends a connect (neo4j 6.4 leaks "
        "the socket of a connect the deadline cancels)",
    )
    connection_acquisition_timeout: Seconds | None = Field(
        None, description="seconds a call waits for a pooled connection; unset: timeout"
    )
    max_retry_time: Seconds = Field(
        2.0, description="seconds the driver retries transient failures before raising"
    )
    max_connection_pool_size: Integer = Field(
        100, ge=1, description="pooled connections; further callers wait for one"
    )
    batch_size: Integer = Field(500, ge=1, description="rows per UNWIND statement in store_many")
    entity_label: str = Field(
        "Entity",
        pattern=f"^{IDENTIFIER.pattern}$",
        description="the base label of every entity the adapter writes",
    )
    notifications_min_severity: Literal["OFF", "WARNING", "INFORMATION"] = Field(
        "OFF", description="server notifications the driver logs (any case)"
    )

    key_aliases = {"uri": "url"}

    @classmethod
    def prepare(cls, data: dict[str, Any]) -> dict[str, Any]:
        """URL credentials fill an unset user and password, and leave the URL."""
        url = data.get("url")
        if isinstance(url, str):
            data["url"], user, password = _split_userinfo(url)
            if user is not None:
                data.setdefault("user", user)
            if password is not None and not data.get("password"):
                data["password"] = password
        return data

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            host = parts.hostname
            parts.port  # noqa: B018 (parses the port: raises on a bad one)
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme not in _SCHEMES or not host:
            raise ValueError(
                f"must be bolt:// or neo4j:// (optionally +s or +ssc) with a host, got scheme "
                f"'{parts.scheme}'"
            )
        return value

    def uses_tls(self) -> bool:
        return urlsplit(self.url).scheme.endswith(("+s", "+ssc"))

    @field_validator("notifications_min_severity", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _acquisition_default(self) -> Self:
        if self.connection_acquisition_timeout is None:
            object.__setattr__(self, "connection_acquisition_timeout", self.timeout)
        return self

    def driver_target(self, where: str = "") -> tuple[str, dict[str, Any]]:
        """The URL for ``AsyncGraphDatabase.driver`` and its TLS option.

        ``+s`` becomes the plain scheme with an ``ssl_context`` verified against ``tls_ca``
        (the driver accepts a context only with the plain schemes); ``+ssc`` (or
        ``tls_insecure``) one that verifies nothing, with a WARNING. A plain scheme: no TLS.
        """
        parts = urlsplit(self.url)
        base, _, suffix = parts.scheme.partition("+")
        if not suffix:
            return self.url, {}
        context = self.ssl_context(where, verify=suffix != "ssc")
        return urlunsplit(parts._replace(scheme=base)), {"ssl_context": context}

    def driver_options(self) -> dict[str, Any]:
        """Keyword arguments for ``AsyncGraphDatabase.driver``.

        Short bounds: during an outage calls fail within seconds, and the same adapter recovers
        when the server is back (the pool drops dead connections itself). Server notifications
        ("label does not exist", ...) are logged at WARNING by the driver for every query: off
        unless asked for.
        """
        return {
            # Below the call deadline (``timeout``), so that a connect to a silent server ends
            # by the driver's own timeout, which closes the socket, and not by the deadline's
            # cancellation: neo4j 6.4 leaks the socket of a connect cancelled mid-way (its
            # ``_connect_secure`` re-raises CancelledError without closing it; seen on the
            # blackhole fault of tests/reliability/test_reliability_network_faults.py).
            "connection_timeout": min(self.connection_timeout, CONNECT_SHARE * self.timeout),
            "connection_acquisition_timeout": self.connection_acquisition_timeout,
            "max_transaction_retry_time": self.max_retry_time,
            "max_connection_pool_size": self.max_connection_pool_size,
            "user_agent": "mas-storage-neo4j/0.1",
            "notifications_min_severity": self.notifications_min_severity,
        }


def _split_userinfo(url: str) -> tuple[str, str | None, str | None]:
    """``(url without userinfo, user, password)``; an unparsable URL is left to the check."""
    try:
        parts = urlsplit(url)
        user, password, host, port = parts.username, parts.password, parts.hostname, parts.port
    except ValueError:
        return url, None, None
    if user is None and password is None:
        return url, None, None
    host = f"[{host}]" if host and ":" in host else host or ""
    netloc = host if port is None else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc)), user, password
