"""The PostgreSQL schema, shipped in this package: yoyo migrations, each with its rollback.

``mas_storage_postgres/migrations`` is the repository's ``migrations/`` directory: a symbolic
link in the repository, real files in the sdist and the wheel. The SQL exists once, and
``yoyo apply`` from the repository root keeps reading ``migrations/``. With only the wheel
(and the ``migrations`` extra, which brings yoyo), the same migrations apply from yoyo's
command line, the database URL taken from the settings by the ``postgresql+mas://`` backend::

    pip install "mas-storage-postgres[migrations]"
    yoyo apply --batch --database postgresql+mas:// package:mas_storage_postgres:migrations
    yoyo rollback --batch --all --database postgresql+mas:// package:mas_storage_postgres:migrations

or from Python, the way LangGraph's PostgreSQL checkpointer sets up its tables::

    from mas_storage_postgres import apply_migrations
    apply_migrations("postgresql://mas:...@db.example:5432/mas_memory")

Both record what is applied in yoyo's ``_yoyo_migration`` table, under the same ids as the
repository's files, so a database migrated one way is up to date the other way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mas_storage import StorageConnectionError, StorageQueryError, redact

from ._config import yoyo_database_url

__all__ = ["MIGRATIONS_SOURCE", "apply_migrations", "rollback_migrations"]

#: yoyo's name for the migrations inside this package (a ``sources`` entry, or a CLI argument).
MIGRATIONS_SOURCE = "package:mas_storage_postgres:migrations"

_INSTALL_HINT = 'yoyo is not installed: pip install "mas-storage-postgres[migrations]"'


def apply_migrations(url: str, *, source: str = MIGRATIONS_SOURCE) -> list[str]:
    """Apply the migrations not yet applied to the database at ``url``; the ids applied.

    Runs under yoyo's lock, each migration in one transaction: a failing one is rolled back
    whole and raised as :class:`~mas_storage.StorageQueryError` naming it. A no-op (``[]``)
    when everything is applied.
    """
    return _run(url, source, "apply", lambda backend, found: backend.to_apply(found))


def rollback_migrations(
    url: str, *, count: int | None = 1, source: str = MIGRATIONS_SOURCE
) -> list[str]:
    """Roll back the ``count`` most recently applied migrations (every one with ``None``),
    newest first; the ids rolled back. Rolling back the first migration drops the tables and
    their rows."""
    if count is not None and (isinstance(count, bool) or count < 1):
        raise ValueError(f"count must be a positive number of migrations or None, got {count!r}")

    def select(backend: Any, found: Any) -> list[Any]:
        todo = list(backend.to_rollback(found))
        return todo if count is None else todo[:count]

    return _run(url, source, "rollback", select)


def _run(url: str, source: str, action: str, select: Callable[[Any, Any], Any]) -> list[str]:
    try:
        from yoyo import get_backend, read_migrations
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc
    try:
        backend = get_backend(yoyo_database_url(url))
    except Exception as exc:
        message = redact(f"{type(exc).__name__}: {exc}", [url])
        raise StorageConnectionError(
            f"migrations: cannot connect: {message}", backend="postgres", orig=exc
        ) from exc
    ids: list[str] = []
    try:
        with backend.lock():
            todo = select(backend, read_migrations(source))
            ids = [migration.id for migration in todo]
            if action == "apply":
                backend.apply_migrations(todo)
            else:
                backend.rollback_migrations(todo)
    except Exception as exc:
        message = redact(f"{type(exc).__name__}: {exc}", [url])
        raise StorageQueryError(
            f"migrations: {action} of {ids} failed: {message}", backend="postgres", orig=exc
        ) from exc
    finally:
        backend.connection.close()
    return ids
