"""The collection schema: the default one, checks of an existing one, and document validation.

The server's schema is the truth once connected: required fields and field types are read from
what the collection holds, so a document is rejected here, naming the field, before it is sent.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import datetime
from time import time_ns
from typing import Any
from urllib.parse import quote

from mas_storage import StorageDataError

__all__ = [
    "DEFAULT_COLLECTION",
    "MAX_ID_URL_CHARS",
    "DocumentRules",
    "check_schema",
    "default_schema",
    "id_segment",
    "now_ms",
    "required_fields",
]

DEFAULT_COLLECTION = "semantic_memory"

#: Python types accepted for each Typesense scalar type that is checked here.
_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "int32": (int,),
    "int64": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (dict, Mapping),
}


def default_schema(name: str = DEFAULT_COLLECTION) -> dict[str, Any]:
    """The semantic-memory schema: facts with content, session and type facets, recency sort."""
    return {
        "name": name,
        "enable_nested_fields": True,
        "default_sorting_field": "created_at",
        "fields": [
            {"name": "content", "type": "string"},
            {"name": "session_id", "type": "string", "facet": True},
            {"name": "fact_type", "type": "string", "facet": True},
            {"name": "confidence", "type": "float"},
            {"name": "created_at", "type": "int64"},
            {"name": "metadata", "type": "object", "optional": True},
        ],
    }


#: Longest id, URL-encoded: ``retrieve`` and ``delete`` put the id in the request path.
MAX_ID_URL_CHARS = 8000


def id_segment(doc_id: str) -> str:
    """``doc_id`` as one URL path segment; an id too long for a request path is refused.

    Dots are encoded too: httpx resolves a ``.`` or ``..`` segment, so ``delete("..")`` would
    hit (and drop) the collection itself. Typesense decodes ``%2E`` back into the id.
    """
    segment = quote(doc_id, safe="").replace(".", "%2E")
    if len(segment) > MAX_ID_URL_CHARS:
        raise StorageDataError(
            f"Document id is too long: {len(segment)} characters URL-encoded, at most "
            f"{MAX_ID_URL_CHARS} (it must fit in a request path)"
        )
    return segment


def now_ms() -> int:
    """The current time as Unix epoch milliseconds (the unit of ``created_at``)."""
    return time_ns() // 1_000_000


def _is_concrete(field: Mapping[str, Any]) -> bool:
    """Whether a schema field names one real field (not a ``.*`` wildcard or an auto type)."""
    name = str(field.get("name", ""))
    return "*" not in name and field.get("type") not in ("auto", "string*")


def required_fields(fields: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Names of the fields every document must carry (``id`` is generated when absent)."""
    return [
        name
        for name, field in fields.items()
        if name != "id" and _is_concrete(field) and not field.get("optional", False)
    ]


def check_schema(
    wanted: Mapping[str, Any], actual_fields: Mapping[str, Mapping[str, Any]], collection: str
) -> None:
    """Raise :class:`StorageDataError` when the collection lacks, or mistypes, a required field.

    Only the wanted schema's non-optional fields are checked: an existing collection may hold
    more fields than this adapter needs.
    """
    for field in wanted.get("fields", []):
        if field.get("optional", False) or not _is_concrete(field):
            continue
        name = field["name"]
        have = actual_fields.get(name)
        if have is None:
            raise StorageDataError(
                f"Typesense collection '{collection}' has no field '{name}' "
                f"(required by the adapter's schema); drop it or configure a matching 'schema'"
            )
        if have.get("type") != field.get("type"):
            raise StorageDataError(
                f"Typesense collection '{collection}': field '{name}' has type "
                f"'{have.get('type')}', the adapter's schema needs '{field.get('type')}'"
            )


def _scalar_ok(value: Any, types: tuple[type, ...]) -> bool:
    """``value`` is one of ``types``; a bool is never a number, NaN and infinities never fit."""
    cls = value.__class__
    if cls is bool:
        return bool in types
    if cls is float:
        return float in types and math.isfinite(value)
    return isinstance(value, types)


def _to_epoch_ms(value: datetime) -> int:
    """An aware ``datetime`` as epoch milliseconds (a naive one is refused)."""
    if value.tzinfo is None:
        raise StorageDataError("Field 'created_at' must be a timezone-aware datetime")
    return int(value.timestamp() * 1000)


class DocumentRules:
    """A collection's fields compiled once: the required names and the per-field type checks.

    :meth:`prepare` runs for every stored document, so the schema is not re-read each time.
    """

    def __init__(self, fields: Mapping[str, Mapping[str, Any]]) -> None:
        self.fields = dict(fields)
        self.required = tuple(required_fields(fields))
        self.checks: dict[str, tuple[str, tuple[type, ...], bool]] = {}
        for name, field in fields.items():
            ftype = str(field.get("type", ""))
            array = ftype.endswith("[]")
            types = _SCALAR_TYPES.get(ftype[:-2] if array else ftype)
            if types is not None and _is_concrete(field):
                self.checks[name] = (ftype, types, array)
        self.sets_created_at = "created_at" in fields

    def prepare(self, data: Any) -> dict[str, Any]:
        """A validated copy of ``data``, ready to send; ``data`` itself is never changed.

        Adds a UUID ``id`` when absent and ``created_at`` (epoch ms) when the schema has it and
        the document does not. Raises :class:`StorageDataError` naming missing or mistyped
        fields.
        """
        if not isinstance(data, Mapping):
            raise StorageDataError(
                f"A Typesense document must be a mapping, not {type(data).__name__}"
            )
        doc = dict(data)
        doc_id = doc.get("id")
        if doc_id is None:
            doc["id"] = str(uuid.uuid4())
        elif doc_id.__class__ is not str or not doc_id:
            raise StorageDataError(
                f"Field 'id' must be a non-empty string, got {type(doc_id).__name__}"
            )
        else:
            id_segment(doc_id)  # an id too long to address could never be read or deleted
        if self.sets_created_at:
            created = doc.get("created_at")
            if created is None:
                doc["created_at"] = now_ms()
            elif isinstance(created, datetime):
                doc["created_at"] = _to_epoch_ms(created)
        missing = [name for name in self.required if doc.get(name) is None]
        if missing:
            raise StorageDataError(f"Missing required fields: {', '.join(missing)}")
        for name, (ftype, types, array) in self.checks.items():
            value = doc.get(name)
            if value is None:
                continue
            if array:
                ok = isinstance(value, (list, tuple)) and all(_scalar_ok(v, types) for v in value)
            else:
                ok = _scalar_ok(value, types)
            if not ok:
                raise StorageDataError(
                    f"Field '{name}' must be of Typesense type '{ftype}', "
                    f"got {type(value).__name__}"
                )
        return doc
