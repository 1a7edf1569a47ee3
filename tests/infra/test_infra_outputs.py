"""scripts/lab-outputs, and its two files fed through the core settings into the five adapters.

The script runs for real with a stand-in ``pulumi`` (printing the mocked stack's outputs as
``pulumi stack output --json --show-secrets`` does) and a stand-in ``yoyo`` first on PATH, and
a stand-in ``mas_storage_typesense.provision`` first on PYTHONPATH; nothing connects anywhere.
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
from infra_harness import ROOT, Built, load_lab_outputs
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr
from redis.connection import parse_url

from mas_storage import (
    create_adapter,
    get_adapter_class,
    load_admin_outputs,
    load_stack_outputs,
    stack_output_keys,
)
from mas_storage_postgres import PostgresOwnerSettings
from mas_storage_typesense import TypesenseAdminSettings

SCRIPT = ROOT / "scripts" / "lab-outputs"
_SETTINGS_ENV_PREFIXES = ("POSTGRES_", "REDIS_", "QDRANT_", "NEO4J_", "TYPESENSE_", "MAS_")


#: What the stand-ins record of their environment.
_LOGGED_ENV = (
    "MAS_STACK_OUTPUTS",
    "MAS_STACK_ADMIN",
    "POSTGRES_URL",
    "POSTGRES_OWNER_URL",
    "POSTGRES_OWNER_TLS_CA",
    "TYPESENSE_URL",
    "TYPESENSE_API_KEY",
    "TYPESENSE_TLS_CA",
    "TYPESENSE_ADMIN_URL",
    "TYPESENSE_ADMIN_API_KEY",
    "TYPESENSE_ADMIN_TLS_CA",
)


def _everything(built: Built) -> dict[str, str]:
    """What ``pulumi stack output --json`` prints: every exported key."""
    return {**built.outputs, **built.admin_outputs}


def _fake_tools(
    bin_dir: Path, outputs: Any, *, pulumi_rc: int = 0, yoyo_rc: int = 0, provision_rc: int = 0
) -> Path:
    """``pulumi``, ``yoyo`` and ``python -m mas_storage_typesense.provision`` stand-ins that
    log their calls to ``calls.jsonl`` (the last one shadows the package via PYTHONPATH)."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    log = bin_dir / "calls.jsonl"
    printed = outputs if isinstance(outputs, str) else json.dumps(outputs, indent=2)
    (bin_dir / "printed.json").write_text(printed, encoding="utf-8")
    record = (
        "import json, os, sys\n"
        f"log = {str(log)!r}\n"
        "def record(name):\n"
        "    env = {k: os.environ.get(k) for k in " + repr(_LOGGED_ENV) + "}\n"
        "    with open(log, 'a') as fh:\n"
        "        fh.write(json.dumps({'tool': name, 'argv': sys.argv[1:], 'cwd': os.getcwd(),\n"
        "            **env}) + '\\n')\n"
    )
    tool = (
        f"#!{sys.executable}\n{record}"
        "name = os.path.basename(sys.argv[0])\n"
        "record(name)\n"
        "if name == 'pulumi':\n"
        f"    sys.stdout.write(open({str(bin_dir / 'printed.json')!r}).read())\n"
        f"    sys.exit({pulumi_rc})\n"
        f"sys.exit({yoyo_rc})\n"
    )
    for name in ("pulumi", "yoyo"):
        path = bin_dir / name
        path.write_text(tool, encoding="utf-8")
        path.chmod(0o755)
    package = bin_dir / "shadow" / "mas_storage_typesense"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "provision.py").write_text(
        f"{record}record('provision')\nsys.exit({provision_rc})\n", encoding="utf-8"
    )
    return log


def _run_script(bin_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(bin_dir / "shadow"),
    }
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


def test_script_writes_the_two_files_owner_only(tmp_path: Path, dev_built: Built) -> None:
    log = _fake_tools(tmp_path / "bin", _everything(dev_built))
    target = tmp_path / "out" / "stack-outputs.json"
    admin = tmp_path / "out" / "stack-admin.json"
    proc = _run_script(
        tmp_path / "bin", "--stack", "dev", "--output", str(target),
        "--admin-output", str(admin), "--no-migrate", "--no-provision",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # the adapters' file has no owner or admin credential; the admin file has only those
    assert json.loads(target.read_text(encoding="utf-8")) == dev_built.outputs
    assert json.loads(admin.read_text(encoding="utf-8")) == dev_built.admin_outputs
    assert set(dev_built.admin_outputs) == {
        "postgres_owner_url",
        "redis_admin_url",
        "typesense_admin_api_key",
    }
    for path in (target, admin):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert [c["argv"] for c in _calls(log)] == [
        ["stack", "output", "--json", "--show-secrets", "--stack", "dev"]
    ]
    assert sorted(target.parent.iterdir()) == sorted([target, admin])  # no temporary file left
    everything = _everything(dev_built)
    for secret in ("neo4j_password", "typesense_api_key", "typesense_admin_api_key"):
        assert everything[secret] not in proc.stdout + proc.stderr


def test_cluster_stack_keeps_the_replication_credential_out_of_the_adapters_file(
    tmp_path: Path, cluster_built: Built
) -> None:
    """The cluster topology's ``postgres_replication_url`` (the replication role's password)
    is an admin output: it goes to the admin file, never to the file every adapter reads."""
    _fake_tools(tmp_path / "bin", _everything(cluster_built))
    target = tmp_path / "out" / "lab-outputs.json"
    proc = _run_script(tmp_path / "bin", "--output", str(target), "--no-migrate")
    assert proc.returncode == 0, proc.stderr
    written = json.loads(target.read_text(encoding="utf-8"))
    admin = json.loads(target.with_name("lab-admin.json").read_text(encoding="utf-8"))
    assert written == cluster_built.outputs
    assert admin == cluster_built.admin_outputs
    assert "postgres_replication_url" in admin
    assert "postgres_replication_url" not in written
    assert {"redis_cluster_nodes", "typesense_nodes"} <= set(written)


def test_a_single_typesense_node_needs_no_leader(tmp_path: Path, dev_built: Built) -> None:
    """The leader step is the cluster's only: one node, nothing is called."""
    assert load_lab_outputs().lead_from_first(_everything(dev_built), timeout=0.1) is False


def test_admin_file_sits_beside_the_outputs_and_no_migrate_only_writes(
    tmp_path: Path, dev_built: Built
) -> None:
    log = _fake_tools(tmp_path / "bin", _everything(dev_built))
    target = tmp_path / "lab" / "lab-outputs.json"
    proc = _run_script(tmp_path / "bin", "--output", str(target), "--no-migrate")
    assert proc.returncode == 0, proc.stderr
    admin = target.with_name("lab-admin.json")  # a pair of its own, beside the local stack's
    assert json.loads(admin.read_text(encoding="utf-8")) == dev_built.admin_outputs
    assert stat.S_IMODE(admin.stat().st_mode) == 0o600
    assert [c["tool"] for c in _calls(log)] == ["pulumi"]  # no yoyo, no provisioning
    default = tmp_path / "stack-outputs.json"
    assert _run_script(tmp_path / "bin", "--output", str(default), "--no-migrate").returncode == 0
    assert (tmp_path / "stack-admin.json").exists()


def test_script_then_migrates_as_the_owner_and_provisions_typesense(
    tmp_path: Path, local_built: Built
) -> None:
    log = _fake_tools(tmp_path / "bin", _everything(local_built))
    target = tmp_path / "stack-outputs.json"
    admin = tmp_path / "stack-admin.json"
    proc = _run_script(tmp_path / "bin", "--output", str(target), "--admin-output", str(admin))
    assert proc.returncode == 0, proc.stderr
    pulumi_call, yoyo_call, provision_call = _calls(log)
    assert pulumi_call["argv"] == ["stack", "output", "--json", "--show-secrets"]
    out, owner = local_built.outputs, local_built.admin_outputs
    # yoyo, from where yoyo.ini is, as the schema owner over TLS, whatever .env says
    assert yoyo_call["tool"] == "yoyo" and yoyo_call["argv"] == ["apply"]
    assert Path(yoyo_call["cwd"]) == ROOT
    assert (yoyo_call["MAS_STACK_OUTPUTS"], yoyo_call["MAS_STACK_ADMIN"]) == (
        str(target),
        str(admin),
    )
    assert yoyo_call["POSTGRES_OWNER_URL"] == owner["postgres_owner_url"]
    assert yoyo_call["POSTGRES_OWNER_TLS_CA"] == out["tls_ca"]
    # provisioning with the admin key; the scoped key it registers is the adapters' key
    assert provision_call["tool"] == "provision" and Path(provision_call["cwd"]) == ROOT
    assert provision_call["TYPESENSE_ADMIN_API_KEY"] == owner["typesense_admin_api_key"]
    assert provision_call["TYPESENSE_API_KEY"] == out["typesense_api_key"]
    assert (
        provision_call["TYPESENSE_ADMIN_URL"]
        == provision_call["TYPESENSE_URL"]
        == out["typesense_url"]
    )
    assert (
        provision_call["TYPESENSE_ADMIN_TLS_CA"]
        == provision_call["TYPESENSE_TLS_CA"]
        == out["tls_ca"]
    )
    assert provision_call["MAS_STACK_ADMIN"] == str(admin)


@pytest.mark.parametrize(
    ("printed", "message"),
    [
        ("[secret]", "masked"),
        ("drop:redis_url", "no output(s) ['redis_url']"),
        ("drop:tls_ca", "no output(s) ['tls_ca']"),
        ("drop:postgres_owner_url", "no output(s) ['postgres_owner_url']"),
        ("not json", "did not print JSON"),
        ("[]", "JSON object"),
        ("number:neo4j_user", "not a non-empty string"),
    ],
)
def test_script_refuses_unusable_outputs(
    tmp_path: Path, dev_built: Built, printed: str, message: str
) -> None:
    outputs: Any = _everything(dev_built)
    if printed == "[secret]":
        outputs["postgres_owner_url"] = "[secret]"
    elif printed.startswith("drop:"):
        outputs.pop(printed[5:])
    elif printed.startswith("number:"):
        outputs[printed[7:]] = 7
    else:
        outputs = printed
    log = _fake_tools(tmp_path / "bin", outputs)
    target = tmp_path / "stack-outputs.json"
    admin = tmp_path / "stack-admin.json"
    proc = _run_script(tmp_path / "bin", "--output", str(target), "--admin-output", str(admin))
    assert proc.returncode == 1
    assert message in proc.stderr
    assert not target.exists() and not admin.exists()
    assert [c["tool"] for c in _calls(log)] == ["pulumi"]  # no migration, no provisioning


def test_script_keeps_keys_it_does_not_know_for_the_adapters(
    tmp_path: Path, dev_built: Built
) -> None:
    # A later program may export more (cluster seed nodes, say): they go to the adapters'
    # file, where each settings model picks its own keys.
    outputs = {**_everything(dev_built), "redis_cluster_nodes": ["10.0.0.1:7000"]}
    _fake_tools(tmp_path / "bin", outputs)
    target = tmp_path / "stack-outputs.json"
    proc = _run_script(
        tmp_path / "bin", "--output", str(target), "--admin-output", str(tmp_path / "admin.json"),
        "--no-migrate", "--no-provision",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(target.read_text(encoding="utf-8"))["redis_cluster_nodes"] == [
        "10.0.0.1:7000"
    ]


def test_script_reports_pulumi_yoyo_and_provisioning_failures(
    tmp_path: Path, dev_built: Built
) -> None:
    target = tmp_path / "stack-outputs.json"
    admin = ["--admin-output", str(tmp_path / "stack-admin.json")]
    _fake_tools(tmp_path / "a", _everything(dev_built), pulumi_rc=255)
    proc = _run_script(tmp_path / "a", "--output", str(target), *admin)
    assert proc.returncode == 1 and "'pulumi stack output' failed" in proc.stderr
    assert not target.exists()

    log = _fake_tools(tmp_path / "b", _everything(dev_built), yoyo_rc=3)
    proc = _run_script(tmp_path / "b", "--output", str(target), *admin)
    assert proc.returncode == 1 and "'yoyo apply' failed (3)" in proc.stderr
    assert target.exists()  # the outputs are still written: fix the migration, rerun
    assert [c["tool"] for c in _calls(log)] == ["pulumi", "yoyo"]  # no provisioning after it

    _fake_tools(tmp_path / "c", _everything(dev_built), provision_rc=1)
    proc = _run_script(tmp_path / "c", "--output", str(target), *admin)
    assert proc.returncode == 1 and "Typesense provisioning failed (1)" in proc.stderr

    proc = _run_script(tmp_path / "c", "--output", str(target), "--admin-output", str(target))
    assert proc.returncode == 2 and "must be two files" in proc.stderr


# -- the files through the core settings -------------------------------------------------------


def test_outputs_files_give_all_five_adapter_configs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dev_built: Built
) -> None:
    _fake_tools(tmp_path / "bin", _everything(dev_built))
    target = tmp_path / "out" / "stack-outputs.json"
    admin_file = tmp_path / "out" / "stack-admin.json"
    proc = _run_script(
        tmp_path / "bin", "--output", str(target), "--admin-output", str(admin_file),
        "--no-migrate", "--no-provision",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    _clean_settings_env(monkeypatch, tmp_path)
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(target))
    monkeypatch.setenv("MAS_STACK_ADMIN", str(admin_file))
    out, admin = dev_built.outputs, dev_built.admin_outputs

    assert load_stack_outputs() == out
    assert load_admin_outputs() == admin
    # The program runs single-node: no cluster topology's keys (issue 17), no embedded Qdrant.
    single_only = {"qdrant_path", "redis_cluster_nodes"}
    assert set(load_stack_outputs()) == set(stack_output_keys()) - single_only

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
    assert (info["host"], info["port"], info["user"], info["dbname"], info["sslmode"]) == (
        "192.168.107.172",
        "5432",
        "mas_app",
        "mas_memory",
        "verify-full",
    )
    assert len(info["password"]) >= 24

    rd = settings("redis")
    parsed = parse_url(rd["url"])
    assert (parsed["host"], parsed["port"], parsed["db"], parsed["username"]) == (
        "192.168.107.172",
        6379,
        0,
        "mas_app",
    )
    assert parsed["password"] == urlsplit(out["redis_url"]).password

    qd = settings("qdrant")
    assert qd["url"] == "https://192.168.107.187:6333"
    assert qd["api_key"] == out["qdrant_api_key"]
    assert qd["read_only_api_key"] == out["qdrant_read_only_api_key"]
    # The lab file has no qdrant_path, so the settings' default path stays alongside the url;
    # the Qdrant adapter takes the server when a url is given.
    assert qd["path"] == ".mas/qdrant"

    neo = settings("neo4j")
    assert (neo["url"], neo["user"]) == ("bolt+s://192.168.107.187:7687", "neo4j")
    assert neo["password"] == out["neo4j_password"]

    ts = settings("typesense")
    assert ts["url"] == "https://192.168.107.187:8108"
    assert ts["api_key"] == out["typesense_api_key"]  # the scoped key, not the admin one

    # Every adapter trusts the stack's CA, read from the outputs (the PEM itself).
    for kind, values in (("postgres", pg), ("redis", rd), ("qdrant", qd), ("neo4j", neo),
                         ("typesense", ts)):  # fmt: skip
        assert values["tls_ca"].strip() == out["tls_ca"].strip(), kind
        assert values["tls_insecure"] is False
        model = get_adapter_class(kind).settings_model()
        assert model.uses_tls() is True, kind
        context = model.ssl_context()
        assert [c["subject"] for c in context.get_ca_certs()] == [
            ((("commonName", "mas-memory dev CA"),), (("organizationName", "mas-memory"),))
        ]

    # The owner's and the admin's credentials: from the admin file, for migrations and
    # provisioning only.
    owner = PostgresOwnerSettings()
    assert owner.url.get_secret_value() == admin["postgres_owner_url"]
    assert conninfo_to_dict(admin["postgres_owner_url"])["user"] == "mas"
    assert owner.tls_ca is not None and owner.tls_ca.strip() == out["tls_ca"].strip()
    ts_admin = TypesenseAdminSettings()
    assert ts_admin.api_key.get_secret_value() == admin["typesense_admin_api_key"]
    assert ts_admin.url == out["typesense_url"]

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
