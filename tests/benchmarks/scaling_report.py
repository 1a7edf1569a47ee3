"""Render the scaling study: its Markdown section, the log-log chart and the JSON.

Input is the document ``run_benchmarks.py --scaling`` builds::

    {"generated_at", "quick", "duration_s", "machine": {...},
     "backends": {"postgres": <scalekit.scaling_result(...)> | {"error": "..."}, ...}}

Pure functions of that document plus the writers, unit-tested without a backend.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from report import TITLES, fmt_ms, fmt_rate

__all__ = [
    "SCALING_CHART",
    "SCALING_HEADING",
    "SCALING_JSON",
    "scaling_markdown",
    "slope_rows",
    "write_scaling",
    "write_scaling_chart",
]

SCALING_JSON = "scaling.json"
SCALING_CHART = "scaling.png"
#: The section's heading in ``benchmarks.md`` (a later run replaces from there to the end).
SCALING_HEADING = "## Scaling: cost as the data grows"


def _fmt_slope(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:+.2f}"


def _fmt_size(n: int) -> str:
    exponent = math.log10(n) if n > 0 else 0.0
    return f"10^{exponent:.0f}" if exponent.is_integer() else f"{n:,}"


def slope_rows(run: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (backend, path): kind, slope of p50, slope of items/s, growth, flag."""
    rows = []
    for backend, result in run.get("backends", {}).items():
        for name, path in result.get("paths", {}).items():
            rows.append(
                {
                    "backend": backend,
                    "path": name,
                    "kind": path["kind"],
                    "what": path["what"],
                    "slope": path["slope"],
                    "items_slope": path.get("items_slope"),
                    "server_slope": path.get("server_slope"),
                    "growth": path["growth"],
                    "flag": path["flag"],
                }
            )
    return rows


def _load_line(result: Mapping[str, Any]) -> str:
    loads = result.get("facts", {}).get("loadavg_by_size", [])
    parts = [
        f"{_fmt_size(x['size'])}: {' / '.join(f'{v:.1f}' for v in x['loadavg'])}"
        for x in loads
        if x.get("loadavg")
    ]
    return "; ".join(parts) if parts else "not recorded"


def _backend_section(backend: str, result: Mapping[str, Any]) -> list[str]:
    title = TITLES.get(backend, backend)
    lines = [f"### {title}" + (f" {result['version']}" if result.get("version") else ""), ""]
    if "error" in result or "skipped" in result:
        reason = result.get("error") or result.get("skipped")
        return [*lines, f"**Not measured**: {reason}.", ""]
    carried = result.get("facts", {}).get("carried_from")
    when = (
        f"measured in the run of {carried}"
        if carried
        else f"measured in this run ({result.get('facts', {}).get('seconds', '?')} s)"
    )
    lines += [f"Data: {result.get('shape', '')}; {when}.", ""]
    lines += [f"Load average (1/5/15 min) as each size started: {_load_line(result)}.", ""]
    sizes = result.get("sizes", [])
    header = ["path", "what", *[_fmt_size(n) for n in sizes], "slope", "growth"]
    lines += [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, path in result.get("paths", {}).items():
        by_size = {p["size"]: p for p in path["points"]}
        cells = []
        for n in sizes:
            p = by_size.get(n)
            if p is None:
                cells.append("-")
                continue
            server = f" (server {fmt_ms(p['server_ms'])} ms)" if p.get("server_ms") else ""
            hits = f" ({p['db_hits']:.0f} db hits)" if p.get("db_hits") else ""
            cells.append(
                f"{fmt_ms(p['p50_ms'])} / {fmt_ms(p['p95_ms'])} ms, "
                f"{fmt_rate(p['items_per_s'])}/s{server}{hits}"
            )
        growth = path.get("growth")
        mark = "**" if path.get("flag") else ""
        lines.append(
            "| "
            + " | ".join(
                [
                    f"{mark}{name}{mark}",
                    f"{path['what']} ({path['kind']}, {path['unit']})",
                    *cells,
                    f"{mark}{_fmt_slope(path.get('slope'))}{mark}",
                    "-" if growth is None else f"{growth:.1f}x",
                ]
            )
            + " |"
        )
    lines.append("")
    if result.get("load"):
        loads = ", ".join(
            f"{_fmt_size(x['size'])}{' ' + x['what'] if x.get('what') else ''}: "
            f"{fmt_rate(x['items_per_s'])}/s"
            for x in result["load"]
            if x.get("items_per_s")
        )
        lines += [f"Bulk load up to each size (`store_many`, items/s): {loads}.", ""]
    lines += [f"- {note}" for note in result.get("notes", [])]
    if result.get("notes"):
        lines.append("")
    for item in result.get("evidence", []):
        lines += [
            f"<details><summary>{item['title']} (at {_fmt_size(item['size'])})</summary>",
            "",
            "```text",
            item["text"],
            "```",
            "",
            "</details>",
            "",
        ]
    return lines


def scaling_markdown(run: Mapping[str, Any], *, level: int = 2) -> list[str]:
    """The scaling section of ``benchmarks.md`` (headings start at ``level``)."""
    mode = "quick run (`--quick`: small sizes, indicative only)" if run.get("quick") else "full run"
    machine = run.get("machine", {})
    start, end = machine.get("loadavg_start", []), machine.get("loadavg_end", [])
    head = "#" * level
    lines = [
        f"{head}{SCALING_HEADING.removeprefix('##')}",
        "",
        f"Written by `scripts/bench --scaling` on {run.get('generated_at', '?')} ({mode}, "
        f"{run.get('duration_s', 0):.0f} s); raw numbers in [`{SCALING_JSON}`]({SCALING_JSON}). "
        f"Load average (1/5/15 min) {' / '.join(map(str, start))} at start, "
        f"{' / '.join(map(str, end))} at end.",
        "",
        "Each cell is p50 / p95 latency of the adapter's call, awaited one at a time, and the "
        "items it handled per second (rows written, returned or deleted), then in brackets "
        "the server's own time per call where it reports one (Neo4j: the db hits of the "
        "statement's PROFILE, its work). **slope** is the "
        "least-squares slope of log(p50) on log(size): cost grows as size^slope, so about 0 "
        "means O(1) or O(log n) and 1 means O(n). **growth** is p50 at the largest size over "
        "p50 at the smallest; **slope of server time** is the same fit of the server's own "
        "time (PostgreSQL EXPLAIN ANALYZE, Redis INFO commandstats, Typesense search_time_ms), "
        "which the client's load does not blur. Paths with a slope above 0.25 are in bold. On "
        "a loaded machine absolute figures are inflated; the slopes are what this section is "
        "for.",
        "",
        f"![p50 latency against data size, log-log]({SCALING_CHART})",
        "",
        "| backend | path | slope of p50 | slope of items/s | slope of server time | growth |",
        "|---|---|---|---|---|---|",
    ]
    for row in slope_rows(run):
        mark = "**" if row["flag"] else ""
        growth = row["growth"]
        lines.append(
            f"| {TITLES.get(row['backend'], row['backend'])} | {mark}{row['path']}{mark} | "
            f"{_fmt_slope(row['slope'])} | {_fmt_slope(row['items_slope'])} | "
            f"{_fmt_slope(row['server_slope'])} | {'-' if growth is None else f'{growth:.1f}x'} |"
        )
    lines.append("")
    for backend, result in run.get("backends", {}).items():
        lines += _backend_section(backend, result).copy()
    for finding in run.get("findings", []):
        lines += [finding, ""]
    return lines


def write_scaling_chart(run: Mapping[str, Any], path: Path) -> None:
    """One log-log panel per backend: p50 against size, a line per path, O(1)/O(n) guides."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [(b, r) for b, r in run.get("backends", {}).items() if r.get("paths")]
    count = max(1, len(measured))
    cols = 2 if count > 1 else 1
    rows = math.ceil(count / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.4 * rows), dpi=100, squeeze=False)
    for ax in axes.flat[len(measured) :]:
        ax.set_visible(False)
    for ax, (backend, result) in zip(axes.flat, measured, strict=False):
        sizes = [n for n in result.get("sizes", []) if n > 0]
        palette = plt.get_cmap("tab20")
        colours: dict[str, Any] = {}
        for name, series in result["paths"].items():
            points = [p for p in series["points"] if p.get("p50_ms")]
            if not points:
                continue
            # "<path> (before ...)": the same colour as <path>, dotted, crosses.
            base, _, before = name.partition(" (before")
            colour = colours.setdefault(base, palette(len(colours) % 20))
            style = ":" if before else "-" if series["kind"] == "read" else "--"
            ax.plot(
                [p["size"] for p in points],
                [p["p50_ms"] for p in points],
                style,
                color=colour,
                marker="x" if before else "o",
                markersize=3,
                linewidth=1.6 if series.get("flag") else 1.0,
                label=f"{name} ({_fmt_slope(series.get('slope'))})",
            )
        if len(sizes) >= 2:
            lo, hi = min(sizes), max(sizes)
            floor = min(
                (p["p50_ms"] for s in result["paths"].values() for p in s["points"]),
                default=1.0,
            )
            ax.plot([lo, hi], [floor, floor * hi / lo], ":", color="grey", linewidth=0.8)
            ax.text(hi, floor * hi / lo, " O(n)", fontsize=7, color="grey", va="center")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{TITLES.get(backend, backend)}", fontsize=10)
        ax.set_xlabel("items in the backend", fontsize=8)
        ax.set_ylabel("p50 ms (log)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", linewidth=0.3, alpha=0.5)
        ax.legend(fontsize=6, loc="upper left", ncol=2)
    mode = "quick" if run.get("quick") else "full"
    fig.suptitle(
        f"p50 latency against data size (log-log; slope in brackets; solid = read, "
        f"dashed = write, dotted = before a fix). {mode} run {run.get('generated_at', '')}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_scaling(run: Mapping[str, Any], out: Path) -> dict[str, Path]:
    """Write ``scaling.json`` and ``scaling.png`` into ``out``; return their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / SCALING_JSON, "png": out / SCALING_CHART}
    paths["json"].write_text(json.dumps(run, indent=2, default=str) + "\n", encoding="utf-8")
    write_scaling_chart(run, paths["png"])
    return paths
