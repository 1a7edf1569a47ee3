"""Fixtures for the TypesenseAdapter tests against the real Typesense of the stack outputs.

Every test gets its own ``test_...`` collection, dropped afterwards through a raw client (so the
cleanup does not depend on the adapter under test).
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mas_storage_typesense import TypesenseAdapter


@pytest.fixture(scope="session")
def ts_config(stack_outputs: dict[str, Any], stack_admin: dict[str, Any]) -> dict[str, Any]:
    """Adapter config for the stack's Typesense (no collection name yet), with the **admin**
    key: these suites create and drop a collection per test, which the adapter's scoped key
    may not (its own tests are in ``tests/integration/test_least_privilege.py``)."""
    key = stack_admin.get("typesense_admin_api_key") or stack_outputs.get("typesense_api_key")
    if not stack_outputs.get("typesense_url") or not key:
        pytest.fail("stack outputs have no typesense_url / typesense_admin_api_key")
    return {"url": stack_outputs["typesense_url"], "api_key": key}


@pytest.fixture
async def raw(ts_config: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """A plain httpx client on the same server: how tests check what the backend holds."""
    async with httpx.AsyncClient(
        base_url=ts_config["url"],
        headers={"X-TYPESENSE-API-KEY": ts_config["api_key"]},
        timeout=60,
        trust_env=False,
        verify=ssl.create_default_context(),  # the stack's CA: SSL_CERT_FILE (tests/conftest.py)
    ) as client:
        yield client


@pytest.fixture
async def collection(raw: httpx.AsyncClient) -> AsyncIterator[str]:
    """A unique collection name, dropped (if it was created) after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    response = await raw.delete(f"/collections/{name}")
    assert response.status_code in (200, 404), response.text


@pytest.fixture
async def ts(ts_config: dict[str, Any], collection: str) -> AsyncIterator[TypesenseAdapter]:
    """A connected adapter on a fresh collection with the default schema."""
    adapter = TypesenseAdapter({**ts_config, "collection_name": collection})
    await adapter.connect()
    yield adapter
    await adapter.disconnect()
