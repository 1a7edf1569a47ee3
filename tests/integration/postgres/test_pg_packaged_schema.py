"""The schema shipped inside mas-storage-postgres, applied the ways a user with the wheel does.

``apply_migrations`` / ``rollback_migrations`` and yoyo's command line with the package source
(``package:mas_storage_postgres:migrations``), each in a fresh database: the same schema as the
repository's ``migrations/``, under the same ids, and every rollback back to an empty schema.
(The built wheel itself is checked by ``tests/wheels``.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from test_pg_migrations import ALL, FIRST, FOURTH, SECOND, THIRD, apply, snapshot

from mas_storage import StorageConnectionError
from mas_storage_postgres import MIGRATIONS_SOURCE, apply_migrations, rollback_migrations


def test_the_packaged_schema_is_the_repository_schema(fresh_db: str) -> None:
    empty = snapshot(fresh_db)
    assert apply_migrations(fresh_db) == ALL
    packaged = snapshot(fresh_db)
    assert apply_migrations(fresh_db) == []  # applied: a no-op
    assert rollback_migrations(fresh_db, count=None) == ALL[::-1]  # newest first
    assert snapshot(fresh_db) == empty
    assert apply(fresh_db) == ALL  # the repository's migrations/, read as a directory
    assert snapshot(fresh_db) == packaged
    assert apply_migrations(fresh_db) == []  # same ids: up to date either way


def test_rollback_goes_one_migration_at_a_time_by_default(fresh_db: str) -> None:
    apply_migrations(fresh_db)
    assert rollback_migrations(fresh_db) == [FOURTH]
    assert "idx_working_memory_session_created" not in str(snapshot(fresh_db)["indexes"])
    assert "idempotency_key" in str(snapshot(fresh_db)["columns"])
    assert rollback_migrations(fresh_db) == [THIRD]  # grants only: the schema is unchanged
    assert rollback_migrations(fresh_db) == [SECOND]
    assert "idempotency_key" not in str(snapshot(fresh_db)["columns"])
    assert rollback_migrations(fresh_db, count=5) == [FIRST]
    assert rollback_migrations(fresh_db) == []
    assert all(not rows for rows in snapshot(fresh_db).values())


def test_yoyo_command_line_with_the_package_source(fresh_db: str, tmp_path: Path) -> None:
    """What the package README tells a user: no yoyo.ini, the URL from POSTGRES_URL."""
    env = {k: v for k, v in os.environ.items() if k != "MAS_STACK_OUTPUTS"}
    env["POSTGRES_URL"] = fresh_db

    def yoyo(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "yoyo", *args, "--batch"]
        return subprocess.run(
            [*command, "--database", "postgresql+mas://", MIGRATIONS_SOURCE],
            cwd=tmp_path,  # away from the repository's yoyo.ini and migrations/
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )

    yoyo("apply")
    assert {t for t, _ in snapshot(fresh_db)["tables"]} >= {"active_context", "working_memory"}
    with psycopg.connect(fresh_db) as conn:
        applied = conn.execute("SELECT migration_id FROM _yoyo_migration ORDER BY 1").fetchall()
    assert [row[0] for row in applied] == ALL
    runs = [yoyo("rollback", "--all")]
    assert all(not rows for rows in snapshot(fresh_db).values())
    password = psycopg.conninfo.conninfo_to_dict(fresh_db).get("password")
    if password:
        for run in runs:
            assert password not in run.stdout + run.stderr


def test_an_unreachable_database_is_a_connection_error_without_the_password(
    fresh_db: str,
) -> None:
    parts = urlsplit(fresh_db)
    password = "wrong-Secret-4242"
    hosts = parts.netloc.rpartition("@")[2]  # one host:port, or a primary and its standby
    netloc = f"{parts.username}:{password}@{hosts}"
    bad = urlunsplit(parts._replace(netloc=netloc))
    with pytest.raises(StorageConnectionError, match="migrations: cannot connect") as info:
        apply_migrations(bad)
    assert password not in str(info.value)
    assert isinstance(info.value.orig, Exception)


@pytest.mark.parametrize("count", [0, -1, True])
def test_a_bad_count_is_refused(count: Any) -> None:
    with pytest.raises(ValueError, match="count must be a positive number"):
        rollback_migrations("postgresql://127.0.0.1:1/x", count=count)
