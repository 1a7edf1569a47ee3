"""mas-storage-neo4j: the Neo4jAdapter (implemented by its own issue)."""

from ._adapter import Neo4jAdapter

__all__ = ["Neo4jAdapter"]
