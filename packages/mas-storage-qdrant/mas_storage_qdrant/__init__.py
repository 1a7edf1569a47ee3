"""mas-storage-qdrant: L3 episodic memory (vectors with payloads) on Qdrant.

:class:`QdrantAdapter` runs against a Qdrant server (``url`` + ``api_key``, the lab) or
qdrant-client's embedded engine (``path``, the local stack and CI), always through
``AsyncQdrantClient``. It is registered as the ``"qdrant"`` adapter kind; ``QdrantSettings`` is
its configuration.
"""

from ._adapter import QdrantAdapter
from ._settings import QdrantSettings

__all__ = ["QdrantAdapter", "QdrantSettings"]
