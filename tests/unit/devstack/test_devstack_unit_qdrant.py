"""The stack's embedded Qdrant: Qdrant Edge on a directory, and old local-mode data refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_client import QdrantClient, models

from mas_devstack import DevstackError, Stack
from mas_devstack._layout import PORT_BASE_ENV

BASE = 62850


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.delenv(PORT_BASE_ENV, raising=False)
    return Stack(tmp_path, port_base=BASE)


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_up_runs_the_engine_and_leaves_only_the_directory(stack: Stack) -> None:
    stack.up(["qdrant"])
    qdrant = stack.status()["qdrant"]
    assert qdrant.state == "embedded"
    assert qdrant.version == "Qdrant Edge 0.9.0 (embedded)"
    data = stack.root / ".mas" / "qdrant"
    assert data.is_dir()
    assert _tree(data) == []  # the probe's scratch shard is gone
    assert not [p for p in data.parent.iterdir() if p.name.startswith("probe-")]


def test_up_refuses_local_mode_data_and_says_what_to_do(stack: Stack) -> None:
    data = stack.root / ".mas" / "qdrant"
    # force_disable_check_same_thread: no SQLite probe left unclosed (Python 3.13 warns).
    client = QdrantClient(path=str(data), force_disable_check_same_thread=True)
    client.create_collection("c", vectors_config=models.VectorParams(size=2, distance="Cosine"))
    client.close()
    before = _tree(data)
    with pytest.raises(DevstackError) as info:
        stack.up(["qdrant"])
    assert "qdrant-client local-mode data" in str(info.value)
    assert f"python -m mas_storage_qdrant.migrate {data}" in str(info.value)
    assert _tree(data) == before
