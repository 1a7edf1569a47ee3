"""Render benchmark results: a console table, ``benchmarks.md``, the JSON and the PNG chart.

Input is the run document built by ``run_benchmarks.py``::

    {"generated_at", "quick", "duration_s", "machine": {...},
     "backends": {"redis": <benchkit.backend_result(...)> | {"error": "..."}, ...}}

Pure functions of that document (plus the writers at the end), so they are unit-tested
without any backend (``tests/unit/bench``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CHART_NAME",
    "JSON_NAME",
    "MD_NAME",
    "chart_rows",
    "markdown",
    "text_table",
    "write_chart",
    "write_reports",
]

MD_NAME = "benchmarks.md"
JSON_NAME = "benchmarks.json"
CHART_NAME = "benchmarks.png"
TITLES = {
    "postgres": "PostgreSQL",
    "redis": "Redis",
    "qdrant": "Qdrant",
    "neo4j": "Neo4j",
    "typesense": "Typesense",
}
_OP_COLUMNS = ("p50_ms", "p95_ms", "p99_ms", "ops_per_s")
#: Facts about the run itself, shown with the load average rather than as backend facts.
_RUN_FACTS = frozenset({"loadavg_start", "loadavg_end", "seconds"})


# -- number formats --------------------------------------------------------------------------


def fmt_ms(value: float | None) -> str:
    """Milliseconds with 3 significant-ish digits."""
    if value is None or not math.isfinite(value):
        return "-"
    if value < 1:
        return f"{value:.3f}"
    if value < 100:
        return f"{value:.2f}"
    return f"{value:,.0f}"


def fmt_rate(value: float | None) -> str:
    """A rate with thousands separators (one decimal below 100)."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"


def fmt_us(value: float | None) -> str:
    """Microseconds, whole (one decimal below 10)."""
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.1f}" if value < 10 else f"{value:,.0f}"


def fmt_ratio(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.2f}"


def fmt_value(value: float | None, unit: str) -> str:
    """A target's goal or measured value in its unit."""
    if unit == "ms":
        return f"{fmt_ms(value)} ms"
    if unit == "x":  # three decimals: 0.898 must not read as the 0.90 goal
        return "-" if value is None or not math.isfinite(value) else f"{value:.3f}x"
    return f"{fmt_rate(value)} {unit}"


def _met(flag: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "not measured"}[flag]


def _title(backend: str, result: Mapping[str, Any]) -> str:
    version = result.get("version")
    name = TITLES.get(backend, backend)
    return f"{name} {version}" if version else name


def _load(facts: Mapping[str, Any]) -> str:
    start, end = facts.get("loadavg_start"), facts.get("loadavg_end")
    if not start:
        return "load average not known"
    text = f"load average {start[0]:.2f}" + (f" → {end[0]:.2f}" if end else "")
    return text + (f" over {facts['seconds']:.0f} s" if "seconds" in facts else "")


def _ops_rows(result: Mapping[str, Any]) -> list[tuple[str, str, dict[str, float], str]]:
    """``(operation, contender, figures, ratio text)`` for every measured single operation."""
    rows = []
    for op, entry in result.get("ops", {}).items():
        for who, figures in entry.items():
            if not isinstance(figures, Mapping) or "ops_per_s" not in figures:
                continue
            if who == "adapter":
                shown = fmt_ratio(entry.get("ratio"))
            elif who == "raw":
                shown = "1.00"
            else:
                shown = fmt_ratio(figures["ops_per_s"] / entry["raw"]["ops_per_s"])
            rows.append((op, who, dict(figures), shown))
    return rows


# -- console -----------------------------------------------------------------------------------


def text_table(result: Mapping[str, Any]) -> str:
    """One backend's figures as a plain-text table (what ``bench_<backend>.py`` prints)."""
    backend = result.get("backend", "?")
    lines = [
        f"== {_title(backend, result)} (raw: {result.get('raw_driver', '?')}; "
        f"{_load(result.get('facts', {}))})"
    ]
    if "error" in result:
        return "\n".join([*lines, f"  FAILED: {result['error']}"])
    header = f"  {'operation':<28}{'who':<22}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
    lines.append(header + f"{'ops/s':>11}{'÷ raw':>7}{'cpu µs':>8}")
    for op, who, fig, shown in _ops_rows(result):
        lines.append(
            f"  {op:<28}{who:<22}{fmt_ms(fig['p50_ms']):>9}{fmt_ms(fig['p95_ms']):>9}"
            f"{fmt_ms(fig['p99_ms']):>9}{fmt_rate(fig['ops_per_s']):>11}{shown:>7}"
            f"{fmt_us(fig.get('cpu_us')):>8}"
        )
    batch = result.get("batch")
    if batch:
        lines.append(
            f"  batch {batch['op']} ({batch['per_call']:,} {batch['unit']}/call): adapter "
            f"{fmt_rate(batch['adapter_per_s'])} {batch['unit']}/s, raw "
            f"{fmt_rate(batch['raw_per_s'])} ({batch['raw_path']}), ratio "
            f"{fmt_ratio(batch['ratio'])}"
        )
    conc = result.get("concurrency")
    if conc:
        lines.append(
            f"  concurrency {conc['op']} x {conc['tasks']} tasks: adapter "
            f"{fmt_rate(conc['adapter_ops_per_s'])} ops/s, raw "
            f"{fmt_rate(conc['raw_ops_per_s'])} ops/s, ratio {fmt_ratio(conc['ratio'])}"
        )
    for table in result.get("tables", []):
        lines.append(f"  {table['title']}")
        lines += [f"    {row}" for row in _table(table["header"], table["rows"])]
    for key, value in result.get("facts", {}).items():
        if key not in _RUN_FACTS:
            lines.append(f"  {key}: {value}")
    lines.append("  targets:")
    for t in result.get("targets", []):
        mark = {True: "met", False: "NOT MET", None: "n/a"}[t["met"]]
        lines.append(
            f"    [{mark:>7}] {t['label']} {t['cmp']} {fmt_value(t['limit'], t['unit'])}: "
            f"{fmt_value(t['measured'], t['unit'])} ({t['source']})"
        )
    for note in result.get("notes", []):
        lines.append(f"  note: {note}")
    return "\n".join(lines)


# -- markdown ----------------------------------------------------------------------------------


def _table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> list[str]:
    head = list(header)
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _targets_table(targets: Sequence[Mapping[str, Any]], backend: str | None = None) -> list[str]:
    header = ["target", "source", "goal", "measured", "met?"]
    if backend is not None:
        header.insert(0, "backend")
    rows = []
    for t in targets:
        row = [
            t["label"],
            t["source"],
            f"{t['cmp']} {fmt_value(t['limit'], t['unit'])}",
            fmt_value(t["measured"], t["unit"]),
            _met(t["met"]),
        ]
        if backend is not None:
            row.insert(0, TITLES.get(t["backend"], t["backend"]))
        rows.append(row)
    return _table(header, rows)


def _machine_lines(run: Mapping[str, Any]) -> list[str]:
    m = run.get("machine", {})
    start, end = m.get("loadavg_start") or [], m.get("loadavg_end") or []
    load = " / ".join(f"{x:.2f}" for x in start) or "unknown"
    load_end = " / ".join(f"{x:.2f}" for x in end) or "unknown"
    lines = [
        f"- **CPU**: {m.get('cpu_count', '?')} CPUs ({m.get('cpu_model', 'unknown model')}), "
        f"{m.get('platform', '')}",
        f"- **Python** {m.get('python', '?')}; commit {m.get('git', 'unknown')}",
        f"- **Load average** (1/5/15 min) at start {load}, at end {load_end}: other work "
        "shared the machine; each backend's own start → end load is given in its section",
    ]
    versions = []
    for backend, result in run.get("backends", {}).items():
        if "error" in result:
            continue
        text = _title(backend, result)
        facts = {k: v for k, v in result.get("facts", {}).items() if k not in _RUN_FACTS}
        if facts:
            text += " (" + ", ".join(f"{k} {v}" for k, v in facts.items()) + ")"
        versions.append(text)
    if versions:
        lines.append("- **Backends**: " + "; ".join(versions))
    return lines


def _backend_section(backend: str, result: Mapping[str, Any]) -> list[str]:
    lines = [f"## {_title(backend, result)}", ""]
    if "error" in result:
        return [*lines, f"Not measured: the run failed ({result['error']}).", ""]
    lines += [
        f"Raw driver: {result.get('raw_driver', '?')}. "
        f"While it ran: {_load(result.get('facts', {}))}.",
        "",
    ]
    rows = []
    for op, who, fig, shown in _ops_rows(result):
        raw_label = result["ops"][op].get("raw_label", "") if who == "raw" else ""
        rows.append(
            [
                op,
                who + (f" ({raw_label})" if raw_label else ""),
                *(fmt_ms(fig[k]) for k in _OP_COLUMNS[:3]),
                fmt_rate(fig["ops_per_s"]),
                shown,
                fmt_us(fig.get("cpu_us")),
            ]
        )
    if rows:
        header = ["operation", "who", "p50 ms", "p95 ms", "p99 ms", "ops/s", "÷ raw", "CPU µs/call"]
        lines += [*_table(header, rows), ""]
    batch = result.get("batch")
    if batch:
        unit = batch["unit"]
        lines += _table(
            ["batch path", f"{unit}/s", "÷ raw"],
            [
                [
                    f"adapter `{batch['op']}` ({batch['per_call']:,} {unit} per call)",
                    fmt_rate(batch["adapter_per_s"]),
                    fmt_ratio(batch["ratio"]),
                ],
                [f"raw: {batch['raw_path']}", fmt_rate(batch["raw_per_s"]), "1.00"],
            ],
        )
        sweep = batch.get("sweep")
        if sweep:
            lines += [
                "",
                f"Adapter `{batch['op']}` {unit}/s by batch size: "
                + ", ".join(f"{size}: {fmt_rate(rate)}" for size, rate in sweep.items())
                + (f" (default {batch['batch_size']})" if batch.get("batch_size") else ""),
            ]
        lines.append("")
    conc = result.get("concurrency")
    if conc:
        lines += [
            f"Concurrency: {conc['tasks']} tasks calling `{conc['op']}` through one adapter: "
            f"{fmt_rate(conc['adapter_ops_per_s'])} ops/s; through one raw client: "
            f"{fmt_rate(conc['raw_ops_per_s'])} ops/s (ratio {fmt_ratio(conc['ratio'])}).",
            "",
        ]
    for table in result.get("tables", []):
        lines += [f"{table['title']}", "", *_table(table["header"], table["rows"]), ""]
    if result.get("targets"):
        lines += [*_targets_table(result["targets"]), ""]
    for note in result.get("notes", []):
        lines.append(f"- {note}")
    if result.get("notes"):
        lines.append("")
    return lines


def markdown(run: Mapping[str, Any], extra: Iterable[str] = ()) -> str:
    """The whole ``benchmarks.md``; ``extra`` lines (the scaling study's section) close it."""
    mode = "quick run (`--quick`: few calls, indicative only)" if run.get("quick") else "full run"
    backends: Mapping[str, Any] = run.get("backends", {})
    lines = [
        "# Benchmarks",
        "",
        f"Written by `scripts/bench` on {run.get('generated_at', '?')} ({mode}, "
        f"{run.get('duration_s', 0):.0f} s). Regenerate with `scripts/bench` (the local stack "
        "must be up: `uv run mas-devstack up`); the raw numbers are in "
        f"[`{JSON_NAME}`]({JSON_NAME}). The same benchmarks on the cluster topology, beside "
        "single-node figures with the CPU of every server node: "
        "[`benchmarks-cluster.md`](benchmarks-cluster.md) (`scripts/bench --cluster`).",
        "",
        *_machine_lines(run),
        "",
        "**How to read.** Every figure is the median of "
        f"{_repetitions(backends)} repetitions after a warm-up; within a repetition the adapter "
        "and the raw driver run in alternating blocks, so load drift hits both alike. "
        "Latencies (p50/p95/p99) are of calls awaited one at a time; ops/s is calls over "
        "wall time. **÷ raw** is the adapter's ops/s (or items/s) divided by the bare "
        "driver's doing the same work with the same round trips, from the same input (the "
        "raw side converts the caller's dicts inside its timing too): 1.00 is as fast as the "
        "driver, below 1 is the adapter's overhead. **CPU µs/call** is this process's CPU "
        "time per call: the client-side work, which a loaded server does not blur. Nothing "
        "here is a test: CI runs `scripts/bench --quick` only to prove the command works.",
        "",
        "**Studies** behind some of these figures, each measured on its own (why a target is "
        "or is not met, what was tried, the limits): [benchmarks-studies.md]"
        "(benchmarks-studies.md) (Qdrant Edge, the Typesense client's CPU, what TLS costs), "
        "[postgres-pool.md](postgres-pool.md), [metrics.md](metrics.md).",
        "",
        f"![adapter ÷ raw per operation]({CHART_NAME})",
        "",
    ]
    targets = [
        {**t, "backend": backend}
        for backend, result in backends.items()
        for t in result.get("targets", [])
    ]
    missed = [t for t in targets if t["met"] is not True]
    lines += ["## Targets", ""]
    if not targets:
        lines += ["No target was evaluated.", ""]
    elif missed:
        lines += [
            f"{len(targets) - len(missed)} of {len(targets)} targets met. **Not met** (or not "
            "measured):",
            "",
            *_targets_table(missed, backend="all"),
            "",
        ]
    else:
        lines += [f"All {len(targets)} targets met.", ""]
    failed = [b for b, r in backends.items() if "error" in r]
    if failed:
        lines += [f"**Not measured** (the run failed): {', '.join(failed)}.", ""]
    for backend, result in backends.items():
        lines += _backend_section(backend, result)
    lines += extra
    return "\n".join(lines).rstrip() + "\n"


def _repetitions(backends: Mapping[str, Any]) -> int:
    for result in backends.values():
        reps = result.get("settings", {}).get("repetitions")
        if reps:
            return int(reps)
    return 5


# -- chart -------------------------------------------------------------------------------------


def chart_rows(run: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """``(backend, operation, adapter ÷ raw)`` for every measured ratio, in report order."""
    rows = []
    for backend, result in run.get("backends", {}).items():
        if "error" in result:
            continue
        name = TITLES.get(backend, backend)
        for op, entry in result.get("ops", {}).items():
            rows.append((name, op, float(entry["ratio"])))
        if result.get("batch"):
            rows.append((name, f"{result['batch']['op']} (batch)", float(result["batch"]["ratio"])))
        if result.get("concurrency"):
            conc = result["concurrency"]
            rows.append((name, f"{conc['op']} x{conc['tasks']} tasks", float(conc["ratio"])))
    return [row for row in rows if math.isfinite(row[2])]


def write_chart(run: Mapping[str, Any], path: Path) -> None:
    """A horizontal bar chart of adapter ÷ raw per operation, the 0.90 goal marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = chart_rows(run)
    height = max(3.0, 0.32 * len(rows) + 1.5)
    fig, ax = plt.subplots(figsize=(9, height), dpi=110)
    palette = plt.get_cmap("tab10")
    backends = list(dict.fromkeys(r[0] for r in rows))
    colours = {b: palette(i % 10) for i, b in enumerate(backends)}
    labels = [f"{b}: {op}" for b, op, _ in rows]
    values = [v for _, _, v in rows]
    positions = range(len(rows))
    ax.barh(list(positions), values, color=[colours[b] for b, _, _ in rows])
    for y, value in zip(positions, values, strict=True):
        ax.text(value + 0.01, y, f"{value:.2f}", va="center", fontsize=8)
    ax.set_yticks(list(positions), labels, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(0.9, color="red", linestyle="--", linewidth=0.8, label="goal 0.90")
    ax.set_xlim(0, max([1.2, *values]) * 1.08)
    ax.set_xlabel("adapter ÷ raw driver (ops/s or items/s; 1.0 = as fast as the driver)")
    mode = "quick" if run.get("quick") else "full"
    ax.set_title(f"Adapter overhead per operation ({mode} run, {run.get('generated_at', '')})")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_reports(run: Mapping[str, Any], out: Path, extra: Iterable[str] = ()) -> dict[str, Path]:
    """Write the Markdown (``extra`` lines at its end), the JSON and the chart into ``out``;
    return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"md": out / MD_NAME, "json": out / JSON_NAME, "png": out / CHART_NAME}
    paths["json"].write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    paths["md"].write_text(markdown(run, extra), encoding="utf-8")
    write_chart(run, paths["png"])
    return paths
