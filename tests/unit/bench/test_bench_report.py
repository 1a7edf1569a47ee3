"""report.py and run_benchmarks.py without any backend: rendering, files, options, failures."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import report
import run_benchmarks
from benchkit import backend_result, batch_entry, concurrency_entry, op_entry, ratio_targets


def _fig(ops: float, p50: float = 0.1) -> dict[str, float]:
    return {"p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3, "ops_per_s": ops}


def _result(backend: str, adapter_ops: float) -> dict[str, Any]:
    ops = {
        op: op_entry({"adapter": _fig(adapter_ops), "raw": _fig(100.0)}, "raw client")
        for op in ("store", "retrieve", "search")
    }
    return backend_result(
        backend,
        version="1.0",
        raw_driver="driver 1",
        ops=ops,
        batch=batch_entry(
            op="store_many",
            unit="rows",
            per_call=1000,
            rates={"adapter": 900.0, "raw": 1000.0},
            raw_path="COPY",
            sweep={"100": 800.0, "500": 900.0},
            batch_size=500,
        ),
        concurrency=concurrency_entry(
            op="store", tasks=50, calls=100, rates={"adapter": 95.0, "raw": 100.0}
        ),
        targets=ratio_targets(),
        settings={"calls": 10},
        facts={"fsync": "on", "loadavg_start": [1.0, 2.0, 3.0], "loadavg_end": [1.5, 2.0, 3.0]},
        notes=["a note"],
    )


def _document() -> dict[str, Any]:
    return {
        "generated_at": "2026-01-01T00:00:00+00:00",
        "quick": False,
        "duration_s": 12.0,
        "machine": {
            "cpu_count": 2,
            "cpu_model": "Test CPU",
            "platform": "Linux",
            "python": "3.11.7",
            "git": "abc123",
            "loadavg_start": [1.0, 2.0, 3.0],
            "loadavg_end": [2.0, 2.0, 3.0],
        },
        "backends": {
            "postgres": _result("postgres", 95.0),
            "redis": _result("redis", 50.0),
            "neo4j": {"backend": "neo4j", "error": "StorageConnectionError: refused", "facts": {}},
        },
    }


def test_markdown_lists_unmet_targets_and_failed_backends() -> None:
    text = report.markdown(_document())
    assert text.startswith("# Benchmarks\n")
    assert "6 of 6 targets met" not in text
    assert "3 of 6 targets met. **Not met**" in text
    # The unmet ones are Redis' three ratios (0.50x), each named with its backend.
    assert text.count("| Redis | ") == 3
    assert "0.500x | **no** |" in text
    assert "## PostgreSQL 1.0" in text and "## Redis 1.0" in text
    assert "**Not measured** (the run failed): neo4j." in text
    assert "Not measured: the run failed (StorageConnectionError: refused)." in text
    assert "- **CPU**: 2 CPUs (Test CPU)" in text
    assert "PostgreSQL 1.0 (fsync on)" in text
    assert "Adapter `store_many` rows/s by batch size: 100: 800, 500: 900 (default 500)" in text
    assert "- a note" in text


def test_markdown_says_when_every_target_is_met() -> None:
    document = _document()
    document["backends"] = {"postgres": _result("postgres", 100.0)}
    assert "All 3 targets met." in report.markdown(document)


def test_text_table_shows_figures_targets_and_failures() -> None:
    text = report.text_table(_result("redis", 50.0))
    assert "Redis 1.0" in text and "load average 1.00 → 1.50" in text
    assert "[NOT MET] store: adapter ÷ raw ops/s >= 0.900x: 0.500x" in text
    assert "fsync: on" in text
    failed = report.text_table({"backend": "neo4j", "error": "boom", "facts": {}})
    assert "FAILED: boom" in failed


def test_chart_rows_skip_failed_backends_and_undefined_ratios() -> None:
    document = _document()
    document["backends"]["postgres"]["ops"]["store"]["ratio"] = float("nan")
    rows = report.chart_rows(document)
    assert ("PostgreSQL", "store", pytest.approx(0.95)) not in rows
    assert ("PostgreSQL", "retrieve", pytest.approx(0.95)) in rows
    assert ("Redis", "store_many (batch)", pytest.approx(0.9)) in rows
    assert ("Redis", "store x50 tasks", pytest.approx(0.95)) in rows
    assert not any(backend == "neo4j" or backend == "Neo4j" for backend, _, _ in rows)


def test_write_reports_writes_parseable_md_json_png(tmp_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = report.write_reports(_document(), tmp_path / "out")
    assert (
        json.loads(paths["json"].read_text())["backends"]["redis"]["ops"]["store"]["ratio"] == 0.5
    )
    assert paths["md"].read_text().startswith("# Benchmarks")
    assert plt.imread(paths["png"]).shape[1] > 500


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0.1234, "0.123"), (12.345, "12.35"), (1234.5, "1,234"), (None, "-"), (float("nan"), "-")],
)
def test_fmt_ms(value: float | None, expected: str) -> None:
    assert report.fmt_ms(value) == expected


def test_parse_args_defaults_keep_quick_runs_out_of_docs() -> None:
    quick = run_benchmarks.parse_args(["--quick"])
    full = run_benchmarks.parse_args([])
    assert quick.out == run_benchmarks.ROOT / ".mas" / "bench"
    assert full.out == run_benchmarks.ROOT / "docs"
    assert full.backends == list(run_benchmarks.BACKENDS)
    chosen = run_benchmarks.parse_args(["--backends", "redis, postgres,redis", "--out", "x"])
    assert chosen.backends == ["redis", "postgres"] and chosen.out == Path("x")


def test_parse_args_refuses_unknown_backends(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_benchmarks.parse_args(["--backends", "redis,mysql"])
    assert "mysql" in capsys.readouterr().err


async def test_run_backend_reports_missing_outputs_as_not_measured() -> None:
    result = await run_benchmarks.run_backend("redis", {}, quick=True)
    assert result["error"] == "no redis_url in the stack outputs"
    assert len(result["facts"]["loadavg_start"]) == 3


async def test_run_backend_failure_is_reported_with_secrets_masked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def run(outputs: dict[str, Any], quick: bool = False) -> dict[str, Any]:
        raise ConnectionError(f"cannot reach {outputs['redis_url']} with {outputs['x_password']}")

    monkeypatch.setitem(sys.modules, "bench_redis", types.SimpleNamespace(run=run))
    outputs = {"redis_url": "redis://:s3cret-pw@127.0.0.1:1/0", "x_password": "hunter22"}
    result = await run_benchmarks.run_backend("redis", outputs, quick=True)
    assert result["error"].startswith("ConnectionError: cannot reach")
    assert "s3cret-pw" not in result["error"] and "hunter22" not in result["error"]


def test_machine_facts_name_the_cpus_and_the_load() -> None:
    facts = run_benchmarks.machine_facts()
    assert facts["cpu_count"] >= 1
    assert len(facts["loadavg_start"]) == 3
    assert facts["python"].count(".") == 2
