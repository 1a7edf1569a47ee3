"""The program under Pulumi mocks: what each backend's resources ask the engine for, and outputs.

Every assertion reads the ``RegisterResource`` requests the program sent (inputs with their
secret marks, options, provider references) or the resolved stack outputs.
"""

from __future__ import annotations

import copy
import re
import runpy
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from infra_harness import (
    CONTAINER,
    INFRA,
    PROVIDER,
    RANDOM_PASSWORD,
    REMOTE_IMAGE,
    VOLUME,
    Built,
    Registration,
    build_program,
)
from mas_infra import CREDENTIAL_LENGTH
from psycopg.conninfo import conninfo_to_dict
from pulumi.runtime import rpc
from redis.connection import parse_url

import mas_storage

#: The backend versions manifest: the images the lab runs by default are the tested versions.
TESTED = mas_storage.backend_versions()
SECRET_OUTPUTS = {
    "postgres_url",
    "redis_url",
    "qdrant_api_key",
    "neo4j_password",
    "typesense_api_key",
}


@dataclass(frozen=True)
class Expect:
    """What one backend must look like."""

    image: str
    data_path: str
    ports: dict[int, str]  # internal port -> port name in config
    envs: dict[str, str | None]  # name -> exact value (None: the credential)
    health: tuple[str, ...]  # first elements of healthcheck.tests
    health_has: str  # a substring the check must contain
    command: tuple[str, ...] | None = None


EXPECT: dict[str, Expect] = {
    "postgres": Expect(
        image=TESTED["postgres"].image,
        data_path="/var/lib/postgresql/data",
        ports={5432: "postgres"},
        envs={
            "POSTGRES_USER": "mas",
            "POSTGRES_DB": "mas_memory",
            "POSTGRES_HOST_AUTH_METHOD": "scram-sha-256",
            "POSTGRES_INITDB_ARGS": "--auth-host=scram-sha-256",
            "POSTGRES_PASSWORD": None,
        },
        health=("CMD", "pg_isready", "-h", "127.0.0.1", "-p", "5432", "-U", "mas"),
        health_has="mas_memory",
    ),
    "redis": Expect(
        image=TESTED["redis"].image,
        data_path="/data",
        ports={6379: "redis"},
        envs={"REDISCLI_AUTH": None},
        health=("CMD-SHELL",),
        health_has='"$(redis-cli -h 127.0.0.1 -p 6379 ping)" = PONG',
        command=(
            "sh",
            "-c",
            'exec docker-entrypoint.sh redis-server --requirepass "$REDISCLI_AUTH" '
            "--appendonly yes",
        ),
    ),
    "qdrant": Expect(
        image=TESTED["qdrant"].image,
        data_path="/qdrant/storage",
        ports={6333: "http", 6334: "grpc"},
        envs={"QDRANT__SERVICE__API_KEY": None, "QDRANT__TELEMETRY_DISABLED": "true"},
        health=("CMD", "bash", "-c"),
        health_has="exec 3<>/dev/tcp/127.0.0.1/6333 && printf 'GET /readyz HTTP/1.1",
    ),
    "neo4j": Expect(
        image=TESTED["neo4j"].image,
        data_path="/data",
        ports={7687: "bolt", 7474: "http"},
        envs={
            "NEO4J_AUTH": None,
            "NEO4J_server_memory_heap_initial__size": "<heap>",
            "NEO4J_server_memory_heap_max__size": "<heap>",
            "NEO4J_server_memory_pagecache_size": "<pagecache>",
        },
        health=("CMD-SHELL",),
        health_has='cypher-shell -a bolt://127.0.0.1:7687 -u neo4j -p "${NEO4J_AUTH#neo4j/}"',
    ),
    "typesense": Expect(
        image=TESTED["typesense"].image,
        data_path="/data",
        ports={8108: "http"},
        envs={"TYPESENSE_API_KEY": None, "TYPESENSE_DATA_DIR": "/data"},
        health=("CMD", "bash", "-c"),
        health_has="exec 3<>/dev/tcp/127.0.0.1/8108 && printf 'GET /health HTTP/1.1",
    ),
}
COMPONENT_TYPES = {
    "postgres": "mas:infra:Postgres",
    "redis": "mas:infra:Redis",
    "qdrant": "mas:infra:Qdrant",
    "neo4j": "mas:infra:Neo4j",
    "typesense": "mas:infra:Typesense",
}
HOSTS = {
    "dev": {
        "postgres": ("192.168.107.172", "ssh://labuser@192.168.107.172"),
        "redis": ("192.168.107.172", "ssh://labuser@192.168.107.172"),
        "qdrant": ("192.168.107.187", "ssh://labuser@192.168.107.187"),
        "neo4j": ("192.168.107.187", "ssh://labuser@192.168.107.187"),
        "typesense": ("192.168.107.187", "ssh://labuser@192.168.107.187"),
    },
    "local": {b: ("127.0.0.1", "unix:///var/run/docker.sock") for b in EXPECT},
}


def _is_secret(value: Any) -> bool:
    return rpc.is_rpc_secret(value)


def _plain(value: Any) -> Any:
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def _envs(container: Registration) -> dict[str, str]:
    return dict(e.split("=", 1) for e in _plain(container.inputs["envs"]))


def _go_seconds(text: str) -> int:
    """Whole seconds in a Go-printed duration such as ``5s`` or ``1m0s``."""
    found = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(\d+)s", text)
    assert found, f"{text!r} is not a Go duration in whole seconds"
    hours, minutes, secs = (int(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + secs


def _credential(built: Built, backend: str) -> str:
    """The credential as the container gets it."""
    envs = _envs(built.one(CONTAINER, f"{backend}-container"))
    name = next(n for n, v in EXPECT[backend].envs.items() if v is None)
    value = envs[name]
    return value.split("/", 1)[1] if backend == "neo4j" else value


# -- structure ---------------------------------------------------------------------------------


def test_one_component_per_backend_owning_its_resources(built: Built) -> None:
    components = {r.type: r for r in built.registrations if r.type.startswith("mas:infra:")}
    assert sorted(components) == sorted(COMPONENT_TYPES.values())
    for reg in built.registrations:
        if reg.type in (CONTAINER, REMOTE_IMAGE, VOLUME, RANDOM_PASSWORD):
            owner = components[COMPONENT_TYPES[reg.name.split("-")[0]]]
            assert reg.parent == owner.urn, f"{reg.name} is not a child of its component"
    # nothing of Docker's falls back to a default provider
    for reg in built.registrations:
        if reg.type.startswith("docker:"):
            assert built.provider_of(reg).name.startswith("docker-")


def test_one_docker_provider_per_host_in_use(built: Built, request: pytest.FixtureRequest) -> None:
    stack = request.node.callspec.params["built"]
    providers = {r.inputs["host"]: r for r in built.of_type(PROVIDER)}
    assert sorted(providers) == sorted({h for _, h in HOSTS[stack].values()})
    if stack == "dev":
        assert {r.inputs.get("sshOpts") for r in providers.values()} == {
            '["-o", "ConnectTimeout=10"]'
        }


@pytest.mark.parametrize("backend", list(EXPECT))
def test_backend_resources(built: Built, backend: str, request: pytest.FixtureRequest) -> None:
    stack = request.node.callspec.params["built"]
    want = EXPECT[backend]
    config = built.stack.config
    address, docker_host = HOSTS[stack][backend]
    image = built.one(REMOTE_IMAGE, f"{backend}-image")
    volume = built.one(VOLUME, f"{backend}-data")
    container = built.one(CONTAINER, f"{backend}-container")
    inputs = container.inputs

    # the host its placement names, for all three
    for reg in (image, volume, container):
        assert built.provider_of(reg).inputs["host"] == docker_host

    # image: the exact pinned tag; the container runs the pulled image's ID, not the tag
    assert image.inputs["name"] == want.image
    assert image.inputs["keepLocally"] is True
    image_state = built.state[image.urn]
    assert inputs["image"] == image_state["imageId"]
    assert inputs["image"].startswith("sha256:")

    # data volume: named, kept on delete and protected, mounted where the image keeps data
    assert volume.inputs["name"] == f"mas-{backend}-data"
    assert volume.protect and volume.retain_on_delete
    assert inputs["volumes"] == [
        {"volumeName": f"mas-{backend}-data", "containerPath": want.data_path}
    ]

    # ports: each on the host's lab address, never 0.0.0.0
    ports = {(p["internal"], p["external"], p["ip"], p["protocol"]) for p in inputs["ports"]}
    assert ports == {
        (internal, config.ports[backend][name], address, "tcp")
        for internal, name in want.ports.items()
    }

    # env: exact names and values; credential-bearing ones only as a secret
    assert _is_secret(inputs["envs"])
    envs = _envs(container)
    heap = {"<heap>": config.neo4j_heap, "<pagecache>": config.neo4j_pagecache}
    assert set(envs) == set(want.envs)
    for name, value in want.envs.items():
        if value is None:
            assert len(envs[name]) >= CREDENTIAL_LENGTH
        else:
            assert envs[name] == heap.get(value, value)
    assert container.additional_secret_outputs == ["envs"]
    if want.command is None:
        assert "command" not in inputs
    else:
        assert tuple(inputs["command"]) == want.command

    # healthcheck works on the image (see the component docstrings) and carries no secret
    health = inputs["healthcheck"]
    tests = health["tests"]
    assert tuple(tests[: len(want.health)]) == want.health
    assert want.health_has in " ".join(tests)
    assert _credential(built, backend) not in " ".join(tests)

    # restart, wait above the healthcheck's start budget, replace by delete first
    assert inputs["restart"] == "unless-stopped"
    assert inputs["wait"] is True
    seconds = {k: _go_seconds(str(health[k])) for k in ("interval", "timeout", "startPeriod")}
    budget = seconds["startPeriod"] + int(health["retries"]) * (
        seconds["interval"] + seconds["timeout"]
    )
    assert int(inputs["waitTimeout"]) > budget
    assert container.delete_before_replace
    assert inputs["name"] == f"mas-{backend}"

    # memory limit from config (every backend has one), no swap on top
    assert int(inputs["memory"]) == config.memory_mb[backend]
    assert int(inputs["memorySwap"]) == int(inputs["memory"])


def test_memory_comes_from_config(dev_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(dev_config)
    cfg["memoryMb"] = {"neo4j": 4096, "typesense": 1536, "redis": 768}
    cfg["neo4jHeap"] = "2G"
    built = build_program(cfg)
    neo4j = built.one(CONTAINER, "neo4j-container")
    assert int(neo4j.inputs["memory"]) == 4096
    assert _envs(neo4j)["NEO4J_server_memory_heap_max__size"] == "2G"
    for backend, mb in (("typesense", 1536), ("redis", 768), ("postgres", 2048)):
        container = built.one(CONTAINER, f"{backend}-container")
        assert (int(container.inputs["memory"]), int(container.inputs["memorySwap"])) == (mb, mb)


# -- credentials -------------------------------------------------------------------------------


def test_generated_credentials_are_long_url_safe_and_distinct(built: Built) -> None:
    passwords = built.of_type(RANDOM_PASSWORD)
    assert sorted(p.name for p in passwords) == sorted(f"{b}-credential" for b in EXPECT)
    for p in passwords:
        assert int(p.inputs["length"]) >= 24
        assert p.inputs["special"] is False  # letters and digits: nothing a URL must escape
    creds = {b: _credential(built, b) for b in EXPECT}
    assert len(set(creds.values())) == 5
    assert all(c.isalnum() and len(c) >= 24 for c in creds.values())


def test_supplied_secret_credentials_replace_generated_ones(dev_config: dict[str, Any]) -> None:
    supplied = {
        "postgresPassword": "p@ss:w/rd?#%-with-spaces and more",
        "redisPassword": "r3dis@pass/word:with#specials",
        "qdrantApiKey": "qdrant-key-0123456789abcdefghij",
        "neo4jPassword": "neo4j:pass@word-without-slash",
        "typesenseApiKey": "typesense-key-0123456789abcdef",
    }
    built = build_program({**dev_config, **supplied})
    assert built.of_type(RANDOM_PASSWORD) == []
    assert _credential(built, "postgres") == supplied["postgresPassword"]
    assert _credential(built, "redis") == supplied["redisPassword"]
    assert _credential(built, "qdrant") == supplied["qdrantApiKey"]
    assert _credential(built, "neo4j") == supplied["neo4jPassword"]
    assert _credential(built, "typesense") == supplied["typesenseApiKey"]
    # percent-encoded in the URLs, and the drivers decode them back
    pg = conninfo_to_dict(built.outputs["postgres_url"])
    assert pg["password"] == supplied["postgresPassword"]
    assert parse_url(built.outputs["redis_url"])["password"] == supplied["redisPassword"]
    assert built.outputs["qdrant_api_key"] == supplied["qdrantApiKey"]
    assert built.secret_outputs == SECRET_OUTPUTS


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("postgresPassword", "short", "at least 24"),
        ("neo4jPassword", "a-long-password-with/a-slash", "must not contain '/'"),
        ("redisPassword", "a-long-password-with\na-newline", "control characters"),
    ],
)
def test_unfit_supplied_credential_fails_the_program(
    dev_config: dict[str, Any], key: str, value: str, message: str
) -> None:
    # Pulumi re-raises an error from an apply as a ValueError carrying the original message.
    with pytest.raises(ValueError, match=f"{key} .*{message}"):
        build_program({**dev_config, key: value})


# -- outputs -----------------------------------------------------------------------------------


def test_outputs_have_exactly_the_adapters_keys_and_credentials_are_secret(built: Built) -> None:
    # What the adapters' settings models read, less the embedded Qdrant's path.
    assert set(built.outputs) == set(mas_storage.stack_output_keys()) - {"qdrant_path"}
    assert built.secret_outputs == SECRET_OUTPUTS
    assert all(isinstance(v, str) and v for v in built.outputs.values())


def test_output_values_point_at_the_placed_hosts_and_match_the_containers(
    built: Built, request: pytest.FixtureRequest
) -> None:
    stack = request.node.callspec.params["built"]
    config = built.stack.config
    out = built.outputs

    pg = conninfo_to_dict(out["postgres_url"])
    assert (pg["host"], int(pg["port"])) == (
        HOSTS[stack]["postgres"][0],
        config.ports["postgres"]["postgres"],
    )
    assert (pg["user"], pg["dbname"]) == ("mas", "mas_memory")
    assert pg["password"] == _credential(built, "postgres")

    rd = parse_url(out["redis_url"])
    assert (rd["host"], rd["port"], rd["db"]) == (
        HOSTS[stack]["redis"][0],
        config.ports["redis"]["redis"],
        0,
    )
    assert rd["password"] == _credential(built, "redis")

    for key, backend, scheme, port_name in (
        ("qdrant_url", "qdrant", "http", "http"),
        ("neo4j_url", "neo4j", "bolt", "bolt"),
        ("typesense_url", "typesense", "http", "http"),
    ):
        url = urlsplit(out[key])
        assert url.scheme == scheme
        assert (url.hostname, url.port) == (
            HOSTS[stack][backend][0],
            config.ports[backend][port_name],
        )
        assert url.username is None and url.path == ""
    assert out["qdrant_api_key"] == _credential(built, "qdrant")
    assert out["neo4j_user"] == "neo4j"
    assert out["neo4j_password"] == _credential(built, "neo4j")
    assert out["typesense_api_key"] == _credential(built, "typesense")
    assert unquote(urlsplit(out["postgres_url"]).password or "") == pg["password"]


# -- placement ---------------------------------------------------------------------------------


def _host_of(built: Built, backend: str) -> str:
    return built.provider_of(built.one(CONTAINER, f"{backend}-container")).inputs["host"]


def test_changing_placement_moves_a_backend_to_the_other_provider(
    dev_config: dict[str, Any],
) -> None:
    cfg = copy.deepcopy(dev_config)
    cfg["placement"]["neo4j"] = "lab-a"
    built = build_program(cfg)
    assert _host_of(built, "neo4j") == "ssh://labuser@192.168.107.172"
    for name in ("neo4j-image", "neo4j-data"):
        reg = next(r for r in built.registrations if r.name == name)
        assert built.provider_of(reg).inputs["host"] == "ssh://labuser@192.168.107.172"
    ports = built.one(CONTAINER, "neo4j-container").inputs["ports"]
    assert {p["ip"] for p in ports} == {"192.168.107.172"}
    assert urlsplit(built.outputs["neo4j_url"]).hostname == "192.168.107.172"
    # the others stay where they were
    assert _host_of(built, "typesense") == "ssh://labuser@192.168.107.187"
    assert _host_of(built, "postgres") == "ssh://labuser@192.168.107.172"


def test_a_third_host_in_config_gets_its_own_provider(dev_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(dev_config)
    cfg["hosts"]["lab-c"] = {"address": "192.168.107.200", "user": "ops"}
    cfg["placement"]["typesense"] = "lab-c"
    built = build_program(cfg)
    assert sorted(r.inputs["host"] for r in built.of_type(PROVIDER)) == [
        "ssh://labuser@192.168.107.172",
        "ssh://labuser@192.168.107.187",
        "ssh://ops@192.168.107.200",
    ]
    assert _host_of(built, "typesense") == "ssh://ops@192.168.107.200"
    assert urlsplit(built.outputs["typesense_url"]).hostname == "192.168.107.200"
    ports = built.one(CONTAINER, "typesense-container").inputs["ports"]
    assert {p["ip"] for p in ports} == {"192.168.107.200"}


def test_a_host_nothing_is_placed_on_gets_no_provider(dev_config: dict[str, Any]) -> None:
    cfg = copy.deepcopy(dev_config)
    cfg["hosts"]["spare"] = {"address": "192.168.107.201"}
    built = build_program(cfg)
    assert len(built.of_type(PROVIDER)) == 2


# -- the entry point ---------------------------------------------------------------------------


def test_main_program_builds_and_exports(dev_config: dict[str, Any]) -> None:
    def program() -> None:
        runpy.run_path(str(INFRA / "__main__.py"), run_name="__main__")

    built = build_program(dev_config, program=program)
    assert len(built.of_type(CONTAINER)) == 5
    assert len(built.of_type(PROVIDER)) == 2
