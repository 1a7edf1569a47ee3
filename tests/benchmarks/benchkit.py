"""What every ``bench_<backend>.py`` shares: timing, statistics, the result shape and targets.

Each backend module measures its adapter against the bare driver doing the same work and
returns one dict of this shape (``backend_result``), which ``report.py`` renders and
``run_benchmarks.py`` (``scripts/bench``) collects::

    {"backend": "redis", "version": "7.0.15", "raw_driver": "redis.asyncio 8.1",
     "ops": {"store": {"adapter": FIG, "raw": FIG, "ratio": 0.93, "raw_label": "...", ...}},
     "batch": {"op": "store_many", "unit": "turns", "adapter_per_s": ..., "raw_per_s": ...,
               "ratio": ..., "raw_path": "one MULTI/EXEC pipeline", ...},
     "concurrency": {"op": "store", "tasks": 50, "adapter_ops_per_s": ..., "ratio": ...},
     "facts": {...}, "settings": {...}, "extra": {...}, "notes": ["..."],
     "tables": [{"title": "...", "header": [...], "rows": [[...]]}],
     "targets": [{"label", "figure", "cmp", "limit", "unit", "source", "measured", "met"}]}

where ``FIG`` is ``{"p50_ms", "p95_ms", "p99_ms", "ops_per_s", "cpu_us"}``; ``cpu_us`` is this
process's CPU time per call (client-side work: what an adapter adds shows there even when a
loaded server makes wall times noisy). Every ratio is adapter ÷ raw in items per second, so
1.0 means "as fast as the bare driver" and below 1 is the adapter's overhead.

How figures are taken, the same way for every backend:

* a warm-up first, then ``REPS`` (5) repetitions; each figure is the median over them;
* within a repetition the contenders (adapter, raw, ...) run in alternating blocks, rotating
  who goes first, so load drift on a shared machine hits them alike;
* single-operation figures come from calls awaited one at a time; ops/s is calls divided by
  the wall time of the blocks (so it includes the loop's own overhead between calls);
* a raw contender takes the same input as the adapter (the caller's dicts) and converts it
  inside the timed section, as a caller of the bare driver would, minus the validation.

Nothing here asserts on a figure: benchmarks print, targets are reported as met or not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import ssl
import statistics
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from time import perf_counter, process_time
from typing import Any

import psutil

__all__ = [
    "RATIO_GOAL",
    "REPS",
    "Call",
    "ServerCpu",
    "Target",
    "backend_result",
    "batch_entry",
    "compare",
    "compare_concurrent",
    "compare_rates",
    "concurrency_entry",
    "evaluate",
    "loadavg",
    "main",
    "max_loop_stall",
    "median_of",
    "op_entry",
    "percentiles",
    "rate_of",
    "ratio",
    "ratio_targets",
    "raw_verify",
    "sweep",
]

#: Repetitions per figure (the median is reported).
REPS = 5
#: The issue's goal for every single operation: adapter ÷ raw >= 0.90 in ops/s.
RATIO_GOAL = 0.90

#: One benchmarked call: receives an index unique per contender within one comparison.
Call = Callable[[int], Awaitable[Any]]


# -- statistics --------------------------------------------------------------------------------


def percentiles(samples_s: Iterable[float]) -> dict[str, float]:
    """p50/p95/p99 in milliseconds of latencies given in seconds (inclusive method)."""
    cuts = statistics.quantiles(list(samples_s), n=100, method="inclusive")
    return {"p50_ms": cuts[49] * 1e3, "p95_ms": cuts[94] * 1e3, "p99_ms": cuts[98] * 1e3}


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    """Key by key, the median over repetitions of dicts with the same keys."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def ratio(adapter: float, raw: float) -> float:
    """``adapter / raw`` (NaN when raw is 0)."""
    return adapter / raw if raw else float("nan")


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded (empty where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


# -- timing -------------------------------------------------------------------------------------


async def _block(call: Call, first: int, n: int, samples: list[float]) -> tuple[float, float]:
    """Await ``call(first) .. call(first + n - 1)`` one at a time; keep latencies; return
    the block's wall time and this process's CPU time."""
    cpu, begin = process_time(), perf_counter()
    for i in range(first, first + n):
        t0 = perf_counter()
        await call(i)
        samples.append(perf_counter() - t0)
    return perf_counter() - begin, process_time() - cpu


async def compare(
    contenders: Mapping[str, Call],
    *,
    calls: int,
    warmup: int,
    reps: int = REPS,
    block: int | None = None,
) -> dict[str, dict[str, float]]:
    """Sequential latency, ops/s and CPU µs per call of each contender: medians over ``reps``.

    Each repetition makes ``calls`` calls per contender in blocks of ``block`` (default
    ``calls // 10``), the contenders taking turns and rotating who goes first. The index passed
    to a call never repeats for one contender (warm-up included), so writes can use it for
    unique ids.
    """
    names = list(contenders)
    block = max(1, block or calls // 10)
    for name in names:
        await _block(contenders[name], 0, warmup, [])
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for rep in range(reps):
        base = warmup + rep * calls
        samples: dict[str, list[float]] = {name: [] for name in names}
        elapsed = dict.fromkeys(names, 0.0)
        cpu = dict.fromkeys(names, 0.0)
        for number, start in enumerate(range(0, calls, block)):
            n = min(block, calls - start)
            shift = (number + rep) % len(names)
            for name in names[shift:] + names[:shift]:
                wall, used = await _block(contenders[name], base + start, n, samples[name])
                elapsed[name] += wall
                cpu[name] += used
        for name in names:
            runs[name].append(
                {
                    **percentiles(samples[name]),
                    "ops_per_s": calls / elapsed[name],
                    "cpu_us": cpu[name] / calls * 1e6,
                }
            )
    return {name: median_of(runs[name]) for name in names}


async def _concurrent(call: Call, first: int, calls: int, tasks: int) -> float:
    """Ops/s of ``calls`` calls drained by ``tasks`` concurrent tasks."""
    indexes = iter(range(first, first + calls))

    async def worker() -> None:
        for i in indexes:
            await call(i)

    begin = perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return calls / (perf_counter() - begin)


async def compare_concurrent(
    contenders: Mapping[str, Call], *, calls: int, tasks: int = 50, reps: int = REPS
) -> dict[str, float]:
    """Ops/s of each contender with ``tasks`` tasks sharing it; medians, order alternating."""
    names = list(contenders)
    warm = max(tasks, calls // 5)
    for name in names:
        await _concurrent(contenders[name], 0, warm, tasks)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(
                await _concurrent(contenders[name], warm + rep * calls, calls, tasks)
            )
    return {name: statistics.median(values) for name, values in rates.items()}


async def max_loop_stall(work: Awaitable[Any]) -> float:
    """The longest time (ms) the loop could not run a 1 ms ticker while ``work`` ran."""
    worst = 0.0
    stop = False

    async def ticker() -> None:
        nonlocal worst
        while not stop:
            t0 = perf_counter()
            await asyncio.sleep(0.001)
            worst = max(worst, perf_counter() - t0 - 0.001)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    try:
        await work
    finally:
        stop = True
        await task
    return worst * 1000


async def rate_of(items: int, work: Awaitable[Any]) -> float:
    """Items per second of awaiting ``work`` (prepare its input before calling this)."""
    begin = perf_counter()
    await work
    return items / (perf_counter() - begin)


async def compare_rates(
    contenders: Mapping[str, Callable[[int], Awaitable[float]]],
    *,
    reps: int = REPS,
    warmup: int = 1,
) -> dict[str, float]:
    """Median of what each contender returns (items/s) over ``reps`` runs after ``warmup``.

    A contender is ``async def(run_number) -> items_per_second``: it builds its own fresh
    input for that run number and times only the write (see :func:`rate_of`).
    """
    names = list(contenders)
    for w in range(warmup):
        for name in names:
            await contenders[name](-1 - w)
    rates: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            rates[name].append(await contenders[name](rep))
    return {name: statistics.median(values) for name, values in rates.items()}


# -- the result shape -----------------------------------------------------------------------------


async def sweep(
    measure: Callable[[int, int], Awaitable[float]],
    sizes: Iterable[int],
    *,
    known: Mapping[int, float] | None = None,
    reps: int = REPS,
) -> dict[str, float]:
    """Items/s at each batch size: the median of ``measure(size, run)`` over ``reps`` runs.

    ``known`` holds figures already measured (the default size, from the main comparison).
    No warm-up: the main comparison warmed the path up. Keys are sizes as strings, ascending.
    """
    figures = dict(known or {})
    for size in sizes:
        figures[size] = statistics.median([await measure(size, run) for run in range(reps)])
    return {str(size): figures[size] for size in sorted(figures)}


def op_entry(
    figures: Mapping[str, Mapping[str, float]], raw_label: str, **extra: Any
) -> dict[str, Any]:
    """One operation: every contender's figures, ``ratio`` = adapter ÷ raw ops/s."""
    entry: dict[str, Any] = {name: dict(fig) for name, fig in figures.items()}
    entry["ratio"] = ratio(figures["adapter"]["ops_per_s"], figures["raw"]["ops_per_s"])
    entry["raw_label"] = raw_label
    entry.update(extra)
    return entry


def batch_entry(
    *, op: str, unit: str, per_call: int, rates: Mapping[str, float], raw_path: str, **extra: Any
) -> dict[str, Any]:
    """The batch path: ``unit``/s of the adapter's ``op`` and of the raw bulk path."""
    return {
        "op": op,
        "unit": unit,
        "per_call": per_call,
        "adapter_per_s": rates["adapter"],
        "raw_per_s": rates["raw"],
        "ratio": ratio(rates["adapter"], rates["raw"]),
        "raw_path": raw_path,
        **extra,
    }


def concurrency_entry(
    *, op: str, tasks: int, calls: int, rates: Mapping[str, float], **extra: Any
) -> dict[str, Any]:
    """``tasks`` concurrent tasks through one adapter (and through one raw client)."""
    return {
        "op": op,
        "tasks": tasks,
        "calls": calls,
        "adapter_ops_per_s": rates["adapter"],
        "raw_ops_per_s": rates["raw"],
        "ratio": ratio(rates["adapter"], rates["raw"]),
        **extra,
    }


@dataclass(frozen=True)
class Target:
    """A goal for one figure: ``figure`` is a dotted path into the backend result."""

    label: str
    figure: str
    cmp: str  # "<=" or ">="
    limit: float
    unit: str
    source: str


_CMP = {"<=": operator.le, ">=": operator.ge}


def _lookup(result: Mapping[str, Any], path: str) -> float | None:
    node: Any = result
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, (int, float)) else None


def evaluate(targets: Iterable[Target], result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target with its measured value and whether it is met (``None``: not measured)."""
    rows = []
    for target in targets:
        measured = _lookup(result, target.figure)
        met = None if measured is None else bool(_CMP[target.cmp](measured, target.limit))
        rows.append({**asdict(target), "measured": measured, "met": met})
    return rows


def ratio_targets(ops: Iterable[str] = ("store", "retrieve", "search")) -> list[Target]:
    """The issue's adapter ÷ raw >= 0.90 goal for each named single operation."""
    return [
        Target(f"{op}: adapter ÷ raw ops/s", f"ops.{op}.ratio", ">=", RATIO_GOAL, "x", "issue #12")
        for op in ops
    ]


def backend_result(
    backend: str,
    *,
    version: str | None,
    raw_driver: str,
    ops: dict[str, Any],
    batch: dict[str, Any] | None,
    concurrency: dict[str, Any] | None,
    targets: Iterable[Target],
    settings: dict[str, Any],
    facts: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    notes: Iterable[str] = (),
    tables: Iterable[dict[str, Any]] = (),
    topology_notes: Iterable[str] = (),
) -> dict[str, Any]:
    """Assemble one backend's result and evaluate its targets against it.

    ``topology_notes`` say what the topology measured (a cluster) adds: they follow the
    ``notes`` and are also kept apart, for the single-node-beside-cluster report.

    ``tables`` are extra figures a backend reports in a shape of its own (a title, a header
    and rows of already formatted cells), printed and written after its main tables.
    """
    result: dict[str, Any] = {
        "backend": backend,
        "version": version,
        "raw_driver": raw_driver,
        "ops": ops,
        "batch": batch,
        "concurrency": concurrency,
        "settings": {"repetitions": REPS, **settings},
        "facts": facts or {},
        "extra": extra or {},
        "notes": [*notes, *topology_notes],
        "topology_notes": list(topology_notes),
        "tables": list(tables),
    }
    result["targets"] = evaluate(targets, result)
    return result


# -- the servers' CPU ------------------------------------------------------------------------------


class ServerCpu:
    """CPU seconds the server processes of one backend spent during a run, node by node.

    The nodes are the local stack's (``mas_devstack``, found by the PID files next to the
    outputs file the run reads): the one server (``redis``), or every node of that backend's
    cluster when the stack runs ``--topology cluster`` (``redis-0`` .. ``redis-5``). A node's
    figure is its process and everything under it, living or reaped (PostgreSQL forks a
    process per connection, plus its WAL sender or receiver). Empty when the outputs are not a
    local stack's (the lab's): the client cannot see those servers' CPU.
    """

    def __init__(self, procs: Mapping[str, psutil.Process]) -> None:
        self.procs = dict(procs)
        self.start = {name: self.used(proc) for name, proc in self.procs.items()}

    @staticmethod
    def used(proc: psutil.Process) -> float:
        """User + system seconds of ``proc``, its reaped children and its living descendants."""
        times = proc.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in proc.children(recursive=True):
            try:
                child_times = child.cpu_times()
            except psutil.Error:  # exited meanwhile: its time is in the reaped figure
                continue
            total += child_times.user + child_times.system
        return float(total)

    @classmethod
    def of_local_stack(cls, backend: str, outputs_file: Path | None = None) -> ServerCpu:
        """The nodes of ``backend`` in the stack that wrote ``outputs_file`` (default: the
        outputs file this process reads, ``$MAS_STACK_OUTPUTS`` or ``.mas/stack-outputs.json``,
        which lives in ``<root>/.mas/``)."""
        from mas_devstack import Stack
        from mas_storage import stack_outputs_path

        path = (outputs_file or stack_outputs_path()[0]).resolve()
        if path.parent.name != ".mas" or not (path.parent / "run").is_dir():
            return cls({})
        stack = Stack(path.parents[1])
        if stack.topology == "cluster" and backend in stack.clusters:
            pids = stack.cluster(backend).pids()
        else:
            pids = {backend: stack.pid(backend)}
        procs = {}
        for name, pid in pids.items():
            if pid is not None:
                try:
                    procs[name] = psutil.Process(pid)
                except psutil.Error:
                    continue
        return cls(procs)

    def seconds(self) -> dict[str, float]:
        """CPU seconds of each node since this object was made."""
        return {
            name: round(self.used(proc) - self.start[name], 2) for name, proc in self.procs.items()
        }


# -- the command line of one module ---------------------------------------------------------------


def main(
    run: Callable[..., Coroutine[Any, Any, dict[str, Any]]], doc: str | None, *needs: str
) -> None:
    """``python bench_<backend>.py [--quick] [--json]``: run one backend, print its table.

    ``needs`` are stack-outputs keys of which at least one must be set to reach the backend.
    """
    from report import text_table

    from mas_storage import load_stack_outputs

    parser = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    outputs = load_stack_outputs()
    if not any(outputs.get(key) for key in needs):
        sys.exit(f"no {' or '.join(needs)} in the stack outputs: run 'uv run mas-devstack up'")
    start_load = loadavg()
    result = asyncio.run(run(outputs, quick=args.quick))
    result.setdefault("facts", {})["loadavg_start"] = start_load
    result["facts"]["loadavg_end"] = loadavg()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(text_table(result))


def raw_verify(outputs: Mapping[str, Any]) -> ssl.SSLContext | bool:
    """``verify=`` for a raw ``httpx`` baseline (``trust_env=False`` ignores SSL_CERT_FILE):
    a context trusting the stack's CA when the outputs name one (the adapter trusts the same),
    else httpx's default."""
    from mas_storage import TlsSettings

    ca = outputs.get("tls_ca")
    return TlsSettings.from_config({"tls_ca": ca}).ssl_context() if ca else True
