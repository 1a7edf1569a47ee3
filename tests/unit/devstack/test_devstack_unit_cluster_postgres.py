"""The PostgreSQL pair of the cluster topology, without a server: its nodes (names, ports,
hosts, command lines, pg_hba.conf), the recorded primary, when a node is cloned again, and
the outputs (one multi-host URL per role, the replication role's in the admin file only).
The pair itself runs in tests/reliability/test_reliability_failover_postgres.py."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mas_devstack import Stack
from mas_devstack._cluster import ClusterContext
from mas_devstack._cluster_postgres import (
    PG_REPLICATION_USER,
    SYNCHRONOUS_COMMIT,
    PostgresCluster,
    PostgresNode,
)
from mas_devstack._layout import PORT_BASE_ENV
from mas_storage import stack_output_keys
from mas_storage_postgres import PostgresOwnerSettings, PostgresSettings, yoyo_database_url

BASE = 62850


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.delenv(PORT_BASE_ENV, raising=False)
    return Stack(tmp_path, port_base=BASE, topology="cluster")


@pytest.fixture
def pair(stack: Stack) -> PostgresCluster:
    found = stack.cluster("postgres")
    assert isinstance(found, PostgresCluster)
    return found


def _secrets(stack: Stack) -> dict[str, str]:
    data = json.loads(stack.layout.secrets_path.read_text())
    assert isinstance(data, dict)
    return data


def test_two_nodes_on_the_single_node_port_and_base_plus_40(pair: PostgresCluster) -> None:
    nodes = pair.nodes()
    assert [(n.name, n.host, n.port) for n in nodes] == [
        ("postgres-0", "127.0.0.1", BASE),
        ("postgres-1", "127.0.0.1", BASE + 40),
    ]
    assert [n.data_dir.name for n in nodes] == ["postgres-0", "postgres-1"]
    assert [n.slot_name for n in nodes] == ["postgres_0", "postgres_1"]
    assert (pair.primary.name, pair.standby.name) == ("postgres-0", "postgres-1")


def test_with_two_hosts_the_primary_is_on_the_first_and_the_standby_on_the_second(
    stack: Stack,
) -> None:
    context = ClusterContext(
        stack.layout,
        stack.ports,
        stack._load_secrets(),
        None,
        hosts=("10.9.0.10", "10.9.0.11"),
        clients="10.9.0.0/24",
    )
    pair = PostgresCluster(context)
    assert [(n.host, n.clients) for n in pair.nodes()] == [
        ("10.9.0.10", "10.9.0.0/24"),
        ("10.9.0.11", "10.9.0.0/24"),
    ]
    url = pair.outputs()["postgres_url"]
    assert f"@10.9.0.10:{BASE},10.9.0.11:{BASE + 40}/mas_memory?" in url
    assert "sslmode" not in url  # no CA in this context: plaintext (up --no-tls)


@pytest.mark.host_system  # the command names the host's PostgreSQL binaries
def test_each_node_runs_replication_settings_and_admits_the_replication_role(
    pair: PostgresCluster,
) -> None:
    for node in pair.nodes():
        command = " ".join(node.command())
        assert f"cluster_name={node.name}" in command
        assert f"synchronous_commit={SYNCHRONOUS_COMMIT}" in command
        assert "hot_standby_feedback=on" in command
        assert f"port={node.port}" in command
        assert not any(secret in command for secret in node.secrets.values())  # ps shows it
        assert node.hba_lines()[-1] == (
            f"hostssl replication {PG_REPLICATION_USER} 127.0.0.1/32 scram-sha-256"
        )
        # The stack's own sessions never wait for a standby.
        assert node._admin(3)["options"] == "-c synchronous_commit=local"
        assert node.env()["HOME"]  # libpq's ~/.postgresql must be the postgres user's


def test_the_primary_is_recorded_and_survives_garbage(pair: PostgresCluster) -> None:
    assert pair.primary_name == "postgres-0"
    pair.state_path.parent.mkdir(parents=True, exist_ok=True)
    pair.state_path.write_text(json.dumps({"primary": "postgres-1"}))
    assert (pair.primary.name, pair.standby.name) == ("postgres-1", "postgres-0")
    assert pair.node("postgres-1").is_primary and not pair.node("postgres-0").is_primary
    for garbage in ("{", '{"primary": "postgres-7"}', "[]"):
        pair.state_path.write_text(garbage)
        assert pair.primary_name == "postgres-0"


def _data(node: PostgresNode, *, standby: bool, identifier: int | None) -> None:
    """A fake data directory: PG_VERSION, maybe standby.signal and a pg_control."""
    (node.data_dir / "global").mkdir(parents=True, exist_ok=True)
    (node.data_dir / "PG_VERSION").write_text("15\n")
    if standby:
        (node.data_dir / "standby.signal").write_text("")
    if identifier is not None:
        head = struct.pack("<Q", identifier) + b"\0" * 64
        (node.data_dir / "global" / "pg_control").write_bytes(head)


def test_when_a_node_is_cloned_again(pair: PostgresCluster) -> None:
    primary, other = pair.primary, pair.standby
    assert pair.clone_reason(other) == "no data yet"
    _data(primary, standby=False, identifier=7_123_456_789_012_345_678)
    _data(other, standby=False, identifier=7_123_456_789_012_345_678)
    reason = pair.clone_reason(other)
    assert reason is not None and reason.startswith("it was a primary")  # the old primary
    (other.data_dir / "standby.signal").write_text("")
    auto = other.data_dir / "postgresql.auto.conf"
    conninfo = "user=mas_replicator password=x host={} port={} sslmode=''verify-full''"
    auto.write_text(f"primary_conninfo = '{conninfo.format('127.0.0.1', BASE)}'\n")
    assert other.upstream() == ("127.0.0.1", str(BASE))
    assert pair.clone_reason(other) is None  # a standby of this primary: it catches up
    auto.write_text(f"primary_conninfo = '{conninfo.format('10.9.0.10', BASE)}'\n")
    assert pair.clone_reason(other) == "it streams from another address (the hosts changed)"
    # A clone copies its primary's file: an older primary_conninfo, then -R's (the last wins).
    older = f"primary_conninfo = '{conninfo.format('10.9.0.10', BASE + 40)}'\n"
    auto.write_text(older + f"primary_conninfo = '{conninfo.format('127.0.0.1', BASE)}'\n")
    assert pair.clone_reason(other) is None
    auto.write_text(f"primary_conninfo = '{conninfo.format('127.0.0.1', BASE)}'\n")
    _data(other, standby=True, identifier=42)
    assert pair.clone_reason(other) == "its data belongs to another cluster"
    assert other.system_identifier() == 42
    assert primary.system_identifier() == 7_123_456_789_012_345_678


def test_outputs_are_one_multi_host_url_per_role(stack: Stack, pair: PostgresCluster) -> None:
    secrets = _secrets(stack)
    outputs = stack.outputs()
    assert list(outputs) == sorted(stack_output_keys())  # the adapters read what we write
    url = outputs["postgres_url"]
    parts = urlsplit(url)
    assert (parts.username, parts.password) == ("mas_app", secrets["postgres_app_password"])
    assert parts.netloc.endswith(f"@127.0.0.1:{BASE},127.0.0.1:{BASE + 40}")
    assert (parts.path, parts.query) == (
        "/mas_memory",
        "sslmode=verify-full&target_session_attrs=read-write",
    )
    settings = PostgresSettings(url=url)
    assert settings.hosts == [("127.0.0.1", BASE), ("127.0.0.1", BASE + 40)]
    admin = stack.admin_outputs()
    assert {"postgres_owner_url", "postgres_replication_url"} <= set(admin)
    owner = PostgresOwnerSettings(url=admin["postgres_owner_url"])
    assert owner.hosts == settings.hosts
    assert "host=127.0.0.1,127.0.0.1&port=" in yoyo_database_url(admin["postgres_owner_url"])
    replication = urlsplit(admin["postgres_replication_url"])
    assert (replication.username, replication.password) == (
        PG_REPLICATION_USER,
        secrets["postgres_replication_password"],
    )
    # The replication role's and the superuser's passwords never reach the adapters' file.
    text = json.dumps(outputs)
    for name in ("postgres_replication_password", "postgres_admin_password", "postgres_password"):
        assert secrets[name] not in text, name
    assert pair.migrate_url.endswith(f"&sslrootcert={stack.root / '.mas' / 'tls' / 'ca.pem'}")
