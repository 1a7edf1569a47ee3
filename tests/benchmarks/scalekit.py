"""What every ``scale_<backend>.py`` shares: sizes, timing one path, slopes, the result shape.

The scaling study (``scripts/bench --scaling``) asks how each adapter's main read and write
paths cost as the data grows. Each backend module loads its data up to each size in turn
(``SIZES``: 10^3 .. 10^6 items; Neo4j and Qdrant stop at 10^5) and measures each path there
with :func:`measure`. It returns one dict of this shape (``scaling_result``)::

    {"backend": "postgres", "version": "15.18", "shape": "how the data is laid out",
     "sizes": [1000, 10000, ...],
     "paths": {"retrieve": {"kind": "read", "unit": "rows", "what": "...",
                            "points": [{"size", "p50_ms", "p95_ms", "ops_per_s",
                                        "items_per_s", "calls", ...}, ...],
                            "slope": 0.02, "growth": 1.1, "flag": False}},
     "load": [{"size", "items", "items_per_s"}, ...],
     "evidence": [{"title", "size", "text"}], "notes": [...], "facts": {...}}

How to read a path: ``slope`` is the least-squares slope of log(p50) against log(size), so
cost grows as size^slope: about 0 for O(1) or O(log n) (a hash or a B-tree lookup), 1 for
O(n) (a scan). Where the server reports its own time per call (a point's ``server_ms``:
PostgreSQL's EXPLAIN ANALYZE, Redis's commandstats, Typesense's search_time_ms),
``server_slope`` is the same fit of that figure, which the client's load does not blur.
``growth`` is p50 at the largest size over p50 at the smallest. A path is flagged when its
slope exceeds :data:`FLAG_SLOPE`. Nothing here asserts on a figure.

Writes measured at a size are removed after each repetition (``undo``), outside the timing,
so a size stays what it says while it is measured.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from benchkit import loadavg, percentiles

__all__ = [
    "FLAG_SLOPE",
    "QUICK_SIZES",
    "SIZES",
    "Curve",
    "Series",
    "fit_slope",
    "measure",
    "scaling_result",
    "series_for",
    "sizes_for",
]

#: The issue's sizes; Neo4j and Qdrant stop at 10^5 (``sizes_for(..., cap=100_000)``).
SIZES = (1_000, 10_000, 100_000, 1_000_000)
#: ``--quick``: two small sizes, enough to prove the machinery and the report's shape.
QUICK_SIZES = (200, 1_000)
#: A path whose p50 grows faster than size^0.25 is flagged for a look (log n and noise on a
#: loaded machine stay below it; a scan over a tenth of the data does not).
FLAG_SLOPE = 0.25
#: Seconds one repetition of one path may take at most; slow paths make fewer calls.
BUDGET_S = 4.0
#: Repetitions per figure (the median is kept); ``--quick`` makes one.
REPS = 3

#: One measured call: gets a call index unique within the path, returns the items it handled.
Call = Callable[[int], Awaitable[int]]
#: Untimed work around calls: a setup before each call, or the undo after a repetition.
Hook = Callable[[int], Awaitable[Any]]


def sizes_for(quick: bool, cap: int | None = None) -> list[int]:
    """The sizes to measure, at most ``cap``."""
    return [n for n in (QUICK_SIZES if quick else SIZES) if cap is None or n <= cap]


def series_for(backend: str, quick: bool, cap: int | None = None) -> Series:
    """An empty :class:`Series` with the sizes and repetitions of a full or quick run."""
    return Series(backend, sizes_for(quick, cap), reps=1 if quick else REPS)


async def measure(
    call: Call,
    *,
    calls: int,
    warmup: int,
    reps: int = REPS,
    before: Hook | None = None,
    undo: Hook | None = None,
    budget_s: float = BUDGET_S,
) -> dict[str, float]:
    """p50/p95 (ms), ops/s and items/s of ``call`` awaited one at a time: medians over reps.

    ``before(i)`` runs untimed before call ``i`` (e.g. inserting the rows a cleanup will
    delete); ``undo(rep)`` runs after each repetition (e.g. deleting what the writes added).
    A repetition stops early once it has used ``budget_s`` seconds (at least 5 calls), so a
    path that is slow at a large size still finishes; ``calls`` records how many were made.
    """
    index = 0
    for _ in range(warmup):
        if before is not None:
            await before(index)
        await call(index)
        index += 1
    if undo is not None:
        await undo(-1)
    runs: list[dict[str, float]] = []
    for rep in range(reps):
        samples: list[float] = []
        items = 0
        spent = 0.0
        started = perf_counter()
        for _ in range(calls):
            if before is not None:
                await before(index)
            t0 = perf_counter()
            items += await call(index)
            took = perf_counter() - t0
            samples.append(took)
            spent += took
            index += 1
            if len(samples) >= 5 and perf_counter() - started > budget_s:
                break
        if undo is not None:
            await undo(rep)
        if len(samples) < 2:
            samples = samples * 2
        runs.append(
            {
                **percentiles(samples),
                "ops_per_s": len(samples) / spent,
                "items_per_s": items / spent,
                "calls": float(len(samples)),
            }
        )
    figures = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    figures.pop("p99_ms", None)
    return figures


def fit_slope(points: Sequence[Mapping[str, Any]], key: str = "p50_ms") -> float | None:
    """Least-squares slope of log(``key``) on log(size); ``None`` with fewer than 2 sizes."""
    pairs = [
        (math.log(p["size"]), math.log(p[key]))
        for p in points
        if p.get(key) and p[key] > 0 and p["size"] > 0
    ]
    if len(pairs) < 2:
        return None
    mean_x = statistics.fmean(x for x, _ in pairs)
    mean_y = statistics.fmean(y for _, y in pairs)
    sxx = sum((x - mean_x) ** 2 for x, _ in pairs)
    if sxx == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in pairs) / sxx


@dataclass
class Curve:
    """One measured path across sizes."""

    kind: str  # "read" or "write"
    unit: str
    what: str
    points: list[dict[str, Any]] = field(default_factory=list)

    def add(self, size: int, figures: Mapping[str, float], **extra: Any) -> None:
        self.points.append({"size": size, **figures, **extra})

    def as_dict(self) -> dict[str, Any]:
        slope = fit_slope(self.points)
        p50s = [p["p50_ms"] for p in self.points if p.get("p50_ms")]
        growth = p50s[-1] / p50s[0] if len(p50s) >= 2 and p50s[0] else None
        return {
            "kind": self.kind,
            "unit": self.unit,
            "what": self.what,
            "points": self.points,
            "slope": slope,
            "items_slope": fit_slope(self.points, "items_per_s"),
            "server_slope": fit_slope(self.points, "server_ms")
            if all(p.get("server_ms") for p in self.points)
            else None,
            "growth": growth,
            "flag": slope is not None and slope > FLAG_SLOPE,
        }


@dataclass
class Series:
    """Everything one backend module collects while it grows its data."""

    backend: str
    sizes: list[int]
    reps: int = REPS
    paths: dict[str, Curve] = field(default_factory=dict)
    load: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    loads: list[dict[str, Any]] = field(default_factory=list)

    def curve(self, name: str, kind: str, unit: str, what: str) -> Curve:
        """The curve of path ``name``, created on first use."""
        if name not in self.paths:
            self.paths[name] = Curve(kind, unit, what)
        return self.paths[name]

    async def grow(self, size: int, items: int, work: Awaitable[Any], what: str = "") -> None:
        """Time the load from the previous size up to ``size`` (``what``: which data)."""
        begin = perf_counter()
        await work
        took = perf_counter() - begin
        self.load.append(
            {
                "size": size,
                "items": items,
                "items_per_s": items / took if took else None,
                "what": what,
            }
        )

    async def measure(
        self,
        size: int,
        name: str,
        meta: tuple[str, str, str],
        call: Call,
        *,
        calls: int,
        warmup: int,
        before: Hook | None = None,
        undo: Hook | None = None,
    ) -> dict[str, Any]:
        """:func:`measure` one path at ``size`` and record it under ``name``; ``meta`` is
        (kind, unit, what). Returns the point, to which a caller may add server figures."""
        figures = await measure(
            call,
            calls=calls,
            warmup=min(warmup, calls),
            before=before,
            undo=undo,
            reps=self.reps,
        )
        curve = self.curve(name, *meta)
        curve.add(size, figures)
        return curve.points[-1]

    def at(self, size: int) -> None:
        """Record the load average as measuring at ``size`` starts (once per size)."""
        if all(x["size"] != size for x in self.loads):
            self.loads.append({"size": size, "loadavg": loadavg(), "time": time.time()})

    def note_evidence(self, title: str, size: int, text: str) -> None:
        self.evidence.append({"title": title, "size": size, "text": text.rstrip()})


def scaling_result(
    series: Series,
    *,
    version: str | None,
    shape: str,
    notes: Iterable[str] = (),
    facts: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble one backend's scaling result (the shape in the module docstring)."""
    return {
        "backend": series.backend,
        "version": version,
        "shape": shape,
        "sizes": series.sizes,
        "paths": {name: path.as_dict() for name, path in series.paths.items()},
        "load": series.load,
        "evidence": series.evidence,
        "notes": list(notes),
        "facts": {"loadavg_by_size": series.loads, **(facts or {})},
    }
