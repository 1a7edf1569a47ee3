"""``scripts/bench --cluster`` without any backend: the side-by-side report on fixed data, its
options, and the server CPU per node (``benchkit.ServerCpu``) on processes of this test."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cluster_report
import psutil
import pytest
import run_benchmarks
from benchkit import ServerCpu, backend_result, batch_entry, concurrency_entry, op_entry


def _fig(ops: float, p50: float) -> dict[str, float]:
    return {"p50_ms": p50, "p95_ms": p50 * 2, "p99_ms": p50 * 3, "ops_per_s": ops}


def _result(topology: str, scale: float, cpu: dict[str, float], notes: list[str]) -> dict[str, Any]:
    store = {"adapter": _fig(900 * scale, 1.0 / scale), "raw": _fig(1000 * scale, 0.9 / scale)}
    if topology == "cluster":
        store["raw_follower"] = _fig(500.0, 2.0)
    return backend_result(
        "typesense",
        version="0.25",
        raw_driver="httpx",
        ops={"store": op_entry(store, "httpx")},
        batch=batch_entry(
            op="store_many",
            unit="docs",
            per_call=10,
            rates={"adapter": 8000 * scale, "raw": 10_000 * scale},
            raw_path="import",
        ),
        concurrency=concurrency_entry(
            op="search", tasks=50, calls=100, rates={"adapter": 400 * scale, "raw": 500 * scale}
        ),
        targets=[],
        settings={"topology": "Raft cluster, 3 nodes" if topology == "cluster" else "one server"},
        facts={
            "server_cpu_s": cpu,
            "loadavg_start": [2.0, 2.0, 2.0],
            "loadavg_end": [3.0, 2.0, 2.0],
            "seconds": 10.0,
        },
        notes=["shared note"],
        topology_notes=notes,
    )


def _document() -> dict[str, Any]:
    single = _result("single", 1.0, {"typesense": 4.0}, [])
    cluster = _result(
        "cluster",
        0.5,
        {"typesense-0": 5.0, "typesense-1": 2.5, "typesense-2": 2.5},
        ["a write is a Raft log entry"],
    )
    return {
        "generated_at": "2026-12-06T13:00:00+00:00",
        "quick": False,
        "duration_s": 600.0,
        "machine": {"cpu_count": 2, "loadavg_start": [2.0, 2.0, 2.0], "loadavg_end": [3, 3, 3]},
        "topologies": {
            "single": {"up_s": 5.0, "backends": {"typesense": single}},
            "cluster": {"up_s": 40.0, "backends": {"typesense": cluster}},
        },
    }


def _row(text: str, start: str) -> list[str]:
    (line,) = [line for line in text.splitlines() if line.startswith(start)]
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_markdown_puts_the_topologies_side_by_side() -> None:
    text = cluster_report.cluster_markdown(_document())
    # operation, who, single ops/s, ÷ raw, p50, cluster ops/s, ÷ raw, p50, cluster ÷ single
    assert _row(text, "| store | adapter |") == [
        *("store", "adapter", "900", "0.90", "1.00", "450", "0.90", "2.00", "0.50"),
    ]
    # A contender only the cluster has: dashes on the single side, its ratio to raw there.
    assert _row(text, "| store | raw_follower |")[2:] == ["-", "-", "-", "500", "1.00", "2.00", "-"]
    assert _row(text, "| store_many (batch, docs/s) | adapter |")[2:] == [
        *("8,000", "0.80", "-", "4,000", "0.80", "-", "0.50"),
    ]
    assert _row(text, "| search x 50 tasks (ops/s) | raw |")[2:] == [
        *("500", "1.00", "-", "250", "1.00", "-", "0.50"),
    ]


def test_markdown_gives_cpu_per_node_and_the_cluster_notes_only() -> None:
    text = cluster_report.cluster_markdown(_document())
    assert _row(text, "| single | typesense |") == ["single", "typesense", "4.00", "40 %"]
    assert cluster_report._share(0.73, 171.7) == "0.4 %"
    assert _row(text, "| cluster | typesense-0 |") == ["cluster", "typesense-0", "5.00", "50 %"]
    assert _row(text, "| cluster | **all nodes** |") == [
        *("cluster", "**all nodes**", "10.00", "100 %"),
    ]
    assert "- a write is a Raft log entry" in text
    assert "- shared note" not in text
    assert "**cluster** (Raft cluster, 3 nodes): load average 2.00 → 3.00 over 10 s" in text
    assert (
        "- **cluster stack**: started in 40 s; 1-minute load average 2.00 to 3.00 at its "
        "backends' starts and ends" in text
    )


def test_markdown_reports_a_failed_topology() -> None:
    document = _document()
    document["topologies"]["cluster"]["backends"]["typesense"] = {
        "backend": "typesense",
        "error": "StorageConnectionError: no leader",
        "facts": {},
    }
    text = cluster_report.cluster_markdown(document)
    assert "not measured: StorageConnectionError: no leader" in text
    assert _row(text, "| store | adapter |")[5:] == ["-", "-", "-", "-"]


def test_write_cluster_writes_md_and_json(tmp_path: Path) -> None:
    paths = cluster_report.write_cluster(_document(), tmp_path)
    assert json.loads(paths["json"].read_text())["topologies"]["cluster"]["up_s"] == 40.0
    assert paths["md"].read_text().startswith("# Benchmarks: single node and cluster\n")


def test_parse_args_cluster_defaults_to_the_clustered_backends() -> None:
    args = run_benchmarks.parse_args(["--cluster"])
    assert args.cluster and args.backends == ["postgres", "redis", "typesense"]


@pytest.mark.parametrize("argv", [["--cluster", "--backends", "neo4j"], ["--cluster", "--scaling"]])
def test_parse_args_cluster_refuses_what_it_cannot_run(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        run_benchmarks.parse_args(argv)
    assert "error:" in capsys.readouterr().err


def test_server_cpu_counts_a_process_and_its_children() -> None:
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}]); input()",
        ],
        stdin=subprocess.PIPE,
    )
    try:
        cpu = ServerCpu({"node": psutil.Process(parent.pid)})
        parent_proc = psutil.Process(parent.pid)
        for _ in range(100):  # until the child has burnt its CPU and exited
            if not parent_proc.children() and cpu.seconds()["node"] >= 0.25:
                break
            time.sleep(0.05)
        assert 0.25 <= cpu.seconds()["node"] < 5
    finally:
        parent.communicate(b"\n", timeout=10)


def test_server_cpu_is_empty_for_outputs_not_of_a_local_stack(tmp_path: Path) -> None:
    outputs = tmp_path / "lab-outputs.json"
    outputs.write_text("{}")
    assert ServerCpu.of_local_stack("redis", outputs).seconds() == {}
