"""The storage error hierarchy (six classes, no builtin shadowed), the shared validators, and
the one HTTP status table."""

from __future__ import annotations

import pickle

import pytest

import mas_storage
from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
    validate_field_types,
    validate_required_fields,
)

SUBCLASSES = [
    StorageConnectionError,
    StorageQueryError,
    StorageDataError,
    StorageTimeoutError,
    StorageNotFoundError,
]


@pytest.mark.parametrize("cls", SUBCLASSES)
def test_every_error_is_a_storage_error(cls: type[StorageError]) -> None:
    assert issubclass(cls, StorageError)
    assert issubclass(StorageError, Exception)
    with pytest.raises(StorageError, match="boom"):
        raise cls("boom")


@pytest.mark.parametrize("cls", SUBCLASSES)
def test_errors_are_siblings_not_ancestors(cls: type[StorageError]) -> None:
    others = [c for c in SUBCLASSES if c is not cls]
    assert not any(issubclass(cls, other) for other in others)


def test_no_error_shadows_a_builtin() -> None:
    import builtins

    assert not any(hasattr(builtins, name) for name in mas_storage.__all__)


@pytest.mark.parametrize("cls", [StorageError, *SUBCLASSES])
def test_errors_pickle_with_context(cls: type[StorageError]) -> None:
    err = cls("lost", backend="redis", operation="store")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is cls
    assert (str(back), back.backend, back.operation) == ("lost", "redis", "store")


def test_validate_required_fields_names_every_missing_field() -> None:
    validate_required_fields({"a": 1, "b": None}, ["a", "b"])
    with pytest.raises(StorageDataError, match="Missing required fields: b, c"):
        validate_required_fields({"a": 1}, ["a", "b", "c"])


def test_validate_required_fields_rejects_non_mapping() -> None:
    with pytest.raises(StorageDataError, match="Expected a mapping, got list"):
        validate_required_fields(["a"], ["a"])  # type: ignore[arg-type]


def test_validate_field_types() -> None:
    validate_field_types({"n": 3, "s": "x", "f": 1.5}, {"n": int, "s": str, "f": (int, float)})
    validate_field_types({}, {"n": int})  # absent fields are not checked
    with pytest.raises(StorageDataError, match="Field 'n' must be int, got str"):
        validate_field_types({"n": "3"}, {"n": int})
    with pytest.raises(StorageDataError, match="Field 'f' must be int or float, got str"):
        validate_field_types({"f": "x"}, {"f": (int, float)})


def test_validate_field_types_refuses_bool_as_number() -> None:
    with pytest.raises(StorageDataError, match="Field 'turn_id' must be int, got bool"):
        validate_field_types({"turn_id": True}, {"turn_id": int})
    validate_field_types({"flag": True}, {"flag": bool})


def test_public_api_is_complete() -> None:
    exported = set(mas_storage.__all__)
    public = {n for n in vars(mas_storage) if not n.startswith("_")}
    modules = {"metrics"}
    assert public - modules - exported == set()
    assert all(hasattr(mas_storage, n) for n in exported)


# -- HTTP statuses: one table for the adapters that speak HTTP -----------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, "StorageDataError"),
        (401, "StorageConnectionError"),
        (403, "StorageConnectionError"),
        (404, "StorageNotFoundError"),
        (408, "StorageTimeoutError"),
        (409, "StorageDataError"),
        (413, "StorageDataError"),
        (422, "StorageDataError"),
        (429, "StorageQueryError"),
        (500, "StorageQueryError"),
        (502, "StorageConnectionError"),
        (503, "StorageConnectionError"),
        (504, "StorageTimeoutError"),
        (0, "StorageQueryError"),
    ],
)
def test_http_status_maps_to_one_storage_error(status: int, expected: str) -> None:
    from mas_storage import error_for_status

    assert error_for_status(status).__name__ == expected


def test_http_status_overrides_win() -> None:
    from mas_storage import StorageQueryError, error_for_status

    assert error_for_status(400, {400: StorageQueryError}) is StorageQueryError
    assert error_for_status(404, {400: StorageQueryError}).__name__ == "StorageNotFoundError"
