"""Placeholder until the adapter's issue lands."""

from __future__ import annotations

from typing import Any

from mas_storage import StorageAdapter, StorageQueryError


class PostgresAdapter(StorageAdapter):
    """Not implemented yet."""

    kind = "postgres"

    async def connect(self) -> None:
        raise StorageQueryError("PostgresAdapter is not implemented yet")

    async def disconnect(self) -> None:
        self._connected = False

    async def store(self, data: dict[str, Any]) -> str:
        raise StorageQueryError("not implemented")

    async def retrieve(self, id: str) -> dict[str, Any] | None:
        raise StorageQueryError("not implemented")

    async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]:
        raise StorageQueryError("not implemented")

    async def delete(self, id: str) -> bool:
        raise StorageQueryError("not implemented")
