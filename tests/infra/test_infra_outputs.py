"""scripts/lab-outputs, and its file fed through the core settings into the five adapters.

The script runs for real with a stand-in ``pulumi`` (printing the mocked stack's outputs as
``pulumi stack output --json --show-secrets`` does) and a stand-in ``yoyo`` first on PATH;
nothing connects anywhere.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from infra_harness import ROOT, Built
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr
from redis.connection import parse_url

from mas_storage import create_adapter, get_adapter_class, load_stack_outputs, stack_output_keys

SCRIPT = ROOT / "scripts" / "lab-outputs"
_SETTINGS_ENV_PREFIXES = ("POSTGRES_", "REDIS_", "QDRANT_", "NEO4J_", "TYPESENSE_", "MAS_")


def _fake_tools(bin_dir: Path, outputs: Any, *, pulumi_rc: int = 0, yoyo_rc: int = 0) -> Path:
    """``pulumi`` and ``yoyo`` stand-ins that log their calls to ``calls.jsonl``."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = bin_dir / "calls.jsonl"
    printed = outputs if isinstance(outputs, str) else json.dumps(outputs, indent=2)
    (bin_dir / "printed.json").write_text(printed, encoding="utf-8")
    tool = (
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"log = {str(log)!r}\n"
        "name = os.path.basename(sys.argv[0])\n"
        "with open(log, 'a') as fh:\n"
        "    fh.write(json.dumps({'tool': name, 'argv': sys.argv[1:], 'cwd': os.getcwd(),\n"
        "        'MAS_STACK_OUTPUTS': os.environ.get('MAS_STACK_OUTPUTS'),\n"
        "        'POSTGRES_URL': os.environ.get('POSTGRES_URL')}) + '\\n')\n"
        "if name == 'pulumi':\n"
        f"    sys.stdout.write(open({str(bin_dir / 'printed.json')!r}).read())\n"
        f"    sys.exit({pulumi_rc})\n"
        f"sys.exit({yoyo_rc})\n"
    )
    for name in ("pulumi", "yoyo"):
        path = bin_dir / name
        path.write_text(tool, encoding="utf-8")
        path.chmod(0o755)
    return log


def _run_script(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def _clean_settings_env(monkeypatch: pytest.MonkeyPatch, cwd: Path) -> None:
    """No env variable, .env or default outputs file may feed the settings but the test's."""
    monkeypatch.chdir(cwd)
    for name in list(os.environ):
        if name.startswith(_SETTINGS_ENV_PREFIXES):
            monkeypatch.delenv(name)


# -- the script --------------------------------------------------------------------------------


def test_script_writes_the_outputs_owner_only(tmp_path: Path, dev_built: Built) -> None:
    log = _fake_tools(tmp_path / "bin", dev_built.outputs)
    target = tmp_path / "out" / "stack-outputs.json"
    proc = _run_script(tmp_path / "bin", "--stack", "dev", "--output", str(target), "--no-migrate")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(target.read_text(encoding="utf-8")) == dev_built.outputs
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [c["argv"] for c in _calls(log)] == [
        ["stack", "output", "--json", "--show-secrets", "--stack", "dev"]
    ]
    assert list(target.parent.iterdir()) == [target]  # no temporary file left
    for secret in ("neo4j_password", "typesense_api_key"):
        assert dev_built.outputs[secret] not in proc.stdout + proc.stderr


def test_script_then_applies_the_migrations_to_that_stack(
    tmp_path: Path, local_built: Built
) -> None:
    log = _fake_tools(tmp_path / "bin", local_built.outputs)
    target = tmp_path / "stack-outputs.json"
    proc = _run_script(tmp_path / "bin", "--output", str(target))
    assert proc.returncode == 0, proc.stderr
    pulumi_call, yoyo_call = _calls(log)
    assert pulumi_call["argv"] == ["stack", "output", "--json", "--show-secrets"]
    assert yoyo_call["tool"] == "yoyo" and yoyo_call["argv"] == ["apply"]
    assert Path(yoyo_call["cwd"]) == ROOT  # where yoyo.ini is
    assert yoyo_call["MAS_STACK_OUTPUTS"] == str(target)
    assert yoyo_call["POSTGRES_URL"] == local_built.outputs["postgres_url"]


@pytest.mark.parametrize(
    ("printed", "message"),
    [
        ("[secret]", "masked"),
        ("drop:redis_url", "no output(s) ['redis_url']"),
        ("not json", "did not print JSON"),
        ("[]", "JSON object"),
        ("number:neo4j_user", "not a non-empty string"),
    ],
)
def test_script_refuses_unusable_outputs(
    tmp_path: Path, dev_built: Built, printed: str, message: str
) -> None:
    outputs: Any = dict(dev_built.outputs)
    if printed == "[secret]":
        outputs["postgres_url"] = "[secret]"
    elif printed.startswith("drop:"):
        outputs.pop(printed[5:])
    elif printed.startswith("number:"):
        outputs[printed[7:]] = 7
    else:
        outputs = printed
    log = _fake_tools(tmp_path / "bin", outputs)
    target = tmp_path / "stack-outputs.json"
    proc = _run_script(tmp_path / "bin", "--output", str(target))
    assert proc.returncode == 1
    assert message in proc.stderr
    assert not target.exists()
    assert [c["tool"] for c in _calls(log)] == ["pulumi"]  # no migration either


def test_script_reports_pulumi_and_yoyo_failures(tmp_path: Path, dev_built: Built) -> None:
    _fake_tools(tmp_path / "a", dev_built.outputs, pulumi_rc=255)
    target = tmp_path / "stack-outputs.json"
    proc = _run_script(tmp_path / "a", "--output", str(target))
    assert proc.returncode == 1 and "'pulumi stack output' failed" in proc.stderr
    assert not target.exists()

    _fake_tools(tmp_path / "b", dev_built.outputs, yoyo_rc=3)
    proc = _run_script(tmp_path / "b", "--output", str(target))
    assert proc.returncode == 1 and "'yoyo apply' failed (3)" in proc.stderr
    assert target.exists()  # the outputs are still written: fix the migration, rerun


# -- the file through the core settings --------------------------------------------------------


def test_outputs_file_gives_all_five_adapter_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dev_built: Built
) -> None:
    _fake_tools(tmp_path / "bin", dev_built.outputs)
    target = tmp_path / "out" / "stack-outputs.json"
    proc = _run_script(tmp_path / "bin", "--output", str(target), "--no-migrate")
    assert proc.returncode == 0, proc.stderr
    _clean_settings_env(monkeypatch, tmp_path)
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(target))
    out = dev_built.outputs

    assert load_stack_outputs() == out
    assert set(load_stack_outputs()) == set(stack_output_keys()) - {"qdrant_path"}

    def settings(kind: str) -> dict[str, Any]:
        """The kind's settings from the sources, secrets revealed (what the adapter uses)."""
        model = get_adapter_class(kind).settings_model()
        return {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in model
        }

    pg = settings("postgres")
    assert pg["url"] == out["postgres_url"]
    info = conninfo_to_dict(pg["url"])
    assert (info["host"], info["port"], info["user"], info["dbname"]) == (
        "192.168.107.172",
        "5432",
        "mas",
        "mas_memory",
    )
    assert len(info["password"]) >= 24

    rd = settings("redis")
    parsed = parse_url(rd["url"])
    assert (parsed["host"], parsed["port"], parsed["db"]) == ("192.168.107.172", 6379, 0)
    assert parsed["password"] == urlsplit(out["redis_url"]).password

    qd = settings("qdrant")
    assert qd["url"] == "http://192.168.107.187:6333"
    assert qd["api_key"] == out["qdrant_api_key"]
    # The lab file has no qdrant_path, so the settings' default path stays alongside the url;
    # the Qdrant adapter takes the server when a url is given.
    assert qd["path"] == ".mas/qdrant"

    neo = settings("neo4j")
    assert (neo["url"], neo["user"]) == ("bolt://192.168.107.187:7687", "neo4j")
    assert neo["password"] == out["neo4j_password"]

    ts = settings("typesense")
    assert ts["url"] == "http://192.168.107.187:8108"
    assert ts["api_key"] == out["typesense_api_key"]

    # The registry builds every adapter from these settings (constructing connects nothing).
    for kind, expected in (
        ("postgres", pg),
        ("redis", rd),
        ("qdrant", qd),
        ("neo4j", neo),
        ("typesense", ts),
    ):
        adapter = create_adapter(kind)
        assert adapter.config == get_adapter_class(kind).settings_model()
        assert {
            name: value.get_secret_value() if isinstance(value, SecretStr) else value
            for name, value in adapter.config
        } == expected
        for secret in ("postgres_url", "redis_url", "neo4j_password", "typesense_api_key"):
            assert out[secret] not in repr(adapter)
            assert out[secret] not in repr(adapter.config)
    assert create_adapter("qdrant").mode == "server"
