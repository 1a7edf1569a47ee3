"""The outputs file's shape, the port and root configuration, and service-name checks."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mas_devstack import SERVICE_NAMES, DevstackError, Ports, Stack, resolve_root
from mas_devstack._layout import HOME_ENV, PORT_BASE_ENV
from mas_storage import load_stack_outputs, stack_output_keys

BASE = 62950


@pytest.fixture
def stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.delenv(PORT_BASE_ENV, raising=False)
    return Stack(tmp_path, port_base=BASE)


def test_outputs_hold_exactly_the_keys_the_adapters_read(stack: Stack) -> None:
    outputs = stack.outputs()
    assert list(outputs) == sorted(stack_output_keys())  # the adapters' models read what we write


def test_outputs_point_at_loopback_ports_with_the_generated_secrets(stack: Stack) -> None:
    """TLS by default: TLS URLs, the CA's path, and the least-privileged credentials only."""
    outputs = stack.outputs()
    secrets = json.loads(stack.layout.secrets_path.read_text())
    pg = urlsplit(outputs["postgres_url"])
    assert (pg.scheme, pg.hostname, pg.port) == ("postgresql", "127.0.0.1", BASE)
    assert (pg.path, pg.query) == ("/mas_memory", "sslmode=verify-full")
    assert (pg.username, pg.password) == ("mas_app", secrets["postgres_app_password"])
    rd = urlsplit(outputs["redis_url"])
    assert (rd.scheme, rd.hostname, rd.port, rd.path) == ("rediss", "127.0.0.1", BASE + 1, "/0")
    assert (rd.username, rd.password) == ("mas_app", secrets["redis_app_password"])
    assert outputs["neo4j_url"] == f"bolt+s://127.0.0.1:{BASE + 2}"
    assert outputs["neo4j_user"] == "neo4j"
    assert outputs["neo4j_password"] == secrets["neo4j_password"]
    assert outputs["typesense_url"] == f"https://127.0.0.1:{BASE + 3}"
    assert outputs["typesense_nodes"] == [outputs["typesense_url"]]  # one node
    assert outputs["typesense_api_key"] == secrets["typesense_app_api_key"]
    assert outputs["tls_ca"] == str(stack.root / ".mas" / "tls" / "ca.pem")
    assert outputs["qdrant_url"] is None
    assert outputs["qdrant_api_key"] is None
    assert outputs["qdrant_path"] == str(stack.root / ".mas" / "qdrant")
    assert Path(outputs["qdrant_path"]).is_absolute()
    # The owner's and admins' credentials, and the superuser's, never reach these outputs.
    text = json.dumps(outputs)
    for name in (
        "postgres_admin_password",
        "postgres_password",
        "redis_password",
        "typesense_api_key",
    ):
        assert secrets[name] not in text, name


def test_admin_outputs_hold_the_owner_and_admin_credentials(stack: Stack) -> None:
    admin = stack.admin_outputs()
    secrets = json.loads(stack.layout.secrets_path.read_text())
    assert sorted(admin) == ["postgres_owner_url", "redis_admin_url", "typesense_admin_api_key"]
    owner = urlsplit(admin["postgres_owner_url"])
    assert (owner.username, owner.password) == ("mas", secrets["postgres_password"])
    redis_admin = urlsplit(admin["redis_admin_url"])
    assert (redis_admin.username, redis_admin.password) == ("admin", secrets["redis_password"])
    assert admin["typesense_admin_api_key"] == secrets["typesense_api_key"]
    assert secrets["postgres_admin_password"] not in json.dumps(admin)
    stack._write_outputs()
    assert stat.S_IMODE(stack.admin_outputs_path.stat().st_mode) == 0o600


def test_without_tls_the_urls_are_plaintext_and_there_is_no_ca(tmp_path: Path) -> None:
    outputs = Stack(tmp_path, port_base=BASE, tls=False).outputs()
    assert outputs["tls_ca"] is None
    assert urlsplit(outputs["postgres_url"]).query == ""
    assert outputs["redis_url"].startswith("redis://mas_app:")
    assert outputs["neo4j_url"] == f"bolt://127.0.0.1:{BASE + 2}"
    assert outputs["typesense_url"] == f"http://127.0.0.1:{BASE + 3}"


def test_written_outputs_are_private_and_readable_by_the_core(stack: Stack) -> None:
    written = stack._write_outputs()
    path = stack.outputs_path
    assert path == stack.root / ".mas" / "stack-outputs.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == written
    loaded = load_stack_outputs(path)
    assert loaded == {k: v for k, v in written.items() if v is not None}


def test_outputs_are_stable_across_stack_objects(stack: Stack) -> None:
    again = Stack(stack.root, port_base=BASE)
    assert again.outputs() == stack.outputs()


def test_default_ports_avoid_the_system_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PORT_BASE_ENV, raising=False)
    ports = Ports.resolve()
    assert ports == Ports(
        postgres=55432, redis=56379, neo4j=57687, typesense=58108, typesense_peering=58107
    )
    assert not {5432, 6379, 7687, 8108, 6333} & set(vars(ports).values())


def test_port_base_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PORT_BASE_ENV, "63000")
    assert Ports.resolve() == Ports(63000, 63001, 63002, 63003, 63004)
    assert Ports.resolve(62000).postgres == 62000  # an argument wins over the environment


@pytest.mark.parametrize("raw", ["abc", "80", "65533"])
def test_a_bad_port_base_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(PORT_BASE_ENV, raw)
    with pytest.raises(DevstackError, match=r"port base|not an integer"):
        Ports.resolve()


def test_root_is_mas_home_else_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(HOME_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert resolve_root() == tmp_path.resolve()
    assert Stack().outputs_path == tmp_path.resolve() / ".mas" / "stack-outputs.json"
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv(HOME_ENV, str(elsewhere))
    assert resolve_root() == elsewhere
    assert resolve_root(tmp_path / "given") == tmp_path / "given"


def test_unknown_service_names_are_refused_with_the_known_ones(stack: Stack) -> None:
    with pytest.raises(DevstackError, match="unknown service") as caught:
        stack.up(["postgres", "mongodb"])
    assert all(name in str(caught.value) for name in SERVICE_NAMES)
    with pytest.raises(DevstackError):
        stack.pid("mysql")


def test_status_of_a_fresh_root_is_all_stopped_and_creates_nothing(stack: Stack) -> None:
    statuses = stack.status()
    assert list(statuses) == list(SERVICE_NAMES)
    assert not any(s.running or s.pid for s in statuses.values())
    assert not (stack.root / ".mas").exists()


def test_down_of_a_stack_that_never_ran_stops_nothing(stack: Stack) -> None:
    assert stack.down() == []
    assert stack.stop("postgres") is False
    assert stack.stop("qdrant") is False
    assert stack.pid("neo4j") is None
    assert not (stack.root / ".mas").exists()
