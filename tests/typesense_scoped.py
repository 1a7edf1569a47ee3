"""A Typesense collection of a test's own, with a key scoped to it as the stack's adapter key is.

The stack's adapter key (the outputs' ``typesense_api_key``) may use ``semantic_memory`` only
and create no collection. A suite that needs a collection of its own (to count what it holds,
to drop it afterwards) and still wants the adapter on a least-privileged key makes both with
the admin key (admin outputs): :func:`scoped_collection`. The key has exactly the provisioned
key's actions (``mas_storage_typesense.provision.ADAPTER_KEY_ACTIONS``) on that one collection.
Its own description, so the stack's provisioning never takes it for the adapter key.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from stack_tls import httpx_verify, typesense_admin_key

from mas_storage_typesense import default_schema
from mas_storage_typesense.provision import ADAPTER_KEY_ACTIONS

__all__ = ["admin_client", "scoped_collection"]

TEST_KEY_DESCRIPTION = "mas-memory tests: a key scoped to one test collection"


def admin_client(outputs: Mapping[str, Any]) -> httpx.AsyncClient:
    """A bare client of the stack's Typesense with the admin key, trusting the stack's CA."""
    return httpx.AsyncClient(
        base_url=outputs["typesense_url"],
        headers={"X-TYPESENSE-API-KEY": typesense_admin_key(outputs)},
        timeout=30,
        trust_env=False,
        verify=httpx_verify(outputs),
    )


@asynccontextmanager
async def scoped_collection(outputs: Mapping[str, Any], name: str) -> AsyncIterator[str]:
    """Create collection ``name`` (the default schema) and a key scoped to it; yield the key.
    Afterwards the key and the collection are deleted, whatever happened."""
    value = secrets.token_hex(24)
    body = {
        "description": TEST_KEY_DESCRIPTION,
        "value": value,
        "actions": list(ADAPTER_KEY_ACTIONS),
        "collections": [name],
    }
    async with admin_client(outputs) as admin:
        made = await admin.post("/collections", content=json.dumps(default_schema(name)))
        assert made.status_code == 201, f"creating {name}: HTTP {made.status_code}"
        key_id: int | None = None
        try:
            key = await admin.post("/keys", content=json.dumps(body))
            assert key.status_code == 201, f"creating a key for {name}: HTTP {key.status_code}"
            key_id = int(key.json()["id"])
            yield value
        finally:
            if key_id is not None:
                await admin.delete(f"/keys/{key_id}")
            await admin.delete(f"/collections/{name}")
