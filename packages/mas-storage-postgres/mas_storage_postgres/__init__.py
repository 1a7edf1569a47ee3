"""mas-storage-postgres: L1 active context and L2 working memory on PostgreSQL.

``PostgresAdapter`` (registry kind ``"postgres"``) implements the generic storage contract
and the turn/fact domain API on the schema of the repository's ``migrations/`` (0001; 0002,
which adds the facts' ``idempotency_key``; 0003, the adapter role's DML grants; 0004, the
session-ordered indexes);
``PostgresSettings`` is its configuration, ``PostgresOwnerSettings`` the schema owner's (the
migrations').
``yoyo_database_url`` is the one bridge from a libpq URL to the URL yoyo needs. The schema ships
inside this package (``MIGRATIONS_SOURCE``); ``apply_migrations`` / ``rollback_migrations``
run it with yoyo (the ``migrations`` extra).
"""

from ._adapter import PostgresAdapter
from ._config import yoyo_database_url
from ._migrations import MIGRATIONS_SOURCE, apply_migrations, rollback_migrations
from ._settings import PostgresOwnerSettings, PostgresSettings

__all__ = [
    "MIGRATIONS_SOURCE",
    "PostgresAdapter",
    "PostgresOwnerSettings",
    "PostgresSettings",
    "apply_migrations",
    "rollback_migrations",
    "yoyo_database_url",
]
