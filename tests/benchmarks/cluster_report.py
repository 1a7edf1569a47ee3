"""Render ``scripts/bench --cluster``: single-node and cluster figures side by side.

Input is the document ``run_benchmarks.py --cluster`` builds: the same backends' results
(``benchkit.backend_result``) from a single-node stack and from a cluster stack, measured one
after the other by one invocation::

    {"generated_at", "quick", "duration_s", "machine": {...},
     "topologies": {"single": {"up_s", "backends": {"redis": <result>, ...}},
                    "cluster": {"up_s", "backends": {...}}}}

Per backend: every contender's ops/s, ratio to raw and p50 in both topologies and the cluster
÷ single ratio; the batch and concurrency paths; the CPU seconds of each server node over the
backend's run (``facts.server_cpu_s``, from ``benchkit.ServerCpu``) and what share of one core
that is; and the cluster run's ``topology_notes`` (what a write costs there). Pure functions of
the document (unit-tested in ``tests/unit/bench``) plus the writer at the end.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from report import TITLES, _load, _machine_lines, _table, fmt_ms, fmt_rate, fmt_ratio

__all__ = ["CLUSTER_JSON", "CLUSTER_MD", "TOPOLOGIES", "cluster_markdown", "write_cluster"]

CLUSTER_MD = "benchmarks-cluster.md"
CLUSTER_JSON = "benchmarks-cluster.json"
TOPOLOGIES = ("single", "cluster")


def _per(cluster: float | None, single: float | None) -> str:
    if not cluster or not single or not math.isfinite(cluster) or not math.isfinite(single):
        return "-"
    return fmt_ratio(cluster / single)


def _op_cells(entry: Mapping[str, Any] | None, who: str) -> tuple[float | None, list[str]]:
    """ops/s and the cells (ops/s, ÷ raw, p50) of one contender of one operation."""
    figures = (entry or {}).get(who)
    if not isinstance(figures, Mapping) or "ops_per_s" not in figures:
        return None, ["-", "-", "-"]
    raw = entry["raw"]["ops_per_s"] if entry and "raw" in entry else None
    rate = float(figures["ops_per_s"])
    shown = fmt_ratio(rate / raw) if raw else "-"
    return rate, [fmt_rate(rate), shown, fmt_ms(figures.get("p50_ms"))]


def _ops_rows(single: Mapping[str, Any], cluster: Mapping[str, Any]) -> list[list[str]]:
    """One row per operation and contender found in either topology."""
    rows = []
    s_ops, c_ops = single.get("ops", {}), cluster.get("ops", {})
    for op in dict.fromkeys([*s_ops, *c_ops]):
        s_entry, c_entry = s_ops.get(op), c_ops.get(op)
        contenders = [
            who
            for who, fig in {**(s_entry or {}), **(c_entry or {})}.items()
            if isinstance(fig, Mapping) and "ops_per_s" in fig
        ]
        for who in contenders:
            s_rate, s_cells = _op_cells(s_entry, who)
            c_rate, c_cells = _op_cells(c_entry, who)
            rows.append([op, who, *s_cells, *c_cells, _per(c_rate, s_rate)])
    return rows


def _path_rows(single: Mapping[str, Any], cluster: Mapping[str, Any]) -> list[list[str]]:
    """The batch and concurrency paths (items/s; no p50: they are not one call at a time)."""
    rows = []
    for key, adapter, raw in (
        ("batch", "adapter_per_s", "raw_per_s"),
        ("concurrency", "adapter_ops_per_s", "raw_ops_per_s"),
    ):
        s_path, c_path = single.get(key) or {}, cluster.get(key) or {}
        shape = c_path or s_path
        if not shape:
            continue
        if key == "batch":
            name = f"{shape['op']} (batch, {shape['unit']}/s)"
        else:
            name = f"{shape['op']} x {shape['tasks']} tasks (ops/s)"
        for who, field in (("adapter", adapter), ("raw", raw)):
            s_rate, c_rate = s_path.get(field), c_path.get(field)
            cells = []
            for path, rate in ((s_path, s_rate), (c_path, c_rate)):
                shown = fmt_ratio(path.get("ratio")) if who == "adapter" and path else "1.00"
                cells += [fmt_rate(rate), shown if rate else "-", "-"]
            rows.append([name, who, *cells, _per(c_rate, s_rate)])
    return rows


def _cpu_rows(results: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """Per topology and node: CPU seconds over the backend's run and the share of one core."""
    rows = []
    for topology, result in results.items():
        facts = result.get("facts", {})
        cpu: Mapping[str, float] = facts.get("server_cpu_s") or {}
        seconds = facts.get("seconds")
        for node, used in cpu.items():
            rows.append([topology, node, f"{used:.2f}", _share(used, seconds)])
        if len(cpu) > 1:
            total = sum(cpu.values())
            rows.append([topology, "**all nodes**", f"{total:.2f}", _share(total, seconds)])
    return rows


def _share(used: float, seconds: float | None) -> str:
    """``used`` CPU seconds as a share of one core over ``seconds`` of wall time."""
    if not seconds:
        return "-"
    share = 100 * used / seconds
    return f"{share:.1f} %" if share < 10 else f"{share:.0f} %"


def _loads(part: Mapping[str, Any]) -> str:
    """The lowest and highest 1-minute load average seen at a backend's start or end."""
    seen = [
        facts[key][0]
        for result in part.get("backends", {}).values()
        for facts in [result.get("facts", {})]
        for key in ("loadavg_start", "loadavg_end")
        if facts.get(key)
    ]
    return f"{min(seen):.2f} to {max(seen):.2f}" if seen else "unknown"


def _backend_section(backend: str, results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    single, cluster = results.get("single", {}), results.get("cluster", {})
    shown = cluster if "version" in cluster else single
    version = shown.get("version")
    lines = [f"## {TITLES.get(backend, backend)}" + (f" {version}" if version else ""), ""]
    for topology, result in results.items():
        where = result.get("settings", {}).get("topology", topology)
        if "error" in result:
            lines.append(f"- **{topology}** ({where}): not measured: {result['error']}")
        else:
            lines.append(f"- **{topology}** ({where}): {_load(result.get('facts', {}))}")
    lines.append("")
    header = ["operation", "who"]
    for topology in TOPOLOGIES:
        header += [f"{topology} ops/s", f"{topology} ÷ raw", f"{topology} p50 ms"]
    header.append("cluster ÷ single")
    rows = _ops_rows(single, cluster) + _path_rows(single, cluster)
    if rows:
        lines += [*_table(header, rows), ""]
    cpu = _cpu_rows(results)
    if cpu:
        lines += [
            "Server CPU per node over the backend's run (user + system seconds of each server "
            "process and its children; the share is of one core over that run's wall time):",
            "",
            *_table(["topology", "node", "CPU s", "share of one core"], cpu),
            "",
        ]
    for note in cluster.get("topology_notes", []):
        lines.append(f"- {note}")
    return [*lines, ""]


def cluster_markdown(run: Mapping[str, Any]) -> str:
    """The whole ``benchmarks-cluster.md``."""
    mode = "quick run (`--quick`: few calls, indicative only)" if run.get("quick") else "full run"
    topologies: Mapping[str, Mapping[str, Any]] = run.get("topologies", {})
    backends = list(dict.fromkeys(b for t in topologies.values() for b in t.get("backends", {})))
    lines = [
        "# Benchmarks: single node and cluster",
        "",
        f"Written by `scripts/bench --cluster` on {run.get('generated_at', '?')} ({mode}, "
        f"{run.get('duration_s', 0):.0f} s). One invocation ran the same benchmarks "
        "(`tests/benchmarks/bench_<backend>.py`, the adapter against its raw driver) on a "
        "single-node stack, then on a cluster stack (`mas-devstack up --topology cluster`: "
        "Redis Cluster of 3 primaries + 3 replicas, a 3-node Typesense Raft group, a "
        "PostgreSQL primary + synchronous hot standby), each in its own root on the same "
        "port base, on this one machine. Every figure is measured as in "
        "[`benchmarks.md`](benchmarks.md) (medians of repetitions, contenders alternating); "
        f"the raw numbers are in [`{CLUSTER_JSON}`]({CLUSTER_JSON}).",
        "",
        *_machine_lines(run),
    ]
    for topology, part in topologies.items():
        lines.append(
            f"- **{topology} stack**: started in {part.get('up_s', 0):.0f} s; 1-minute load "
            f"average {_loads(part)} at its backends' starts and ends"
        )
    lines += [
        "",
        "**How to read.** All nodes of a cluster share this machine's cores with the client, "
        "so a cluster cannot be faster here: it does the same work plus replication "
        "(every write is also applied by the replicas, standby or followers) on the same "
        "CPUs. What it buys is surviving the loss of a node (`docs/` on each backend's "
        "failover), not speed on one host. **÷ raw** compares the adapter with the bare "
        "driver on the same topology (the raw side on the cluster talks to the same primary, "
        "leader or node the adapter's requests reach); **cluster ÷ single** compares the two "
        "topologies; the CPU tables show where the cluster's extra work runs. The two "
        "topologies ran one after the other, so a change in the machine's load between them "
        "weighs on **cluster ÷ single** (the load averages are beside each backend), not on "
        "the ratios to raw, whose contenders alternate within each run.",
        "",
    ]
    for backend in backends:
        results = {
            topology: topologies[topology]["backends"][backend]
            for topology in TOPOLOGIES
            if backend in topologies.get(topology, {}).get("backends", {})
        }
        lines += _backend_section(backend, results)
    return "\n".join(lines).rstrip() + "\n"


def write_cluster(run: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """Write ``benchmarks-cluster.md`` and ``.json`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / CLUSTER_MD, "json": out / CLUSTER_JSON}
    paths["json"].write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    paths["md"].write_text(cluster_markdown(run), encoding="utf-8")
    return paths
