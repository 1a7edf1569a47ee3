"""The soak's "do not grow" rule and its table, on made-up samples (no backend)."""

from __future__ import annotations

from typing import Any

import soak

BACKENDS = ("postgres", "redis", "neo4j", "typesense", "qdrant")


def _sample(
    minute: int,
    fds: int,
    conns: int,
    peak_fds: int | None = None,
    peak_conns: int | None = None,
    errors: int = 0,
) -> dict[str, Any]:
    connections = dict.fromkeys(BACKENDS, conns)
    return {
        "minute": minute,
        "ops": 100,
        "errors": errors,
        "error_examples": [],
        "p50_ms": 1.0,
        "p99_ms": 9.0,
        "rss_mb": 150.0,
        "fds": fds,
        "connections": connections,
        "loadavg": [1.0, 1.0, 1.0],
        "peak": {
            "fds": peak_fds or fds,
            "connections": dict.fromkeys(BACKENDS, peak_conns or conns),
        },
    }


def test_steady_figures_pass() -> None:
    verdict = soak.check([_sample(0, 30, 4), _sample(1, 30, 4), _sample(2, 30, 4)])
    assert verdict["ok"] is True and verdict["why"] == []


def test_a_pool_shrinking_and_growing_back_under_its_ceiling_passes() -> None:
    # Minute 1 ended with 2 connections, but 4 were open during it (the warmed pools).
    samples = [_sample(0, 33, 4), _sample(1, 31, 2, peak_fds=33, peak_conns=4), _sample(5, 33, 4)]
    assert soak.check(samples)["ok"] is True


def test_fds_or_connections_past_the_first_steady_ceiling_fail() -> None:
    grown_fds = soak.check([_sample(0, 30, 4), _sample(1, 30, 4), _sample(2, 31, 4)])
    assert grown_fds["ok"] is False
    assert grown_fds["why"] == ["open FDs grew: at most 30 up to minute 1, 31 at the end"]
    grown = soak.check([_sample(0, 30, 4), _sample(1, 30, 4), _sample(9, 30, 5)])
    assert grown["ok"] is False
    assert "redis connections grew: at most 4 up to minute 1, 5 at the end" in grown["why"]
    assert len(grown["why"]) == len(BACKENDS)


def test_failed_operations_or_too_short_a_run_fail() -> None:
    failed = soak.check([_sample(0, 30, 4), _sample(1, 30, 4, errors=2), _sample(2, 30, 4)])
    assert failed["why"] == ["2 operations failed"]
    assert soak.check([_sample(0, 30, 4), _sample(1, 30, 4)])["ok"] is False


def test_markdown_table_has_a_row_per_minute() -> None:
    split = {**_sample(1, 31, 4), "rss_anon_mb": 110.0, "rss_file_mb": 40.0}
    table = soak.markdown_table({"samples": [_sample(0, 30, 4), split]})
    lines = table.splitlines()
    assert lines[0].startswith(
        "| minute | ops | errors | RSS MB (anon / file) | open FDs | PostgreSQL conns |"
    )
    assert (
        lines[2]
        == "| 0 | 100 | 0 | 150.0 | 30 | 4 | 4 | 4 | 4 | 4 | 1.00 | 9.0 | 1.0 / 1.0 / 1.0 |"
    )
    assert lines[3].startswith("| 1 | 100 | 0 | 150.0 (110.0 / 40.0) | 31 |")
    assert len(lines) == 4
