"""mas-storage-postgres: the PostgresAdapter (implemented by its own issue)."""

from ._adapter import PostgresAdapter

__all__ = ["PostgresAdapter"]
