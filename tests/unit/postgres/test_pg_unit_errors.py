"""Every psycopg / psycopg_pool failure maps to one specific storage error."""

from __future__ import annotations

import psycopg
import psycopg.errors as pe
import psycopg_pool
import pytest
from pg_fakes import URL, FakePool, Result
from psycopg.pq import DiagnosticField

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageQueryError,
    StorageTimeoutError,
)
from mas_storage_postgres import PostgresAdapter
from mas_storage_postgres._errors import CONSTRAINT_RULES

Pair = tuple[PostgresAdapter, FakePool]


def violation(cls: type[psycopg.Error], constraint: str) -> psycopg.Error:
    return cls(
        "violates constraint",
        info={
            DiagnosticField.CONSTRAINT_NAME: constraint.encode(),
            DiagnosticField.MESSAGE_PRIMARY: b"violates constraint",
        },
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (pe.UniqueViolation("dup"), StorageDataError),
        (pe.CheckViolation("check"), StorageDataError),
        (pe.NotNullViolation("null"), StorageDataError),
        (pe.StringDataRightTruncation("too long"), StorageDataError),
        (pe.InvalidTextRepresentation("bad int"), StorageDataError),
        (pe.NumericValueOutOfRange("range"), StorageDataError),
        (pe.QueryCanceled("statement timeout"), StorageTimeoutError),
        (pe.LockNotAvailable("lock"), StorageTimeoutError),
        (pe.AdminShutdown("terminating connection"), StorageConnectionError),
        (pe.CannotConnectNow("starting up"), StorageConnectionError),
        (pe.TooManyConnections("too many"), StorageConnectionError),
        (pe.InvalidPassword("password"), StorageConnectionError),
        (pe.InvalidCatalogName("no database"), StorageConnectionError),
        (pe.ConnectionFailure("lost"), StorageConnectionError),
        (pe.SyntaxError("syntax"), StorageQueryError),
        (pe.InsufficientPrivilege("denied"), StorageQueryError),
        (pe.SerializationFailure("retry"), StorageQueryError),
        (pe.UndefinedTable("relation does not exist"), StorageQueryError),
        (
            psycopg.OperationalError("server closed the connection unexpectedly"),
            StorageConnectionError,
        ),
        (psycopg.InterfaceError("the connection is closed"), StorageConnectionError),
        (pe.ConnectionTimeout("connection timeout expired"), StorageTimeoutError),
        (psycopg.ProgrammingError("client-side misuse"), StorageQueryError),
        (psycopg_pool.PoolTimeout("couldn't get a connection after 5 sec"), StorageTimeoutError),
        (psycopg_pool.TooManyRequests("queue full"), StorageTimeoutError),
        (psycopg_pool.PoolClosed("closed"), StorageConnectionError),
    ],
)
async def test_driver_errors_map_to_storage_errors(
    l1: Pair, exc: Exception, expected: type[StorageError]
) -> None:
    adapter, pool = l1
    pool.script(Result(error=exc))
    with pytest.raises(StorageError) as info:
        await adapter.count()
    assert type(info.value) is expected
    assert info.value.orig is exc
    assert info.value.__cause__ is exc
    assert info.value.backend == "postgres"
    assert info.value.operation == "count"


@pytest.mark.parametrize("constraint", sorted(CONSTRAINT_RULES))
async def test_each_constraint_is_explained(l1: Pair, constraint: str) -> None:
    adapter, pool = l1
    cls = pe.UniqueViolation if constraint.startswith("unique") else pe.CheckViolation
    pool.script(Result(error=violation(cls, constraint)))
    with pytest.raises(StorageDataError) as info:
        await adapter.count()
    assert f"constraint {constraint} violated: {CONSTRAINT_RULES[constraint]}" in str(info.value)


async def test_unknown_constraint_keeps_the_server_message(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(error=violation(pe.ForeignKeyViolation, "some_fk")))
    with pytest.raises(StorageDataError, match="ForeignKeyViolation: violates constraint"):
        await adapter.count()


async def test_missing_table_points_at_the_migrations(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(
        Result(
            error=pe.UndefinedTable(
                "x",
                info={DiagnosticField.MESSAGE_PRIMARY: b'relation "active_context" does not exist'},
            )
        )
    )
    with pytest.raises(StorageQueryError, match=r"uv run yoyo apply"):
        await adapter.count()


async def test_pool_timeout_names_the_pool_size(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(error=psycopg_pool.PoolTimeout("couldn't get a connection")))
    with pytest.raises(StorageTimeoutError, match=r"within 5s \(pool_size=10\)"):
        await adapter.retrieve("1")


async def test_non_driver_errors_fall_back_to_the_core_rules() -> None:
    adapter = PostgresAdapter(URL)
    assert adapter._map_error(RuntimeError("x"), "store") is None
    assert adapter._map_error(TimeoutError(), "store") is None
    assert isinstance(adapter._map_error(TimeoutError(), "connect"), StorageConnectionError)
    # inside connect, nothing falls back to the core's StorageQueryError
    assert isinstance(adapter._map_error(RuntimeError("x"), "connect"), StorageConnectionError)


async def test_password_is_redacted_from_driver_messages(l1: Pair) -> None:
    adapter, pool = l1
    pool.script(Result(error=psycopg.OperationalError("lost mas:s3cret-pw@127.0.0.1 s3cret-pw")))
    with pytest.raises(StorageConnectionError) as info:
        await adapter.count()
    assert "s3cret-pw" not in str(info.value)
