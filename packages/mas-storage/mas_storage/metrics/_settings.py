"""The metrics collector's configuration: one pydantic model (the ``metrics`` key of every
adapter's settings, or :class:`~mas_storage.MetricsCollector`'s ``config``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from mas_storage._exceptions import StorageDataError
from mas_storage._types import Integer, _refuse_bool, as_tuple

__all__ = ["MetricsSettings", "parse_metrics_settings"]


_Percentile = Annotated[float, BeforeValidator(_refuse_bool), Field(ge=0, le=100)]


class MetricsSettings(BaseModel):
    """What the collector records and keeps (see docs/metrics.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    enabled: bool = Field(True, description="record anything at all")
    max_history: Integer = Field(
        1000, ge=1, description="latency samples kept per operation (a bounded deque)"
    )
    track_errors: bool = Field(True, description="keep the recent errors, redacted")
    track_data_volume: bool = Field(True, description="estimate the bytes of each call")
    percentiles: tuple[_Percentile, ...] = Field(
        (50, 95, 99), description="latency percentiles reported, each in [0, 100]"
    )
    aggregation_window: Annotated[float, BeforeValidator(_refuse_bool)] = Field(
        60.0, gt=0, allow_inf_nan=False, description="seconds the throughput rates cover"
    )
    sampling_rate: Annotated[float, BeforeValidator(_refuse_bool)] = Field(
        1.0, ge=0, le=1, description="share of successful calls whose latency is sampled"
    )
    #: The spec's sampling example names this key; errors are always recorded here.
    always_sample_errors: Literal[True] = Field(
        True, description="errors are always recorded (the only accepted value is true)"
    )

    @field_validator("percentiles", mode="before")
    @classmethod
    def _sequence(cls, value: Any) -> Any:
        if isinstance(value, str | bytes):
            raise ValueError("must be a list of numbers")
        return as_tuple(value)

    @field_validator("percentiles")
    @classmethod
    def _unique(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        return tuple(dict.fromkeys(value))  # keep the order, drop duplicates


def parse_metrics_settings(config: Any) -> MetricsSettings:
    """A :class:`MetricsSettings` from a model, a mapping, ``None``/``True`` (defaults) or
    ``False`` (disabled); anything invalid raises :class:`StorageDataError` naming the key."""
    if isinstance(config, MetricsSettings):
        return config
    if config is None or config is True:
        return MetricsSettings()
    if config is False:
        return MetricsSettings(enabled=False)
    if not isinstance(config, Mapping):
        raise StorageDataError(
            f"Invalid metrics config: expected a mapping or a bool, not {type(config).__name__}",
            operation="metrics",
        )
    try:
        return MetricsSettings.model_validate(dict(config), strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '?'}: {err['msg']}"
            for err in exc.errors(include_input=False)
        )
        raise StorageDataError(f"Invalid metrics config: {problems}", operation="metrics") from None
