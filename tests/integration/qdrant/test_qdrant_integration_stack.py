"""QdrantAdapter against the stack's own Qdrant: embedded ``qdrant_path`` locally, or a server.

* The embedded test uses the stack's ``qdrant_path`` with a unique ``test-…`` collection that
  it drops afterwards. A collection is locked while a client has it open, so the adapter is
  always closed at the end (and a briefly held lock is waited for).
* The server test runs only where a server exists: ``QDRANT_URL`` in the environment, or
  ``qdrant_url`` in the stack outputs (the lab). The local stack has none, so it is skipped
  there, with the reason shown by ``-ra``.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest
from embedded_qdrant import connect_when_unlocked

from mas_storage_qdrant import QdrantAdapter

DIM = 384


async def _exercise(adapter: QdrantAdapter) -> None:
    """Store, search, filter, delete and count in the adapter's (fresh) collection."""
    session = f"test-{uuid.uuid4().hex[:8]}"
    near = [1.0] + [0.0] * (DIM - 1)
    far = [0.0, 1.0] + [0.0] * (DIM - 2)
    ids = await adapter.store_many(
        [
            {"vector": near, "content": "near", "session_id": session, "metadata": {"k": "a"}},
            {"vector": far, "content": "far", "session_id": session, "metadata": {"k": "b"}},
        ]
    )
    hits = await adapter.search({"vector": near, "limit": 2, "session_id": session})
    assert [h["content"] for h in hits] == ["near", "far"]
    assert [h["id"] for h in hits] == ids
    only_b = await adapter.search({"vector": near, "filter": {"k": "b"}})
    assert [h["id"] for h in only_b] == [ids[1]]
    assert await adapter.count(session_id=session) == 2
    assert await adapter.delete(ids[0]) is True
    assert await adapter.delete(ids[0]) is False
    assert await adapter.retrieve(ids[0]) is None
    assert await adapter.count() == 1


async def test_stack_embedded_path(stack_outputs: dict[str, Any]) -> None:
    path = stack_outputs.get("qdrant_path")
    if not path:
        pytest.skip("the stack outputs have no qdrant_path (Qdrant runs as a server there)")
    adapter = QdrantAdapter({"path": path, "collection_name": f"test-{uuid.uuid4().hex[:12]}"})
    await connect_when_unlocked(adapter)
    try:
        await _exercise(adapter)
    finally:
        try:
            assert await adapter.drop_collection() is True
        finally:
            await adapter.disconnect()  # releases the collection's lock


async def test_server_mode(request: pytest.FixtureRequest) -> None:
    url = os.environ.get("QDRANT_URL")
    api_key = os.environ.get("QDRANT_API_KEY")
    if not url:
        outputs: dict[str, Any] = request.getfixturevalue("stack_outputs")
        url, api_key = outputs.get("qdrant_url"), outputs.get("qdrant_api_key")
    if not url:
        pytest.skip(
            "server mode needs a Qdrant server: set QDRANT_URL or run against outputs with "
            "qdrant_url (the lab). The local stack runs Qdrant embedded (qdrant_path only)."
        )
    adapter = QdrantAdapter(
        {"url": url, "api_key": api_key, "collection_name": f"test-{uuid.uuid4().hex[:12]}"}
    )
    await adapter.connect()
    try:
        await _exercise(adapter)
    finally:
        try:
            assert await adapter.drop_collection() is True
        finally:
            await adapter.disconnect()
