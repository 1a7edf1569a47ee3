"""The package READMEs' configuration tables are the settings models' own (generated)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mas_storage import get_adapter_class, render_settings_tables

ROOT = Path(__file__).resolve().parents[3]
KINDS = ("postgres", "redis", "qdrant", "neo4j", "typesense")


@pytest.mark.parametrize("kind", KINDS)
def test_readme_table_matches_the_model(kind: str) -> None:
    model = get_adapter_class(kind).settings_model
    readme = ROOT / "packages" / f"mas-storage-{kind}" / "README.md"
    text = readme.read_text(encoding="utf-8")
    marker = f"<!-- settings-table: {model.__module__.rpartition('.')[0]}.{model.__name__} -->"
    assert marker in text, f"{readme} has no table for {model.__name__}"
    assert render_settings_tables(text) == text, (
        f"{readme}'s configuration table is stale: run 'uv run scripts/settings-tables'"
    )
    for name in model.model_fields:  # every key is in the table
        assert f"| `{name}` |" in text


def test_a_stale_table_is_rewritten() -> None:
    text = (
        "# x\n<!-- settings-table: mas_storage_redis.RedisSettings -->\n"
        "old\n<!-- /settings-table -->\n"
    )
    fresh = render_settings_tables(text)
    assert "old" not in fresh
    assert "| `window_size` | int ≥ 0, ≤ 2147483647 | `10` | `REDIS_WINDOW_SIZE` |" in fresh
    assert render_settings_tables(fresh) == fresh
