"""``PostgresSettings``: every key ``PostgresAdapter`` reads, declared once.

It is both the settings source (arguments, ``POSTGRES_*`` variables, the stack output
``postgres_url``, defaults) and the adapter's validated config (``adapter.config``). Everything
is checked at construction, so a bad value fails before any connection is attempted. The
README's configuration table is generated from it (``scripts/settings-tables``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal, Self
from urllib.parse import parse_qs, urlsplit

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
        "tls_ca is set). On the stacks: the least-privileged role, DML on its tables only",
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
