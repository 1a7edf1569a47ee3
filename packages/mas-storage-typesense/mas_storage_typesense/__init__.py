"""mas-storage-typesense: the TypesenseAdapter (implemented by its own issue)."""

from ._adapter import TypesenseAdapter

__all__ = ["TypesenseAdapter"]
