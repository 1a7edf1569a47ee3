"""mas-storage-typesense: L4 semantic memory on Typesense (typo-tolerant full-text search)."""

from ._adapter import DEFAULT_IMPORT_BATCH_SIZE, TypesenseAdapter
from ._errors import TypesenseImportError
from ._filters import build_filter
from ._schema import DEFAULT_COLLECTION, default_schema

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_IMPORT_BATCH_SIZE",
    "TypesenseAdapter",
    "TypesenseImportError",
    "build_filter",
    "default_schema",
]
