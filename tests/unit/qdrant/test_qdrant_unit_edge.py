"""The embedded engine's own types: filters, points and errors (Qdrant Edge, no stack needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import qdrant_edge as qe

from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageNotFoundError,
    StorageQueryError,
)
from mas_storage_qdrant._edge import (
    EdgeCollection,
    _engine_error,
    edge_filter,
    edge_point,
    legacy_local_mode_error,
)
from mas_storage_qdrant._points import filter_conditions


def _values(flt: qe.Filter) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for condition in flt.must or []:
        assert isinstance(condition, qe.FieldCondition)
        match = condition.match
        assert isinstance(match, (qe.MatchValue, qe.MatchAny))
        out.append((condition.key, match.value))
    return out


def test_edge_filter_maps_every_condition_to_the_engines_types() -> None:
    conditions = filter_conditions(
        "s1", {"topic": "billing", "turn": 3, "flag": True, "tags": ["a", "b"], "ids": (1, 2)}
    )
    flt = edge_filter(conditions)
    assert flt is not None
    assert _values(flt) == [
        ("session_id", "s1"),
        ("metadata.topic", "billing"),
        ("metadata.turn", 3),
        ("metadata.flag", True),
        ("metadata.tags", ["a", "b"]),
        ("metadata.ids", [1, 2]),
    ]
    assert edge_filter([]) is None


@pytest.mark.parametrize(("value", "kind"), [(True, bool), (False, bool), (1, int), (0, int)])
def test_booleans_stay_booleans_in_the_engine(value: object, kind: type) -> None:
    # qdrant-edge-py 0.9.0 reads MatchValue(True) as the integer 1; the adapter works around it.
    flt = edge_filter([("metadata.flag", value)])  # type: ignore[list-item]
    assert flt is not None
    [condition] = flt.must or []
    assert isinstance(condition, qe.FieldCondition)
    assert isinstance(condition.match, qe.MatchValue)
    assert type(condition.match.value) is kind
    assert condition.match.value == value


def test_bool_and_int_filters_match_what_qdrant_stores(tmp_path: Path) -> None:
    shard = qe.EdgeShard.create(
        str(tmp_path / "s"), qe.EdgeConfig(vectors=qe.EdgeVectorParams(2, qe.Distance.Dot))
    )
    try:
        shard.update(
            qe.UpdateOperation.upsert_points(
                [
                    qe.Point(1, [1.0, 0.0], {"f": True}),
                    qe.Point(2, [1.0, 0.0], {"f": 1}),
                    qe.Point(3, [1.0, 0.0], {"f": False}),
                    qe.Point(4, [1.0, 0.0], {"f": 0}),
                ]
            )
        )
        for value, ids in ((True, [1]), (1, [2]), (False, [3]), (0, [4])):
            flt = edge_filter([("f", value)])
            records, _ = shard.scroll(qe.ScrollRequest(limit=10, filter=flt))
            assert [r.id for r in records] == ids, value
    finally:
        shard.close()


def test_filter_integers_are_signed_64_bit() -> None:
    with pytest.raises(StorageDataError, match="signed 64-bit"):
        filter_conditions(None, {"n": 2**63})
    with pytest.raises(StorageDataError, match="signed 64-bit"):
        filter_conditions(None, {"n": [1, -(2**63) - 1]})
    assert filter_conditions(None, {"n": 2**63 - 1}) == [("metadata.n", 2**63 - 1)]


def test_edge_point_refuses_what_the_engine_cannot_read() -> None:
    point = edge_point(7, [0.5, 0.5], {"content": "x", "metadata": {"k": [1, "a"]}})
    assert point.id == 7
    assert point.payload == {"content": "x", "metadata": {"k": [1, "a"]}}
    with pytest.raises(StorageDataError, match="cannot take this record"):
        edge_point(7, [0.5, 0.5], {"metadata": {"k": object()}})


@pytest.mark.parametrize(
    ("raised", "expected", "text"),
    [
        (Exception("Service runtime error: failed to open WAL x: Kind(WouldBlock)"),
         StorageConnectionError, "is locked by another client"),
        (Exception("Service runtime error: Shard is not initialized"),
         StorageConnectionError, "is closed"),
        (Exception("Vector dimension error: expected dim: 4, got 3"),
         StorageDataError, "expected dim: 4"),
        (Exception("Wrong input: bad"), StorageDataError, "Wrong input"),
        (TypeError("failed to extract enum"), StorageDataError, "failed to extract"),
        (OverflowError("int too big to convert"), StorageDataError, "too big"),
        (Exception("No point with id 5"), StorageNotFoundError, "No point with id 5"),
        (Exception("Service runtime error: disk on fire"), StorageQueryError, "disk on fire"),
    ],
)  # fmt: skip
def test_engine_errors_map_to_storage_errors(
    raised: Exception, expected: type[Exception], text: str
) -> None:
    err = _engine_error(raised, "/data/qdrant/c")
    assert type(err) is expected
    assert text in str(err)


def test_local_mode_error_says_what_it_is_and_what_to_do() -> None:
    message = str(legacy_local_mode_error(Path("/data/q")))
    assert "written by qdrant-client's local mode" in message
    assert "python -m mas_storage_qdrant.migrate /data/q <new directory>" in message
    assert "Nothing was changed" in message


@pytest.mark.parametrize("name", ["", ".hidden", "a/b", "../up", "x" * 256, "sp ace"])
def test_collection_names_must_be_directory_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(StorageDataError, match="cannot name a directory"):
        EdgeCollection(tmp_path, name, 4, "Cosine", {})
    assert list(tmp_path.iterdir()) == []
