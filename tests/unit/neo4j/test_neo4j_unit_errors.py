"""Error translation: every neo4j exception becomes the right StorageError, chained, with no
password in the message, and no raw driver exception escapes an operation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from neo4j import exceptions as nx

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
)
from mas_storage_neo4j import Neo4jAdapter

PASSWORD = "hunter2-very-secret"


def _server(code: str, message: str = "server says no") -> Exception:
    return nx.Neo4jError._hydrate_neo4j(code=code, message=message)


CASES: list[tuple[Exception, type[StorageError]]] = [
    (_server("Neo.ClientError.Security.Unauthorized"), StorageConnectionError),
    (_server("Neo.ClientError.Security.TokenExpired"), StorageConnectionError),
    (nx.ServiceUnavailable("Couldn't connect to 127.0.0.1:61687"), StorageConnectionError),
    (nx.SessionExpired("gone"), StorageConnectionError),
    (_server("Neo.TransientError.General.DatabaseUnavailable"), StorageConnectionError),
    (nx.ConnectionAcquisitionTimeoutError("pool exhausted"), StorageTimeoutError),
    (_server("Neo.ClientError.Statement.SyntaxError"), StorageQueryError),
    (_server("Neo.ClientError.Statement.TypeError"), StorageDataError),
    (_server("Neo.ClientError.Schema.ConstraintValidationFailed"), StorageDataError),
    (
        _server("Neo.ClientError.Transaction.TransactionTimedOutClientConfiguration"),
        StorageTimeoutError,
    ),
    (_server("Neo.ClientError.Transaction.TransactionTimedOut"), StorageTimeoutError),
    (_server("Neo.TransientError.Transaction.LockAcquisitionTimeout"), StorageTimeoutError),
    (_server("Neo.ClientError.Database.DatabaseNotFound"), StorageNotFoundError),
    (_server("Neo.ClientError.Statement.AccessMode"), StorageQueryError),
    (_server("Neo.ClientError.Security.Forbidden"), StorageQueryError),
    (_server("Neo.TransientError.Transaction.DeadlockDetected"), StorageQueryError),
    (_server("Neo.DatabaseError.General.UnknownError"), StorageQueryError),
    (nx.ConfigurationError("bad option"), StorageDataError),
    (nx.ResultConsumedError(None, "consumed"), StorageQueryError),
    (ConnectionRefusedError(111, "refused"), StorageConnectionError),
    (TimeoutError("slow"), StorageTimeoutError),
]


@pytest.fixture
def failing(fake_driver: Any) -> Any:
    """Make every query raise the given exception."""

    def install(exc: Exception) -> None:
        fake_driver.respond(lambda q, p, m: exc)

    return install


@pytest.mark.parametrize(("exc", "expected"), CASES, ids=lambda v: type(v).__name__)
async def test_driver_errors_are_translated(
    adapter: Any, failing: Any, exc: Exception, expected: type[StorageError]
) -> None:
    failing(exc)
    with pytest.raises(StorageError) as info:
        await adapter.retrieve("a")
    err = info.value
    assert type(err) is expected
    assert err.orig is exc
    assert err.__cause__ is exc
    assert (err.backend, err.operation) == ("neo4j", "retrieve")


async def test_read_only_violation_says_how_to_write(adapter: Any, failing: Any) -> None:
    failing(_server("Neo.ClientError.Statement.AccessMode", "Writing in read access mode"))
    with pytest.raises(StorageQueryError, match="pass 'write': True"):
        await adapter.search({"cypher": "CREATE (n)"})


async def test_oversized_transaction_says_to_split(adapter: Any, failing: Any) -> None:
    failing(_server("Neo.TransientError.General.MemoryPoolOutOfMemoryError", "limit reached"))
    with pytest.raises(StorageQueryError, match="split the call"):
        await adapter.store_many([{"label": "P", "properties": {"id": "a"}}])


async def test_auth_failure_never_shows_the_password(driver_class: Any, monkeypatch: Any) -> None:
    fake = driver_class()
    fake.connectivity_error = _server(
        "Neo.ClientError.Security.Unauthorized", f"bad credentials {PASSWORD}"
    )
    monkeypatch.setattr(
        "mas_storage_neo4j._adapter.AsyncGraphDatabase.driver", lambda uri, **kw: fake
    )
    adapter = Neo4jAdapter({"uri": "bolt://127.0.0.1:57687", "password": PASSWORD})
    with pytest.raises(StorageConnectionError, match="authentication failed for user 'neo4j'") as i:
        await adapter.connect()
    assert PASSWORD not in str(i.value)
    assert PASSWORD not in repr(i.value)
    assert PASSWORD not in repr(adapter)


async def test_secret_in_a_driver_message_is_masked(adapter: Any, failing: Any) -> None:
    adapter._secret_values = (PASSWORD,)
    failing(nx.ServiceUnavailable(f"cannot reach bolt://neo4j:{PASSWORD}@host"))
    with pytest.raises(StorageConnectionError) as info:
        await adapter.delete("a")
    assert PASSWORD not in str(info.value)


async def test_cancellation_is_not_wrapped(adapter: Any, failing: Any) -> None:
    failing(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        await adapter.retrieve("a")


def test_unclaimed_exceptions_fall_back_to_the_core() -> None:
    adapter = Neo4jAdapter({"uri": "bolt://h", "password": PASSWORD})
    assert adapter._map_error(RuntimeError("x"), "store") is None
    assert adapter._map_error(ValueError("x"), "store") is None


def test_private_driver_errors_are_claimed() -> None:
    from neo4j._exceptions import BoltProtocolError, SocketDeadlineExceededError

    adapter = Neo4jAdapter({"uri": "bolt://h", "password": PASSWORD})
    assert adapter._map_error(SocketDeadlineExceededError("t"), "store") is StorageTimeoutError
    assert (
        adapter._map_error(BoltProtocolError("p", ("127.0.0.1", 1)), "store")
        is StorageConnectionError
    )


@pytest.mark.parametrize("cls", [StorageConnectionError, StorageQueryError, StorageDataError])
def test_translated_errors_pickle(cls: type[StorageError]) -> None:
    import pickle

    err = cls("neo4j store failed", backend="neo4j", operation="store")
    again = pickle.loads(pickle.dumps(err))
    assert (type(again), again.message, again.operation) == (cls, err.message, "store")
