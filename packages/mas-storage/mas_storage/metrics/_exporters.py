"""Render a metrics report (the dict of ``get_metrics()``) as JSON, Prometheus, CSV or Markdown.

Exporters read only the report, so an adapter's export carries its ``backend_specific``
figures too. Prometheus output is the text exposition format 0.0.4: every family has ``# HELP``
and ``# TYPE``, counters end in ``_total``, latency is a ``summary`` in seconds (the base unit
Prometheus asks for; the spec's sample used milliseconds) whose quantiles cover the last
``max_history`` samples while ``_sum``/``_count`` cover every call. Label values are escaped.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterator
from typing import Any

from mas_storage._exceptions import StorageDataError

__all__ = [
    "EXPORT_FORMATS",
    "Family",
    "check_format",
    "export",
    "prometheus_families",
    "to_csv",
    "to_json",
    "to_markdown",
    "to_prometheus",
]

EXPORT_FORMATS = ("dict", "json", "prometheus", "csv", "markdown")


def check_format(format: str) -> None:
    """Raise :class:`StorageDataError` unless ``format`` is one of :data:`EXPORT_FORMATS`."""
    if format not in EXPORT_FORMATS:
        raise StorageDataError(
            f"Unknown metrics export format {format!r}: use one of {', '.join(EXPORT_FORMATS)}",
            operation="export_metrics",
        )


def export(report: dict[str, Any], format: str = "dict") -> dict[str, Any] | str:
    """Render ``report`` in ``format`` (``dict`` returns it unchanged)."""
    check_format(format)
    if format == "dict":
        return report
    renderer: Callable[[dict[str, Any]], str] = _RENDERERS[format]
    return renderer(report)


# -- JSON --------------------------------------------------------------------------------------


def to_json(report: dict[str, Any]) -> str:
    """The report as a JSON document (``json.loads`` gives the dict back)."""
    return json.dumps(report, indent=2, default=str)


# -- Prometheus --------------------------------------------------------------------------------


def _escape_label(value: Any) -> str:
    return str(value).replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _escape_help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return f"{value:.15g}"  # 15 digits: no binary artefacts from the ms -> s conversion


def _labels(labels: dict[str, Any]) -> str:
    inner = ",".join(f'{key}="{_escape_label(value)}"' for key, value in labels.items())
    return "{" + inner + "}"


class Family:
    """One Prometheus metric family: name, type, HELP and samples (``suffix``, labels, value).

    The text export renders these; :class:`~mas_storage.metrics.PrometheusCollector` turns the
    same families into ``prometheus_client`` metrics, so both have the same names.
    """

    def __init__(self, name: str, kind: str, help_text: str) -> None:
        self.name, self.kind, self.help = name, kind, help_text
        self.samples: list[tuple[str, dict[str, str], float]] = []

    def add(self, value: float, suffix: str = "", **labels: Any) -> None:
        self.samples.append((suffix, {k: str(v) for k, v in labels.items()}, value))

    def render(self) -> Iterator[str]:
        if not self.samples:
            return
        yield f"# HELP {self.name} {_escape_help(self.help)}"
        yield f"# TYPE {self.name} {self.kind}"
        for suffix, labels, value in self.samples:
            yield f"{self.name}{suffix}{_labels(labels)} {_number(value)}"


def _leaves(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Flatten nested dicts to ``("a.b", value)`` pairs."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def _numeric_leaves(value: Any) -> Iterator[tuple[str, float]]:
    """The numeric leaves of a nested dict; strings and other values are left out."""
    for name, leaf in _leaves(value):
        if isinstance(leaf, (int, float)):
            yield name, leaf


def prometheus_families(
    report: dict[str, Any], namespace: str = "storage", **extra: str
) -> list[Family]:
    """The report as Prometheus families; ``extra`` labels go on every sample."""
    adapter = report.get("adapter_type", "storage")
    base = {"adapter": adapter, **extra}
    ops_total = Family(
        f"{namespace}_operations_total", "counter", "Storage adapter operations, by outcome."
    )
    duration = Family(
        f"{namespace}_operation_duration_seconds",
        "summary",
        "Operation latency in seconds; quantiles over the last max_history sampled calls.",
    )
    payload = Family(
        f"{namespace}_operation_payload_bytes_total",
        "counter",
        "Estimated size of the operations' arguments, in bytes.",
    )
    rate = Family(
        f"{namespace}_operation_rate_per_second",
        "gauge",
        "Operations per second over the aggregation window.",
    )
    for op, stats in report.get("operations", {}).items():
        labels = {**base, "operation": op}
        ops_total.add(stats["success_count"], **labels, status="success")
        ops_total.add(stats["error_count"], **labels, status="error")
        for key, value in stats["latency_ms"].items():
            if key.startswith("p") and value is not None:
                quantile = f"{float(key[1:]) / 100:g}"
                duration.add(value / 1000.0, **labels, quantile=quantile)
        duration.add(stats["total_time_ms"] / 1000.0, "_sum", **labels)
        duration.add(stats["total_count"], "_count", **labels)
        payload.add(stats["bytes_total"], **labels)
        rate.add(stats["throughput"]["ops_per_sec"], **labels)

    errors = Family(f"{namespace}_errors_total", "counter", "Operation errors, by error type.")
    for kind, count in report.get("errors", {}).get("by_type", {}).items():
        errors.add(count, **base, error_type=kind)

    conn = report.get("connection", {})
    events = Family(
        f"{namespace}_connection_events_total",
        "counter",
        "Connection lifecycle events: connect, failed connect, disconnect.",
    )
    connected = Family(
        f"{namespace}_connected", "gauge", "1 when the adapter is connected, else 0."
    )
    if conn:
        events.add(conn["connect_count"], **base, event="connect")
        events.add(conn["connect_error_count"], **base, event="connect_error")
        events.add(conn["disconnect_count"], **base, event="disconnect")
        connected.add(int(conn["current_state"] == "connected"), **base)

    uptime = Family(
        f"{namespace}_metrics_uptime_seconds", "gauge", "Seconds since the collector started."
    )
    if "uptime_seconds" in report:
        uptime.add(report["uptime_seconds"], **base)

    backend = Family(f"{namespace}_backend_metric", "gauge", "Backend-specific figures, by name.")
    for name, value in _numeric_leaves(report.get("backend_specific") or {}):
        backend.add(value, **base, name=name)

    return [ops_total, duration, payload, rate, errors, events, connected, uptime, backend]


def to_prometheus(report: dict[str, Any], namespace: str = "storage") -> str:
    """The report in the Prometheus text exposition format."""
    families = prometheus_families(report, namespace)
    lines = [line for family in families for line in family.render()]
    return "\n".join(lines) + "\n"


# -- CSV ---------------------------------------------------------------------------------------


def to_csv(report: dict[str, Any]) -> str:
    """One row per operation: counts, latency (ms), throughput; a header row first."""
    operations = report.get("operations", {})
    latency_keys: list[str] = []
    for stats in operations.values():
        latency_keys = [k for k in stats["latency_ms"] if k not in ("min", "max", "avg")]
        break
    header = [
        "timestamp",
        "adapter",
        "operation",
        "total_count",
        "success_count",
        "error_count",
        "success_rate",
        "min_latency_ms",
        "avg_latency_ms",
        "max_latency_ms",
        *(f"{key}_latency_ms" for key in latency_keys),
        "ops_per_sec",
        "bytes_per_sec",
        "bytes_total",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for op, stats in operations.items():
        latency = stats["latency_ms"]
        writer.writerow(
            [
                report.get("timestamp", ""),
                report.get("adapter_type", ""),
                op,
                stats["total_count"],
                stats["success_count"],
                stats["error_count"],
                _blank(stats["success_rate"]),
                _blank(latency["min"]),
                _blank(latency["avg"]),
                _blank(latency["max"]),
                *(_blank(latency.get(key)) for key in latency_keys),
                stats["throughput"]["ops_per_sec"],
                stats["throughput"]["bytes_per_sec"],
                stats["bytes_total"],
            ]
        )
    return buffer.getvalue()


def _blank(value: Any) -> Any:
    return "" if value is None else value


# -- Markdown ----------------------------------------------------------------------------------


def _cell(value: Any, fmt: str = "{}") -> str:
    if value is None:
        return "-"
    text = fmt.format(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def to_markdown(report: dict[str, Any]) -> str:
    """A human-readable page: operations table, connection, errors by type, recent errors."""
    lines = [
        "# Storage Adapter Metrics",
        "",
        f"**Adapter**: {_cell(report.get('adapter_type'))}  ",
        f"**Uptime**: {_cell(report.get('uptime_seconds'), '{:.1f}')}s  ",
        f"**Timestamp**: {_cell(report.get('timestamp'))}",
        "",
        "## Operations",
        "",
    ]
    operations = report.get("operations", {})
    if operations:
        first = next(iter(operations.values()))
        pcts = [k for k in first["latency_ms"] if k not in ("min", "max", "avg")]
        head = ["Operation", "Total", "Errors", "Success Rate", "Avg (ms)"]
        head += [f"{k.upper()} (ms)" for k in pcts] + ["Max (ms)", "ops/s", "bytes/s"]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "|".join("---" for _ in head) + "|")
        for op, stats in operations.items():
            lat = stats["latency_ms"]
            row = [
                _cell(op),
                _cell(stats["total_count"]),
                _cell(stats["error_count"]),
                _cell(stats["success_rate"], "{:.2%}"),
                _cell(lat["avg"], "{:.3f}"),
                *(_cell(lat.get(k), "{:.3f}") for k in pcts),
                _cell(lat["max"], "{:.3f}"),
                _cell(stats["throughput"]["ops_per_sec"], "{:.2f}"),
                _cell(stats["throughput"]["bytes_per_sec"], "{:.0f}"),
            ]
            lines.append("| " + " | ".join(row) + " |")
    else:
        lines.append("No operations recorded.")

    conn = report.get("connection")
    if conn:
        lines += ["", "## Connection", "", "| Figure | Value |", "|---|---|"]
        lines += [f"| {_cell(key)} | {_cell(value)} |" for key, value in conn.items()]

    errors = report.get("errors") or {}
    lines += ["", "## Errors", ""]
    if errors.get("by_type"):
        lines += ["| Type | Count |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in errors["by_type"].items()]
        lines += ["", "### Recent errors", ""]
        lines += ["| Time | Operation | Type | ms | Message |", "|---|---|---|---|---|"]
        lines += [
            f"| {_cell(e['timestamp'])} | {_cell(e['operation'])} | {_cell(e['type'])} "
            f"| {_cell(e['duration_ms'], '{:.3f}')} | {_cell(e['message'])} |"
            for e in reversed(errors.get("recent_errors", []))
        ]
    else:
        lines.append("No errors recorded.")

    backend = report.get("backend_specific")
    if backend:
        lines += ["", "## Backend", "", "| Figure | Value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in _leaves(backend)]
    return "\n".join(lines) + "\n"


_RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "json": to_json,
    "prometheus": to_prometheus,
    "csv": to_csv,
    "markdown": to_markdown,
}
