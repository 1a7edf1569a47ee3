"""A mocked ``AsyncQdrantClient`` for server-mode unit tests: records every call it receives."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import pytest
from qdrant_client import models

import mas_storage_qdrant._adapter as adapter_module

API_KEY = "qk-Very-Secret-0123456789"
URL = "http://127.0.0.1:6333"


class FakeQdrant:
    """Stands in for the ``AsyncQdrantClient`` class: remembers kwargs and the instance."""

    def __init__(self) -> None:
        self.kwargs: dict[str, Any] | None = None
        self.client = MagicMock(name="AsyncQdrantClient()")
        for method in (
            "collection_exists",
            "create_collection",
            "get_collection",
            "create_payload_index",
            "upsert",
            "retrieve",
            "query_points",
            "delete",
            "count",
            "delete_collection",
            "close",
        ):
            setattr(self.client, method, AsyncMock(name=method))
        self.client.collection_exists.return_value = False
        self.set_collection(384, models.Distance.COSINE)
        self.client.retrieve.return_value = []
        self.client.query_points.return_value = SimpleNamespace(points=[])
        self.client.count.return_value = SimpleNamespace(count=0)

    def set_collection(
        self, size: int, distance: models.Distance, payload_schema: dict[str, Any] | None = None
    ) -> None:
        """What ``get_collection`` answers."""
        self.client.get_collection.return_value = SimpleNamespace(
            config=SimpleNamespace(
                params=SimpleNamespace(vectors=models.VectorParams(size=size, distance=distance))
            ),
            payload_schema=payload_schema or {},
        )

    def __call__(self, **kwargs: Any) -> MagicMock:
        self.kwargs = kwargs
        return self.client


@pytest.fixture
def fake_qdrant(monkeypatch: pytest.MonkeyPatch) -> FakeQdrant:
    fake = FakeQdrant()
    monkeypatch.setattr(adapter_module, "AsyncQdrantClient", fake)
    return fake


@pytest.fixture
def server_config() -> dict[str, Any]:
    """A server-mode config (loopback; the client is mocked, nothing is contacted)."""
    return {"url": URL, "api_key": API_KEY, "collection_name": "unit"}


@pytest.fixture
def api_key() -> str:
    return API_KEY
