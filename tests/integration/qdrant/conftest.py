"""Embedded-mode fixtures: every test gets its own storage directory (the path is locked)."""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from mas_storage_qdrant import QdrantAdapter

DIM = 384


def unit(vector: list[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector]


def random_vectors(n: int, dim: int = DIM, seed: int = 7) -> list[list[float]]:
    rng = random.Random(seed)
    return [[rng.uniform(-1.0, 1.0) for _ in range(dim)] for _ in range(n)]


@pytest.fixture
def qdrant_dir(tmp_path: Path) -> Path:
    """A fresh embedded storage directory for this test only."""
    return tmp_path / "qdrant"


@pytest.fixture
async def make_qdrant(qdrant_dir: Path) -> AsyncIterator[Callable[..., QdrantAdapter]]:
    """Build adapters on this test's directory; all are disconnected (lock released) after."""
    made: list[QdrantAdapter] = []

    def make(**config: Any) -> QdrantAdapter:
        adapter = QdrantAdapter(
            {"path": str(qdrant_dir), "collection_name": f"test-{uuid.uuid4().hex[:8]}", **config}
        )
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.disconnect()


@pytest.fixture
async def qdrant(make_qdrant: Callable[..., QdrantAdapter]) -> QdrantAdapter:
    """A connected 384-dimension Cosine adapter on a fresh directory."""
    adapter = make_qdrant()
    await adapter.connect()
    return adapter


@pytest.fixture
def vectors() -> Callable[..., list[list[float]]]:
    return random_vectors
