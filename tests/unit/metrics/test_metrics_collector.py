"""MetricsCollector: counts, config, sampling, rates, errors, connection, reset, bounds."""

from __future__ import annotations

import gc
import itertools
import threading
import tracemalloc
from datetime import UTC, datetime
from typing import Any

import pytest

from mas_storage import StorageDataError, StorageQueryError
from mas_storage._exceptions import MAX_MESSAGE_CHARS
from mas_storage.metrics import MAX_ERRORS, MAX_OPERATIONS, MetricsCollector, estimate_size
from mas_storage.metrics import _collector as collector_module
from mas_storage.metrics._collector import VOLUME_SAMPLE_EVERY
from mas_storage.metrics._storage import FOLD_BATCH


def _ops(report: dict[str, Any]) -> dict[str, Any]:
    return report["operations"]


# -- counting ----------------------------------------------------------------------------------


async def test_spec_example_counts_and_success_rate() -> None:
    """The spec's own unit test, through its recording API."""
    collector = MetricsCollector()
    await collector.record_operation("store", 10.5, True)
    await collector.record_operation("store", 15.2, True)
    await collector.record_operation("store", 8.3, False)

    store = _ops(await collector.get_metrics())["store"]
    assert store["total_count"] == 3
    assert store["success_count"] == 2
    assert store["error_count"] == 1
    assert store["success_rate"] == 2 / 3  # the spec's exact assertion: stored figures are exact
    assert store["latency_ms"]["min"] == pytest.approx(8.3)
    assert store["latency_ms"]["max"] == pytest.approx(15.2)
    assert store["latency_ms"]["avg"] == pytest.approx((10.5 + 15.2 + 8.3) / 3)


async def test_record_hook_counts_latency_bytes_and_total_time() -> None:
    collector = MetricsCollector(adapter="redis")
    collector.record("store", 0.002, None, ({"content": "abcd"},))
    collector.record("store", 0.004, None, ({"content": "abcdefgh"},))
    collector.record("store", 0.003, StorageQueryError("boom"), ({"content": "x"},))
    collector.record("retrieve", 0.001, None, ("id-1",))

    report = await collector.get_metrics()
    assert report["adapter_type"] == "redis"
    store = _ops(report)["store"]
    assert (store["total_count"], store["success_count"], store["error_count"]) == (3, 2, 1)
    assert store["latency_ms"] == {
        "min": 2.0,
        "max": 4.0,
        "avg": 3.0,
        "p50": 3.0,
        "p95": pytest.approx(3.9),
        "p99": pytest.approx(3.98),
    }
    assert store["latency_samples"] == 3
    assert store["total_time_ms"] == pytest.approx(9.0)
    # "content" (7) + value length, per call.
    assert store["bytes_total"] == (7 + 4) + (7 + 8) + (7 + 1)
    assert _ops(report)["retrieve"]["bytes_total"] == 4


async def test_report_header_is_utc_and_json_ready() -> None:
    report = await MetricsCollector().get_metrics()
    stamp = datetime.fromisoformat(report["timestamp"])
    assert stamp.utcoffset() == UTC.utcoffset(None)
    assert report["timestamp"].endswith("Z")
    assert report["uptime_seconds"] >= 0
    assert report["operations"] == {}
    assert set(report) >= {"operations", "connection", "errors", "enabled", "sampling_rate"}


# -- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ({"max_histroy": 10}, "max_histroy"),
        ({"sampling_rate": 1.5}, "sampling_rate"),
        ({"sampling_rate": "all"}, "sampling_rate"),
        ({"max_history": 0}, "max_history"),
        ({"max_history": True}, "max_history"),
        ({"aggregation_window": 0}, "aggregation_window"),
        ({"percentiles": [50, 101]}, "percentiles"),
        ({"percentiles": "p99"}, "percentiles"),
        ({"enabled": "yes"}, "enabled"),  # a mapping in code is validated strictly
        ({"track_errors": 1}, "track_errors"),
        ({"always_sample_errors": False}, "always_sample_errors"),
        ("on", "mapping"),
    ],
)
def test_bad_config_is_refused_by_name(config: Any, needle: str) -> None:
    with pytest.raises(StorageDataError, match=needle):
        MetricsCollector(config)


def test_config_defaults_and_values() -> None:
    default = MetricsCollector()
    assert (default.enabled, default.max_history, default.percentiles) == (True, 1000, (50, 95, 99))
    assert (default.aggregation_window, default.sampling_rate) == (60.0, 1.0)
    assert default.track_errors and default.track_data_volume
    custom = MetricsCollector(
        {"max_history": 5, "percentiles": [90, 99.9, 90], "always_sample_errors": True}
    )
    assert custom.max_history == 5
    assert custom.percentiles == (90, 99.9)
    assert MetricsCollector(True).enabled
    assert not MetricsCollector(False).enabled


async def test_disabled_collector_records_nothing() -> None:
    collector = MetricsCollector({"enabled": False})
    collector.record("store", 0.001, None, ("x",))
    collector.record("connect", 0.001, None, ())
    await collector.record_operation("store", 1.0, True)
    await collector.record_error("StorageQueryError", "store", "boom")
    await collector.record_data_volume("store", 10)
    await collector.record_connection_event("connect", 1.0)
    report = await collector.get_metrics()
    assert report["enabled"] is False
    assert report["operations"] == {}
    assert report["errors"]["total_count"] == 0
    assert report["connection"]["connect_count"] == 0


async def test_track_flags_off() -> None:
    collector = MetricsCollector({"track_errors": False, "track_data_volume": False})
    collector.record("store", 0.001, None, ({"content": "abc"},))
    collector.record("store", 0.001, StorageQueryError("boom"), ({"content": "abc"},))
    report = await collector.get_metrics()
    assert _ops(report)["store"]["error_count"] == 1  # counts stay exact
    assert _ops(report)["store"]["bytes_total"] == 0
    assert report["errors"] == {
        "total_count": 0,
        "by_type": {},
        "by_operation": {},
        "recent_errors": [],
    }


# -- sampling ----------------------------------------------------------------------------------


async def test_sampling_keeps_counts_exact_and_samples_a_fraction() -> None:
    draws = itertools.cycle([0.1, 0.5, 0.9, 0.2])  # two of every four fall under 0.25
    collector = MetricsCollector({"sampling_rate": 0.25}, rand=lambda: next(draws))
    for _ in range(100):
        collector.record("retrieve", 0.001, None, ("abcd",))
    retrieve = _ops(await collector.get_metrics())["retrieve"]
    assert retrieve["total_count"] == 100
    assert retrieve["latency_samples"] == 50
    assert retrieve["total_time_ms"] == pytest.approx(100.0)
    # 50 sampled calls of 4 bytes measured, extrapolated to the 100 calls (a ratio estimate:
    # the true 400, where scaling each sample by 1 / 0.25 gave 800 with this draw sequence).
    assert retrieve["bytes_total"] == 100 * 4


async def test_errors_are_always_sampled() -> None:
    collector = MetricsCollector({"sampling_rate": 0.0}, rand=lambda: 0.999)
    for _ in range(20):
        collector.record("search", 0.001, None, ())
    for i in range(7):
        collector.record("search", 0.002, StorageQueryError(f"bad {i}"), ())
    report = await collector.get_metrics()
    search = _ops(report)["search"]
    assert (search["total_count"], search["error_count"]) == (27, 7)
    assert search["latency_samples"] == 7  # only the errors
    assert search["latency_ms"]["min"] == pytest.approx(2.0)
    assert report["errors"]["by_type"] == {"StorageQueryError": 7}
    assert [e["message"] for e in report["errors"]["recent_errors"]] == [
        f"bad {i}" for i in range(7)
    ]


# -- rates -------------------------------------------------------------------------------------


async def test_rates_over_the_window(clock: Any) -> None:
    collector = MetricsCollector({"aggregation_window": 10}, clock=clock)
    for _ in range(20):
        collector.record("store", 0.001, None, ("abcd",))
        clock.advance(0.05)  # 20 calls within the first second
    clock.now = 1005.0  # 5 s after the collector started: divide by 5, not by the window
    store = _ops(await collector.get_metrics())["store"]["throughput"]
    assert store == {"ops_per_sec": 4.0, "bytes_per_sec": 16.0}

    clock.now = 1030.0  # the first calls have left the 10 s window
    assert _ops(await collector.get_metrics())["store"]["throughput"]["ops_per_sec"] == 0.0
    for _ in range(5):
        collector.record("store", 0.001, None, ("ab",))
    throughput = _ops(await collector.get_metrics())["store"]["throughput"]
    assert throughput == {"ops_per_sec": 0.5, "bytes_per_sec": 1.0}


# -- errors ------------------------------------------------------------------------------------


async def test_error_records_carry_type_cause_time_and_redacted_message() -> None:
    collector = MetricsCollector(secrets=("hunter2-secret",))
    orig = ConnectionRefusedError("refused")
    err = StorageQueryError("login hunter2-secret refused " + "x" * 2000, orig=orig)
    collector.record("search", 0.0125, err, ({"q": "user query"},))
    report = await collector.get_metrics()
    (record,) = report["errors"]["recent_errors"]
    assert record["type"] == "StorageQueryError"
    assert record["cause"] == "ConnectionRefusedError"
    assert record["operation"] == "search"
    assert record["duration_ms"] == pytest.approx(12.5)
    assert "hunter2-secret" not in record["message"]
    assert record["message"].startswith("login *** refused")
    assert len(record["message"]) <= MAX_MESSAGE_CHARS  # the one bound of every message
    assert "user query" not in str(report)  # argument values are never kept
    assert datetime.fromisoformat(record["timestamp"]).tzinfo is not None
    assert report["errors"]["by_operation"] == {"search": 1}


async def test_spec_record_error_and_data_volume() -> None:
    collector = MetricsCollector()
    await collector.record_error("StorageDataError", "store", "bad field", duration_ms=1.5)
    await collector.record_data_volume("store", 123)
    report = await collector.get_metrics()
    assert report["errors"]["by_type"] == {"StorageDataError": 1}
    assert report["errors"]["recent_errors"][0]["duration_ms"] == 1.5
    store = _ops(report)["store"]
    assert (store["bytes_total"], store["total_count"]) == (123, 0)
    assert store["success_rate"] is None
    assert store["latency_ms"]["p50"] is None


# -- connection --------------------------------------------------------------------------------


async def test_connection_events(clock: Any) -> None:
    collector = MetricsCollector(clock=clock)
    collector.record("connect", 0.5, StorageQueryError("refused"), ())
    assert (await collector.get_metrics())["connection"]["current_state"] == "disconnected"
    collector.record("connect", 0.045, None, ())
    clock.advance(10)
    collector.record("store", 0.001, None, ())
    conn = (await collector.get_metrics())["connection"]
    assert conn["current_state"] == "connected"
    assert conn["total_connection_time_seconds"] == pytest.approx(10.0)
    collector.record("disconnect", 0.002, None, ())
    clock.advance(100)  # disconnected time does not count
    await collector.record_connection_event("disconnect")
    report = await collector.get_metrics()
    conn = report["connection"]
    assert conn == {
        "connect_count": 1,
        "connect_error_count": 1,
        "disconnect_count": 2,
        "current_state": "disconnected",
        "last_connect_duration_ms": pytest.approx(45.0),
        "last_disconnect_duration_ms": None,
        "last_connect_at": conn["last_connect_at"],
        "total_connection_time_seconds": pytest.approx(10.0),
    }
    assert datetime.fromisoformat(conn["last_connect_at"]).tzinfo is not None
    # Lifecycle calls are operations too: timed like any other.
    assert _ops(report)["connect"]["total_count"] == 2
    assert _ops(report)["connect"]["error_count"] == 1
    with pytest.raises(StorageDataError, match="connection event"):
        await collector.record_connection_event("reconnect")


# -- reset -------------------------------------------------------------------------------------


async def test_reset_forgets_figures_but_keeps_the_connection_state(clock: Any) -> None:
    collector = MetricsCollector(clock=clock)
    collector.record("connect", 0.01, None, ())
    collector.record("store", 0.01, StorageQueryError("x"), ("abc",))
    clock.advance(30)
    await collector.reset_metrics()
    report = await collector.get_metrics()
    assert report["operations"] == {}
    assert report["errors"]["total_count"] == 0
    assert report["errors"]["recent_errors"] == []
    conn = report["connection"]
    assert conn["current_state"] == "connected"
    assert (conn["connect_count"], conn["total_connection_time_seconds"]) == (0, 0.0)
    assert len(collector.storage) == 0
    collector.record("store", 0.01, None, ())
    clock.advance(2)
    store = _ops(await collector.get_metrics())["store"]
    assert store["total_count"] == 1
    assert store["throughput"]["ops_per_sec"] == pytest.approx(0.5)  # rate clock restarted


# -- bounds ------------------------------------------------------------------------------------


async def test_memory_is_bounded_by_max_history(clock: Any) -> None:
    """100,000 operations: exact counts, bounded samples, errors and rate buckets."""
    collector = MetricsCollector({"max_history": 500}, clock=clock)
    payload = ({"content": "x" * 100},)
    error = StorageQueryError("boom")

    def feed(n: int) -> None:
        for i in range(n):
            op = ("store", "retrieve", "search")[i % 3]
            collector.record(op, 0.001, error if i % 10 == 0 else None, payload)
            clock.advance(0.01)  # 1,000 s in all: far more than the 60 s window

    feed(10_000)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    feed(90_000)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    report = await collector.get_metrics()
    ops = _ops(report)
    assert sum(s["total_count"] for s in ops.values()) == 100_000
    assert ops["store"]["total_count"] == 33_334
    assert all(s["latency_samples"] == 500 for s in ops.values())
    assert len(collector.storage) == 3 * 500
    assert report["errors"]["total_count"] == 10_000
    assert len(report["errors"]["recent_errors"]) == MAX_ERRORS
    assert all(len(s.buckets) <= 61 for s in collector.storage.snapshot().operations.values())
    # 90,000 more calls after the buffers were full: memory did not grow with them.
    assert grown < 64 * 1024


async def test_operation_names_are_bounded() -> None:
    collector = MetricsCollector()
    for i in range(MAX_OPERATIONS + 50):
        collector.record(f"op{i}", 0.001, None, ())
    ops = _ops(await collector.get_metrics())
    assert len(ops) == MAX_OPERATIONS + 1
    assert ops["other"]["total_count"] == 50


async def test_concurrent_threads_lose_no_count() -> None:
    collector = MetricsCollector({"max_history": 100})

    def work() -> None:
        for _ in range(5_000):
            collector.record("store", 0.001, None, ("abc",))

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = _ops(await collector.get_metrics())["store"]
    assert store["total_count"] == 40_000
    assert store["bytes_total"] == 120_000


async def test_payloads_are_measured_exactly_first_then_on_a_sample(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    collector = MetricsCollector()
    measured: list[int] = []
    original = collector_module._payload_size

    def spy(args: tuple[Any, ...]) -> int:
        measured.append(1)
        return original(args)

    monkeypatch.setattr(collector_module, "_payload_size", spy)
    for i in range(FOLD_BATCH + 3_200):
        # Two payload sizes, alternating: the estimate is a ratio over the measured calls.
        collector.record("store", 0.001, None, ("x" * (10 if i % 2 else 30),))
    sampled = len(measured) - FOLD_BATCH
    assert 3_200 / VOLUME_SAMPLE_EVERY / 2 < sampled < 3_200 / VOLUME_SAMPLE_EVERY * 2
    store = _ops(await collector.get_metrics())["store"]
    true_total = (FOLD_BATCH + 3_200) * 20
    assert store["total_count"] == FOLD_BATCH + 3_200
    assert abs(store["bytes_total"] - true_total) < true_total * 0.15


async def test_every_call_of_a_rare_operation_is_measured_until_it_is_common() -> None:
    collector = MetricsCollector()
    collector._volume_rand = lambda: 0.99  # the longest gaps, once sampling starts
    for _ in range(500):
        collector.record("store", 0.001, None, ("abc",))
    for size in (5, 7, 9):
        collector.record("search", 0.001, None, ("q" * size,))
    ops = _ops(await collector.get_metrics())
    assert ops["search"]["bytes_total"] == 5 + 7 + 9
    assert ops["store"]["bytes_total"] == 500 * 3


async def test_queued_calls_stay_bounded_and_are_folded_before_any_read() -> None:
    collector = MetricsCollector()
    queues = collector.storage.queues
    for i in range(10 * FOLD_BATCH + 5):
        collector.record("retrieve", 0.001 * (i + 1), None, (f"id-{i}",))
        assert len(queues["retrieve"]) < 3 * FOLD_BATCH
    assert len(queues["retrieve"]) == 3 * 5
    report = await collector.get_metrics()
    retrieve = _ops(report)["retrieve"]
    calls = 10 * FOLD_BATCH + 5
    assert retrieve["total_count"] == calls
    assert retrieve["latency_samples"] == calls
    assert retrieve["total_time_ms"] == pytest.approx(sum(range(1, calls + 1)))
    assert not queues["retrieve"]


# -- payload size ------------------------------------------------------------------------------


def test_estimate_size_is_exact_for_small_payloads_and_extrapolates_large_ones() -> None:
    assert estimate_size("abcd") == 4
    assert estimate_size(b"\x00" * 10) == 10
    assert (
        estimate_size({"id": "abc", "n": 3, "ok": True, "none": None}) == 5 + 1 + 8 + 2 + 8 + 4 + 8
    )
    assert estimate_size([]) == 0
    assert estimate_size({"tags": {"a", "bb"}}) == 4 + 3
    # 1,536 floats: 16 measured, the rest extrapolated; 8 bytes each either way.
    assert estimate_size({"vector": [0.5] * 1536}) == 6 + 1536 * 8
    assert estimate_size(memoryview(b"abcdef")) == 6
    assert estimate_size(datetime.now(UTC)) == 8
    deep: Any = "leaf-value"
    for _ in range(10):
        deep = [deep]
    assert estimate_size(deep) == 8  # cut at MAX_DEPTH, never walks the whole nest


class _HostileMapping(dict):  # type: ignore[type-arg]
    """A mapping whose size cannot be read."""

    def __len__(self) -> int:
        raise RuntimeError("no len for you")


async def test_payload_measurement_never_breaks_or_consumes_the_call() -> None:
    collector = MetricsCollector()
    collector.record("store", 0.001, None, (_HostileMapping(a=1),))
    items = iter([{"content": "a"}, {"content": "b"}])
    collector.record("store_many", 0.001, None, (items,))
    assert next(items) == {"content": "a"}  # the iterator was not consumed
    ops = _ops(await collector.get_metrics())
    assert ops["store"]["total_count"] == 1
    assert ops["store"]["bytes_total"] == 0
    assert ops["store_many"]["bytes_total"] == 8


# -- the steady-state hot path (issue #22's overhead goal) ---------------------------------------


async def test_the_steady_path_keeps_every_figure_exact_across_a_reset() -> None:
    collector = MetricsCollector()
    collector._volume_rand = lambda: 0.5
    calls = 5 * FOLD_BATCH + 7
    for i in range(calls):
        collector.record("store", 0.002, None, ("x" * 10,), end=1_000.0 + i)
    assert "store" in collector._steady  # promoted after its first batch
    store = _ops(await collector.get_metrics())["store"]
    assert store["total_count"] == calls
    assert store["total_time_ms"] == pytest.approx(calls * 2.0)
    assert store["bytes_total"] == calls * 10  # same-sized payloads: the estimate is exact
    await collector.reset_metrics()
    for _ in range(3):
        collector.record("store", 0.004, None, ("y" * 10,))
    store = _ops(await collector.get_metrics())["store"]
    assert store["total_count"] == 3  # the queue the hot path holds still feeds the store
    assert store["total_time_ms"] == pytest.approx(12.0)


def test_end_is_the_timestamp_only_on_the_collectors_own_clock() -> None:
    ticks = itertools.count(50)
    own = MetricsCollector(clock=lambda: float(next(ticks)))
    default = MetricsCollector()
    for collector in (own, default):
        collector.record("count", 0.001, None, (), end=12_345.0)
    assert 50.0 <= own.storage.queues["count"][1] < 60.0  # the injected clock, not ``end``
    assert default.storage.queues["count"][1] == 12_345.0


def test_lifecycle_and_unmeasured_operations_stay_off_the_steady_path() -> None:
    collector = MetricsCollector()
    quiet = MetricsCollector({"track_data_volume": False})
    for _ in range(2 * FOLD_BATCH):
        collector.record("connect", 0.001, None, ("x",))
        collector.record("count", 0.001, None, ())
        quiet.record("store", 0.001, None, ("x",))
    assert collector._steady == {}
    assert quiet._steady == {}
    assert collector.report()["connection"]["connect_count"] == 2 * FOLD_BATCH
