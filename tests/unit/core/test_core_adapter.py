"""The abstract adapter: lifecycle, the shared operation wrapper, error translation."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from pydantic import SecretStr

from mas_storage import (
    AdapterSettings,
    StorageAdapter,
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageQueryError,
    StorageTimeoutError,
)
from mas_storage._operations import OPERATION_ATTR

SECRET = "s3cr3t-Passw0rd"


class MemorySettings(AdapterSettings):
    """The test adapter's own settings model (no prefix: explicit values only)."""

    url: SecretStr | None = None
    password: SecretStr | None = None


class MemoryAdapter(StorageAdapter):
    """A dict-backed adapter: enough to exercise the base class for real."""

    kind = "memory"
    settings_model = MemorySettings

    def __init__(self, config: Any = None, *, fail_connect: bool = False) -> None:
        super().__init__(config)
        self.fail_connect = fail_connect
        self.data: dict[str, dict[str, Any]] = {}
        self.connect_calls = 0
        self.disconnect_calls = 0
        self.resources_open = False

    async def connect(self) -> None:
        self.connect_calls += 1
        self.resources_open = True  # e.g. a pool opened before the check fails
        await asyncio.sleep(0.01)
        if self.fail_connect:
            raise OSError(f"refused: postgresql://mas:{SECRET}@127.0.0.1:1/db")
        await self.ping()  # a public call from inside connect() passes the check
        self._connected = True

    async def disconnect(self) -> None:
        self.disconnect_calls += 1
        self.resources_open = False
        self._connected = False

    async def ping(self) -> bool:
        return True

    async def store(self, data: dict[str, Any]) -> str:
        if "boom" in data:
            raise RuntimeError(f"driver said no to password {SECRET}")
        if "slow" in data:
            raise TimeoutError("read timed out")
        if "bad" in data:
            raise StorageDataError("bad field")
        key = str(len(self.data))
        self.data[key] = dict(data)
        return key

    async def retrieve(self, id: str) -> dict[str, Any] | None:
        return self.data.get(id)

    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.data.values())[: query.get("limit", 10)]

    async def delete(self, id: str) -> bool:
        return self.data.pop(id, None) is not None


def test_abstract_class_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match="abstract"):
        StorageAdapter({})  # type: ignore[abstract]

    class Partial(StorageAdapter):
        async def connect(self) -> None: ...

    with pytest.raises(TypeError, match="abstract"):
        Partial({})  # type: ignore[abstract]


def test_public_coroutines_are_wrapped_once() -> None:
    for name in ("connect", "disconnect", "store", "retrieve", "search", "delete", "ping"):
        assert getattr(getattr(MemoryAdapter, name), OPERATION_ATTR) == name

    class Sub(MemoryAdapter):
        async def extra(self) -> int:
            return 1

    # Inherited methods are not wrapped twice; new ones are wrapped.
    assert Sub.store is MemoryAdapter.store
    assert getattr(Sub.extra, OPERATION_ATTR) == "extra"
    assert not hasattr(StorageAdapter.get_metrics, OPERATION_ATTR)


async def test_round_trip_and_is_connected() -> None:
    adapter = MemoryAdapter({})
    assert not adapter.is_connected
    await adapter.connect()
    assert adapter.is_connected
    key = await adapter.store({"content": "hello"})
    assert await adapter.retrieve(key) == {"content": "hello"}
    assert await adapter.search({}) == [{"content": "hello"}]
    assert await adapter.delete(key) is True
    assert await adapter.delete(key) is False
    assert await adapter.retrieve(key) is None
    await adapter.disconnect()
    await adapter.disconnect()  # idempotent
    assert not adapter.is_connected


async def test_operation_before_connect_is_refused() -> None:
    adapter = MemoryAdapter({})
    with pytest.raises(StorageConnectionError, match=r"not connected.*before store\(\)") as info:
        await adapter.store({"a": 1})
    assert info.value.backend == "memory" and info.value.operation == "store"
    assert adapter.data == {} and adapter.connect_calls == 0


async def test_auto_connect_connects_once_under_concurrent_first_calls() -> None:
    adapter = MemoryAdapter({"auto_connect": True})
    ids = await asyncio.gather(*(adapter.store({"n": i}) for i in range(20)))
    assert adapter.connect_calls == 1
    assert adapter.is_connected
    assert len(set(ids)) == 20 and len(adapter.data) == 20


async def test_context_manager_connects_and_disconnects() -> None:
    async with MemoryAdapter({}) as adapter:
        assert adapter.is_connected
        await adapter.store({"a": 1})
    assert not adapter.is_connected and adapter.disconnect_calls == 1


async def test_context_manager_disconnects_on_body_error() -> None:
    adapter = MemoryAdapter({})
    with pytest.raises(ValueError, match="body"):
        async with adapter:
            raise ValueError("body")
    assert not adapter.is_connected and adapter.disconnect_calls == 1


async def test_context_manager_disconnects_when_connect_fails() -> None:
    adapter = MemoryAdapter({}, fail_connect=True)
    with pytest.raises(StorageConnectionError) as info:
        async with adapter:
            pytest.fail("the body must not run")
    assert adapter.disconnect_calls == 1
    assert adapter.resources_open is False
    assert SECRET not in str(info.value)


async def test_driver_errors_are_translated_chained_and_redacted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    adapter = MemoryAdapter({"url": f"postgresql://mas:{SECRET}@127.0.0.1/db"})
    await adapter.connect()
    caplog.set_level(logging.DEBUG, logger="mas_storage")
    with pytest.raises(StorageQueryError) as info:
        await adapter.store({"boom": 1})
    err = info.value
    assert isinstance(err.__cause__, RuntimeError) and err.orig is err.__cause__
    assert SECRET not in str(err) and "***" in str(err)
    assert "memory store failed: RuntimeError" in str(err)
    assert err.backend == "memory" and err.operation == "store"
    assert caplog.records, "the failure is logged"
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert SECRET not in repr(adapter)


async def test_timeouts_and_storage_errors_pass_through_with_context() -> None:
    adapter = MemoryAdapter({})
    await adapter.connect()
    with pytest.raises(StorageTimeoutError, match="timed out"):
        await adapter.store({"slow": 1})
    with pytest.raises(StorageDataError, match="bad field") as info:
        await adapter.store({"bad": 1})
    assert info.value.operation == "store" and info.value.backend == "memory"
    assert adapter.data == {}


async def test_cancellation_is_never_wrapped() -> None:
    class Slow(MemoryAdapter):
        async def retrieve(self, id: str) -> dict[str, Any] | None:
            await asyncio.sleep(10)
            return None

    adapter = Slow({})
    await adapter.connect()
    task = asyncio.create_task(adapter.retrieve("x"))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_map_error_hook_chooses_class_or_message() -> None:
    class Mapped(MemoryAdapter):
        def _map_error(self, exc: Exception, op: str) -> Any:
            if isinstance(exc, RuntimeError):
                return StorageConnectionError(f"authentication failed for {SECRET}")
            return None

    adapter = Mapped({"password": SECRET})
    await adapter.connect()
    with pytest.raises(StorageConnectionError, match="authentication failed") as info:
        await adapter.store({"boom": 1})
    assert SECRET not in str(info.value)


def test_config_forms_are_validated_by_the_adapters_model() -> None:
    url = MemoryAdapter("redis://x").config.url  # type: ignore[attr-defined]
    assert url is not None and url.get_secret_value() == "redis://x"
    assert MemoryAdapter(None).config == MemorySettings()
    source = {"url": "u"}
    adapter = MemoryAdapter(source)
    with pytest.raises(ValueError, match="frozen"):
        adapter.config.url = "changed"  # type: ignore[attr-defined]
    assert source == {"url": "u"}  # the caller's dict is not shared
    settings = MemorySettings(password="pw-1234")  # type: ignore[arg-type]
    assert MemoryAdapter(settings).config is settings
    with pytest.raises(StorageError, match="must be a mapping"):
        MemoryAdapter(42)
    with pytest.raises(StorageDataError, match="unknown key 'passwd'"):
        MemoryAdapter({"passwd": SECRET})
