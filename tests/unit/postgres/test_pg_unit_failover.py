"""A primary and its standbys in one URL: libpq's failover, standby reads, the write check.

Nothing connects: the pools are fakes (pg_fakes). What is asserted is what the adapter hands
libpq and psycopg_pool (target_session_attrs, the checkout check, which pool a call uses),
how the settings read a URL of several hosts, and how yoyo and the redaction cope with one.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
import psycopg.errors as pe
import pytest
from pg_fakes import FakeConn, FakePool, FakeProbe, Result
from psycopg.pq import DiagnosticField
from yoyo.connections import parse_uri

from mas_storage import StorageConnectionError, StorageDataError, mask_url, redact
from mas_storage_postgres import PostgresAdapter, PostgresSettings, yoyo_database_url
from mas_storage_postgres._pool import check_connection, check_writable, refuses_writes

TWO = "postgresql://mas:s3cret-pw@127.0.0.1:55432,127.0.0.1:55472/mas_memory?sslmode=disable"


# -- the settings ------------------------------------------------------------------------------


def test_the_hosts_of_a_url_in_libpq_order() -> None:
    settings = PostgresSettings(url=TWO)
    assert settings.hosts == [("127.0.0.1", 55432), ("127.0.0.1", 55472)]
    one_port = PostgresSettings(url="host=10.0.0.1,10.0.0.2 port=6000 dbname=m sslmode=disable")
    assert one_port.hosts == [("10.0.0.1", 6000), ("10.0.0.2", 6000)]
    no_port = PostgresSettings(url="postgresql://u@h1,h2:7000/db?sslmode=disable")
    assert no_port.hosts == [("h1", None), ("h2", 7000)]


def test_several_hosts_ask_for_the_read_write_server() -> None:
    assert PostgresSettings(url=TWO).session_options() == {"target_session_attrs": "read-write"}
    # One host: libpq's default, as before (no extra condition on a single server).
    single = "postgresql://mas:pw@127.0.0.1:55432/mas_memory?sslmode=disable"
    assert PostgresSettings(url=single).session_options() == {}
    # The URL's own writable choice is kept.
    chosen = PostgresSettings(url=f"{TWO}&target_session_attrs=primary")
    assert chosen.session_options() == {}


@pytest.mark.parametrize("target", ["read-only", "standby", "prefer-standby"])
def test_a_url_that_asks_for_a_standby_is_refused(target: str) -> None:
    with pytest.raises(StorageDataError, match=f"target_session_attrs={target} cannot take"):
        PostgresAdapter({"url": f"{TWO}&target_session_attrs={target}"})


def test_read_from_takes_two_values() -> None:
    assert PostgresAdapter({"url": TWO}).config.read_from == "primary"
    with pytest.raises(StorageDataError, match="read_from"):
        PostgresAdapter({"url": TWO, "read_from": "standby"})


def test_a_multi_host_url_is_masked_whole() -> None:
    assert mask_url(TWO) == (
        "postgresql://mas:***@127.0.0.1:55432,127.0.0.1:55472/mas_memory?sslmode=disable"
    )
    assert "s3cret-pw" not in redact(f"failed at {TWO}")
    assert list(PostgresSettings(url=TWO).secret_values()) == ["s3cret-pw"]


def test_telemetry_names_the_first_host() -> None:
    facts = PostgresAdapter({"url": TWO})._telemetry_facts()
    assert (facts.server_address, facts.server_port, facts.namespace) == (
        "127.0.0.1",
        55432,
        "mas_memory",
    )


# -- yoyo --------------------------------------------------------------------------------------


def test_yoyo_gets_the_hosts_as_libpq_parameters() -> None:
    url = yoyo_database_url(TWO)
    parsed = parse_uri(url)
    assert (parsed.scheme, parsed.hostname, parsed.port) == ("postgresql+psycopg", None, None)
    assert (parsed.username, parsed.password, parsed.database) == ("mas", "s3cret-pw", "mas_memory")
    assert parsed.args == {
        "sslmode": "disable",
        "host": "127.0.0.1,127.0.0.1",
        "port": "55432,55472",
        "target_session_attrs": "read-write",
    }


def test_yoyo_keeps_a_single_host_url_and_v6_lists() -> None:
    single = "postgresql://u:p@127.0.0.1:5/db?sslmode=disable"
    assert yoyo_database_url(single) == "postgresql+psycopg://u:p@127.0.0.1:5/db?sslmode=disable"
    args = parse_uri(yoyo_database_url("postgresql://u:p@[::1]:5,h2/db")).args
    assert (args["host"], args["port"]) == ("::1,h2", "5,")


# -- the pools ---------------------------------------------------------------------------------


async def test_a_multi_host_url_gives_a_read_write_pool_with_the_write_check(
    fake_driver: type[FakePool],
) -> None:
    async with PostgresAdapter({"url": TWO, "timeout": 2}) as adapter:
        (pool,) = fake_driver.instances
        assert adapter.read_pool is None
        assert pool.kwargs["kwargs"]["target_session_attrs"] == "read-write"
        assert pool.kwargs["check"] is check_writable
        # The probe asked for the writable server too.
        assert FakeProbe.calls[0][1]["target_session_attrs"] == "read-write"


async def test_prefer_standby_adds_a_second_pool_for_the_reads(
    fake_driver: type[FakePool],
) -> None:
    config = {"url": TWO, "read_from": "prefer-standby", "table": "working_memory"}
    async with PostgresAdapter(config) as adapter:
        writes, reads = fake_driver.instances
        assert (adapter.pool, adapter.read_pool) == (writes, reads)
        assert reads.kwargs["kwargs"]["target_session_attrs"] == "prefer-standby"
        assert reads.kwargs["check"] is check_connection  # alive is enough for a read
        assert reads.kwargs["name"].endswith("-standby-reads")
        assert reads.opened == {"wait": True, "timeout": 5.0}
        before = (len(writes.executed), len(reads.executed))
        reads.script(Result(), Result(), Result(rows=[(0,)]))  # retrieve, search, count
        await adapter.retrieve("1")
        await adapter.search({"session_id": "s"})
        await adapter.count()
        await adapter.get_recent_turns("s")
        await adapter.get_facts("s")
        assert len(writes.executed) == before[0]  # every read went to the standby pool
        assert len(reads.executed) == before[1] + 5
        writes.script(Result(rows=[(7,)]))
        assert await adapter.add_fact("s", "t", "c") == 7
        await adapter.delete("1")
        await adapter.update_fact(7, content="d")
        assert len(writes.executed) == before[0] + 3
        assert len(reads.executed) == before[1] + 5
        reads.script(Result(rows=[(3, 1, "15.18")]))  # metrics: a connection of each pool
        writes.script(Result(rows=[(3, 1, "15.18")]))
        backend = (await adapter.get_metrics())["backend_specific"]
        assert backend["server"] == backend["read_server"] == "127.0.0.1:55432"
        assert "read_pool" in backend
    assert writes.closed and reads.closed
    assert adapter.read_pool is None


async def test_a_read_pool_that_cannot_fill_closes_both(fake_driver: type[FakePool]) -> None:
    original = FakePool.open

    async def failing(self: FakePool, wait: bool = False, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        if self.kwargs["name"].endswith("-standby-reads"):
            raise psycopg.OperationalError("no server answers")
        await original(self, wait, timeout)

    FakePool.open = failing  # type: ignore[method-assign]
    try:
        adapter = PostgresAdapter({"url": TWO, "read_from": "prefer-standby"})
        with pytest.raises(StorageConnectionError, match="no server answers"):
            await adapter.connect()
    finally:
        FakePool.open = original  # type: ignore[method-assign]
    assert [p.closed for p in fake_driver.instances] == [True, True]
    assert adapter.pool is None and not adapter.is_connected


# -- the write check and the read-only error ---------------------------------------------------


class _Checked(FakeConn):
    """A fake connection for the checkout check: ``execute("")`` is the ping; ``ready``: the
    server sent something while it sat idle (a ``ParameterStatus``, or the end of stream)."""

    def __init__(self, status: dict[str, str], *, ready: bool = True) -> None:
        super().__init__(FakePool("x"))
        self.info.status = status
        self.autocommit = True
        self.pings = 0
        self.ready = ready
        self.last_reply = time.monotonic()
        self._pool = None  # not in a pool: nothing to drain

    def socket_ready(self) -> bool:
        return self.ready

    async def execute(self, statement: Any, params: Any = None) -> Any:
        self.pings += 1
        return await super().execute(statement, params)


@pytest.mark.parametrize(
    ("status", "refused"),
    [
        ({"in_hot_standby": "off", "default_transaction_read_only": "off"}, False),
        ({}, False),  # a server before 14 reports neither: libpq checked at connect
        ({"in_hot_standby": "on"}, True),
        ({"in_hot_standby": "off", "default_transaction_read_only": "on"}, True),
    ],
)
async def test_the_write_check_pings_then_refuses_a_read_only_server(
    status: dict[str, str], refused: bool
) -> None:
    conn = _Checked(status)  # its socket is ready: the check pings first
    assert refuses_writes(conn) is refused  # type: ignore[arg-type]
    if refused:
        with pytest.raises(psycopg.OperationalError, match="takes no writes now"):
            await check_writable(conn)  # type: ignore[arg-type]
    else:
        await check_writable(conn)  # type: ignore[arg-type]
    assert conn.pings == 1


async def test_a_write_refused_by_a_read_only_server_is_a_connection_error(
    l1: tuple[PostgresAdapter, FakePool],
) -> None:
    adapter, pool = l1
    message = b"cannot execute INSERT in a read-only transaction"
    error = pe.ReadOnlySqlTransaction("ro", info={DiagnosticField.MESSAGE_PRIMARY: message})
    assert error.sqlstate == "25006"
    pool.script(Result(error=error))
    with pytest.raises(StorageConnectionError, match="a failover in progress") as info:
        await adapter.add_turn("s", "hello", turn_id=1)
    assert info.value.orig is error


async def test_the_write_check_refuses_a_read_only_server_without_a_ping() -> None:
    """A connection used moments ago, with nothing on its socket, is not pinged (._pool); the
    last role its server reported still decides."""
    conn = _Checked({"in_hot_standby": "on"}, ready=False)
    with pytest.raises(psycopg.OperationalError, match="takes no writes now"):
        await check_writable(conn)  # type: ignore[arg-type]
    writable = _Checked({"in_hot_standby": "off"}, ready=False)
    await check_writable(writable)  # type: ignore[arg-type]
    assert conn.pings == writable.pings == 0
