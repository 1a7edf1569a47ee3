"""Cheap, bounded estimate of an operation's payload size in bytes.

The spec measures data volume as ``len(str(data))``. That costs time proportional to the payload
(``str()`` of a 1,536-float embedding takes hundreds of microseconds), which the hot path cannot
afford. This estimate reads only string and bytes lengths, counts 8 bytes per number, looks at
no more than :data:`SAMPLE_ITEMS` items per container (extrapolating to the container's length)
and no deeper than :data:`MAX_DEPTH` levels: its cost is bounded whatever the payload. It never
looks at what a string says, only how long it is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_DEPTH", "SAMPLE_ITEMS", "estimate_size"]

#: Items of a container that are measured; the rest are assumed alike.
SAMPLE_ITEMS = 16
#: Containers nested deeper than this count 8 bytes per item.
MAX_DEPTH = 4
_SCALAR = 8


def estimate_size(obj: Any, _depth: int = 0) -> int:
    """Approximate size of ``obj`` in bytes: string/bytes lengths, 8 per number or scalar."""
    cls = type(obj)
    if cls is str or cls is bytes or cls is bytearray:
        return len(obj)
    if cls is dict:
        return _mapping_size(obj, _depth)
    if cls is list or cls is tuple:
        return _sequence_size(obj, _depth)
    if cls is int or cls is float or cls is bool or obj is None:
        return _SCALAR
    # Less common types: subclasses, other mappings and collections, arrays.
    if isinstance(obj, (str, bytes, bytearray)):
        return len(obj)
    if isinstance(obj, Mapping):
        return _mapping_size(obj, _depth)
    if isinstance(obj, (list, tuple, set, frozenset)):
        return _sequence_size(obj, _depth)
    nbytes = getattr(obj, "nbytes", None)  # memoryview, numpy arrays
    if isinstance(nbytes, int):
        return nbytes
    return _SCALAR


def _mapping_size(obj: Mapping[Any, Any], depth: int) -> int:
    count = len(obj)
    if count == 0:
        return 0
    if depth >= MAX_DEPTH:
        return count * _SCALAR
    total = seen = 0
    for key, value in obj.items():
        # Inline fast paths: most keys are str and most values scalars (no call per item).
        total += len(key) if type(key) is str else estimate_size(key, depth + 1)
        cls = type(value)
        if cls is str:
            total += len(value)
        elif cls is int or cls is float or cls is bool or value is None:
            total += _SCALAR
        else:
            total += estimate_size(value, depth + 1)
        seen += 1
        if seen == SAMPLE_ITEMS:
            break
    return total if seen == count else total * count // seen


def _sequence_size(obj: Any, depth: int) -> int:
    count = len(obj)
    if count == 0:
        return 0
    if depth >= MAX_DEPTH:
        return count * _SCALAR
    total = seen = 0
    for item in obj:
        cls = type(item)
        if cls is str:
            total += len(item)
        elif cls is int or cls is float or cls is bool or item is None:
            total += _SCALAR
        else:
            total += estimate_size(item, depth + 1)
        seen += 1
        if seen == SAMPLE_ITEMS:
            break
    return total if seen == count else total * count // seen
