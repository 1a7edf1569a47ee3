"""Qdrant fixtures: each test runs in every mode the stack outputs name (``qdrant_modes``).

* embedded (``qdrant_path`` in the outputs): each test gets a storage directory of its own
  (Qdrant Edge: a collection is locked while a client has it open);
* server (``qdrant_url``): the outputs' server and API key, a collection of its own
  (``test-<hex>``), dropped afterwards whatever happened.

``engine`` reads what the engine holds without the adapter: a Qdrant Edge shard of the
directory (only while the adapter is disconnected), or a raw qdrant-client of the server.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from qdrant_modes import Engine, Mode, adapter_config, raw_client

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
async def make_qdrant(
    qdrant_mode: Mode, stack_outputs: dict[str, Any], qdrant_dir: Path
) -> AsyncIterator[Callable[..., QdrantAdapter]]:
    """Build adapters in this test's mode; all are disconnected (lock released) after, and in
    server mode every collection they named is dropped."""
    made: list[QdrantAdapter] = []

    def make(**config: Any) -> QdrantAdapter:
        settings = {"collection_name": f"test-{uuid.uuid4().hex[:8]}", **config}
        adapter = QdrantAdapter(
            adapter_config(stack_outputs, qdrant_mode, path=qdrant_dir, **settings)
        )
        made.append(adapter)
        return adapter

    yield make
    for adapter in made:
        await adapter.disconnect()
    if qdrant_mode == "server":
        async with raw_client(stack_outputs) as client:
            for name in {a.collection_name for a in made}:
                await client.delete_collection(name)


@pytest.fixture
async def qdrant(make_qdrant: Callable[..., QdrantAdapter]) -> QdrantAdapter:
    """A connected 384-dimension Cosine adapter on a fresh directory or collection."""
    adapter = make_qdrant()
    await adapter.connect()
    return adapter


@pytest.fixture
def engine(qdrant_mode: Mode, stack_outputs: dict[str, Any], qdrant_dir: Path) -> Engine:
    return Engine(qdrant_mode, stack_outputs, qdrant_dir)


@pytest.fixture
def vectors() -> Callable[..., list[list[float]]]:
    return random_vectors
