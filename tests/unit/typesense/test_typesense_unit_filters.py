"""build_filter and the HTTP-status mapping: pure functions, no server."""

from __future__ import annotations

import math
import pickle
from types import ModuleType

import httpx
import pytest

import mas_storage_typesense
from mas_storage import (
    StorageConnectionError,
    StorageDataError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
)
from mas_storage_typesense import TypesenseImportError, build_filter, default_schema
from mas_storage_typesense._errors import error_for_response, map_httpx_error, server_message
from mas_storage_typesense._filters import matches_exactly

FIELDS = {f["name"]: f for f in default_schema()["fields"]}
FIELDS["tags"] = {"name": "tags", "type": "string[]"}
FIELDS["pinned"] = {"name": "pinned", "type": "bool"}
FIELDS[".*"] = {"name": ".*", "type": "auto"}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"fact_type": "preference"}, "fact_type:=`preference`"),
        ({"fact_type": "a && b || (c), d:e"}, "fact_type:=`a && b || (c), d:e`"),
        ({"fact_type": ["a", "b,c"]}, "fact_type:=[`a`,`b,c`]"),
        ({"fact_type": ("x",)}, "fact_type:=[`x`]"),
        ({"fact_type": {"b", "a"}}, "fact_type:=[`a`,`b`]"),
        ({"fact_type": ""}, "fact_type:=``"),
        ({"tags": "t"}, "tags:=`t`"),
        ({"confidence": 0.5}, "confidence:=0.5"),
        ({"created_at": [1, 2]}, "created_at:=[1,2]"),
        ({"pinned": True}, "pinned:=true"),
        ({"pinned": False}, "pinned:=false"),
        ({"metadata.source": "chat"}, "metadata.source:=`chat`"),
        ({"metadata.k.n": 3}, "metadata.k.n:=3"),
        (
            {"session_id": "s-1", "fact_type": "p"},
            "session_id:=`s-1` && fact_type:=`p`",
        ),
    ],
)
def test_build_filter(filters, expected) -> None:
    assert build_filter(filters, FIELDS) == expected


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"fact_type": "a`b"}, "backtick"),
        ({"fact_type": ["ok", "`"]}, "backtick"),
        ({"nope": "x"}, "Unknown filter field 'nope'"),
        ({".*": "x"}, "filter field"),
        ({"fact_type:=`x` || id": "x"}, "Invalid filter field name"),
        ({"content.x": "x"}, "Unknown filter field 'content.x'"),
        ({3: "x"}, "Invalid filter field name"),
        ({"fact_type": []}, "empty list"),
        ({"fact_type": 3}, "needs a string"),
        ({"fact_type": True}, "cannot take a bool"),
        ({"confidence": "0.5"}, "cannot take a string"),
        ({"confidence": math.nan}, "cannot take nan"),
        ({"fact_type": None}, "not NoneType"),
        ({"fact_type": {"gt": 1}}, "not dict"),
    ],
)
def test_build_filter_refuses(filters, message) -> None:
    with pytest.raises(StorageDataError, match=message):
        build_filter(filters, FIELDS)


def test_build_filter_needs_a_mapping() -> None:
    with pytest.raises(StorageDataError, match="'filters' must be a mapping"):
        build_filter([("fact_type", "x")], FIELDS)


DOC = {
    "fact_type": "a && b",
    "tags": ["x", "Y (z)"],
    "confidence": 0.5,
    "metadata": {"source": "chat", "turns": [{"who": "user"}, {"who": "bot"}]},
}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"fact_type": "a && b"}, True),
        ({"fact_type": "A && B"}, False),
        ({"fact_type": "a || b"}, False),
        ({"fact_type": ["zzz", "a && b"]}, True),
        ({"tags": "Y (z)"}, True),
        ({"tags": "y z"}, False),
        ({"metadata.source": "chat"}, True),
        ({"metadata.source": "Chat"}, False),
        ({"metadata.turns.who": "bot"}, True),
        ({"metadata.turns.who": "Bot"}, False),
        ({"confidence": 0.5}, True),  # numbers are exact on the server already
        ({"metadata.absent": "x"}, True),  # excluded from the hit: cannot check
        ({"session_id": "s"}, True),
        ({"fact_type": "a && b", "tags": "x", "metadata.source": "doc"}, False),
    ],
)
def test_matches_exactly(filters, expected) -> None:
    assert matches_exactly(DOC, filters) is expected


def _response(status: int, **kwargs) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("GET", "http://x/"), **kwargs)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, StorageQueryError),
        (401, StorageConnectionError),
        (403, StorageConnectionError),
        (404, StorageNotFoundError),
        (408, StorageTimeoutError),
        (409, StorageDataError),
        (422, StorageQueryError),
        (500, StorageQueryError),
        (503, StorageConnectionError),
        (504, StorageTimeoutError),
    ],
)
def test_error_for_response(status, error) -> None:
    err = error_for_response(_response(status, json={"message": "server says"}), "op")
    assert type(err) is error
    if status in (401, 403):
        assert "authentication failed" in str(err)
    else:
        assert str(err) == f"op: HTTP {status}: server says"


@pytest.mark.parametrize(
    "message",
    [
        "Could not find a filter field named `x` in the schema.",
        "Could not find a facet field named `x` in the schema.",
        "Could not find a field named `x` in the schema for sorting.",
    ],
)
def test_unknown_field_404_is_a_query_error(message) -> None:
    err = error_for_response(_response(404, json={"message": message}), "search")
    assert type(err) is StorageQueryError
    assert message in str(err)


def test_server_message_fallbacks() -> None:
    assert server_message(_response(500, text="plain failure")) == "plain failure"
    assert server_message(_response(500, text="")) == "Internal Server Error"
    assert server_message(_response(500, json=["x"])) == '["x"]'


def test_unknown_exceptions_are_left_to_the_core() -> None:
    assert map_httpx_error(RuntimeError("x"), "http://x") is None


def test_import_error_pickles_with_its_failures() -> None:
    err = TypesenseImportError.from_failures([(1, "a", "bad"), (3, None, "worse")], 4, ["x", "y"])
    err.backend, err.operation = "typesense", "store_many"
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is TypesenseImportError
    assert (copy.message, copy.backend, copy.operation) == (err.message, "typesense", "store_many")
    assert copy.failures == err.failures and copy.stored_ids == ["x", "y"]
    assert (
        str(err) == "2 of 4 documents were rejected (2 stored): line 1 (id 'a'): bad; line 3: worse"
    )


def test_all_is_complete() -> None:
    # Submodules (``provision``, once imported anywhere in the run) are not exported names.
    public = {
        n
        for n in dir(mas_storage_typesense)
        if not n.startswith("_") and not isinstance(getattr(mas_storage_typesense, n), ModuleType)
    }
    assert public == set(mas_storage_typesense.__all__)
