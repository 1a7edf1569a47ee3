"""mas-storage-qdrant: the QdrantAdapter (implemented by its own issue)."""

from ._adapter import QdrantAdapter

__all__ = ["QdrantAdapter"]
