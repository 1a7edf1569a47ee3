"""Export formats: JSON round-trips, CSV parses, Prometheus parses and is well formed, Markdown."""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mas_storage import StorageDataError, StorageQueryError
from mas_storage.metrics import (
    EXPORT_FORMATS,
    MetricsCollector,
    export,
    to_csv,
    to_json,
    to_markdown,
    to_prometheus,
)

WEIRD_OP = 'we"ird\\op\nname|x'

# One exposition-format line: a comment, or name{labels} value.
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
_VALUE = r"(?:[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|NaN|[+-]Inf)"
_SAMPLE = re.compile(rf"^({_NAME})(\{{{_LABEL}(?:,{_LABEL})*\}})? {_VALUE}$")
_META = re.compile(rf"^# (HELP|TYPE) ({_NAME}) (.*)$")


def _collector() -> MetricsCollector:
    collector = MetricsCollector(adapter='typ"e\\sense')
    collector.record("connect", 0.02, None, ())
    for ms in (2, 4, 6, 8):
        collector.record("store", ms / 1000, None, ({"content": "abcd"},))
    collector.record("store", 0.010, StorageQueryError("syntax"), ({"content": "x"},))
    collector.record(WEIRD_OP, 0.001, None, ())
    return collector


@pytest.fixture
def report() -> dict[str, Any]:
    report = _collector().report()
    report["backend_specific"] = {"document_count": 42, "memory": {"used": 7}, "name": "c1"}
    return report


def test_json_round_trips(report: dict[str, Any]) -> None:
    assert json.loads(to_json(report)) == report


async def test_collector_exports_every_format() -> None:
    collector = _collector()
    for fmt in EXPORT_FORMATS:
        out = await collector.export_metrics(fmt)
        assert isinstance(out, dict if fmt == "dict" else str)
    data = json.loads(await collector.export_metrics("json"))  # type: ignore[arg-type]
    assert data["operations"]["store"]["total_count"] == 5
    with pytest.raises(StorageDataError, match="xml"):
        await collector.export_metrics("xml")
    with pytest.raises(StorageDataError, match="prometheus"):
        export({}, "yaml")


def test_csv_parses_with_csv(report: dict[str, Any]) -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    by_op = {row["operation"]: row for row in rows}
    assert set(by_op) == {"connect", "store", WEIRD_OP}
    store = by_op["store"]
    assert store["adapter"] == 'typ"e\\sense'
    assert store["timestamp"] == report["timestamp"]
    assert (int(store["total_count"]), int(store["success_count"])) == (5, 4)
    assert int(store["error_count"]) == 1
    assert float(store["avg_latency_ms"]) == pytest.approx(6.0)
    assert float(store["p95_latency_ms"]) == pytest.approx(
        report["operations"]["store"]["latency_ms"]["p95"]
    )
    assert float(store["success_rate"]) == pytest.approx(0.8)
    assert int(store["bytes_total"]) == 4 * 11 + 8


def test_prometheus_parses_with_prometheus_client(report: dict[str, Any]) -> None:
    text = to_prometheus(report)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["storage_operations"].type == "counter"
    assert families["storage_operation_duration_seconds"].type == "summary"
    assert families["storage_errors"].type == "counter"
    assert families["storage_backend_metric"].type == "gauge"

    def samples(family: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value for s in families[family].samples
        }

    adapter = 'typ"e\\sense'  # escaped on the way out, unescaped by the parser
    ops = samples("storage_operations")
    key = (("adapter", adapter), ("operation", "store"), ("status", "success"))
    assert ops[("storage_operations_total", key)] == 4
    key = (("adapter", adapter), ("operation", "store"), ("status", "error"))
    assert ops[("storage_operations_total", key)] == 1
    weird = (("adapter", adapter), ("operation", WEIRD_OP), ("status", "success"))
    assert ops[("storage_operations_total", weird)] == 1

    duration = samples("storage_operation_duration_seconds")
    labels = (("adapter", adapter), ("operation", "store"))
    assert duration[("storage_operation_duration_seconds_count", labels)] == 5
    assert duration[("storage_operation_duration_seconds_sum", labels)] == pytest.approx(0.030)
    p50 = (*labels, ("quantile", "0.5"))
    assert duration[("storage_operation_duration_seconds", p50)] == pytest.approx(0.006)

    errors = samples("storage_errors")
    by_type = (("adapter", adapter), ("error_type", "StorageQueryError"))
    assert errors[("storage_errors_total", by_type)] == 1
    backend = {s.labels["name"]: s.value for s in families["storage_backend_metric"].samples}
    assert backend == {"document_count": 42, "memory.used": 7}  # strings left out
    events = {s.labels["event"]: s.value for s in families["storage_connection_events"].samples}
    assert events == {"connect": 1, "connect_error": 0, "disconnect": 0}
    assert families["storage_connected"].samples[0].value == 1


def test_prometheus_text_is_well_formed(report: dict[str, Any]) -> None:
    """Every line is HELP, TYPE or a sample; every family declares both before its samples;
    no series appears twice; the text ends with a newline."""
    text = to_prometheus(report)
    assert text.endswith("\n")
    declared: dict[str, set[str]] = {}
    kinds: dict[str, str] = {}
    seen: set[str] = set()
    for line in text.splitlines():
        meta = _META.match(line)
        if meta:
            declared.setdefault(meta[2], set()).add(meta[1])
            if meta[1] == "TYPE":
                assert meta[3] in ("counter", "gauge", "summary", "histogram")
                kinds[meta[2]] = meta[3]
            continue
        sample = _SAMPLE.match(line)
        assert sample, f"not a valid sample line: {line!r}"
        name = sample[1]
        family = next(f for f in kinds if name == f or name in (f + "_sum", f + "_count"))
        assert declared[family] == {"HELP", "TYPE"}
        if kinds[family] == "counter":
            assert name.endswith("_total")
        assert line.rsplit(" ", 1)[0] not in seen, f"duplicate series {line!r}"
        seen.add(line.rsplit(" ", 1)[0])
    # The weird operation name is escaped: quote, backslash and newline, never raw.
    assert 'operation="we\\"ird\\\\op\\nname|x"' in text


def test_markdown(report: dict[str, Any]) -> None:
    text = to_markdown(report)
    assert text.startswith("# Storage Adapter Metrics\n")
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| Operation |"))
    assert "P95 (ms)" in header
    store = next(line for line in lines if line.startswith("| store |"))
    cells = [c.strip() for c in store.strip("|").split(" | ")]
    assert cells[:4] == ["store", "5", "1", "80.00%"]
    weird = next(line for line in lines if line.startswith("| we"))
    assert "\\|x" in weird  # the pipe is escaped: the row keeps its columns
    assert "| StorageQueryError | 1 |" in text
    assert "| document_count | 42 |" in text
    assert "No operations recorded." in to_markdown(MetricsCollector().report())
