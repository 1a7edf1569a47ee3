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
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from mas_storage import AdapterSettings, Integer, Seconds, StackOutput

from ._config import ACTIVE_CONTEXT

__all__ = ["PostgresSettings"]

_URL_SCHEMES = ("postgresql", "postgres")
#: ``password=...`` in a libpq keyword string (quoted or not).
_CONNINFO_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|\S+)")


class PostgresSettings(AdapterSettings):
    """PostgreSQL (L1 active context, L2 working memory)."""

    model_config = SettingsConfigDict(env_prefix="POSTGRES_")

    url: Annotated[SecretStr, StackOutput("postgres_url")] = Field(
        SecretStr("postgresql://mas@127.0.0.1:55432/mas_memory"),
        description="`postgresql://user:password@host:port/db`, or a libpq keyword string "
        "(`host=... dbname=...`)",
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

    @model_validator(mode="after")
    def _pool_bounds(self) -> Self:
        if self.min_size > self.pool_size:
            raise ValueError(
                f"min_size ({self.min_size}) must not exceed pool_size ({self.pool_size})"
            )
        return self

    def secret_values(self) -> Iterator[str]:
        """The URL's password, or the ``password=`` of a libpq keyword string."""
        text = self.url.get_secret_value()
        if "://" in text:
            yield from super().secret_values()
            return
        for match in _CONNINFO_PASSWORD.finditer(text):
            yield match.group(1).strip("'")
