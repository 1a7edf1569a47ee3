"""Provisioning with the admin key: the adapter's collection and its scoped API key.

The adapter never holds the admin key. Once per stack (``mas-devstack up`` locally,
``scripts/lab-outputs`` on the lab), this step, with the bootstrap admin key of the **admin**
outputs (``typesense_admin_api_key``), creates:

* the collection with the default schema (or leaves an existing one as it is);
* the adapter's **scoped key**, whose value is the stack outputs' ``typesense_api_key`` (so the
  stack chooses it, and Typesense stores it): :data:`ADAPTER_KEY_ACTIONS` on those collections
  only. It can read and write documents and look its collection up, and nothing else: it can
  create, alter or drop no collection and manage no key.

Idempotent: a key with the same value, actions and collections is kept; a key that this step
made before (same description) with other grants, or another value, is deleted and made again.

    python -m mas_storage_typesense.provision [--collection semantic_memory ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from mas_storage import StorageConnectionError, StorageError, certificate_error

from ._schema import DEFAULT_COLLECTION, default_schema
from ._settings import TypesenseAdminSettings, TypesenseSettings

__all__ = ["ADAPTER_KEY_ACTIONS", "ADAPTER_KEY_DESCRIPTION", "Provisioned", "provision"]

#: What the adapter's key may do: look its collection up, and every document action.
ADAPTER_KEY_ACTIONS: tuple[str, ...] = ("collections:get", "documents:*")
#: How this step recognises the keys it made.
ADAPTER_KEY_DESCRIPTION = "mas-storage adapter key (scoped; made by provisioning)"


@dataclass
class Provisioned:
    """What :func:`provision` did."""

    collections_created: list[str] = field(default_factory=list)
    key_created: bool = False
    keys_deleted: int = 0


async def provision(
    admin: TypesenseAdminSettings,
    *,
    adapter_key: str | None,
    collections: Sequence[str] = (DEFAULT_COLLECTION,),
) -> Provisioned:
    """Create the collections (default schema) and the scoped adapter key, with the admin key.

    ``adapter_key``: the value the scoped key gets (``None``: collections only). Raises
    :class:`~mas_storage.StorageConnectionError` (server unreachable, admin key refused,
    certificate refused) or :class:`~mas_storage.StorageError`; no key value in any message.
    """
    done = Provisioned()
    verify = admin.ssl_context(f"typesense at {admin.url}") if admin.uses_tls() else True
    headers = {"X-TYPESENSE-API-KEY": admin.api_key.get_secret_value()}
    async with httpx.AsyncClient(
        base_url=admin.url, headers=headers, timeout=admin.timeout, verify=verify, trust_env=False
    ) as client:
        try:
            for name in collections:
                if await _ensure_collection(client, name):
                    done.collections_created.append(name)
            if adapter_key is not None:
                await _ensure_key(client, adapter_key, list(collections), done)
        except httpx.HTTPError as exc:
            raise _error(exc, admin.url) from None
    return done


async def _ensure_collection(client: httpx.AsyncClient, name: str) -> bool:
    found = await client.get(f"/collections/{quote(name, safe='')}")
    if found.status_code == 200:
        return False
    _check(found, f"looking up collection '{name}'", ok=(404,))
    created = await client.post("/collections", content=json.dumps(default_schema(name)))
    _check(created, f"creating collection '{name}'", ok=(200, 201, 409))
    return created.status_code != 409


async def _ensure_key(
    client: httpx.AsyncClient, value: str, collections: list[str], done: Provisioned
) -> None:
    listed = await client.get("/keys")
    _check(listed, "listing keys")
    wanted = {"actions": sorted(ADAPTER_KEY_ACTIONS), "collections": sorted(collections)}
    keep = False
    for key in listed.json().get("keys", []):
        if key.get("description") != ADAPTER_KEY_DESCRIPTION:
            continue
        same = (
            str(key.get("value_prefix", "")) == value[: len(str(key.get("value_prefix", "")))]
            and sorted(key.get("actions", [])) == wanted["actions"]
            and sorted(key.get("collections", [])) == wanted["collections"]
        )
        if same and not keep:
            keep = True
            continue
        deleted = await client.delete(f"/keys/{int(key['id'])}")
        _check(deleted, "deleting an outdated adapter key", ok=(200, 404))
        done.keys_deleted += 1
    if keep:
        return
    body: dict[str, Any] = {
        "description": ADAPTER_KEY_DESCRIPTION,
        "value": value,
        **wanted,
    }
    created = await client.post("/keys", content=json.dumps(body))
    _check(created, "creating the adapter key", ok=(200, 201))
    done.key_created = True


def _check(response: httpx.Response, what: str, ok: Sequence[int] = (200,)) -> None:
    if response.status_code in ok or response.status_code == 200:
        return
    if response.status_code in (401, 403):
        raise StorageConnectionError(
            f"Typesense refused the admin key while {what} (HTTP {response.status_code})"
        )
    try:
        detail = str(response.json().get("message", ""))
    except ValueError:
        detail = response.text[:200]
    raise StorageError(f"Typesense failed {what}: HTTP {response.status_code}: {detail}")


def _error(exc: httpx.HTTPError, url: str) -> StorageError:
    refused = certificate_error(exc, url)
    if refused is not None:
        return refused
    return StorageConnectionError(f"Cannot reach Typesense at {url}: {type(exc).__name__}")


def main(argv: list[str] | None = None) -> int:
    """``python -m mas_storage_typesense.provision``: settings from the outputs files."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--collection",
        action="append",
        help=f"a collection to create and scope the key to (default: {DEFAULT_COLLECTION})",
    )
    args = parser.parse_args(argv)
    try:
        admin = TypesenseAdminSettings()
        key = TypesenseSettings().api_key.get_secret_value()
        done = asyncio.run(
            provision(admin, adapter_key=key, collections=args.collection or [DEFAULT_COLLECTION])
        )
    except StorageError as exc:
        print(f"provision: {exc}", file=sys.stderr)
        return 1
    created = ", ".join(done.collections_created) or "none (all existed)"
    key_state = "created" if done.key_created else "kept"
    print(f"typesense: collections created: {created}; adapter key {key_state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
