"""Operation metrics for storage adapters (the spec's Priority 4A).

Placeholder collector: the full collector, storage, aggregator and exporters land with the
metrics issue. The interface the core relies on is ``MetricsCollector.record``.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MetricsCollector"]


class MetricsCollector:
    """Collects per-operation counts and latencies for one adapter."""

    def __init__(self, config: dict[str, Any] | None = None, *, adapter: str = "storage") -> None:
        config = config or {}
        self.adapter = adapter
        self.enabled = bool(config.get("enabled", True))
        self._counts: dict[str, list[float]] = {}

    def record(
        self, operation: str, seconds: float, error: BaseException | None, args: tuple[Any, ...]
    ) -> None:
        """Record one finished operation. Called by the core for every adapter call."""
        if not self.enabled:
            return
        self._counts.setdefault(operation, []).append(seconds)

    async def get_metrics(self) -> dict[str, Any]:
        return {"operations": {op: {"total_count": len(v)} for op, v in self._counts.items()}}

    async def export_metrics(self, format: str = "dict") -> dict[str, Any] | str:
        data = await self.get_metrics()
        return json.dumps(data) if format == "json" else data

    async def reset_metrics(self) -> None:
        self._counts.clear()
