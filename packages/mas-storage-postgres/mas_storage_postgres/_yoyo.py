"""A yoyo backend that finds the database in the mas settings: the ``postgresql+mas://`` scheme.

The repository's ``yoyo.ini`` says ``database = postgresql+mas://``. yoyo looks the scheme up in
its ``yoyo.backends`` entry points (this package declares it) and builds this backend, which
reads the URL exactly as the adapter does, through :class:`PostgresSettings`:

    POSTGRES_URL (environment) > .env > the stack-outputs file (``$MAS_STACK_OUTPUTS``, default
    ``.mas/stack-outputs.json``: written by ``mas-devstack up`` locally, by the outputs script
    on the lab) > the loopback default

and hands it to yoyo's own psycopg 3 backend. So plain ``uv run yoyo apply`` works from the
repository root after ``mas-devstack up``, and on the lab once the outputs file exists.
A URL with a host (``postgresql+mas://user@host/db``) is used as given, like ``+psycopg``.

This module is imported by yoyo only, never by the adapter.
"""

from __future__ import annotations

from typing import Any

from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

from ._config import yoyo_database_url
from ._settings import PostgresSettings

__all__ = ["SettingsPostgresBackend", "resolve_database_uri"]


def resolve_database_uri(dburi: Any) -> Any:
    """yoyo's parsed ``postgresql+mas://`` URI, as the ``postgresql+psycopg`` one to use."""
    if dburi.hostname or dburi.database:
        return dburi._replace(scheme="postgresql+psycopg")
    url = PostgresSettings().url.get_secret_value()
    resolved = parse_uri(yoyo_database_url(url))
    if dburi.args:
        resolved = resolved._replace(args={**resolved.args, **dburi.args})
    return resolved


class SettingsPostgresBackend(PostgresqlPsycopgBackend):  # type: ignore[misc]  # yoyo is untyped
    """yoyo's psycopg 3 PostgreSQL backend, pointed at the database of the mas settings."""

    def __init__(self, dburi: Any, migration_table: str) -> None:
        super().__init__(resolve_database_uri(dburi), migration_table)
