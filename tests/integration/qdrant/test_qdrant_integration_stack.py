"""QdrantAdapter against the stack's own Qdrant, in each mode the outputs name.

* embedded (``qdrant_path``): the stack's own directory, with a unique ``test-…`` collection
  that it drops afterwards. A collection is locked while a client has it open, so the adapter
  is always closed at the end (and a briefly held lock is waited for).
* server (``qdrant_url``): the outputs' server and API key (the lab's, or any server).

A mode the outputs do not name skips, with its reason shown by ``-ra``.
"""

from __future__ import annotations

import uuid
from typing import Any

from embedded_qdrant import connect_when_unlocked
from qdrant_modes import Mode, adapter_config

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


async def test_the_stacks_own_qdrant(qdrant_mode: Mode, stack_outputs: dict[str, Any]) -> None:
    collection = f"test-{uuid.uuid4().hex[:12]}"
    adapter = QdrantAdapter(adapter_config(stack_outputs, qdrant_mode, collection_name=collection))
    await connect_when_unlocked(adapter)
    try:
        await _exercise(adapter)
    finally:
        try:
            assert await adapter.drop_collection() is True
        finally:
            await adapter.disconnect()  # embedded: releases the collection's lock
