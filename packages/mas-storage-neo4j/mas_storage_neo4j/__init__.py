"""mas-storage-neo4j: the L3 entity graph of mas-memory on Neo4j (``Neo4jAdapter``, kind
"neo4j"); ``Neo4jSettings`` is its configuration."""

from ._adapter import Neo4jAdapter
from ._settings import Neo4jSettings

__all__ = ["Neo4jAdapter", "Neo4jSettings"]
