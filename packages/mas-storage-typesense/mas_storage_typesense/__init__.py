"""mas-storage-typesense: L4 semantic memory on Typesense (typo-tolerant full-text search).

``TypesenseAdapter`` (kind "typesense") and ``TypesenseSettings``, its configuration."""

from ._adapter import TypesenseAdapter
from ._errors import TypesenseImportError
from ._filters import build_filter
from ._schema import DEFAULT_COLLECTION, default_schema
from ._settings import DEFAULT_IMPORT_BATCH_SIZE, TypesenseAdminSettings, TypesenseSettings

__all__ = [
    "DEFAULT_COLLECTION",
    "DEFAULT_IMPORT_BATCH_SIZE",
    "TypesenseAdapter",
    "TypesenseAdminSettings",
    "TypesenseImportError",
    "TypesenseSettings",
    "build_filter",
    "default_schema",
]
