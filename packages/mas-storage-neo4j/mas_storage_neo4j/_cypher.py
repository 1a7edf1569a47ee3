"""Cypher text built from validated identifiers, and the checks of caller input.

Labels and relationship types cannot be Cypher parameters, so they are the only caller input
that ever reaches the query text. Each one must match :data:`IDENTIFIER` and is then quoted
with backticks; anything else raises :class:`~mas_storage.StorageDataError` before a query is
sent. This closes the spec's injection hole (``MERGE (n:{label} ...)`` with a raw label).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mas_storage import StorageDataError, validate_required_fields

__all__ = [
    "DIRECTIONS",
    "IDENTIFIER",
    "MAX_DEPTH",
    "check_id",
    "check_int",
    "check_list",
    "check_properties",
    "chunks",
    "constraint_name",
    "entity_merge",
    "entity_merge_many",
    "ident",
    "labels_without",
    "neighbors_query",
    "node_pattern",
    "relationship_merge",
    "relationship_merge_many",
    "relationship_row",
]

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Deepest traversal ``get_neighbors`` accepts: variable-length paths grow exponentially.
MAX_DEPTH = 5
#: Accepted spellings of a traversal direction -> (left arrow, right arrow).
DIRECTIONS: dict[str, tuple[str, str]] = {
    "out": ("-", "->"),
    "outgoing": ("-", "->"),
    "in": ("<-", "-"),
    "incoming": ("<-", "-"),
    "both": ("-", "-"),
}
#: Python types Neo4j stores as property values (scalars; lists hold one of these).
_SCALARS = (str, bool, int, float, bytes)


def ident(name: Any, what: str = "label") -> str:
    """``name`` backtick-quoted, or :class:`StorageDataError` when it is not an identifier."""
    if not isinstance(name, str) or not IDENTIFIER.fullmatch(name):
        raise StorageDataError(f"Invalid {what} {name!r}: it must match ^[A-Za-z_][A-Za-z0-9_]*$")
    return f"`{name}`"


def check_properties(props: Any, what: str = "properties") -> dict[str, Any]:
    """A shallow copy of ``props`` after checking Neo4j can store every value.

    Maps and nested lists are not valid property values; rejecting them here gives a message
    naming the key instead of the server's type error.
    """
    if props is None:
        return {}
    if not isinstance(props, Mapping):
        raise StorageDataError(f"{what} must be a mapping, got {type(props).__name__}")
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not isinstance(key, str) or not key:
            raise StorageDataError(f"{what} keys must be non-empty strings, got {key!r}")
        if isinstance(value, Mapping):
            raise StorageDataError(
                f"{what}[{key!r}] is a mapping: Neo4j properties hold scalars or lists only"
            )
        if isinstance(value, (list, tuple)):
            bad = [v for v in value if isinstance(v, (Mapping, list, tuple))]
            if bad:
                raise StorageDataError(
                    f"{what}[{key!r}] holds a nested {type(bad[0]).__name__}: Neo4j list "
                    "properties hold scalars only"
                )
            value = list(value)
        out[key] = value
    return out


def node_pattern(var: str, base: str, label: str | None) -> str:
    """``(var:`Label`)`` when a label is given, else ``(var:`Base`)`` (both index-backed)."""
    return f"({var}:{ident(label) if label is not None else ident(base)} {{id: ${var}_id}})"


def constraint_name(label: str) -> str:
    """The name of the ``id`` uniqueness constraint the adapter creates for ``label``."""
    ident(label)
    return ident(f"mas_{label}_id_unique", "constraint name")


def entity_merge(base: str, label: str) -> str:
    """MERGE one entity by id under the base label; no row back means an id/label clash.

    ``ON CREATE SET`` adds the entity's label to a new node; ``WHERE n:Label`` then refuses to
    update a node that already holds this id under a different label.
    """
    lbl = ident(label)
    return (
        f"MERGE (n:{ident(base)} {{id: $id}}) ON CREATE SET n:{lbl} "
        f"WITH n WHERE n:{lbl} SET n += $props RETURN n.id AS id"
    )


def entity_merge_many(base: str, label: str) -> str:
    """The UNWIND form of :func:`entity_merge`: returns the ``i`` of every row it wrote."""
    lbl = ident(label)
    return (
        f"UNWIND $rows AS row MERGE (n:{ident(base)} {{id: row.id}}) ON CREATE SET n:{lbl} "
        f"WITH n, row WHERE n:{lbl} SET n += row.props RETURN row.i AS i"
    )


def relationship_merge(
    base: str, rel_type: str, from_label: str | None, to_label: str | None
) -> str:
    """MATCH both ends by id and MERGE one relationship; no row back means an end is missing."""
    return (
        f"MATCH {node_pattern('a', base, from_label)} "
        f"MATCH {node_pattern('b', base, to_label)} "
        f"MERGE (a)-[r:{ident(rel_type, 'relationship type')}]->(b) SET r += $props "
        "RETURN elementId(r) AS id"
    )


def relationship_merge_many(
    base: str, rel_type: str, from_label: str | None, to_label: str | None
) -> str:
    """The UNWIND form of :func:`relationship_merge`, returning ``i`` and the elementId."""
    a = ident(from_label) if from_label is not None else ident(base)
    b = ident(to_label) if to_label is not None else ident(base)
    return (
        f"UNWIND $rows AS row MATCH (a:{a} {{id: row.from}}) MATCH (b:{b} {{id: row.to}}) "
        f"MERGE (a)-[r:{ident(rel_type, 'relationship type')}]->(b) SET r += row.props "
        "RETURN row.i AS i, elementId(r) AS id"
    )


def neighbors_query(base: str, rel_types: Sequence[str] | None, direction: str, depth: int) -> str:
    """Neighbours of ``$id`` up to ``depth`` hops, each once, by its shortest path found.

    ``depth`` is an int checked by the caller (a variable-length bound cannot be a parameter).
    """
    left, right = DIRECTIONS[direction]
    types = "|".join(ident(t, "relationship type") for t in rel_types or ())
    rel = f"[:{types}*1..{int(depth)}]" if types else f"[*1..{int(depth)}]"
    return (
        f"MATCH (s:{ident(base)} {{id: $id}}) "
        f"MATCH p = (s){left}{rel}{right}(n) WHERE n <> s "
        "WITH n, p ORDER BY length(p) "
        "WITH n, head(collect(p)) AS p "
        "RETURN n.id AS id, labels(n) AS labels, properties(n) AS properties, "
        "length(p) AS depth, [r IN relationships(p) | type(r)] AS relationships "
        "ORDER BY depth, id LIMIT $limit"
    )


def labels_without(labels: Iterable[str], base: str) -> list[str]:
    """A node's labels minus the adapter's base label, sorted for stable output."""
    return sorted(lbl for lbl in labels if lbl != base)


# -- input checks --------------------------------------------------------------------------


def relationship_row(
    data: Any,
) -> tuple[tuple[str, str | None, str | None], str, str, dict[str, Any]]:
    """Validate a relationship item: ``((type, from_label, to_label), from, to, props)``."""
    validate_required_fields(data, ["from", "to", "relationship"])
    rel_type = data["relationship"]
    ident(rel_type, "relationship type")
    from_label, to_label = data.get("from_label"), data.get("to_label")
    for label in (from_label, to_label):
        if label is not None:
            ident(label)
    check_id(data["from"], "from")
    check_id(data["to"], "to")
    props = check_properties(data.get("properties"), "relationship properties")
    return (rel_type, from_label, to_label), data["from"], data["to"], props


def check_id(value: Any, what: str) -> None:
    """Ids are non-empty strings (an int id would never match the stored string)."""
    if not isinstance(value, str) or not value:
        raise StorageDataError(f"{what} must be a non-empty string, got {value!r}")


def check_int(value: Any, what: str, low: int, high: int) -> None:
    """An int (not a bool) within ``low..high``: it bounds a traversal or a result size."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StorageDataError(f"{what} must be an integer from {low} to {high}, got {value!r}")


def check_list(items: Any, what: str) -> Sequence[Any]:
    """A list or tuple of items (a string or a single mapping is a caller mistake)."""
    if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Sequence):
        raise StorageDataError(f"{what} must be a list, got {type(items).__name__}")
    return items


def chunks(rows: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """``rows`` split into lists of at most ``size``: one UNWIND statement each."""
    return [rows[start : start + size] for start in range(0, len(rows), size)]
