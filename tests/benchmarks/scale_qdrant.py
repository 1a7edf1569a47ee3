"""Qdrant in the scaling study: the figures of ``bench_qdrant.py``, in the study's shape.

Issue 19 (Qdrant Edge as the embedded engine) gives ``bench_qdrant.py`` its own scaling run:
the adapter's search and session-filtered search, p50/p95, at 10^3 .. 10^5 points, with the
load rate, in ``extra["scaling"]`` of its result (one entry per size: ``points``, ``search``,
``search_session_filter``, ``load_points_per_s``). This module calls ``bench_qdrant.run`` and
converts those entries, so Qdrant is measured once, by its owner's code, and charted here with
the other backends. A ``bench_qdrant`` without scaling figures (before issue 19) is reported
as not measured, naming why.

``--quick`` skips Qdrant: ``scripts/bench --quick`` (``test_bench_quick.py``) already runs
``bench_qdrant.py --quick`` in CI.
"""

from __future__ import annotations

from typing import Any

import scalekit as sk

CAP = 100_000
NOTES = [
    "Measured by `bench_qdrant.py` (issue 19), which owns Qdrant's figures: its section above "
    "has the raw engine beside the adapter, the HNSW build and the indexed point counts.",
    "**search** is HNSW from 10^4 (at 10^3 nothing is indexed yet: an exact scan of 1,000 "
    "points); from 10^4 to 10^5 its p50 grows about 2.4x, raw qdrant_edge alike, so it is "
    "the engine's graph walk over 384-dimension vectors (more hops and cache misses as the "
    "graph grows), not the adapter. **search_session_filter** grows with the session "
    "(N/20 points): Qdrant's planner estimates the filter's cardinality from the payload index "
    "on session_id and, below its full-scan threshold, takes the session's points from that "
    "index and scores each of them exactly (Qdrant: 'retrieve points from ids first and "
    "vector-based reranking later', qdrant/qdrant discussion #646), an O(session) exact "
    "search; a session past the threshold is searched through the HNSW graph instead.",
]
_PATHS = {
    "search": ("read", "points", "top 10 nearest of N points"),
    "search_session_filter": ("read", "points", "top 10 nearest within one session"),
}


def from_bench(result: dict[str, Any]) -> dict[str, Any]:
    """The study's result shape from a ``bench_qdrant.run`` result holding scaling figures."""
    entries = sorted(result.get("extra", {}).get("scaling") or [], key=lambda e: e["points"])
    if not entries:
        return {
            "backend": "qdrant",
            "skipped": "bench_qdrant.py reports no scaling figures (they come with issue 19, "
            "Qdrant Edge: 10^3 .. 10^5 points)",
        }
    series = sk.Series("qdrant", [e["points"] for e in entries if e["points"] <= CAP])
    for entry in entries:
        size = entry["points"]
        if size > CAP:
            continue
        for name, (kind, unit, what) in _PATHS.items():
            figures = entry.get(name, {}).get("adapter")
            if not figures:
                continue
            series.curve(name, kind, unit, what).add(
                size,
                {
                    "p50_ms": figures["p50_ms"],
                    "p95_ms": figures["p95_ms"],
                    "ops_per_s": figures.get("ops_per_s"),
                    "items_per_s": figures.get("ops_per_s"),
                },
            )
        if entry.get("load_points_per_s"):
            series.load.append(
                {"size": size, "items": size, "items_per_s": entry["load_points_per_s"]}
            )
    return sk.scaling_result(
        series,
        version=result.get("version"),
        shape="from bench_qdrant.py (issue 19): N points of 384 dimensions in 20 sessions",
        notes=NOTES,
    )


async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """``bench_qdrant.run``'s scaling figures, converted (skipped with ``--quick``)."""
    if quick:
        return {
            "backend": "qdrant",
            "skipped": "not in --quick (bench_qdrant.py --quick runs in test_bench_quick.py)",
        }
    import bench_qdrant

    return from_bench(await bench_qdrant.run(outputs, quick=False))
