"""Generated secrets: created once (0600), reused, completed when partial, never shown."""

from __future__ import annotations

import json
import stat
from dataclasses import fields
from pathlib import Path

import pytest

from mas_devstack import DevstackError
from mas_devstack._secrets import Secrets, load_or_create_secrets, write_private_json

NAMES = [f.name for f in fields(Secrets)]


def test_first_call_generates_distinct_strong_secrets_in_a_private_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    secrets = load_or_create_secrets(path)
    stored = json.loads(path.read_text())
    assert sorted(stored) == sorted(NAMES)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    values = secrets.values()
    assert len(set(values)) == len(NAMES)
    assert all(len(v) == 48 and int(v, 16) >= 0 for v in values)
    assert stored == dict(zip(NAMES, values, strict=True))


def test_later_calls_reuse_the_stored_secrets_without_rewriting(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    first = load_or_create_secrets(path)
    before = path.stat().st_mtime_ns
    second = load_or_create_secrets(path)
    assert second == first
    assert path.stat().st_mtime_ns == before


def test_a_partial_file_keeps_its_values_and_gains_the_missing_ones(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps({"redis_password": "kept-redis-pw", "neo4j_password": ""}))
    secrets = load_or_create_secrets(path)
    assert secrets.redis_password == "kept-redis-pw"
    assert secrets.neo4j_password  # an empty value is regenerated
    assert json.loads(path.read_text())["redis_password"] == "kept-redis-pw"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_loose_permissions_are_tightened(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    load_or_create_secrets(path)
    path.chmod(0o644)
    load_or_create_secrets(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_an_unreadable_file_is_an_error_that_shows_no_content(tmp_path: Path, content: str) -> None:
    path = tmp_path / "secrets.json"
    path.write_text(content)
    with pytest.raises(DevstackError, match=r"secrets\.json") as caught:
        load_or_create_secrets(path)
    assert content not in str(caught.value)
    assert path.read_text() == content  # never overwritten: the data dirs need the old ones


def test_repr_hides_every_value(tmp_path: Path) -> None:
    secrets = load_or_create_secrets(tmp_path / "secrets.json")
    shown = repr(secrets) + str(secrets)
    assert not any(value in shown for value in secrets.values())


def test_write_private_json_replaces_atomically_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "out.json"
    path.write_text("old")
    path.chmod(0o644)
    write_private_json(path, {"b": 1, "a": None})
    assert json.loads(path.read_text()) == {"a": None, "b": 1}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left
