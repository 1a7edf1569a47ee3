"""A yoyo backend that finds the database in the mas settings: the ``postgresql+mas://`` scheme.

The repository's ``yoyo.ini`` says ``database = postgresql+mas://``. yoyo looks the scheme up in
its ``yoyo.backends`` entry points (this package declares it) and builds this backend, which
reads the **schema owner's** URL (migrations need DDL, which the adapter's role may not do),
through :class:`PostgresOwnerSettings`, then the adapter's as a fallback:

    POSTGRES_OWNER_URL (environment, .env) > POSTGRES_URL (environment) > the admin outputs'
    ``postgres_owner_url`` (``$MAS_STACK_ADMIN``, default ``.mas/stack-admin.json``: written by
    ``mas-devstack up`` and by ``scripts/lab-outputs``) > the stack outputs' ``postgres_url``
    > the loopback default

with TLS from the settings (``sslmode=verify-full`` and ``sslrootcert`` from ``tls_ca``).

and hands it to yoyo's own psycopg 3 backend. So plain ``uv run yoyo apply`` works from the
repository root after ``mas-devstack up``, and on the lab once the outputs file exists.
A URL with a host (``postgresql+mas://user@host/db``) is used as given, like ``+psycopg``.

This module is imported by yoyo only, never by the adapter.
"""

from __future__ import annotations

import os
from typing import Any

from yoyo.backends.core.postgresql import PostgresqlPsycopgBackend
from yoyo.connections import parse_uri

from ._config import yoyo_database_url
from ._settings import PostgresOwnerSettings, PostgresSettings

__all__ = ["SettingsPostgresBackend", "migration_settings", "resolve_database_uri"]


def migration_settings() -> PostgresOwnerSettings | PostgresSettings:
    """The settings migrations connect with: the owner's, unless only ``POSTGRES_URL`` names
    a database (an explicit variable beats the files)."""
    owner = PostgresOwnerSettings()
    if "url" in owner.model_fields_set and (
        os.environ.get("POSTGRES_OWNER_URL") or not os.environ.get("POSTGRES_URL")
    ):
        return owner
    return PostgresSettings()


def resolve_database_uri(dburi: Any) -> Any:
    """yoyo's parsed ``postgresql+mas://`` URI, as the ``postgresql+psycopg`` one to use."""
    if dburi.hostname or dburi.database:
        return dburi._replace(scheme="postgresql+psycopg")
    settings = migration_settings()
    resolved = parse_uri(yoyo_database_url(settings.url.get_secret_value()))
    args = {**resolved.args, **settings.tls_options(), **(dburi.args or {})}
    return resolved._replace(args=args)


class SettingsPostgresBackend(PostgresqlPsycopgBackend):  # type: ignore[misc]  # yoyo is untyped
    """yoyo's psycopg 3 PostgreSQL backend, pointed at the database of the mas settings."""

    def __init__(self, dburi: Any, migration_table: str) -> None:
        super().__init__(resolve_database_uri(dburi), migration_table)
