"""``PostgresSettings``: every key ``PostgresAdapter`` reads, declared once.

It is both the settings source (arguments, ``POSTGRES_*`` variables, the stack output
``postgres_url``, defaults) and the adapter's validated config (``adapter.config``). Everything
is checked at construction, so a bad value fails before any connection is attempted. The
README's configuration table is generated from it (``scripts/settings-tables``).

A URL may name several hosts (libpq's own syntax, ``postgresql://u:p@h1:5432,h2:5433/db``): a
primary and its standbys. libpq tries them in order and keeps the first whose session matches
``target_session_attrs``; psycopg passes the list through (one attempt per host, each bounded
by ``connect_timeout``). The adapter writes, so its connections must reach the read-write
server: with several hosts and no ``target_session_attrs`` it asks for ``read-write``
(:meth:`_PostgresUrl.session_options`), and a URL that asks for a standby is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal, Self
from urllib.parse import parse_qs, urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mas_storage import Integer, Seconds, StackOutput, TlsSettings

from ._config import ACTIVE_CONTEXT

__all__ = ["PostgresOwnerSettings", "PostgresSettings"]

_URL_SCHEMES = ("postgresql", "postgres")
#: ``password=...`` in a libpq keyword string (quoted or not).
_CONNINFO_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")
#: ``sslmode=...`` in a libpq keyword string.
_CONNINFO_SSLMODE = re.compile(r"\bsslmode\s*=\s*'?([a-z-]+)")
#: libpq's sslmode values that do not insist on TLS, and those that verify the server.
_PLAINTEXT_MODES = frozenset({"disable", "allow", "prefer"})
_VERIFYING_MODES = frozenset({"verify-ca", "verify-full"})
#: libpq's ``target_session_attrs`` values whose sessions can take writes (``any`` as well:
#: one host behind a proxy, the caller's choice); the others ask for a standby.
_WRITABLE_TARGETS = frozenset({"any", "read-write", "primary"})


class _PostgresUrl(TlsSettings):
    """What every PostgreSQL connection of the project shares: a URL and its TLS."""

    tls_hint = "sslmode=verify-full in the url"

    url: SecretStr

    @field_validator("url")
    @classmethod
    def _url(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not text.strip():
            raise ValueError("must not be empty")
        # libpq also takes "host=... dbname=..." strings: only a URL with another scheme is wrong.
        if "://" in text:
            try:
                scheme = urlsplit(text).scheme.lower()
            except ValueError:
                scheme = ""
            if scheme not in _URL_SCHEMES:
                raise ValueError("must be a postgresql:// URL or a libpq keyword string")
        return value

    @property
    def url_sslmode(self) -> str | None:
        """The ``sslmode`` the URL (or keyword string) names, if any."""
        text = self.url.get_secret_value()
        if "://" in text:
            try:
                modes = parse_qs(urlsplit(text).query).get("sslmode")
            except ValueError:
                return None
            return modes[-1] if modes else None
        found = _CONNINFO_SSLMODE.findall(text)
        return found[-1] if found else None

    def uses_tls(self) -> bool:
        return self.url_sslmode not in _PLAINTEXT_MODES

    def conninfo_params(self) -> dict[str, str]:
        """The URL's (or keyword string's) parameters as libpq parses them; ``{}`` when libpq
        cannot parse it (the connect then fails with libpq's own message)."""
        try:
            return {k: str(v) for k, v in conninfo_to_dict(self.url.get_secret_value()).items()}
        except psycopg.Error:
            return {}

    @property
    def hosts(self) -> list[tuple[str, int | None]]:
        """Every ``(host, port)`` the URL names, in libpq's order (a port ``None``: the
        default); ``[]`` when it names none (a Unix socket default)."""
        params = self.conninfo_params()
        hosts = [h.strip() for h in params.get("host", "").split(",")] if "host" in params else []
        ports = [p.strip() for p in params.get("port", "").split(",")] if "port" in params else []
        if len(ports) == 1:  # one port for every host (libpq's rule)
            ports *= len(hosts)
        out: list[tuple[str, int | None]] = []
        for index, host in enumerate(hosts):
            port = ports[index] if index < len(ports) else ""
            out.append((host, int(port) if port.isdigit() else None))
        return out

    def session_options(self) -> dict[str, str]:
        """libpq options for a URL of several hosts: ``target_session_attrs=read-write`` when
        it names none, so that connections find the primary whatever the host order (libpq's
        own failover). Empty for one host, or when the URL chooses (a writable target)."""
        if len(self.hosts) > 1 and "target_session_attrs" not in self.conninfo_params():
            return {"target_session_attrs": "read-write"}
        return {}

    @model_validator(mode="after")
    def _writable_target(self) -> Self:
        target = self.conninfo_params().get("target_session_attrs")
        if target is not None and target not in _WRITABLE_TARGETS:
            raise ValueError(
                f"url: target_session_attrs={target} cannot take writes: leave it out (several "
                "hosts get read-write) or say read-write; stale reads from a standby are "
                "read_from='prefer-standby'"
            )
        return self

    @model_validator(mode="after")
    def _verifying_mode(self) -> Self:
        mode = self.url_sslmode
        if self.tls_ca is not None and not self.tls_insecure and mode == "require":
            raise ValueError(
                "tls_ca is set but the url says sslmode=require, which does not check the "
                "server's name: use sslmode=verify-full (or leave sslmode out)"
            )
        return self

    def tls_options(self) -> dict[str, str]:
        """libpq options for TLS: ``sslmode`` (verify-full when a CA is given and the URL
        names no mode; require with ``tls_insecure``) and ``sslrootcert`` (a file: a PEM
        given as text is written to a private file). Empty: the URL's own choice."""
        options: dict[str, str] = {}
        mode = self.url_sslmode
        if self.tls_insecure:
            options["sslmode"] = "require"
        elif self.tls_ca is not None:
            if mode not in _VERIFYING_MODES:
                options["sslmode"] = "verify-full"
            ca = self.ca_file()
            assert ca is not None
            options["sslrootcert"] = ca
        return options

    def secret_values(self) -> Iterator[str]:
        """The URL's password, or the ``password=`` of a libpq keyword string."""
        text = self.url.get_secret_value()
        if "://" in text:
            yield from super().secret_values()
            return
        for match in _CONNINFO_PASSWORD.finditer(text):
            yield match.group(1).strip("'")


class PostgresSettings(_PostgresUrl):
    """PostgreSQL (L1 active context, L2 working memory)."""

    model_config = SettingsConfigDict(env_prefix="POSTGRES_")

    url: Annotated[SecretStr, StackOutput("postgres_url")] = Field(
        SecretStr("postgresql://mas@127.0.0.1:55432/mas_memory"),
        description="`postgresql://user:password@host:port/db`, or a libpq keyword string "
        "(`host=... dbname=...`); `sslmode=verify-full` asks for TLS (the default mode when "
        "tls_ca is set). Several hosts (`@h1:5432,h2:5433/db`, a primary and its standbys): "
        "libpq connects to the one that takes writes (`target_session_attrs=read-write`, "
        "the default then). On the stacks: the least-privileged role, DML on its tables only",
    )
    pool_size: Integer = Field(10, ge=1, description="most connections the pool opens")
    min_size: Integer = Field(
        2, ge=0, description="connections the pool keeps open (at most pool_size)"
    )
    timeout: Seconds = Field(
        5.0, description="seconds to connect, and to wait for a free pooled connection"
    )
    table: Literal["active_context", "working_memory"] = Field(
        ACTIVE_CONTEXT,
        description="the table of the generic API (store, retrieve, search, delete, ...); "
        "the domain methods name their own",
    )
    statement_timeout: Seconds | None = Field(
        None, description="server-side statement timeout in seconds; unset: the server's"
    )
    query_timeout: Seconds = Field(
        30.0,
        description="longest wait for any one server reply; then the connection is closed "
        "and the call raises StorageTimeoutError",
    )
    read_from: Literal["primary", "prefer-standby"] = Field(
        "primary",
        description="where reads go: `primary` (the server that takes the writes), or "
        "`prefer-standby`: a second pool (libpq `target_session_attrs=prefer-standby`, the "
        "primary when no standby answers) for retrieve, search, count, get_recent_turns and "
        "get_facts. A standby may lag: a read may miss a write just acknowledged unless the "
        "primary commits with synchronous_commit=remote_apply to that standby",
    )

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.min_size > self.pool_size:
            raise ValueError(
                f"min_size ({self.min_size}) must not exceed pool_size ({self.pool_size})"
            )
        return self


class PostgresOwnerSettings(_PostgresUrl):
    """The schema owner's connection, for migrations (yoyo) only: never the adapter's.

    Read from ``POSTGRES_OWNER_URL``, else the **admin** outputs key ``postgres_owner_url``
    (``$MAS_STACK_ADMIN``, default ``.mas/stack-admin.json``), with the stack's ``tls_ca``.
    """

    model_config = SettingsConfigDict(env_prefix="POSTGRES_OWNER_")

    url: Annotated[SecretStr, StackOutput("postgres_owner_url", admin=True)] = Field(
        SecretStr("postgresql://mas@127.0.0.1:55432/mas_memory"),
        description="the schema owner's URL (migrations run as this role; it owns the tables)",
    )
