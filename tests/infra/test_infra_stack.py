"""The program under Pulumi mocks: what each backend's resources ask the engine for, and outputs.

Every assertion reads the ``RegisterResource`` requests the program sent (inputs with their
secret marks, options, provider references) or the resolved stack outputs.
"""

from __future__ import annotations

import copy
import json
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
from mock_tls import SELF_SIGNED_CERT
from psycopg.conninfo import conninfo_to_dict
from pulumi.runtime import rpc
from redis.connection import parse_url

import mas_storage
from mas_storage_postgres import PostgresOwnerSettings
from mas_storage_typesense import TypesenseAdminSettings

#: The backend versions manifest: the images the lab runs by default are the tested versions.
TESTED = mas_storage.backend_versions()
#: Outputs that carry a credential (all secret), the adapters' and the admin ones.
SECRET_OUTPUTS = {
    "postgres_url",
    "redis_url",
    "qdrant_api_key",
    "qdrant_read_only_api_key",
    "neo4j_password",
    "typesense_api_key",
    "postgres_owner_url",
    "redis_admin_url",
    "typesense_admin_api_key",
}
#: The admin outputs: the owner's and admins' credentials (docs/security.md), no adapter's.
ADMIN_OUTPUTS = {"postgres_owner_url", "redis_admin_url", "typesense_admin_api_key"}
#: Each backend's credentials: role -> (secret config key, RandomPassword resource name).
CREDENTIALS = {
    "postgres": {
        "owner": ("postgresPassword", "postgres-credential"),
        "superuser": ("postgresSuperuserPassword", "postgres-superuser-credential"),
        "app": ("postgresAppPassword", "postgres-app-credential"),
    },
    "redis": {
        "admin": ("redisPassword", "redis-credential"),
        "app": ("redisAppPassword", "redis-app-credential"),
    },
    "qdrant": {
        "api": ("qdrantApiKey", "qdrant-credential"),
        "read-only": ("qdrantReadOnlyApiKey", "qdrant-read-only-credential"),
    },
    "neo4j": {"password": ("neo4jPassword", "neo4j-credential")},
    "typesense": {
        "admin": ("typesenseApiKey", "typesense-credential"),
        "scoped": ("typesenseScopedApiKey", "typesense-scoped-credential"),
    },
}
#: Where each credential reaches its container: role -> env name (None: not in the env).
CREDENTIAL_ENVS = {
    "postgres": {"superuser": "POSTGRES_PASSWORD", "owner": "MAS_OWNER_PASSWORD",
                 "app": "MAS_APP_PASSWORD"},
    "redis": {"app": "REDISCLI_AUTH", "admin": None},
    "qdrant": {"api": "QDRANT__SERVICE__API_KEY",
               "read-only": "QDRANT__SERVICE__READ_ONLY_API_KEY"},
    "neo4j": {"password": "NEO4J_AUTH"},
    "typesense": {"admin": "TYPESENSE_API_KEY", "scoped": None},
}  # fmt: skip
_NEO4J_TLS = {
    "NEO4J_server_bolt_tls__level": "REQUIRED",
    "NEO4J_server_http_enabled": "false",
    "NEO4J_server_https_enabled": "true",
    **{
        f"NEO4J_dbms_ssl_policy_{p}_{k}": v
        for p in ("bolt", "https")
        for k, v in (
            ("enabled", "true"),
            ("base__directory", f"/var/lib/neo4j/certificates/{p}"),
            ("private__key", "private.key"),
            ("public__certificate", "public.crt"),
            ("client__auth", "NONE"),
        )
    },
}


@dataclass(frozen=True)
class Expect:
    """What one backend must look like."""

    image: str
    data_path: str
    ports: dict[int, str]  # internal port -> port name in config
    envs: dict[str, str | None]  # name -> exact value (None: a credential)
    health: tuple[str, ...]  # first elements of healthcheck.tests
    health_has: str  # a substring the check must contain
    command: tuple[str, ...] | None = None


_PG_SERVER = (
    "exec docker-entrypoint.sh postgres -c ssl=on -c ssl_cert_file=/etc/mas/tls/server.crt "
    "-c ssl_key_file=/run/mas/postgres/server.key -c ssl_min_protocol_version=TLSv1.2 "
    "-c password_encryption=scram-sha-256 -c hba_file=/etc/mas/postgres/pg_hba.conf"
)
_REDIS_SERVER = (
    "exec docker-entrypoint.sh redis-server --port 0 --tls-port 6379 "
    "--tls-cert-file /etc/mas/tls/server.crt --tls-key-file /run/mas/redis/server.key "
    "--tls-ca-cert-file /etc/mas/tls/ca.crt --tls-auth-clients no --tls-replication yes "
    "--tls-cluster yes --aclfile /run/mas/redis/users.acl --appendonly yes"
)
_HTTPS_PROBE = (
    "printf 'GET {path} HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' | "
    "openssl s_client -connect 127.0.0.1:{port} -CAfile /etc/mas/tls/ca.crt "
    "-verify_return_error -quiet 2>/dev/null | head -n 1 | grep -q ' 200 '"
)

EXPECT: dict[str, Expect] = {
    "postgres": Expect(
        image=TESTED["postgres"].image,
        data_path="/var/lib/postgresql/data",
        ports={5432: "postgres"},
        envs={
            "POSTGRES_USER": "postgres",
            "POSTGRES_DB": "mas_memory",
            "POSTGRES_INITDB_ARGS": "--auth-local=scram-sha-256 --auth-host=scram-sha-256",
            "POSTGRES_PASSWORD": None,
            "MAS_OWNER_PASSWORD": None,
            "MAS_APP_PASSWORD": None,
        },
        health=("CMD", "pg_isready", "-d"),
        health_has="host=127.0.0.1 port=5432 user=mas_app dbname=mas_memory sslmode=verify-ca "
        "sslrootcert=/etc/mas/tls/ca.crt",
        command=(
            "sh",
            "-c",
            "install -D -m 0600 -o postgres -g postgres /etc/mas/tls/server.key "
            f"/run/mas/postgres/server.key && {_PG_SERVER}",
        ),
    ),
    "redis": Expect(
        image=TESTED["redis"].image,
        data_path="/data",
        ports={6379: "redis"},
        envs={"REDISCLI_AUTH": None},
        health=("CMD-SHELL",),
        health_has='[ "$(redis-cli --tls --cacert /etc/mas/tls/ca.crt -h 127.0.0.1 -p 6379 '
        '--user mas_app ping)" = PONG ]',
        command=(
            "sh",
            "-c",
            "install -D -m 0600 -o redis -g redis /etc/mas/tls/server.key "
            "/run/mas/redis/server.key && install -D -m 0600 -o redis -g redis "
            f"/etc/mas/redis/users.acl /run/mas/redis/users.acl && {_REDIS_SERVER}",
        ),
    ),
    "qdrant": Expect(
        image=TESTED["qdrant"].image,
        data_path="/qdrant/storage",
        ports={6333: "http", 6334: "grpc"},
        envs={
            "QDRANT__SERVICE__API_KEY": None,
            "QDRANT__SERVICE__READ_ONLY_API_KEY": None,
            "QDRANT__SERVICE__ENABLE_TLS": "true",
            "QDRANT__TLS__CERT": "/etc/mas/tls/server.crt",
            "QDRANT__TLS__KEY": "/etc/mas/tls/server.key",
            "QDRANT__TLS__CA_CERT": "/etc/mas/tls/ca.crt",
            "QDRANT__TELEMETRY_DISABLED": "true",
        },
        health=("CMD-SHELL",),
        health_has=_HTTPS_PROBE.format(path="/readyz", port=6333),
    ),
    "neo4j": Expect(
        image=TESTED["neo4j"].image,
        data_path="/data",
        ports={7687: "bolt", 7473: "https"},
        envs={
            "NEO4J_AUTH": None,
            "NEO4J_server_memory_heap_initial__size": "<heap>",
            "NEO4J_server_memory_heap_max__size": "<heap>",
            "NEO4J_server_memory_pagecache_size": "<pagecache>",
            **_NEO4J_TLS,
        },
        health=("CMD-SHELL",),
        health_has='cypher-shell -a bolt+ssc://127.0.0.1:7687 -u neo4j -p "${NEO4J_AUTH#neo4j/}"',
    ),
    "typesense": Expect(
        image=TESTED["typesense"].image,
        data_path="/data",
        ports={8108: "http"},
        envs={"TYPESENSE_API_KEY": None, "TYPESENSE_DATA_DIR": "/data"},
        health=("CMD-SHELL",),
        health_has=_HTTPS_PROBE.format(path="/health", port=8108),
        command=(
            "--ssl-certificate=/etc/mas/tls/server.crt",
            "--ssl-certificate-key=/etc/mas/tls/server.key",
        ),
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


def _generated(built: Built, backend: str, role: str) -> str:
    """A generated credential's value (the mocked RandomPassword's result)."""
    password = built.one(RANDOM_PASSWORD, CREDENTIALS[backend][role][1])
    return str(built.state[password.urn]["result"])


def _in_container(built: Built, backend: str, role: str) -> str:
    """The credential as the container's env gets it."""
    envs = _envs(built.one(CONTAINER, f"{backend}-container"))
    value = envs[str(CREDENTIAL_ENVS[backend][role])]
    return value.split("/", 1)[1] if backend == "neo4j" else value


# -- structure ---------------------------------------------------------------------------------


def test_one_component_per_backend_owning_its_resources(built: Built) -> None:
    components = {r.type: r for r in built.registrations if r.type.startswith("mas:infra:")}
    assert sorted(components) == sorted([*COMPONENT_TYPES.values(), "mas:infra:Certificates"])
    for reg in built.registrations:
        if reg.type in (CONTAINER, REMOTE_IMAGE, VOLUME, RANDOM_PASSWORD):
            owner = components[COMPONENT_TYPES[reg.name.split("-")[0]]]
            assert reg.parent == owner.urn, f"{reg.name} is not a child of its component"
        if reg.type.startswith("tls:"):
            assert reg.parent == components["mas:infra:Certificates"].urn, reg.name
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

    # env: exact names and values; each credential the generated one, only inside a secret
    assert _is_secret(inputs["envs"])
    envs = _envs(container)
    heap = {"<heap>": config.neo4j_heap, "<pagecache>": config.neo4j_pagecache}
    assert set(envs) == set(want.envs)
    for name, value in want.envs.items():
        if value is not None:
            assert envs[name] == heap.get(value, value), name
    for role, env in CREDENTIAL_ENVS[backend].items():
        if env is not None:
            assert _in_container(built, backend, role) == _generated(built, backend, role)
            assert len(_in_container(built, backend, role)) >= CREDENTIAL_LENGTH
    # env and uploads (keys, hashed passwords) are kept secret by the engine whatever comes in
    assert container.additional_secret_outputs == ["envs", "uploads"]
    assert _is_secret(inputs["uploads"])
    if want.command is None:
        assert "command" not in inputs
    else:
        assert tuple(inputs["command"]) == want.command
    assert "entrypoints" not in inputs  # the image's entrypoint runs, always

    # healthcheck works on the image (see the component docstrings) and carries no secret
    health = inputs["healthcheck"]
    tests = health["tests"]
    assert tuple(tests[: len(want.health)]) == want.health
    assert want.health_has in " ".join(tests)
    for role in CREDENTIALS[backend]:
        assert _generated(built, backend, role) not in " ".join(tests)
        assert _generated(built, backend, role) not in " ".join(inputs.get("command", []))

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
    assert sorted(p.name for p in passwords) == sorted(
        name for roles in CREDENTIALS.values() for _, name in roles.values()
    )
    for p in passwords:
        assert int(p.inputs["length"]) >= 24
        assert p.inputs["special"] is False  # letters and digits: nothing a URL must escape
    creds = [_generated(built, b, role) for b, roles in CREDENTIALS.items() for role in roles]
    assert len(set(creds)) == len(creds) == 10
    assert all(c.isalnum() and len(c) >= 24 for c in creds)


SUPPLIED = {
    "postgresPassword": "p@ss:w/rd?#%-with-spaces and more",
    "postgresSuperuserPassword": "superuser-password-0123456789",
    "postgresAppPassword": "app:pass@word/with?specials#0",
    "redisPassword": "r3dis@admin/word:with#specials",
    "redisAppPassword": "r3dis@app/word:with#specials-0",
    "qdrantApiKey": "qdrant-key-0123456789abcdefghij",
    "qdrantReadOnlyApiKey": "qdrant-read-only-0123456789abc",
    "neo4jPassword": "neo4j:pass@word-without-slash",
    "typesenseApiKey": "typesense-key-0123456789abcdef",
    "typesenseScopedApiKey": "typesense-scoped-0123456789ab",
}


def test_supplied_secret_credentials_replace_generated_ones(dev_config: dict[str, Any]) -> None:
    built = build_program({**dev_config, **SUPPLIED})
    assert built.of_type(RANDOM_PASSWORD) == []
    for backend, roles in CREDENTIAL_ENVS.items():
        for role, env in roles.items():
            if env is not None:
                assert (
                    _in_container(built, backend, role) == SUPPLIED[CREDENTIALS[backend][role][0]]
                )
    out, admin = built.outputs, built.admin_outputs
    # percent-encoded in the URLs, and the drivers decode them back
    pg = conninfo_to_dict(out["postgres_url"])
    assert (pg["user"], pg["password"]) == ("mas_app", SUPPLIED["postgresAppPassword"])
    owner = conninfo_to_dict(admin["postgres_owner_url"])
    assert (owner["user"], owner["password"]) == ("mas", SUPPLIED["postgresPassword"])
    redis = parse_url(out["redis_url"])
    assert (redis["username"], redis["password"]) == ("mas_app", SUPPLIED["redisAppPassword"])
    redis_admin = parse_url(admin["redis_admin_url"])
    assert (redis_admin["username"], redis_admin["password"]) == (
        "admin",
        SUPPLIED["redisPassword"],
    )
    assert out["qdrant_api_key"] == SUPPLIED["qdrantApiKey"]
    assert out["qdrant_read_only_api_key"] == SUPPLIED["qdrantReadOnlyApiKey"]
    assert out["neo4j_password"] == SUPPLIED["neo4jPassword"]
    assert out["typesense_api_key"] == SUPPLIED["typesenseScopedApiKey"]
    assert admin["typesense_admin_api_key"] == SUPPLIED["typesenseApiKey"]
    assert built.secret_outputs == SECRET_OUTPUTS


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("postgresPassword", "short", "at least 24"),
        ("postgresAppPassword", "short-too", "at least 24"),
        ("neo4jPassword", "a-long-password-with/a-slash", "must not contain '/'"),
        ("redisPassword", "a-long-password-with\na-newline", "control characters"),
        ("redisAppPassword", "a long password with spaces in it", "must not contain ' '"),
        ("typesenseScopedApiKey", "short", "at least 24"),
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
    # What the adapters' settings models read, less the embedded Qdrant's path and the Redis
    # Cluster's seed nodes (the cluster topology's key, tests/infra/test_infra_cluster.py).
    single_only = {"qdrant_path", "redis_cluster_nodes"}
    assert set(built.outputs) == set(mas_storage.stack_output_keys()) - single_only
    # The admin ones: the models that read the admin file, and the operators' Redis user.
    admin_read = {
        key
        for model in (PostgresOwnerSettings, TypesenseAdminSettings)
        for key in model.admin_output_keys().values()
    }
    assert set(built.admin_outputs) == ADMIN_OUTPUTS == admin_read | {"redis_admin_url"}
    assert built.secret_outputs == SECRET_OUTPUTS
    assert "tls_ca" not in built.secret_outputs  # a certificate: public
    values = {**built.outputs, **built.admin_outputs}
    assert all(isinstance(v, str) and v for v in values.values())


def test_no_owner_or_admin_credential_in_the_adapters_outputs(built: Built) -> None:
    owner_and_admins = [
        _generated(built, "postgres", "owner"),
        _generated(built, "postgres", "superuser"),
        _generated(built, "redis", "admin"),
        _generated(built, "typesense", "admin"),
    ]
    text = json.dumps(built.outputs)
    for secret in owner_and_admins:
        assert secret not in text
    # and the superuser's goes nowhere at all
    assert _generated(built, "postgres", "superuser") not in json.dumps(built.admin_outputs)


def test_output_values_point_at_the_placed_hosts_and_match_the_containers(
    built: Built, request: pytest.FixtureRequest
) -> None:
    stack = request.node.callspec.params["built"]
    config = built.stack.config
    out, admin = built.outputs, built.admin_outputs

    for url, user, role in (
        (out["postgres_url"], "mas_app", "app"),
        (admin["postgres_owner_url"], "mas", "owner"),
    ):
        pg = conninfo_to_dict(url)
        assert (pg["host"], int(pg["port"])) == (
            HOSTS[stack]["postgres"][0],
            config.ports["postgres"]["postgres"],
        )
        assert (pg["user"], pg["dbname"], pg["sslmode"]) == (user, "mas_memory", "verify-full")
        assert pg["password"] == _generated(built, "postgres", role)
        assert pg["password"] == _in_container(built, "postgres", role)
        assert unquote(urlsplit(url).password or "") == pg["password"]

    for url, user, role in (
        (out["redis_url"], "mas_app", "app"),
        (admin["redis_admin_url"], "admin", "admin"),
    ):
        assert url.startswith("rediss://")
        rd = parse_url(url)
        assert (rd["host"], rd["port"], rd["db"], rd["username"]) == (
            HOSTS[stack]["redis"][0],
            config.ports["redis"]["redis"],
            0,
            user,
        )
        assert rd["password"] == _generated(built, "redis", role)

    for key, backend, scheme, port_name in (
        ("qdrant_url", "qdrant", "https", "http"),
        ("neo4j_url", "neo4j", "bolt+s", "bolt"),
        ("typesense_url", "typesense", "https", "http"),
    ):
        url = urlsplit(out[key])
        assert url.scheme == scheme
        assert (url.hostname, url.port) == (
            HOSTS[stack][backend][0],
            config.ports[backend][port_name],
        )
        assert url.username is None and url.path == ""
    assert out["qdrant_api_key"] == _in_container(built, "qdrant", "api")
    assert out["qdrant_read_only_api_key"] == _in_container(built, "qdrant", "read-only")
    assert out["neo4j_user"] == "neo4j"
    assert out["neo4j_password"] == _in_container(built, "neo4j", "password")
    # the adapter gets the scoped key, never the admin key the server runs with
    assert out["typesense_api_key"] == _generated(built, "typesense", "scoped")
    assert admin["typesense_admin_api_key"] == _in_container(built, "typesense", "admin")
    assert out["typesense_api_key"] != admin["typesense_admin_api_key"]
    # the CA certificate pulumi-tls made, as it made it
    assert out["tls_ca"] == built.state[built.one(SELF_SIGNED_CERT, "tls-ca-cert").urn]["certPem"]


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


def test_a_changed_healthcheck_replaces_the_container(built: Built) -> None:
    """pulumi-docker 5.2.0 "updates" a container's healthcheck in place, but only in state:
    the engine keeps the old one, so the change never takes effect and every refresh shows it
    again (the lab rehearsal of issue 17: ``preview --expect-no-changes`` failed after
    ``up`` + ``refresh`` with ``~ healthcheck``). Every container is replaced instead."""
    for container in built.of_type(CONTAINER):
        assert "healthcheck" in container.replace_on_changes, container.name
        assert container.delete_before_replace, container.name  # fixed names and ports
