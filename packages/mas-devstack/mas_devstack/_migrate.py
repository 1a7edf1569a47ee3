"""Apply the yoyo migrations of ``<root>/migrations`` to the local PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from mas_storage_postgres import yoyo_database_url

from ._errors import DevstackError


def pending_sources(migrations_dir: Path) -> bool:
    """True when ``migrations_dir`` holds at least one ``*.sql`` migration."""
    return migrations_dir.is_dir() and any(migrations_dir.glob("*.sql"))


def apply_migrations(postgres_url: str, migrations_dir: Path) -> list[str]:
    """Apply what is not yet applied, under yoyo's lock; returns the ids applied now.

    A failing migration is rolled back by yoyo and raised as :class:`DevstackError` naming it
    (the URL, which holds the password, is never part of the message).
    """
    if not pending_sources(migrations_dir):
        return []
    from yoyo import get_backend, read_migrations

    backend = get_backend(yoyo_database_url(postgres_url))
    try:
        migrations = read_migrations(str(migrations_dir))
        with backend.lock():
            todo = backend.to_apply(migrations)
            ids = [migration.id for migration in todo]
            try:
                backend.apply_migrations(todo)
            except Exception as exc:
                raise DevstackError(
                    f"applying the migrations {ids} from {migrations_dir} failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
    finally:
        backend.connection.close()
    return ids
