"""Configuration, client construction, connect/disconnect and error translation."""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

import pytest
from pydantic import SecretStr
from redis import exceptions as rx

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageQueryError,
    StorageTimeoutError,
    create_adapter,
)
from mas_storage_redis import RedisAdapter, RedisSettings

PASSWORD = "unit-Secret-pw-42"
URL = f"redis://:{PASSWORD}@127.0.0.1:61999/0"


def test_defaults_follow_the_spec() -> None:
    adapter = RedisAdapter({})
    assert (adapter.window_size, adapter.ttl_seconds, adapter.refresh_ttl_on_read) == (
        10,
        86400,
        False,
    )
    cfg = adapter.config
    # The local stack's port (the spec's 6379 is the lab's; REDIS_URL or the outputs set it).
    assert (cfg.host, cfg.port, cfg.db, cfg.url) == ("127.0.0.1", 56379, 0, None)
    assert (cfg.socket_timeout, cfg.pool_timeout, cfg.retries) == (5.0, 5.0, 2)
    assert adapter.client is None
    assert not adapter.is_connected


def test_registry_builds_the_adapter() -> None:
    adapter = create_adapter("redis", {"url": URL, "window_size": 3})
    assert isinstance(adapter, RedisAdapter)
    assert adapter.window_size == 3


def _url(adapter: RedisAdapter) -> str | None:
    url = adapter.config.url
    return None if url is None else url.get_secret_value()


def test_url_string_and_settings_configs() -> None:
    assert _url(RedisAdapter(URL)) == URL
    settings = RedisSettings(url=URL, window_size=4, ttl_seconds=60, refresh_ttl_on_read=True)
    adapter = RedisAdapter(settings)
    assert adapter.config is settings
    assert _url(adapter) == URL
    assert (adapter.window_size, adapter.ttl_seconds, adapter.refresh_ttl_on_read) == (4, 60, True)
    # A SecretStr straight in a dict is accepted too.
    assert _url(RedisAdapter({"url": SecretStr(URL)})) == URL


def test_environment_variables_reach_every_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """REDIS_RETRIES and friends: every key the adapter reads has its variable."""
    monkeypatch.delenv("MAS_STACK_OUTPUTS", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env, no .mas/stack-outputs.json
    monkeypatch.setenv("REDIS_URL", URL)
    monkeypatch.setenv("REDIS_RETRIES", "5")
    monkeypatch.setenv("REDIS_MAX_CONNECTIONS", "8")
    monkeypatch.setenv("REDIS_METRICS__SAMPLING_RATE", "0.25")
    monkeypatch.setenv("REDIS_UNRELATED_THING", "ignored")  # the environment is shared
    adapter = RedisAdapter(RedisSettings(window_size=3))
    assert (adapter.config.retries, adapter.config.max_connections) == (5, 8)
    assert adapter.config.metrics.sampling_rate == 0.25
    assert adapter.window_size == 3  # an argument wins over the environment
    assert _url(adapter) == URL


def test_unknown_key_is_named_with_a_suggestion() -> None:
    with pytest.raises(StorageDataError, match=r"unknown key 'retrys' \(did you mean 'retries'"):
        RedisAdapter({"url": URL, "retrys": 3})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("window_size", -1),
        ("window_size", True),
        ("window_size", "10"),
        ("ttl_seconds", 0),
        ("ttl_seconds", 2**31),  # Redis would refuse the EXPIRE after the LPUSH applied
        ("window_size", 2**31),
        ("ttl_seconds", 1.5),
        ("refresh_ttl_on_read", "yes"),
        ("socket_timeout", 0),
        ("socket_timeout", "5"),
        ("socket_timeout", float("nan")),
        ("retries", -1),
        ("health_check_interval", -1),
        ("max_connections", 0),
        ("port", 0),
        ("db", -1),
        ("url", "http://127.0.0.1:6379"),
        ("pool_timeout", 0),
    ],
)
def test_bad_config_is_refused(key: str, value: Any) -> None:
    with pytest.raises(StorageDataError, match=key) as info:
        RedisAdapter({key: value})
    assert "http://127.0.0.1:6379" not in str(info.value)  # the value is never echoed


def test_password_never_in_repr_or_where() -> None:
    adapter = RedisAdapter({"url": URL})
    assert PASSWORD not in repr(adapter)
    assert PASSWORD not in adapter._where
    assert RedisAdapter({"host": "h", "port": 1, "db": 2})._where == "h:1/2"


async def test_client_from_url_has_bounded_retries_and_health_checks() -> None:
    adapter = RedisAdapter(
        {"url": URL, "socket_timeout": 1.5, "retries": 3, "health_check_interval": 7}
    )
    client = adapter._create_client()
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert kwargs["password"] == PASSWORD
        assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 1.5
        assert kwargs["health_check_interval"] == 7
        retry = kwargs["retry"]
        assert retry.get_retries() == 3
        # Connection errors are retried, timeouts are not (an outage fails within the timeout).
        assert rx.ConnectionError in retry._supported_errors
        assert rx.TimeoutError not in retry._supported_errors
        assert kwargs.get("decode_responses", False) is False
    finally:
        await client.aclose()


async def test_client_from_host_port_passes_credentials() -> None:
    adapter = RedisAdapter(
        {"host": "127.0.0.1", "port": 61998, "db": 2, "username": "u", "password": PASSWORD}
    )
    client = adapter._create_client()
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("127.0.0.1", 61998, 2)
        assert (kwargs["username"], kwargs["password"]) == ("u", PASSWORD)
    finally:
        await client.aclose()


@pytest.mark.parametrize("cluster", [None, False])
async def test_connect_creates_checks_and_is_idempotent(
    fake: Any, monkeypatch: pytest.MonkeyPatch, cluster: bool | None
) -> None:
    """One round trip at connect: ``INFO cluster`` when the adapter must find out whether the
    server runs in cluster mode (``cluster`` unset), else ``PING``."""
    adapter = RedisAdapter({"url": URL, "cluster": cluster})
    monkeypatch.setattr(adapter, "_create_client", lambda: fake)
    fake.info = AsyncMock(return_value={"cluster_enabled": 0})
    ping, aclose = fake.ping, fake.aclose
    await adapter.connect()
    await adapter.connect()
    assert adapter.is_connected
    assert adapter.client is fake
    assert not adapter.is_cluster
    if cluster is None:
        fake.info.assert_awaited_once_with("cluster")
        ping.assert_not_awaited()
    else:
        ping.assert_awaited_once()
        fake.info.assert_not_awaited()
    await adapter.disconnect()
    aclose.assert_awaited_once()
    assert adapter.client is None
    assert not adapter.is_connected
    await adapter.disconnect()  # twice is fine
    aclose.assert_awaited_once()


async def test_failed_connect_closes_the_client_it_created(
    fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.info = AsyncMock(side_effect=rx.ConnectionError(f"Error 111 connecting to {URL}"))
    fake.aclose.side_effect = RuntimeError("close failed too")  # must not mask the cause
    adapter = RedisAdapter({"url": URL})
    monkeypatch.setattr(adapter, "_create_client", lambda: fake)
    with pytest.raises(StorageConnectionError) as info:
        await adapter.connect()
    assert isinstance(info.value.orig, rx.ConnectionError)
    assert PASSWORD not in str(info.value)
    fake.aclose.assert_awaited_once()
    assert adapter.client is None
    assert not adapter.is_connected


async def test_injected_client_is_never_closed(fake: Any) -> None:
    adapter = RedisAdapter({"url": URL}, client=fake)
    async with adapter:
        assert adapter.is_connected
    assert not adapter.is_connected
    fake.aclose.assert_not_awaited()
    assert adapter.client is fake
    fake.ping.side_effect = rx.TimeoutError("Timeout connecting to server")
    with pytest.raises(StorageTimeoutError):
        await adapter.connect()
    fake.aclose.assert_not_awaited()


async def test_disconnect_survives_a_failing_close(
    fake: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = RedisAdapter({"url": URL})
    monkeypatch.setattr(adapter, "_create_client", lambda: fake)
    await adapter.connect()
    fake.aclose.side_effect = OSError("socket already gone")
    with caplog.at_level(logging.WARNING):
        await adapter.disconnect()
    assert not adapter.is_connected
    assert adapter.client is None
    assert "Closing the Redis client failed" in caplog.text


async def test_operations_before_connect_are_refused(fake: Any) -> None:
    adapter = RedisAdapter({"url": URL}, client=fake)
    with pytest.raises(StorageConnectionError, match="not connected"):
        await adapter.search({"session_id": "s"})
    fake.lrange.assert_not_awaited()


async def test_missing_client_while_marked_connected_is_a_connection_error() -> None:
    adapter = RedisAdapter({"url": URL})
    adapter._connected = True  # e.g. a disconnect racing an in-flight call
    with pytest.raises(StorageConnectionError, match="no client"):
        await adapter.get_session_size("s")


@pytest.mark.parametrize(
    ("driver_error", "expected"),
    [
        (rx.ConnectionError("Connection closed by server."), StorageConnectionError),
        (rx.BusyLoadingError("Redis is loading the dataset in memory"), StorageConnectionError),
        (rx.TimeoutError("Timeout reading from 127.0.0.1:6379"), StorageTimeoutError),
        (rx.AuthenticationError("invalid username-password pair"), StorageConnectionError),
        (rx.NoPermissionError("NOPERM this user has no permissions"), StorageConnectionError),
        (rx.InvalidResponse("Protocol Error: x"), StorageConnectionError),
        (rx.ResponseError("WRONGTYPE Operation against a key"), StorageDataError),
        (
            rx.ResponseError(
                "Command # 1 (LPUSH k v) of pipeline caused error: "
                "('WRONGTYPE Operation against a key holding the wrong kind of value',)"
            ),
            StorageDataError,
        ),
        (rx.ResponseError("ERR unknown command"), StorageQueryError),
        (rx.ReadOnlyError("You can't write against a read only replica."), StorageQueryError),
        (rx.OutOfMemoryError("OOM command not allowed"), StorageQueryError),
        (rx.ExecAbortError("EXECABORT Transaction discarded"), StorageQueryError),
        (rx.DataError("Invalid input of type: 'NoneType'"), StorageDataError),
        (rx.RedisError("something else"), StorageQueryError),
        (RuntimeError("not a redis error"), StorageQueryError),
    ],
)
async def test_driver_errors_are_translated(
    adapter: RedisAdapter, fake: Any, driver_error: Exception, expected: type[StorageError]
) -> None:
    fake.lrange.side_effect = driver_error
    with pytest.raises(expected) as info:
        await adapter.search({"session_id": "s"})
    err = info.value
    assert type(err) is expected
    assert err.orig is driver_error
    assert err.__cause__ is driver_error
    assert (err.backend, err.operation) == ("redis", "search")
    pickle.loads(pickle.dumps(err))  # storage errors pickle


async def test_errors_in_pipelines_are_translated(adapter: RedisAdapter, fake: Any) -> None:
    fake.pipeline_error = rx.ConnectionError("Connection reset by peer")
    with pytest.raises(StorageConnectionError):
        await adapter.store({"session_id": "s", "turn_id": 1, "content": "x"})


async def test_passwords_are_masked_in_driver_messages(adapter: RedisAdapter, fake: Any) -> None:
    fake.lrange.side_effect = rx.AuthenticationError(f"bad password {PASSWORD}")
    with pytest.raises(StorageConnectionError) as info:
        await adapter.search({"session_id": "s"})
    assert PASSWORD not in str(info.value)
    assert "refused the credentials" in str(info.value)
    assert "127.0.0.1:61999" in str(info.value)


async def test_backend_metrics(adapter: RedisAdapter, fake: Any) -> None:
    fake.info = AsyncMock(
        return_value={"redis_version": "7.0.15", "used_memory": 1024, "keyspace_hits": 3}
    )
    metrics = await adapter.get_metrics()
    backend = metrics["backend_specific"]
    assert backend["redis_version"] == "7.0.15"
    assert backend["used_memory"] == 1024
    assert backend["keyspace_misses"] is None
    assert (backend["window_size"], backend["ttl_seconds"]) == (5, 3600)
    assert backend["refresh_ttl_on_read"] is False
