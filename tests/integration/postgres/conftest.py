"""Fixtures of the PostgreSQL integration tests: the real server of the stack outputs.

* ``pg_url``: the outputs' ``postgres_url``; the session makes sure the migrations are applied
  (yoyo, idempotent: nothing happens when ``mas-devstack up`` already applied them).
* ``raw``: a plain psycopg connection, to check what the server holds behind the adapter.
* ``session_id``: a unique ``test-pg-…`` id whose rows are deleted after the test.
* ``fresh_db``: for migration tests, a new empty database ``test_mig_<hex>``, dropped after;
  ``migrated_url``: the same with the migrations applied, for tests of table-wide operations
  (``delete_expired``, ``cleanup_expired``) whose exact counts other tests' rows would blur.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql
from yoyo import get_backend, read_migrations

from mas_storage_postgres import PostgresAdapter, yoyo_database_url

ROOT = Path(__file__).resolve().parents[3]
MIGRATIONS = ROOT / "migrations"


def apply_migrations(url: str) -> list[str]:
    """Apply the pending migrations of ``migrations/`` to ``url``; return the ids applied."""
    backend = get_backend(yoyo_database_url(url))
    try:
        with backend.lock():
            todo = backend.to_apply(read_migrations(str(MIGRATIONS)))
            backend.apply_migrations(todo)
            return [m.id for m in todo]
    finally:
        backend.connection.close()


@pytest.fixture(scope="session")
def pg_owner_url(stack_outputs: dict[str, Any], stack_admin: dict[str, Any]) -> str:
    """The schema owner's URL (admin outputs): migrations, throwaway databases."""
    url = stack_admin.get("postgres_owner_url") or stack_outputs.get("postgres_url")
    if not url:
        pytest.fail("the admin outputs hold no postgres_owner_url")
    return str(url)


@pytest.fixture(scope="session")
def pg_url(stack_outputs: dict[str, Any], pg_owner_url: str) -> str:
    """The adapter's URL (the least-privileged role), once the migrations are applied."""
    url = stack_outputs.get("postgres_url")
    if not url:
        pytest.fail("the stack outputs hold no postgres_url")
    apply_migrations(pg_owner_url)
    return str(url)


@pytest.fixture
async def raw(pg_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    conn = await psycopg.AsyncConnection.connect(pg_url, autocommit=True)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def session_ids(pg_url: str) -> AsyncIterator[Callable[[], str]]:
    """A factory of unique ``test-pg-…`` session ids; their rows are deleted afterwards."""
    made: list[str] = []

    def new() -> str:
        made.append(f"test-pg-{uuid.uuid4()}")
        return made[-1]

    yield new
    if made:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            for table in ("active_context", "working_memory"):
                await conn.execute(
                    sql.SQL("DELETE FROM {} WHERE session_id = ANY(%s)").format(
                        sql.Identifier(table)
                    ),
                    (made,),
                )


@pytest.fixture
def session_id(session_ids: Callable[[], str]) -> str:
    return session_ids()


@pytest.fixture
async def l1(pg_url: str) -> AsyncIterator[PostgresAdapter]:
    async with PostgresAdapter({"url": pg_url, "pool_size": 5, "table": "active_context"}) as a:
        yield a


@pytest.fixture
async def l2(pg_url: str) -> AsyncIterator[PostgresAdapter]:
    async with PostgresAdapter({"url": pg_url, "pool_size": 5, "table": "working_memory"}) as a:
        yield a


@pytest.fixture
def fresh_db(pg_owner_url: str) -> Iterator[str]:
    """The URL of a new, empty database (the owner ``mas`` has CREATEDB); dropped afterwards."""
    name = f"test_mig_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_owner_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(pg_owner_url)._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        with psycopg.connect(pg_owner_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def migrated_url(fresh_db: str) -> str:
    """A fresh database with the migrations applied: for table-wide operations (cleanup)."""
    assert apply_migrations(fresh_db) == [
        "0001_active_context",
        "0002_fact_idempotency",
        "0003_app_role_grants",
        "0004_fact_session_order",
    ]
    return fresh_db
