"""OperationTimer, standalone: success, failure, cancellation, sync use."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from mas_storage.metrics import MetricsCollector, OperationTimer
from mas_storage.metrics import _timer as timer_module


@pytest.fixture
def ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    """perf_counter returns 1.0, 1.25, 2.0, 2.25...: every timed block lasts 250 ms."""
    values = itertools.chain.from_iterable((float(i), i + 0.25) for i in itertools.count(1))
    monkeypatch.setattr(timer_module, "perf_counter", lambda: next(values))


async def test_success_is_recorded_with_its_duration(ticks: None) -> None:
    collector = MetricsCollector()
    async with OperationTimer(collector, "promote", {"content": "abcd"}) as timer:
        await asyncio.sleep(0)
    assert timer.duration_ms == 250.0
    op = (await collector.get_metrics())["operations"]["promote"]
    assert (op["total_count"], op["success_count"], op["error_count"]) == (1, 1, 0)
    assert op["latency_ms"]["avg"] == 250.0
    assert op["bytes_total"] == 7 + 4


async def test_failure_is_recorded_and_propagates(ticks: None) -> None:
    collector = MetricsCollector(secrets=["pw-secret-1"])
    with pytest.raises(KeyError):
        async with collector.timer("lookup", "some-id"):
            raise KeyError("missing pw-secret-1")
    report = await collector.get_metrics()
    op = report["operations"]["lookup"]
    assert (op["total_count"], op["error_count"], op["success_rate"]) == (1, 1, 0.0)
    (error,) = report["errors"]["recent_errors"]
    assert (error["type"], error["operation"], error["duration_ms"]) == (
        "KeyError",
        "lookup",
        250.0,
    )
    assert "pw-secret-1" not in error["message"]


async def test_cancellation_is_not_an_outcome(ticks: None) -> None:
    collector = MetricsCollector()

    async def slow() -> None:
        async with OperationTimer(collector, "slow"):
            await asyncio.sleep(10)

    task = asyncio.create_task(slow())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await collector.get_metrics())["operations"] == {}


def test_sync_use_and_disabled_collector(ticks: None) -> None:
    collector = MetricsCollector()
    with OperationTimer(collector, "sync_step"):
        pass
    assert collector.report()["operations"]["sync_step"]["total_count"] == 1
    off = MetricsCollector({"enabled": False})
    with OperationTimer(off, "sync_step") as timer:
        pass
    assert timer.duration_ms == 250.0  # still timed, just not recorded
    assert off.report()["operations"] == {}


async def test_timer_records_on_a_real_clock() -> None:
    collector: Any = MetricsCollector()
    async with OperationTimer(collector, "tick"):
        await asyncio.sleep(0)
    latency = (await collector.get_metrics())["operations"]["tick"]["latency_ms"]
    assert latency["min"] > 0
