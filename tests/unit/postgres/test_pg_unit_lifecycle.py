"""connect / disconnect on the fake pool: pool arguments, idempotence, failure cleanup."""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
import psycopg_pool
import pytest
from pg_fakes import URL, FakePool, FakeProbe, Result

from mas_storage import StorageConnectionError
from mas_storage_postgres import PostgresAdapter
from mas_storage_postgres._pool import check_connection


async def test_connect_opens_a_checked_pool_and_verifies_it(fake_driver: type[FakePool]) -> None:
    adapter = PostgresAdapter({"url": URL, "pool_size": 7, "min_size": 3, "timeout": 2.5})
    await adapter.connect()
    try:
        (pool,) = fake_driver.instances
        assert adapter.is_connected
        assert adapter.pool is pool
        assert pool.conninfo == URL
        assert pool.kwargs["min_size"] == 3
        assert pool.kwargs["max_size"] == 7
        assert pool.kwargs["timeout"] == 2.5
        assert pool.kwargs["open"] is False
        assert pool.kwargs["check"] is check_connection  # no round trip unless needed
        assert pool.kwargs["kwargs"] == {"autocommit": True, "connect_timeout": 3}
        assert pool.opened == {"wait": True, "timeout": 2.5}
        assert pool.executed == [("SELECT 1", None)]
        # The direct probe ran first, with the same connection arguments.
        assert FakeProbe.calls == [(URL, {"autocommit": True, "connect_timeout": 3})]
    finally:
        await adapter.disconnect()


async def test_statement_timeout_goes_into_the_connection_options(
    fake_driver: type[FakePool],
) -> None:
    adapter = PostgresAdapter({"url": URL, "statement_timeout": 1.5, "timeout": 1})
    await adapter.connect()
    try:
        kwargs = fake_driver.instances[0].kwargs["kwargs"]
        assert kwargs == {
            "autocommit": True,
            "connect_timeout": 2,
            "options": "-c statement_timeout=1500",
        }
    finally:
        await adapter.disconnect()


async def test_connect_twice_keeps_one_pool(fake_driver: type[FakePool]) -> None:
    adapter = PostgresAdapter(URL)
    await adapter.connect()
    await adapter.connect()
    await asyncio.gather(adapter.connect(), adapter.connect())
    assert len(fake_driver.instances) == 1
    await adapter.disconnect()


async def test_disconnect_is_idempotent_and_safe_before_connect(
    fake_driver: type[FakePool],
) -> None:
    adapter = PostgresAdapter(URL)
    await adapter.disconnect()
    await adapter.connect()
    pool = fake_driver.instances[0]
    await adapter.disconnect()
    await adapter.disconnect()
    assert pool.closed
    assert adapter.pool is None
    assert not adapter.is_connected


async def test_reconnect_after_disconnect_builds_a_new_pool(fake_driver: type[FakePool]) -> None:
    adapter = PostgresAdapter(URL)
    await adapter.connect()
    await adapter.disconnect()
    await adapter.connect()
    assert len(fake_driver.instances) == 2
    assert adapter.pool is fake_driver.instances[1]
    await adapter.disconnect()


async def test_context_manager_connects_and_disconnects(fake_driver: type[FakePool]) -> None:
    async with PostgresAdapter(URL) as adapter:
        assert adapter.is_connected
    assert not adapter.is_connected
    assert fake_driver.instances[0].closed


async def test_operation_before_connect_is_a_connection_error(
    fake_driver: type[FakePool],
) -> None:
    adapter = PostgresAdapter(URL)
    with pytest.raises(StorageConnectionError, match="not connected"):
        await adapter.retrieve("1")
    assert fake_driver.instances == []


async def test_auto_connect_connects_on_first_use(fake_driver: type[FakePool]) -> None:
    adapter = PostgresAdapter({"url": URL, "auto_connect": True})
    assert await adapter.retrieve("1") is None
    assert adapter.is_connected
    await adapter.disconnect()


async def test_unreachable_server_fails_at_the_probe_without_a_pool(
    fake_driver: type[FakePool],
) -> None:
    FakeProbe.error = psycopg.OperationalError(
        'connection failed: connection to server at "127.0.0.1", port 61599 failed: '
        "Connection refused"
    )
    adapter = PostgresAdapter(URL)
    with pytest.raises(StorageConnectionError, match="Connection refused") as info:
        await adapter.connect()
    assert isinstance(info.value.orig, psycopg.OperationalError)
    assert info.value.operation == "connect"
    assert fake_driver.instances == []
    assert not adapter.is_connected


async def test_refused_password_never_appears_in_the_error(fake_driver: type[FakePool]) -> None:
    FakeProbe.error = psycopg.OperationalError(
        "connection failed: FATAL: password authentication failed for user mas "
        "(dsn postgresql://mas:s3cret-pw@127.0.0.1:55432/mas_memory)"
    )
    with pytest.raises(StorageConnectionError) as info:
        await PostgresAdapter(URL).connect()
    assert "s3cret-pw" not in str(info.value)
    assert "password authentication failed" in str(info.value)


@pytest.mark.parametrize(
    "error",
    [
        RuntimeError("an engine bug nobody expected"),
        psycopg.ProgrammingError('invalid connection option "sslmodee"'),
        psycopg.errors.SyntaxError("an error with a SQLSTATE class the adapter maps to query"),
        KeyError("lost"),
    ],
    ids=["unexpected", "programming", "query-class", "key-error"],
)
async def test_any_failure_inside_connect_is_a_connection_error(
    fake_driver: type[FakePool], error: Exception
) -> None:
    """A failed connect is a StorageConnectionError whatever raised (StorageQueryError before,
    for an exception the adapter did not classify)."""
    FakeProbe.error = error
    adapter = PostgresAdapter(URL)
    with pytest.raises(StorageConnectionError) as info:
        await adapter.connect()
    assert type(info.value) is StorageConnectionError
    assert info.value.orig is error
    assert info.value.operation == "connect"
    assert type(error).__name__ in str(info.value) or str(error) in str(info.value)
    assert not adapter.is_connected


async def test_probe_timeout_is_a_connection_error(
    fake_driver: type[FakePool], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def hang(conninfo: str, **kwargs: Any) -> None:
        await asyncio.sleep(10)

    monkeypatch.setattr(psycopg.AsyncConnection, "connect", hang)
    adapter = PostgresAdapter({"url": URL, "timeout": 0.05})
    with pytest.raises(StorageConnectionError, match=r"did not answer within 0.05s"):
        await adapter.connect()
    assert fake_driver.instances == []


async def test_pool_that_cannot_fill_is_closed_and_reported(
    fake_driver: type[FakePool], monkeypatch: pytest.MonkeyPatch
) -> None:
    original_open = FakePool.open

    async def failing_open(self: FakePool, wait: bool = False, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        self.open_error = psycopg_pool.PoolTimeout("pool initialization incomplete after 5 sec")
        await original_open(self, wait, timeout)

    monkeypatch.setattr(FakePool, "open", failing_open)
    adapter = PostgresAdapter(URL)
    with pytest.raises(StorageConnectionError, match="did not open within 5s"):
        await adapter.connect()
    assert fake_driver.instances[0].closed
    assert adapter.pool is None
    assert not adapter.is_connected


async def test_backend_metrics_report_pool_and_rows(l1: tuple[PostgresAdapter, FakePool]) -> None:
    adapter, pool = l1
    pool.script(Result(rows=[(3, 1, "15.18")]))
    data = await adapter.get_metrics()
    backend = data["backend_specific"]
    assert backend["table"] == "active_context"
    assert (backend["active_rows"], backend["expired_rows"]) == (3, 1)
    assert backend["server_version"] == "15.18"
    assert backend["pool"]["pool_max"] == 10
    live = "FILTER (WHERE (ttl_expires_at IS NULL OR ttl_expires_at > now()))"
    assert live in pool.statements()[0]
