"""Validation and conversion of records, ids, vectors and filters (no backend involved)."""

from __future__ import annotations

import copy
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from qdrant_client import models

from mas_storage import StorageDataError
from mas_storage_qdrant._points import (
    build_filter,
    build_point,
    parse_id,
    validate_vector,
)

# -- ids ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("6F9619FF-8B86-D011-B42D-00CF4FC964FF", "6f9619ff-8b86-d011-b42d-00cf4fc964ff"),
        ("6f9619ff8b86d011b42d00cf4fc964ff", "6f9619ff-8b86-d011-b42d-00cf4fc964ff"),
        (uuid.UUID(int=7), "00000000-0000-0000-0000-000000000007"),
        (42, 42),
        ("42", 42),
        (0, 0),
        (2**64 - 1, 2**64 - 1),
    ],
)
def test_parse_id_accepts_uuids_and_unsigned_ints(given: object, expected: object) -> None:
    assert parse_id(given) == expected


@pytest.mark.parametrize("bad", ["nope", "", "-1", -1, 2**64, True, 1.5, None, b"x", "12ab"])
def test_parse_id_rejects_everything_else(bad: object) -> None:
    with pytest.raises(StorageDataError, match=r"(?i)id"):
        parse_id(bad)


# -- vectors -----------------------------------------------------------------------------------


def test_validate_vector_copies_into_floats() -> None:
    given = [1, 2.5, 3]
    out = validate_vector(given, 3)
    assert out == [1.0, 2.5, 3.0]
    assert all(type(x) is float for x in out)
    assert out is not given


def test_validate_vector_huge_finite_values_are_fine() -> None:
    # Their sum overflows to inf; each value is still finite.
    assert validate_vector([1e308, 1e308, -1e308], 3) == [1e308, 1e308, -1e308]


def test_validate_vector_accepts_tuples_numpy_arrays_and_numpy_scalars() -> None:
    assert validate_vector((0.5, 1), 2) == [0.5, 1.0]
    assert validate_vector(np.array([0.25, 0.5], dtype=np.float32), 2) == [0.25, 0.5]
    assert validate_vector([np.float32(0.5), np.int64(2)], 2) == [0.5, 2.0]


@pytest.mark.parametrize(
    ("vector", "message"),
    [
        ([1.0, 2.0], "has 2 dimensions; the collection expects 3"),
        ([1.0, 2.0, 3.0, 4.0], "has 4 dimensions"),
        ([], "has 0 dimensions"),
        ([1.0, math.nan, 2.0], r"vector\[1\]' is nan"),
        ([1.0, 2.0, math.inf], r"vector\[2\]' is inf"),
        ([-math.inf, 2.0, 3.0], r"vector\[0\]' is -inf"),
        ([1.0, "2", 3.0], r"vector\[1\]' must be a number, got str"),
        ([True, 2.0, 3.0], r"vector\[0\]' must be a number, got bool"),
        ([1.0, None, 3.0], r"vector\[1\]' must be a number, got NoneType"),
        ("abc", "must be a list of 3 numbers, got str"),
        (None, "must be a list of 3 numbers, got NoneType"),
        ({"a": 1}, "must be a list of 3 numbers, got dict"),
    ],
)
def test_validate_vector_rejects_bad_vectors(vector: object, message: str) -> None:
    with pytest.raises(StorageDataError, match=message):
        validate_vector(vector, 3)


# -- records -----------------------------------------------------------------------------------


def test_build_point_makes_a_uuid_and_the_full_payload() -> None:
    data = {"vector": [1, 0], "content": "hello", "session_id": "s1", "metadata": {"k": [1, 2]}}
    before = copy.deepcopy(data)
    point = build_point(data, 2)
    assert data == before  # never mutates the input
    assert str(uuid.UUID(str(point.id))) == point.id
    assert point.vector == [1.0, 0.0]
    assert point.payload is not None
    assert point.payload["content"] == "hello"
    assert point.payload["session_id"] == "s1"
    assert point.payload["metadata"] == {"k": [1, 2]}
    assert point.payload["metadata"] is not data["metadata"]
    created = datetime.fromisoformat(point.payload["created_at"])
    assert created.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - created) < timedelta(minutes=5)


def test_build_point_defaults_and_caller_id() -> None:
    point = build_point({"vector": [0.0], "id": "42"}, 1)
    assert point.id == 42
    assert point.payload == {
        "content": "",
        "session_id": None,
        "metadata": {},
        "created_at": point.payload["created_at"],  # type: ignore[index]
    }


def test_build_point_normalizes_created_at_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    point = build_point(
        {"vector": [0.0], "created_at": datetime(2025, 1, 2, 3, tzinfo=plus_two)}, 1
    )
    assert point.payload["created_at"] == "2025-01-02T01:00:00+00:00"  # type: ignore[index]
    point = build_point({"vector": [0.0], "created_at": "2025-01-02T03:00:00+02:00"}, 1)
    assert point.payload["created_at"] == "2025-01-02T01:00:00+00:00"  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"content": "x"}, "Missing required fields: vector"),
        ({"vector": [0.0], "turn": 3}, "Unknown record fields: turn"),
        ({"vector": [0.0], "metadata": "x"}, "'metadata' must be a mapping"),
        ({"vector": [0.0], "metadata": {1: "x"}}, "'metadata' keys must be strings"),
        ({"vector": [0.0], "metadata": {"x": object()}}, "not JSON-serializable"),
        ({"vector": [0.0], "metadata": {"x": math.nan}}, "not JSON-serializable"),
        ({"vector": [0.0], "content": 3}, "'content' must be a string"),
        ({"vector": [0.0], "session_id": 3}, "'session_id' must be a string"),
        ({"vector": [0.0], "created_at": datetime(2025, 1, 1)}, "timezone-aware"),
        ({"vector": [0.0], "created_at": "2025-01-01T00:00:00"}, "timezone-aware"),
        ({"vector": [0.0], "created_at": "yesterday"}, "not an ISO 8601"),
        ({"vector": [0.0], "created_at": 1700000000}, "must be a datetime"),
        ({"vector": [0.0], "id": "not-an-id"}, "Malformed point id"),
        (["vector"], "must be a mapping"),
    ],
)
def test_build_point_rejects_bad_records(data: object, message: str) -> None:
    with pytest.raises(StorageDataError, match=message):
        build_point(data, 1)


# -- filters -----------------------------------------------------------------------------------


def test_build_filter_none_when_empty() -> None:
    assert build_filter() is None
    assert build_filter(None, {}) is None


def test_build_filter_exact_structure() -> None:
    flt = build_filter(
        "s1",
        {
            "topic": "billing",
            "metadata.lang": "en",
            "content": "x",
            "turn": 3,
            "flag": True,
            "tags": ["a", "b"],
            "ids": (1, 2),
        },
    )
    assert flt == models.Filter(
        must=[
            models.FieldCondition(key="session_id", match=models.MatchValue(value="s1")),
            models.FieldCondition(key="metadata.topic", match=models.MatchValue(value="billing")),
            models.FieldCondition(key="metadata.lang", match=models.MatchValue(value="en")),
            models.FieldCondition(key="content", match=models.MatchValue(value="x")),
            models.FieldCondition(key="metadata.turn", match=models.MatchValue(value=3)),
            models.FieldCondition(key="metadata.flag", match=models.MatchValue(value=True)),
            models.FieldCondition(key="metadata.tags", match=models.MatchAny(any=["a", "b"])),
            models.FieldCondition(key="metadata.ids", match=models.MatchAny(any=[1, 2])),
        ]
    )


@pytest.mark.parametrize(
    ("session_id", "equals", "message"),
    [
        (3, None, "'session_id' must be a string"),
        (None, ["a"], "'filter' must be a mapping"),
        (None, {"x": 1.5}, "got float"),
        (None, {"x": None}, "got NoneType"),
        (None, {"x": []}, "non-empty"),
        (None, {"x": ["a", 1]}, "only strings or only integers"),
        (None, {"a[0]": 1}, "not a field name"),
        (None, {'a"b': 1}, "not a field name"),
        (None, {3: 1}, "not a field name"),
    ],
)
def test_build_filter_rejects_bad_conditions(
    session_id: object, equals: object, message: str
) -> None:
    with pytest.raises(StorageDataError, match=message):
        build_filter(session_id, equals)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "metadata",
    [
        {"topic": "billing", "turn": 3, "score": 0.5, "flag": True, "none": None},
        {"max": 2**64 - 1, "min": -(2**63)},
        {"tuple": (1, 2), "nested": {"a": [1, "x"]}},
        {"unicode": "caf\u00e9 \U0001f600", "k\u00e9y": 1},
        {"pair": "\ud83d\ude00"},
        {"float_int": 2.0, "sub": type("S", (str,), {})("x")},
    ],
)
def test_metadata_fast_path_equals_the_json_round_trip(metadata: dict[str, object]) -> None:
    import json

    from mas_storage_qdrant._points import _metadata

    out = _metadata(metadata)
    expected = json.loads(json.dumps(metadata))
    assert out == expected
    assert [type(v) for v in out.values()] == [type(v) for v in expected.values()]
    assert out is not metadata
