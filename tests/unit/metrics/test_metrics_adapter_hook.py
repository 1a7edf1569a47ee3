"""The core wrapper feeds the collector: a tiny in-memory adapter defined here proves it.

Successes, failures (translated driver errors and the adapter's own StorageErrors), calls refused
before connect, connect/disconnect events, nested public calls, config, exports and secrets.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pydantic import SecretStr

from mas_storage import (
    AdapterSettings,
    StorageAdapter,
    StorageConnectionError,
    StorageDataError,
    StorageQueryError,
)

PASSWORD = "pw-Secret-4242"
URL_PASSWORD = "urlpass-9191"
PAYLOAD_SECRET = "payload-must-not-leak"


class FakeSettings(AdapterSettings):
    url: SecretStr | None = None
    password: SecretStr | None = None
    refuse: bool = False


class FakeAdapter(StorageAdapter):
    """A dict-backed adapter whose driver fails on demand."""

    kind = "fake"
    settings_model = FakeSettings
    config: FakeSettings

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self.items: dict[str, dict[str, Any]] = {}

    async def connect(self) -> None:
        if self.config.refuse:
            password = self.config.password.get_secret_value() if self.config.password else ""
            raise OSError(f"connection refused for password {password}")
        self._connected = True

    async def disconnect(self) -> None:
        self._connected = False

    async def store(self, data: dict[str, Any]) -> str:
        if "content" not in data:
            raise StorageDataError("store needs 'content'")
        if data.get("explode"):
            # A driver error quoting the credentials: the core must mask them.
            password = self.config.password.get_secret_value() if self.config.password else ""
            raise RuntimeError(f"driver lost auth {password} / {URL_PASSWORD}")
        key = str(uuid.uuid4())
        self.items[key] = dict(data)
        return key

    async def retrieve(self, id: str) -> dict[str, Any] | None:
        return self.items.get(id)

    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        if "bad" in query:
            raise ValueError("unsupported query key 'bad'")
        return list(self.items.values())

    async def delete(self, id: str) -> bool:
        return self.items.pop(id, None) is not None

    async def store_batch(self, items: list[dict[str, Any]]) -> list[str]:
        return [await self.store(item) for item in items]

    async def _get_backend_metrics(self) -> dict[str, Any] | None:
        return {"item_count": len(self.items)}


def _config(**extra: Any) -> dict[str, Any]:
    return {
        "url": f"fake://user:{URL_PASSWORD}@127.0.0.1:1/0",
        "password": PASSWORD,
        **extra,
    }


async def test_wrapper_records_successes_failures_and_lifecycle() -> None:
    async with FakeAdapter(_config()) as adapter:
        key = await adapter.store({"content": "hello"})
        assert await adapter.retrieve(key) == {"content": "hello"}
        assert await adapter.retrieve("missing") is None
        assert len(await adapter.search({})) == 1
        with pytest.raises(StorageDataError):
            await adapter.store({"no": "content"})
        with pytest.raises(StorageDataError):
            await adapter.search({"bad": 1})
        with pytest.raises(StorageQueryError):
            await adapter.store({"content": "x", "explode": True})
        assert await adapter.delete(key) is True
        assert adapter.items == {}  # the backend holds what the calls did
        await adapter.store_batch([{"content": "a"}, {"content": "b"}])
        metrics = await adapter.get_metrics()

    ops = metrics["operations"]
    assert metrics["adapter_type"] == "fake"
    assert (ops["store"]["total_count"], ops["store"]["error_count"]) == (5, 2)  # nested too
    assert ops["store_batch"]["total_count"] == 1
    assert (ops["retrieve"]["total_count"], ops["retrieve"]["error_count"]) == (2, 0)
    assert (ops["search"]["total_count"], ops["search"]["error_count"]) == (2, 1)
    assert ops["delete"]["success_rate"] == 1.0
    assert all(s["latency_ms"]["min"] > 0 for s in ops.values())
    assert metrics["backend_specific"] == {"item_count": 2}
    errors = metrics["errors"]
    assert errors["by_type"] == {"StorageDataError": 2, "StorageQueryError": 1}
    assert [(e["operation"], e["type"], e["cause"]) for e in errors["recent_errors"]] == [
        ("store", "StorageDataError", None),
        ("search", "StorageDataError", "ValueError"),
        ("store", "StorageQueryError", "RuntimeError"),
    ]
    assert "fake search failed: ValueError" in errors["recent_errors"][1]["message"]

    # connect/disconnect: lifecycle events and timed operations.
    conn = metrics["connection"]
    assert (conn["connect_count"], conn["disconnect_count"]) == (1, 0)  # read inside the block
    assert conn["current_state"] == "connected"
    assert conn["last_connect_duration_ms"] > 0
    assert ops["connect"]["total_count"] == 1
    after = await adapter.get_metrics()
    assert after["connection"]["disconnect_count"] == 1
    assert after["connection"]["current_state"] == "disconnected"
    assert "backend_specific" not in after  # fetched only while connected


async def test_failed_connect_and_calls_before_connect_are_recorded() -> None:
    adapter = FakeAdapter(_config(refuse=True))
    with pytest.raises(StorageConnectionError):
        await adapter.retrieve("k")  # not connected, no auto_connect: refused and counted
    with pytest.raises(StorageConnectionError):
        async with adapter:
            pass
    metrics = await adapter.get_metrics()
    conn = metrics["connection"]
    assert (conn["connect_count"], conn["connect_error_count"]) == (0, 1)
    assert conn["disconnect_count"] == 1  # __aenter__ cleans up after the failed connect
    assert metrics["operations"]["retrieve"]["error_count"] == 1
    assert metrics["errors"]["by_type"] == {"StorageConnectionError": 2}
    assert [e["operation"] for e in metrics["errors"]["recent_errors"]] == ["retrieve", "connect"]


async def test_lazy_connect_is_timed_as_connect() -> None:
    adapter = FakeAdapter(_config(auto_connect=True))
    await adapter.store({"content": "a"})
    metrics = await adapter.get_metrics()
    assert metrics["operations"]["connect"]["total_count"] == 1
    assert metrics["operations"]["store"]["success_count"] == 1
    assert metrics["connection"]["current_state"] == "connected"
    await adapter.disconnect()


@pytest.mark.parametrize("metrics", [False, {"enabled": False}])
async def test_metrics_can_be_disabled_per_adapter(metrics: Any) -> None:
    async with FakeAdapter(_config(metrics=metrics)) as adapter:
        await adapter.store({"content": "a"})
        report = await adapter.get_metrics()
    assert report["enabled"] is False
    assert report["operations"] == {}


def test_bad_metrics_config_is_refused() -> None:
    with pytest.raises(StorageDataError, match="sampling_rat"):
        FakeAdapter(_config(metrics={"sampling_rat": 0.5}))


async def test_reset_metrics_through_the_adapter() -> None:
    async with FakeAdapter(_config()) as adapter:
        await adapter.store({"content": "a"})
        await adapter.reset_metrics()
        report = await adapter.get_metrics()
        assert report["operations"] == {}
        assert report["connection"]["current_state"] == "connected"


async def test_no_secret_in_any_output() -> None:
    """Credentials from config and argument values appear in no export, label or record."""
    adapter = FakeAdapter(_config(metrics={"track_data_volume": True}))
    async with adapter:
        await adapter.store({"content": PAYLOAD_SECRET})
        with pytest.raises(StorageQueryError) as caught:
            await adapter.store({"content": PAYLOAD_SECRET, "explode": True})
        assert PASSWORD not in str(caught.value)
        # Standalone timer on the adapter's collector: masked by the collector itself.
        with pytest.raises(RuntimeError):
            async with adapter.metrics.timer("custom", PAYLOAD_SECRET):
                raise RuntimeError(f"custom step failed with {PASSWORD}")
        outputs = [json.dumps(await adapter.get_metrics())]
        outputs += [str(await adapter.export_metrics(fmt)) for fmt in ("dict", "json")]
        outputs += [str(await adapter.export_metrics(f)) for f in ("prometheus", "csv", "markdown")]
    recent = (await adapter.get_metrics())["errors"]["recent_errors"]
    assert [e["operation"] for e in recent] == ["store", "custom"]
    assert all("***" in e["message"] for e in recent)
    for text in outputs:
        assert PASSWORD not in text
        assert URL_PASSWORD not in text
        assert PAYLOAD_SECRET not in text


async def test_adapter_export_carries_backend_figures() -> None:
    async with FakeAdapter(_config()) as adapter:
        await adapter.store({"content": "a"})
        prom = await adapter.export_metrics("prometheus")
        data = json.loads(str(await adapter.export_metrics("json")))
        with pytest.raises(StorageDataError, match="Unknown metrics export format"):
            await adapter.export_metrics("yaml")
    assert 'storage_backend_metric{adapter="fake",name="item_count"} 1' in str(prom)
    assert data["backend_specific"] == {"item_count": 1}
    assert data["adapter_type"] == "fake"
