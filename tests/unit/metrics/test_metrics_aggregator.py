"""MetricsAggregator: percentiles against ``statistics.quantiles``, latency stats, rates.

The percentile method is linear interpolation between closest ranks (type 7), which is
``statistics.quantiles(..., method="inclusive")``: the tests compare every integer percentile.
"""

from __future__ import annotations

import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mas_storage.metrics import MetricsAggregator, percentile_key

SPEC_VALUES = [1, 5, 10, 15, 20, 25, 30, 35, 40, 100]


def test_spec_values_match_statistics_quantiles_inclusive() -> None:
    expected = statistics.quantiles(SPEC_VALUES, n=100, method="inclusive")
    got = MetricsAggregator.calculate_percentiles(SPEC_VALUES, range(1, 100))
    assert [got[f"p{p}"] for p in range(1, 100)] == pytest.approx(expected)
    spec = MetricsAggregator.calculate_percentiles(SPEC_VALUES, [50, 95, 99])
    assert spec == {"p50": 22.5, "p95": pytest.approx(73.0), "p99": pytest.approx(94.6)}


@given(
    st.lists(
        st.floats(min_value=0, max_value=1e4, allow_nan=False, allow_infinity=False),
        min_size=2,
        max_size=300,
    )
)
def test_percentiles_match_statistics_quantiles_on_any_data(values: list[float]) -> None:
    expected = statistics.quantiles(values, n=100, method="inclusive")
    got = MetricsAggregator.calculate_percentiles(values, range(1, 100))
    assert [got[f"p{p}"] for p in range(1, 100)] == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_fractional_percentiles_and_edges() -> None:
    values = list(range(1, 1001))  # 1..1000
    expected = statistics.quantiles(values, n=1000, method="inclusive")
    got = MetricsAggregator.calculate_percentiles(values, [99.9, 0, 100])
    assert got["p99.9"] == pytest.approx(expected[998])
    assert (got["p0"], got["p100"]) == (1, 1000)
    assert MetricsAggregator.calculate_percentiles([7.0], [50, 99]) == {"p50": 7.0, "p99": 7.0}
    assert MetricsAggregator.calculate_percentiles([], [50]) == {"p50": None}
    assert percentile_key(99.9) == "p99.9"
    assert percentile_key(50) == "p50"


def test_latency_stats() -> None:
    stats = MetricsAggregator.calculate_latency_stats([4.0, 1.0, 3.0, 2.0], [50])
    assert stats == {"min": 1.0, "max": 4.0, "avg": 2.5, "p50": 2.5}
    empty = MetricsAggregator.calculate_latency_stats([], [50, 99])
    assert empty == {"min": None, "max": None, "avg": None, "p50": None, "p99": None}


def test_rates_from_single_events_and_buckets() -> None:
    events = [(100.0, 1, 10), (105.0, 1, 20), (109.5, 1, 30), (50.0, 1, 1000)]
    rates = MetricsAggregator.calculate_rates(events, 10, now=110.0)
    assert rates == {"ops_per_sec": 0.3, "bytes_per_sec": 6.0}  # the event at 50 is outside
    # A young collector divides by its age, not the whole window.
    young = MetricsAggregator.calculate_rates(events[:3], 60, now=110.0, since=100.0)
    assert young == {"ops_per_sec": 0.3, "bytes_per_sec": 6.0}
    # A bucket that overlaps the window start counts.
    buckets = [(99.0, 4, 40), (104.0, 6, 60)]
    overlap = MetricsAggregator.calculate_rates(buckets, 10, now=109.5, bucket_seconds=1.0)
    assert overlap == {"ops_per_sec": 1.0, "bytes_per_sec": 10.0}
    assert MetricsAggregator.calculate_rates(events, 10, now=100.0, since=100.0) == {
        "ops_per_sec": 0.0,
        "bytes_per_sec": 0.0,
    }
