"""What metrics cost: ``record()`` in microseconds, and Redis operations with metrics on vs off.

Three parts:

* **micro**: the cost of one ``MetricsCollector.record`` call, per payload shape and config
  (``timeit``, best and median of the repeats, in microseconds);
* **redis**: ``store`` and ``retrieve`` through the Redis adapter against the real Redis of the
  stack outputs, with metrics on and off. One adapter and one connection serve both sides (the
  collector's ``enabled`` flag is flipped between runs, which is what ``metrics: {enabled:
  false}`` sets), and the on/off runs alternate, so only the metrics differ. Ratio =
  ops/s on / ops/s off; the spec's goal is an overhead (1 - ratio) under 5%;
* **paired**: the same adapter and connection, but the arm changes on *every call* (in a
  rotating order), so drift and load spikes hit every arm alike: metrics off, metrics off again
  (the A/A control), metrics on with OpenTelemetry absent (the wrapper's check skipped, as
  without ``opentelemetry-api``), metrics on with the API and no provider, and metrics on with
  the SDK's in-memory span exporter and metric reader. Per arm: median and mean wall time and
  mean CPU time of the calls; the added microseconds against metrics off;
* **in situ** (``--in-situ N``): ``record()`` itself timed inside the real Redis adapter's
  loop (the core's call replaced by a timer around it), alternating per call with an empty
  timer, so the figure is the collector's cost between two round trips (cold caches), without
  the Redis call's own spread; median and mean, net of the empty timer.

Run from /work/main after ``uv run mas-devstack up``::

    uv run python tests/benchmarks/bench_metrics.py [--quick] [--prometheus] [--paired N]
        [--in-situ N]

Medians of the repetitions after a warm-up. Prints figures, asserts none.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import random
import statistics
import sys
import timeit
import uuid
from time import perf_counter, perf_counter_ns, thread_time_ns
from typing import Any

from mas_storage import StorageQueryError, create_adapter, load_stack_outputs
from mas_storage.metrics import MetricsCollector

_TURN = {
    "session_id": "test-bench-metrics",
    "turn_id": 1,
    "content": "What is the capital of France? Please answer in one short sentence.",
    "metadata": {"source": "bench", "lang": "en"},
}
_VECTOR = {"id": "p-1", "vector": [0.01] * 1536, "content": "x" * 500}


def micro(quick: bool = False) -> dict[str, dict[str, float]]:
    """Microseconds per ``record()`` call, for several payloads and configs."""
    error = StorageQueryError("redis store failed: ResponseError: WRONGTYPE")
    cases: dict[str, tuple[MetricsCollector, str, BaseException | None, tuple[Any, ...]]] = {
        "disabled": (MetricsCollector({"enabled": False}), "store", None, (_TURN,)),
        "id_string": (MetricsCollector(), "retrieve", None, ("session:s-1:turns:42",)),
        "turn_dict": (MetricsCollector(), "store", None, (_TURN,)),
        "turn_dict_no_volume": (
            MetricsCollector({"track_data_volume": False}),
            "store",
            None,
            (_TURN,),
        ),
        "turn_dict_sampled_10pct": (
            MetricsCollector({"sampling_rate": 0.1}),
            "store",
            None,
            (_TURN,),
        ),
        "vector_1536": (MetricsCollector(), "store", None, (_VECTOR,)),
        "error": (MetricsCollector(), "store", error, (_TURN,)),
    }
    number = 20_000 if quick else 100_000
    repeat = 5 if quick else 9
    out: dict[str, dict[str, float]] = {}
    for name, (collector, op, err, args) in cases.items():
        times = timeit.repeat(
            functools.partial(collector.record, op, 0.00025, err, args),
            number=number,
            repeat=repeat,
        )
        per_call = [t / number * 1e6 for t in times]
        out[name] = {"best_us": min(per_call), "median_us": statistics.median(per_call)}
    return out


async def _timed(adapter: Any, op: str, n: int, session: str, start_turn: int) -> list[float]:
    """Run ``op`` ``n`` times; the latency of each call in seconds."""
    latencies: list[float] = []
    append = latencies.append
    if op == "store":
        for i in range(n):
            turn = {**_TURN, "session_id": session, "turn_id": start_turn + i}
            t0 = perf_counter()
            await adapter.store(turn)
            append(perf_counter() - t0)
    else:
        rid = f"session:{session}:turns:{start_turn}"
        for _ in range(n):
            t0 = perf_counter()
            await adapter.retrieve(rid)
            append(perf_counter() - t0)
    return latencies


def _summary(latencies: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "p50_ms": cuts[49] * 1e3,
        "p95_ms": cuts[94] * 1e3,
        "p99_ms": cuts[98] * 1e3,
        "ops_per_sec": len(latencies) / sum(latencies),
    }


async def redis_overhead(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Store and retrieve with metrics on vs off, on one adapter, arms rotating.

    A third arm, ``control``, is metrics off again: ``control`` vs ``off`` is the noise floor of
    the machine (an A/A comparison), to read the on/off ratio against.
    """
    n = 500 if quick else 2_000
    reps = 6 if quick else 12
    arms = ("on", "off", "control")
    session = f"test-bench-metrics-{uuid.uuid4().hex[:12]}"
    adapter = create_adapter("redis", {"url": outputs["redis_url"], "window_size": 10})
    results: dict[str, Any] = {}
    async with adapter:
        try:
            turn = 0
            for op in ("store", "retrieve"):
                await adapter.store({**_TURN, "session_id": session, "turn_id": turn})
                runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
                adapter.metrics.enabled = True
                await _timed(adapter, op, n // 2, session, turn)  # warm-up
                for rep in range(reps):
                    for arm in arms[rep % 3 :] + arms[: rep % 3]:
                        adapter.metrics.enabled = arm == "on"
                        gc.collect()
                        lat = await _timed(adapter, op, n, session, turn)
                        runs[arm].append(_summary(lat))
                        if op == "store":
                            turn += n
                adapter.metrics.enabled = True
                med = {
                    arm: {k: statistics.median(r[k] for r in runs[arm]) for k in runs[arm][0]}
                    for arm in arms
                }
                on, off = med["on"]["ops_per_sec"], med["off"]["ops_per_sec"]
                control = med["control"]["ops_per_sec"]
                results[op] = {
                    "metrics_on": med["on"],
                    "metrics_off": med["off"],
                    "control_off": med["control"],
                    "ratio_on_off": on / off,
                    "overhead_pct": (1 - on / off) * 100,
                    "noise_ratio_control_off": control / off,
                    # Per-call median latency: robust to the contention spikes that dominate
                    # ops/s on a busy machine. p50 off / p50 on, so < 1 means slower with metrics.
                    "ratio_p50_on_off": med["off"]["p50_ms"] / med["on"]["p50_ms"],
                    "noise_ratio_p50_control_off": med["off"]["p50_ms"] / med["control"]["p50_ms"],
                    "added_us_p50": (med["on"]["p50_ms"] - med["off"]["p50_ms"]) * 1e3,
                    "added_us_per_op": (1 / on - 1 / off) * 1e6,
                    "ops_per_run": n,
                    "runs": reps,
                }
            # A bad input, so the exported sample shows an error too.
            try:
                await adapter.search({"session_id": session, "colour": "blue"})
            except Exception as exc:
                results["provoked_error"] = type(exc).__name__
            results["_prometheus"] = await adapter.export_metrics("prometheus")
        finally:
            await adapter.delete(f"session:{session}:turns")
    return results


def _sdk_telemetry() -> tuple[Any, Any]:
    """The (provider pair, Telemetry) of the SDK with in-memory sinks."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from mas_storage import _telemetry

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    pair = (tracer_provider, meter_provider)
    return pair, _telemetry.Telemetry(*pair)


PAIRED_ARMS = ("off", "control", "metrics", "otel_api", "otel_sdk")


async def paired(outputs: dict[str, Any], calls: int) -> dict[str, Any]:
    """Per-call rotation of the arms of :data:`PAIRED_ARMS` on one Redis adapter."""
    from mas_storage import _telemetry

    sdk_pair, sdk = _sdk_telemetry()
    available = _telemetry.OTEL_AVAILABLE
    # The module state each arm runs under: (metrics on, API importable, explicit pair, active).
    states = {
        "off": (False, False, None, None),
        "control": (False, False, None, None),
        "metrics": (True, False, None, None),
        "otel_api": (True, available, None, None),
        "otel_sdk": (True, available, sdk_pair, sdk),
    }
    session = f"test-bench-paired-{uuid.uuid4().hex[:12]}"
    adapter = create_adapter("redis", {"url": outputs["redis_url"], "window_size": 10})
    out: dict[str, Any] = {}
    async with adapter:
        try:
            for op in ("store", "retrieve"):
                await adapter.store({**_TURN, "session_id": session, "turn_id": 0})
                rid = f"session:{session}:turns:0"
                wall: dict[str, list[int]] = {arm: [] for arm in PAIRED_ARMS}
                cpu: dict[str, list[int]] = {arm: [] for arm in PAIRED_ARMS}
                order = list(PAIRED_ARMS)
                shuffle = random.Random(22).shuffle
                gc.collect()
                for i in range(calls):
                    if i % len(order) == 0:
                        shuffle(order)  # a new order each round: no arm always after another
                    arm = order[i % len(order)]
                    enabled, api, pair, active = states[arm]
                    adapter.metrics.enabled = enabled
                    _telemetry.OTEL_AVAILABLE = api
                    _telemetry._explicit = pair
                    _telemetry._seen = pair if pair is not None else (None, None)
                    _telemetry._active = active
                    if op == "store":
                        turn = {**_TURN, "session_id": session, "turn_id": i}
                        c0, t0 = thread_time_ns(), perf_counter_ns()
                        await adapter.store(turn)
                    else:
                        c0, t0 = thread_time_ns(), perf_counter_ns()
                        await adapter.retrieve(rid)
                    t1, c1 = perf_counter_ns(), thread_time_ns()
                    wall[arm].append(t1 - t0)
                    cpu[arm].append(c1 - c0)
                base_p50 = statistics.median(wall["off"])
                base_cpu = statistics.fmean(cpu["off"])
                rows = {}
                for arm in PAIRED_ARMS:
                    p50 = statistics.median(wall[arm])
                    cpu_mean = statistics.fmean(cpu[arm])
                    rows[arm] = {
                        "p50_us": p50 / 1e3,
                        "mean_us": statistics.fmean(wall[arm]) / 1e3,
                        "cpu_mean_us": cpu_mean / 1e3,
                        "ratio_p50_off_arm": base_p50 / p50,
                        "added_p50_us": (p50 - base_p50) / 1e3,
                        "added_cpu_us": (cpu_mean - base_cpu) / 1e3,
                        "calls": len(wall[arm]),
                    }
                out[op] = rows
        finally:
            _telemetry.OTEL_AVAILABLE = available
            _telemetry.configure_telemetry()
            adapter.metrics.enabled = True
            await adapter.delete(f"session:{session}:turns")
    return out


async def in_situ(outputs: dict[str, Any], calls: int) -> dict[str, dict[str, float]]:
    """``record()`` timed around each call the core makes, in a real Redis adapter's loop."""
    session = f"test-bench-situ-{uuid.uuid4().hex[:12]}"
    adapter = create_adapter("redis", {"url": outputs["redis_url"], "window_size": 10})
    out: dict[str, dict[str, float]] = {}
    async with adapter:
        record = adapter.metrics.record
        samples: dict[bool, list[int]] = {True: [], False: []}
        arm = [False]

        def timed(*args: Any) -> None:
            if arm[0]:
                t0 = perf_counter_ns()
                record(*args)
                t1 = perf_counter_ns()
            else:
                t0 = perf_counter_ns()
                t1 = perf_counter_ns()
            samples[arm[0]].append(t1 - t0)

        adapter.metrics.record = timed  # type: ignore[method-assign,assignment]
        choose = random.Random(20).random
        try:
            for op in ("store", "retrieve"):
                await adapter.store({**_TURN, "session_id": session, "turn_id": 0})
                rid = f"session:{session}:turns:0"
                samples[True].clear()
                samples[False].clear()
                for i in range(calls):
                    arm[0] = choose() < 0.5
                    if op == "store":
                        await adapter.store({**_TURN, "session_id": session, "turn_id": i})
                    else:
                        await adapter.retrieve(rid)
                on, empty = samples[True], samples[False]
                out[op] = {
                    "median_us": (statistics.median(on) - statistics.median(empty)) / 1e3,
                    "mean_us": (statistics.fmean(on) - statistics.fmean(empty)) / 1e3,
                    "calls": len(on),
                }
        finally:
            adapter.metrics.record = record  # type: ignore[method-assign]
            await adapter.delete(f"session:{session}:turns")
    return out


def _print_paired(result: dict[str, Any]) -> None:
    print("\nPaired, per-call rotation on one Redis adapter (microseconds)")
    head = f"  {'op':<9}{'arm':<10}{'p50':>9}{'mean':>9}{'cpu mean':>10}"
    print(head + f"{'p50 ratio':>11}{'+p50':>8}{'+cpu':>8}")
    for op, rows in result.items():
        for arm, row in rows.items():
            print(
                f"  {op:<9}{arm:<10}{row['p50_us']:>9.2f}{row['mean_us']:>9.2f}"
                f"{row['cpu_mean_us']:>10.2f}{row['ratio_p50_off_arm']:>11.3f}"
                f"{row['added_p50_us']:>8.2f}{row['added_cpu_us']:>8.2f}"
            )
    calls = next(iter(result.values()))["off"]["calls"]
    print(f"  ({calls} calls per arm; p50 ratio = p50 off / p50 arm; + = added vs metrics off)")


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """Both parts; the Prometheus export of the Redis run is under ``prometheus_sample``."""
    redis = await redis_overhead(outputs, quick)
    sample = redis.pop("_prometheus")
    return {"micro_record": micro(quick), "redis": redis, "prometheus_sample": sample}


def _print(result: dict[str, Any], show_prometheus: bool) -> None:
    print("\nrecord() cost per call (microseconds)")
    print(f"  {'case':<26}{'best':>8}{'median':>9}")
    for name, row in result["micro_record"].items():
        print(f"  {name:<26}{row['best_us']:>8.2f}{row['median_us']:>9.2f}")
    print("\nRedis through the adapter: metrics on vs off (medians; control = off again)")
    head = f"  {'op':<9}{'arm':<9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'ops/s':>10}"
    print(head + f"{'ratio':>8}{'p50 ratio':>10}{'+us p50':>9}")
    for op in ("store", "retrieve"):
        row = result["redis"][op]
        for arm in ("on", "off", "control"):
            s = row["control_off" if arm == "control" else f"metrics_{arm}"]
            line = f"  {op:<9}{arm:<9}{s['p50_ms']:>9.3f}{s['p95_ms']:>9.3f}{s['p99_ms']:>9.3f}"
            line += f"{s['ops_per_sec']:>10.0f}"
            if arm == "on":
                line += f"{row['ratio_on_off']:>8.3f}{row['ratio_p50_on_off']:>10.3f}"
                line += f"{row['added_us_p50']:>9.2f}"
            elif arm == "control":
                line += f"{row['noise_ratio_control_off']:>8.3f}"
                line += f"{row['noise_ratio_p50_control_off']:>10.3f}  (A/A noise)"
            print(line)
    print("  ratio = ops/s on / ops/s off; p50 ratio = p50 off / p50 on (1.0 = no overhead)")
    print(f"  ({row['runs']} rotating runs of {row['ops_per_run']} ops per arm)")
    if show_prometheus:
        print("\nPrometheus export of this run:\n")
        print(result["prometheus_sample"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run")
    parser.add_argument("--prometheus", action="store_true", help="print the export too")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--paired", type=int, default=0, metavar="N", help="also N calls per op, arms per call"
    )
    parser.add_argument(
        "--in-situ", type=int, default=0, metavar="N", help="also record() timed in N calls"
    )
    args = parser.parse_args(argv)
    outputs = load_stack_outputs()
    if not outputs.get("redis_url"):
        print("No redis_url in the stack outputs: run 'uv run mas-devstack up' first.")
        return 1
    result = asyncio.run(run(outputs, quick=args.quick))
    if args.paired:
        result["paired"] = asyncio.run(paired(outputs, args.paired))
    if args.in_situ:
        result["in_situ"] = asyncio.run(in_situ(outputs, args.in_situ))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        _print(result, args.prometheus)
        if args.paired:
            _print_paired(result["paired"])
        for op, row in result.get("in_situ", {}).items():
            print(
                f"  in situ: record() on {op}: median {row['median_us']:.2f} us, "
                f"mean {row['mean_us']:.2f} us ({row['calls']:.0f} calls, net of an empty timer)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
