"""mas-storage-qdrant: L3 episodic memory (vectors with payloads) on Qdrant.

:class:`QdrantAdapter` runs against a Qdrant server through ``AsyncQdrantClient`` (``url`` +
``api_key``, the lab) or embedded on Qdrant Edge, Qdrant's own engine in this process
(``path``, the local stack and CI). It is registered as the ``"qdrant"`` adapter kind;
``QdrantSettings`` is its configuration. ``python -m mas_storage_qdrant.migrate`` converts a
directory of the old embedded engine (qdrant-client's local mode).
"""

from ._adapter import QdrantAdapter
from ._settings import QdrantSettings

__all__ = ["QdrantAdapter", "QdrantSettings"]
