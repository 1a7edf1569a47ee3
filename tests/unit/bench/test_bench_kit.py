"""benchkit: statistics, the alternating comparisons, the result shape and target checks."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import benchkit
import pytest
from benchkit import (
    Target,
    backend_result,
    batch_entry,
    compare,
    compare_concurrent,
    compare_rates,
    concurrency_entry,
    evaluate,
    op_entry,
    percentiles,
    ratio_targets,
    sweep,
)


def test_percentiles_of_a_known_sample_in_milliseconds() -> None:
    samples = [i / 1000 for i in range(1, 102)]  # 1 .. 101 ms
    cuts = percentiles(samples)
    assert cuts["p50_ms"] == pytest.approx(51.0)
    assert cuts["p95_ms"] == pytest.approx(96.0)
    assert cuts["p99_ms"] == pytest.approx(100.0)


async def test_compare_gives_unique_indexes_and_alternates_who_goes_first() -> None:
    calls: list[tuple[str, int]] = []

    def contender(name: str) -> Any:
        async def call(i: int) -> None:
            calls.append((name, i))

        return call

    figures = await compare(
        {"adapter": contender("adapter"), "raw": contender("raw")},
        calls=8,
        warmup=3,
        reps=3,
        block=4,
    )
    for name in ("adapter", "raw"):
        indexes = [i for who, i in calls if who == name]
        assert len(indexes) == 3 + 3 * 8, name
        assert len(set(indexes)) == len(indexes), name
    # Each block starts at index warmup + rep * calls + block * k; who took it first rotates.
    first = []
    for start in (3 + rep * 8 + k * 4 for rep in range(3) for k in range(2)):
        first.append(min(("adapter", "raw"), key=lambda who: calls.index((who, start))))
    assert first == ["adapter", "raw", "raw", "adapter", "adapter", "raw"]
    for fig in figures.values():
        assert set(fig) == {"p50_ms", "p95_ms", "p99_ms", "ops_per_s", "cpu_us"}
        assert fig["ops_per_s"] > 0


async def test_compare_concurrent_runs_the_given_number_of_tasks_at_once() -> None:
    active = peak = calls = 0

    async def call(i: int) -> None:
        nonlocal active, peak, calls
        active += 1
        calls += 1
        peak = max(peak, active)
        await asyncio.sleep(0)
        active -= 1

    rates = await compare_concurrent({"adapter": call, "raw": call}, calls=100, tasks=10, reps=2)
    assert peak == 10
    assert calls == 2 * (20 + 100 * 2)  # per side: warm-up max(tasks, calls // 5), then reps
    assert rates["adapter"] > 0 and rates["raw"] > 0


async def test_compare_rates_returns_the_median_and_warms_up_with_negative_runs() -> None:
    runs: list[int] = []
    values = iter([999.0, 1.0, 5.0, 3.0])

    async def contender(run: int) -> float:
        runs.append(run)
        return next(values)

    result = await compare_rates({"adapter": contender}, reps=3, warmup=1)
    assert runs == [-1, 0, 1, 2]
    assert result == {"adapter": 3.0}


def test_op_entry_ratio_is_adapter_over_raw_ops() -> None:
    fig = {"p50_ms": 1.0, "p95_ms": 2.0, "p99_ms": 3.0}
    entry = op_entry(
        {"adapter": {**fig, "ops_per_s": 90.0}, "raw": {**fig, "ops_per_s": 100.0}}, "driver"
    )
    assert entry["ratio"] == pytest.approx(0.9)
    assert entry["raw_label"] == "driver"


def test_batch_and_concurrency_entries_keep_extra_figures() -> None:
    batch = batch_entry(
        op="store_many",
        unit="rows",
        per_call=10,
        rates={"adapter": 50.0, "raw": 100.0},
        raw_path="COPY",
        x=1,
    )
    assert batch["ratio"] == 0.5 and batch["x"] == 1
    conc = concurrency_entry(op="store", tasks=50, calls=10, rates={"adapter": 3.0, "raw": 0.0})
    assert math.isnan(conc["ratio"])


def test_evaluate_marks_met_not_met_and_not_measured() -> None:
    result = {"ops": {"store": {"ratio": 0.95, "adapter": {"p95_ms": 3.0}}}}
    rows = evaluate(
        [
            Target("ratio", "ops.store.ratio", ">=", 0.9, "x", "issue"),
            Target("p95", "ops.store.adapter.p95_ms", "<=", 2.0, "ms", "spec"),
            Target("missing", "ops.search.ratio", ">=", 0.9, "x", "issue"),
        ],
        result,
    )
    assert [(r["label"], r["measured"], r["met"]) for r in rows] == [
        ("ratio", 0.95, True),
        ("p95", 3.0, False),
        ("missing", None, None),
    ]


def test_backend_result_evaluates_its_targets() -> None:
    fig = {"p50_ms": 1.0, "p95_ms": 1.0, "p99_ms": 1.0}
    ops = {
        op: op_entry(
            {"adapter": {**fig, "ops_per_s": 80.0}, "raw": {**fig, "ops_per_s": 100.0}}, ""
        )
        for op in ("store", "retrieve", "search")
    }
    result = backend_result(
        "redis",
        version="7",
        raw_driver="redis",
        ops=ops,
        batch=None,
        concurrency=None,
        targets=ratio_targets(),
        settings={"calls": 1},
        notes=["n"],
    )
    assert result["settings"] == {"repetitions": benchkit.REPS, "calls": 1}
    assert [t["met"] for t in result["targets"]] == [False, False, False]
    assert result["notes"] == ["n"]


async def test_sweep_takes_medians_per_size_and_keeps_known_figures_in_size_order() -> None:
    calls: list[tuple[int, int]] = []

    async def measure(size: int, run: int) -> float:
        calls.append((size, run))
        return float(size * 10 + run)

    figures = await sweep(measure, [1000, 100], known={500: 7.0}, reps=3)
    assert figures == {"100": 1001.0, "500": 7.0, "1000": 10001.0}
    assert calls == [(1000, 0), (1000, 1), (1000, 2), (100, 0), (100, 1), (100, 2)]
