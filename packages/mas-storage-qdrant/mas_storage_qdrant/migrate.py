"""Convert a directory written by qdrant-client's local mode into embedded-mode collections.

Usage::

    python -m mas_storage_qdrant.migrate OLD NEW

Before issue 19, embedded mode ran qdrant-client's local mode (``meta.json`` and
``collection/<name>/storage.sqlite``). The embedded engine is now Qdrant Edge, which cannot
read that, so the adapter refuses such a directory. This reads every collection of ``OLD``
with qdrant-client (``OLD`` is left as it is) and writes it to ``NEW/<name>`` as an Edge shard
with the same vector size and distance, ids, vectors and payloads. The adapter adds its payload
indexes and builds the HNSW index when it first connects. ``NEW`` must not hold a collection of
the same name yet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import qdrant_edge as qe
from qdrant_client import QdrantClient, models

__all__ = ["migrate"]

_BATCH = 512


def migrate(old: Path, new: Path) -> dict[str, int]:
    """Copy every collection of the local-mode directory ``old`` into ``new``; points per name."""
    if not (old / "meta.json").is_file():
        raise ValueError(f"{old} is not a qdrant-client local-mode directory (no meta.json)")
    # One thread reads: the client's same-thread check is moot, and turning it off skips its
    # SQLite thread-safety probe, whose connection it never closes (a ResourceWarning on 3.13).
    client = QdrantClient(path=str(old), force_disable_check_same_thread=True)
    copied: dict[str, int] = {}
    try:
        for collection in client.get_collections().collections:
            name = collection.name
            vectors = client.get_collection(name).config.params.vectors
            if not isinstance(vectors, models.VectorParams):
                raise ValueError(f"collection {name!r} has named vectors; only one is supported")
            target = new / name
            if (target / "edge_config.json").exists():
                raise FileExistsError(f"{target} already holds a collection")
            distance = getattr(qe.Distance, vectors.distance.value)
            shard = qe.EdgeShard.create(
                str(target), qe.EdgeConfig(vectors=qe.EdgeVectorParams(vectors.size, distance))
            )
            try:
                copied[name] = _copy_points(client, name, shard)
            finally:
                shard.close()
    finally:
        client.close()
    return copied


def _copy_points(client: QdrantClient, name: str, shard: qe.EdgeShard) -> int:
    count = 0
    offset: models.ExtendedPointId | None = None
    while True:
        records, offset = client.scroll(
            name, limit=_BATCH, offset=offset, with_payload=True, with_vectors=True
        )
        if records:
            points = [qe.Point(r.id, r.vector, r.payload or {}) for r in records]  # type: ignore[arg-type]
            shard.update(qe.UpdateOperation.upsert_points(points))
            count += len(points)
        if offset is None:
            return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="the local-mode directory (left unchanged)")
    parser.add_argument("new", type=Path, help="where the embedded-mode collections go")
    args = parser.parse_args(argv)
    try:
        copied = migrate(args.old, args.new)
    except Exception as exc:  # the engine raises plain Exception
        print(f"migrate: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for name, count in copied.items():
        print(f"{name}: {count} points -> {args.new / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
