"""The scaling study's machinery without a backend: timing, slopes, the report, Qdrant's hook."""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import Any

import pytest
import run_benchmarks
import scale_qdrant
import scalekit as sk
import scaling_report


def _curve(kind: str, p50s: dict[int, float]) -> sk.Curve:
    curve = sk.Curve(kind, "rows", f"a {kind} path")
    for size, p50 in p50s.items():
        curve.add(
            size,
            {
                "p50_ms": p50,
                "p95_ms": p50 * 2,
                "ops_per_s": 1e3 / p50,
                "items_per_s": 1e3 / p50,
                "calls": 10.0,
            },
        )
    return curve


def _document(skipped: bool = True) -> dict[str, Any]:
    series = sk.Series("postgres", [1_000, 10_000, 100_000])
    series.paths["flat"] = _curve("read", {1_000: 1.0, 10_000: 1.1, 100_000: 0.9})
    series.paths["scan"] = _curve("write", {1_000: 1.0, 10_000: 10.0, 100_000: 100.0})
    series.paths["scan"].points[-1]["server_ms"] = 80.0
    series.at(1_000)
    series.note_evidence("PostgreSQL: a plan", 100_000, "Seq Scan on t\n  Filter: x\n")
    backends: dict[str, Any] = {
        "postgres": sk.scaling_result(series, version="15", shape="rows", notes=["a note"])
    }
    if skipped:
        backends["qdrant"] = {"backend": "qdrant", "skipped": "waiting for issue 19"}
    return {
        "generated_at": "2026-01-01T00:00:00+00:00",
        "quick": False,
        "duration_s": 3.0,
        "machine": {"loadavg_start": [1.0, 2.0, 3.0], "loadavg_end": [1.5, 2.0, 3.0]},
        "backends": backends,
    }


# -- slopes ---------------------------------------------------------------------------------


def test_slope_of_a_scan_is_one_and_of_a_lookup_zero() -> None:
    linear = [{"size": n, "p50_ms": n / 1000} for n in (1_000, 10_000, 100_000, 1_000_000)]
    flat = [{"size": n, "p50_ms": 0.5} for n in (1_000, 10_000, 100_000)]
    assert sk.fit_slope(linear) == pytest.approx(1.0)
    assert sk.fit_slope(flat) == pytest.approx(0.0)
    assert sk.fit_slope(linear[:1]) is None
    assert sk.fit_slope([{"size": 10, "p50_ms": 0.0}, {"size": 100, "p50_ms": 1.0}]) is None


def test_a_path_is_flagged_above_the_slope_limit_with_its_growth() -> None:
    flat = _curve("read", {1_000: 1.0, 10_000: 1.2}).as_dict()
    scan = _curve("read", {1_000: 1.0, 10_000: 10.0}).as_dict()
    assert (flat["flag"], scan["flag"]) == (False, True)
    assert scan["slope"] == pytest.approx(1.0)
    assert scan["items_slope"] == pytest.approx(-1.0)
    assert scan["growth"] == pytest.approx(10.0)


def test_sizes_stop_at_the_cap() -> None:
    assert sk.sizes_for(False) == [1_000, 10_000, 100_000, 1_000_000]
    assert sk.sizes_for(False, cap=100_000) == [1_000, 10_000, 100_000]
    assert sk.sizes_for(True) == list(sk.QUICK_SIZES)


# -- measure --------------------------------------------------------------------------------


def test_measure_times_calls_runs_hooks_untimed_and_counts_items() -> None:
    seen: list[tuple[str, int]] = []

    async def call(i: int) -> int:
        seen.append(("call", i))
        return 3

    async def before(i: int) -> None:
        seen.append(("before", i))
        await asyncio.sleep(0.01)  # untimed: must not show in the latencies

    async def undo(rep: int) -> None:
        seen.append(("undo", rep))

    figures = asyncio.run(sk.measure(call, calls=4, warmup=2, reps=2, before=before, undo=undo))
    calls = [i for what, i in seen if what == "call"]
    assert calls == list(range(10))  # warm-up and both repetitions: indexes never repeat
    assert [i for what, i in seen if what == "before"] == calls
    assert [rep for what, rep in seen if what == "undo"] == [-1, 0, 1]
    assert figures["calls"] == 4
    assert figures["p50_ms"] < 5  # the 10 ms setup is outside the timing
    assert figures["items_per_s"] == pytest.approx(3 * figures["ops_per_s"])
    assert set(figures) == {"p50_ms", "p95_ms", "ops_per_s", "items_per_s", "calls"}


def test_measure_stops_a_slow_path_at_its_budget() -> None:
    async def slow(i: int) -> int:
        await asyncio.sleep(0.02)
        return 1

    figures = asyncio.run(sk.measure(slow, calls=1000, warmup=0, reps=1, budget_s=0.15))
    assert 5 <= figures["calls"] < 20


# -- report ---------------------------------------------------------------------------------


def test_markdown_has_slopes_cells_evidence_and_the_skipped_backend() -> None:
    text = "\n".join(scaling_report.scaling_markdown(_document()))
    assert text.startswith("## Scaling: cost as the data grows\n")
    assert "![p50 latency against data size, log-log](scaling.png)" in text
    assert "| PostgreSQL | flat | -0.02 |" in text
    assert "| PostgreSQL | **scan** | +1.00 |" in text  # flagged: bold
    assert "| **scan** | a write path (write, rows) | 1.00 / 2.00 ms, 1,000/s |" in text
    assert "| 100 / 200 ms, 10.0/s (server 80.00 ms) | **+1.00** | 100.0x |" in text
    assert "<details><summary>PostgreSQL: a plan (at 10^5)</summary>" in text
    assert "Seq Scan on t\n  Filter: x\n```" in text
    assert "### Qdrant\n\n**Not measured**: waiting for issue 19." in text
    assert "- a note" in text
    assert "1.0 / 2.0 / 3.0 at start, 1.5 / 2.0 / 3.0 at end" in text


def test_slope_rows_cover_every_path() -> None:
    rows = scaling_report.slope_rows(_document())
    assert [(r["backend"], r["path"], r["flag"]) for r in rows] == [
        ("postgres", "flat", False),
        ("postgres", "scan", True),
    ]


def test_write_scaling_writes_json_and_a_log_log_png(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = scaling_report.write_scaling(_document(), tmp_path)
    assert json.loads(paths["json"].read_text())["backends"]["qdrant"]["skipped"]
    height, width = plt.imread(paths["png"]).shape[:2]
    assert width >= 600 and height >= 300


def test_benchmarks_md_keeps_what_precedes_the_study_and_replaces_the_study(
    tmp_path: Path,
) -> None:
    alone = run_benchmarks.write_markdown(tmp_path, _document()).read_text()
    assert alone.startswith("# Benchmarks\n\nNo ratio run")
    assert alone.count("## Scaling: cost as the data grows") == 1
    # A report edited by hand keeps its text; a second study replaces the first one's section.
    (tmp_path / "benchmarks.md").write_text("# Benchmarks\n\nEdited by hand.\n\n## Targets\n")
    run_benchmarks.write_markdown(tmp_path, _document())
    second = run_benchmarks.write_markdown(tmp_path, _document(skipped=False)).read_text()
    assert second.startswith("# Benchmarks\n\nEdited by hand.\n\n## Targets\n\n## Scaling")
    assert second.count("## Scaling: cost as the data grows") == 1
    assert "### Qdrant" not in second


def test_without_a_report_the_ratio_part_is_rendered_from_its_json(tmp_path: Path) -> None:
    (tmp_path / "benchmarks.json").write_text(
        json.dumps({"generated_at": "x", "machine": {}, "backends": {}})
    )
    both = run_benchmarks.write_markdown(tmp_path, _document()).read_text()
    assert both.startswith("# Benchmarks\n\nWritten by `scripts/bench`")
    assert both.index("## Targets") < both.index("## Scaling: cost as the data grows")


def test_a_skipped_backend_does_not_fail_the_run(tmp_path: Path) -> None:
    assert run_benchmarks._finish_scaling(_document(), tmp_path) == 0
    failed = _document()
    failed["backends"]["neo4j"] = {"backend": "neo4j", "error": "boom"}
    assert run_benchmarks._finish_scaling(failed, tmp_path) == 1


def test_a_partial_run_keeps_the_other_backends_of_the_previous_one() -> None:
    previous = _document()
    previous["generated_at"] = "2025-12-31T00:00:00+00:00"
    previous["backends"]["redis"] = {"backend": "redis", "paths": {}, "facts": {}}
    rerun = _document(skipped=False)
    merged = run_benchmarks.carry_over(rerun, previous)
    assert list(merged["backends"]) == ["postgres", "redis", "qdrant"]  # report order
    assert merged["backends"]["postgres"] is rerun["backends"]["postgres"]
    assert merged["backends"]["redis"]["facts"]["carried_from"] == "2025-12-31T00:00:00+00:00"
    text = "\n".join(scaling_report.scaling_markdown(merged))
    assert "measured in the run of 2025-12-31T00:00:00+00:00" in text
    quick = {**rerun, "quick": True}
    assert run_benchmarks.carry_over(quick, previous) is quick  # never mixes quick and full


# -- Qdrant's hook ----------------------------------------------------------------------------


def _fig(p50: float) -> dict[str, float]:
    return {"p50_ms": p50, "p95_ms": 2 * p50, "ops_per_s": 1e3 / p50}


def test_qdrant_figures_come_from_bench_qdrant_scaling() -> None:
    bench = {
        "version": "embedded (Qdrant Edge)",
        "extra": {
            "scaling": [
                {
                    "points": 10_000,
                    "search": {"adapter": _fig(2.0), "raw": _fig(1.5)},
                    "search_session_filter": {"adapter": _fig(3.0)},
                    "load_points_per_s": 9e3,
                },
                {
                    "points": 1_000,
                    "search": {"adapter": _fig(1.0)},
                    "search_session_filter": {"adapter": _fig(1.0)},
                    "load_points_per_s": 1e4,
                },
            ]
        },
    }
    result = scale_qdrant.from_bench(bench)
    assert result["sizes"] == [1_000, 10_000]
    search = result["paths"]["search"]
    assert [p["p50_ms"] for p in search["points"]] == [1.0, 2.0]
    assert search["slope"] == pytest.approx(math.log10(2.0))
    assert [x["items_per_s"] for x in result["load"]] == [1e4, 9e3]


def test_qdrant_without_scaling_figures_is_skipped_with_the_reason() -> None:
    result = scale_qdrant.from_bench({"extra": {}})
    assert "issue 19" in result["skipped"]
    quick = asyncio.run(scale_qdrant.run({}, quick=True))
    assert "not in --quick" in quick["skipped"]
