"""Embedded mode on Qdrant Edge: Qdrant's own engine (segments, HNSW, payload indexes, WAL).

**Layout.** ``path`` is a directory of collections: ``<path>/<collection_name>/`` is one
``qdrant_edge.EdgeShard`` (``edge_config.json``, ``segments/``, ``wal/``). Each shard's WAL
directory is ``flock``-ed exclusively while open, so one client per *collection* (not per path)
at a time, in this or any other process. A directory written by qdrant-client's local mode
(``meta.json``, ``collection/<name>/storage.sqlite``) is refused with a clear error: Edge
cannot read it, and ``python -m mas_storage_qdrant.migrate`` converts it.

**Threading.** qdrant-edge-py 0.9.0 holds the GIL for the whole of every call (measured: a
thread polling every millisecond got no turn during a 44 s ``optimize()`` in another thread;
the bindings never detach from the interpreter). A worker thread would therefore keep nothing
off the loop and only add a hop, so calls run inline, each one bounded: a search or a lookup
takes microseconds to about a millisecond, and ``store_many`` writes ``batch_size`` points per
call and yields to the loop between calls. The one long call, the HNSW build
(``optimize()``), runs in a child process on the closed shard (:meth:`EdgeCollection.optimize`)
while this collection's own calls wait: the caller's loop, and every other adapter on it,
keep running.

**Durability.** ``update`` appends to the WAL (memory-mapped) before it applies the change, and
``EdgeShard.load`` replays what the segments had not persisted: a point whose ``store`` returned
survives the process being killed (tested with ``kill -9``). It is on disk against power loss
after a flush, which ``disconnect()`` and ``optimize()`` do.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
)

from ._points import Condition, PointId

__all__ = ["EdgeCollection", "edge_filter", "edge_point", "legacy_local_mode_error"]

_DISTANCES = {
    "Cosine": qe.Distance.Cosine,
    "Euclid": qe.Distance.Euclid,
    "Dot": qe.Distance.Dot,
    "Manhattan": qe.Distance.Manhattan,
}
_SCHEMAS = {
    "keyword": qe.PayloadSchemaType.Keyword,
    "datetime": qe.PayloadSchemaType.Datetime,
}
_CONFIG_FILE = "edge_config.json"
#: What qdrant-client's local mode writes at the top of its directory.
_LOCAL_MODE_META = "meta.json"
#: A collection name is a directory name here: no separators, no leading dot.
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}")
#: Limits above this are cut to the number of points (no more hits can exist).
_LIMIT_CHECKED = 10_000
#: Qdrant's default indexing threshold (KB of vectors per segment before it gets HNSW).
_INDEXING_THRESHOLD_KB = 10_000

#: The child process that builds the indexes of a closed shard (see ``optimize``).
_OPTIMIZE_SCRIPT = """
import json, sys, time
import qdrant_edge
start = time.perf_counter()
shard = qdrant_edge.EdgeShard.load(sys.argv[1])
try:
    optimized = shard.optimize()
    info = shard.info()
finally:
    shard.close()
print(json.dumps({"optimized": optimized, "seconds": time.perf_counter() - start,
                  "cpu_seconds": time.process_time(), "points": info.points_count,
                  "indexed": info.indexed_vectors_count}))
"""


def legacy_local_mode_error(root: Path) -> StorageDataError:
    """The error for a directory that qdrant-client's local mode wrote."""
    return StorageDataError(
        f"Qdrant embedded storage at {root} was written by qdrant-client's local mode "
        f"({_LOCAL_MODE_META} and collection/<name>/storage.sqlite), which the embedded engine "
        "(Qdrant Edge) cannot read. Nothing was changed. Convert it with "
        f"'python -m mas_storage_qdrant.migrate {root} <new directory>' and set 'path' to the "
        "new directory, or point 'path' at an empty directory to start afresh."
    )


def _match(value: Any) -> qe.MatchValue | qe.MatchAny:
    if isinstance(value, list):
        return qe.MatchAny(value)
    if isinstance(value, bool):
        # qdrant-edge-py 0.9.0 reads a Python bool given to MatchValue as the integer 0 or 1
        # (its value enum tries Integer before Bool, and bool is an int), which never matches a
        # stored boolean. NumPy's bool is not an int, so it reaches the Bool variant.
        return qe.MatchValue(np.bool_(value))  # type: ignore[arg-type]
    return qe.MatchValue(value)


def edge_filter(conditions: Sequence[Condition]) -> qe.Filter | None:
    """The engine's ``must`` filter of equality conditions, or ``None`` when there are none."""
    if not conditions:
        return None
    return qe.Filter(must=[qe.FieldCondition(key, match=_match(v)) for key, v in conditions])


def edge_point(point_id: PointId, vector: list[float], payload: dict[str, Any]) -> qe.Point:
    """The engine's point for a validated record (its payload must be JSON-normal)."""
    try:
        return qe.Point(point_id, vector, payload)
    except (TypeError, ValueError, OverflowError) as exc:
        raise StorageDataError(f"Qdrant Edge cannot take this record: {exc}") from None


def _engine_error(exc: Exception, where: str) -> StorageError:
    """An engine exception as a storage error. Edge raises plain ``Exception`` with the engine's
    message, and ``TypeError``/``ValueError``/``OverflowError`` for arguments it cannot read."""
    text = str(exc)
    if "WouldBlock" in text:
        return StorageConnectionError(
            f"Qdrant embedded collection at {where} is locked by another client (in this or "
            "another process). Embedded mode allows one client per collection: disconnect the "
            "other one, use another path or collection_name, or use server mode."
        )
    if "Shard is not initialized" in text:
        return StorageConnectionError(f"Qdrant embedded collection at {where} is closed")
    if isinstance(exc, (TypeError, ValueError, OverflowError)) or text.startswith(
        ("Vector dimension error", "Validation failed", "Wrong input", "Bad input")
    ):
        return StorageDataError(f"Qdrant Edge refused the request: {text}")
    if text.startswith("No point with id"):
        return StorageNotFoundError(text)
    return StorageQueryError(f"Qdrant Edge failed at {where}: {text}")


class EdgeCollection:
    """One collection of the embedded engine: an ``EdgeShard`` in ``<root>/<name>``.

    Every method except :meth:`optimize` is a plain blocking call meant to run inline on the
    caller's loop (see the module docstring); each raises only :class:`StorageError`.
    """

    def __init__(
        self,
        root: Path | None,
        name: str,
        size: int,
        distance: str,
        indexes: Mapping[str, str],
    ) -> None:
        if not _NAME.fullmatch(name):
            raise StorageDataError(
                f"Qdrant collection_name {name!r} cannot name a directory: use letters, digits, "
                "'_', '-' and '.' (not first), at most 255 characters"
            )
        #: ``None`` root: a private temporary directory, removed on close (``:memory:``).
        self._temporary = root is None
        self.root = Path(tempfile.mkdtemp(prefix="mas-qdrant-")) if root is None else root
        self.name = name
        self.dir = self.root / name
        self.size = size
        self.distance = _DISTANCES[distance]
        self.indexes = {field: _SCHEMAS[schema] for field, schema in indexes.items()}
        self._shard: qe.EdgeShard | None = None
        self._dropped = False
        #: Set while the shard is closed for a child-process optimisation; calls wait on it.
        self._busy: asyncio.Future[None] | None = None
        #: Unindexed points right after the last optimisation (some stay plain by design).
        self._unindexed_baseline = 0
        #: What the last optimisation reported: seconds, cpu_seconds, points, indexed.
        self.last_optimization: dict[str, Any] | None = None

    # -- open / close ------------------------------------------------------------------------

    def stored_vectors(self) -> tuple[int, str] | dict[str, Any] | None:
        """What the collection on disk holds: ``(size, distance)``, the raw named-vector map
        when it has named vectors, or ``None`` when there is no collection yet.

        Refuses a local-mode directory and a ``path`` that is itself a shard, before anything
        is written.
        """
        if (self.root / _LOCAL_MODE_META).is_file():
            raise legacy_local_mode_error(self.root)
        if (self.root / _CONFIG_FILE).is_file():
            raise StorageDataError(
                f"Qdrant embedded path {self.root} is itself one collection (it holds "
                f"{_CONFIG_FILE}): set 'path' to its parent directory and 'collection_name' to "
                f"{self.root.name!r}"
            )
        config_file = self.dir / _CONFIG_FILE
        if self.root.exists() and not self.root.is_dir():
            raise StorageDataError(f"Qdrant embedded path {self.root} is not a directory")
        if not config_file.is_file():
            return None
        try:
            vectors = json.loads(config_file.read_text(encoding="utf-8"))["vectors"]
            if set(vectors) != {""}:
                return dict(vectors)
            return int(vectors[""]["size"]), str(vectors[""]["distance"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StorageDataError(
                f"Qdrant embedded collection at {self.dir} has an unreadable {_CONFIG_FILE}: "
                f"{type(exc).__name__}: {exc}"
            ) from None

    def open(self) -> None:
        """Load the collection (replaying its WAL) or create it; add missing payload indexes."""
        if self._shard is not None:
            return
        where = str(self.dir)
        try:
            if (self.dir / _CONFIG_FILE).is_file():
                shard = qe.EdgeShard.load(where)
            else:
                config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(self.size, self.distance))
                shard = qe.EdgeShard.create(where, config)
        except Exception as exc:
            raise _engine_error(exc, where) from exc
        self._shard = shard
        self._dropped = False
        try:
            have = shard.info().payload_schema
            for field, schema in self.indexes.items():
                if field not in have:
                    shard.update(qe.UpdateOperation.create_field_index(field, schema))
        except Exception as exc:
            self.close()
            raise _engine_error(exc, where) from exc

    def close(self) -> None:
        """Close the shard (it flushes), releasing its lock. Idempotent."""
        self.close_for_maintenance()
        if self._temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def close_for_maintenance(self) -> None:
        """Close the shard but keep a temporary root (an optimisation reopens it)."""
        shard, self._shard = self._shard, None
        if shard is not None:
            shard.close()

    def drop(self) -> bool:
        """Delete the collection's directory; whether there was one."""
        existed = self._shard is not None or (self.dir / _CONFIG_FILE).is_file()
        self.close_for_maintenance()
        shutil.rmtree(self.dir, ignore_errors=True)
        self._dropped = True
        return existed

    # -- calls -------------------------------------------------------------------------------

    async def idle(self) -> None:
        """Wait for an optimisation under way (if any) to end; it reopens the shard."""
        if self._busy is not None:
            await asyncio.shield(self._busy)

    async def ready(self) -> qe.EdgeShard:
        """The open shard, after any optimisation under way; a clear error when there is none."""
        if self._busy is not None:
            await asyncio.shield(self._busy)
        return self.shard()

    def shard(self) -> qe.EdgeShard:
        if self._shard is not None:
            return self._shard
        if self._dropped:
            raise StorageNotFoundError(
                f"Qdrant collection '{self.name}' was dropped: connect() again to create it"
            )
        raise StorageConnectionError(f"Qdrant embedded collection at {self.dir} is closed")

    def upsert(self, shard: qe.EdgeShard, points: list[qe.Point]) -> None:
        try:
            shard.update(qe.UpdateOperation.upsert_points(points))
        except Exception as exc:
            raise _engine_error(exc, str(self.dir)) from exc

    def retrieve(self, shard: qe.EdgeShard, point_id: PointId, with_vector: bool) -> Any:
        try:
            found = shard.retrieve([point_id], True, with_vector)
        except Exception as exc:
            raise _engine_error(exc, str(self.dir)) from exc
        return found[0] if found else None

    def query(
        self,
        shard: qe.EdgeShard,
        vector: list[float],
        conditions: Sequence[Condition],
        limit: int,
        threshold: float | None,
        with_vector: bool,
    ) -> list[Any]:
        try:
            if limit > _LIMIT_CHECKED:  # a huge limit must not size the engine's heap
                limit = min(limit, max(shard.info().points_count, 1))
            request = qe.QueryRequest(
                limit=limit,
                query=qe.Query.Nearest(vector),
                filter=edge_filter(conditions),
                score_threshold=threshold,
                with_payload=True,
                with_vector=with_vector,
            )
            return shard.query(request)
        except Exception as exc:
            raise _engine_error(exc, str(self.dir)) from exc

    def delete(self, shard: qe.EdgeShard, point_id: PointId) -> bool:
        try:
            if not shard.retrieve([point_id], False, False):
                return False
            shard.update(qe.UpdateOperation.delete_points([point_id]))
        except Exception as exc:
            raise _engine_error(exc, str(self.dir)) from exc
        return True

    def count(self, shard: qe.EdgeShard, conditions: Sequence[Condition]) -> int:
        try:
            return int(shard.count(qe.CountRequest(exact=True, filter=edge_filter(conditions))))
        except Exception as exc:
            raise _engine_error(exc, str(self.dir)) from exc

    def index_status(self, shard: qe.EdgeShard) -> dict[str, int]:
        """Points, HNSW-indexed vectors and segments (the engine's own figures)."""
        info = shard.info()
        return {
            "points": info.points_count,
            "indexed_vectors": info.indexed_vectors_count,
            "segments": info.segments_count,
        }

    # -- optimisation ------------------------------------------------------------------------

    def optimization_due(self, shard: qe.EdgeShard) -> bool:
        """Whether the points written since the last optimisation fill a segment's worth.

        A segment gets HNSW past Qdrant's indexing threshold (10,000 KB of vectors: about
        6,600 points of 384 floats); below it a plain scan is as fast, so smaller segments stay
        unindexed by design. ``unindexed - baseline`` counts only what was written since.
        """
        info = shard.info()
        threshold = _INDEXING_THRESHOLD_KB * 1024 // (4 * self.size)
        unindexed = info.points_count - info.indexed_vectors_count
        return unindexed - self._unindexed_baseline >= threshold

    async def optimize(self) -> dict[str, Any]:
        """Build the HNSW and payload indexes, merge and vacuum segments: the engine's
        ``optimize()``, in a child process on the closed shard.

        The build holds the GIL for its whole duration in-process (259 s of CPU for 100,000
        points of 384 floats here), so it runs in ``python -c`` on the directory while this
        collection's calls wait (:meth:`ready`); the caller's loop stays free but for the
        close and the reload, inline (0.6 s at 100,000 points). Cancelling the caller does
        not interrupt it: the shard is always reopened.
        """
        await self.idle()
        self.shard()  # closed or dropped: the same clear error as any call
        loop = asyncio.get_running_loop()
        self._busy = loop.create_future()
        return await asyncio.shield(self._optimize_closed(self._busy))

    async def _optimize_closed(self, busy: asyncio.Future[None]) -> dict[str, Any]:
        try:
            self.close_for_maintenance()
            try:
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-c",
                    _OPTIMIZE_SCRIPT,
                    str(self.dir),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await child.communicate()
            finally:
                self.open()
            if child.returncode != 0:
                tail = err.decode(errors="replace").strip().splitlines()[-3:]
                raise StorageQueryError(
                    f"Qdrant Edge optimisation of {self.dir} failed (exit {child.returncode}): "
                    + " | ".join(tail)
                )
            result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
            self._unindexed_baseline = int(result["points"]) - int(result["indexed"])
            self.last_optimization = result
            return result
        finally:
            self._busy = None
            busy.set_result(None)
