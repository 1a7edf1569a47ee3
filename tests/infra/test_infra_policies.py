"""The policy pack: each rule on a passing and a failing resource, and on the real stacks.

Resources are handed to the policies the way the analyzer hands them: engine property names,
secret marks stripped (Python policies never see them), unknown values behind the SDK's
unknown-checking proxy, and the options an analyzer gets.
"""

from __future__ import annotations

import copy
import runpy
from collections.abc import Sequence
from typing import Any

import mas_policies
import pulumi_policy
import pytest
from infra_harness import CONTAINER, INFRA, REMOTE_IMAGE, VOLUME, Built, Registration
from mas_policies import PACK_NAME, POLICIES
from pulumi.runtime import rpc
from pulumi_policy import EnforcementLevel, ResourceValidationArgs, ResourceValidationPolicy
from pulumi_policy.policy import PolicyCustomTimeouts, PolicyResourceOptions
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

#: The per-resource rules (the stack rule ``cluster-placement`` is test_infra_cluster.py's).
RULES = {p.name: p for p in POLICIES if isinstance(p, ResourceValidationPolicy)}


def _strip(value: Any) -> Any:
    """Drop secret marks, as the analyzer's deserializer does before validation."""
    if rpc.is_rpc_secret(value):
        return _strip(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _args(
    resource_type: str,
    props: dict[str, Any],
    *,
    protect: bool = False,
    secret_outputs: Sequence[str] = (),
) -> ResourceValidationArgs:
    opts = PolicyResourceOptions(
        protect=protect,
        ignore_changes=[],
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=list(secret_outputs),
    )
    return ResourceValidationArgs(
        resource_type, unknown_checking_proxy(props), f"urn:test::{resource_type}", "r", opts, None
    )


def violations(rule: str, args: ResourceValidationArgs) -> list[str]:
    found: list[str] = []
    RULES[rule].validate(args, lambda message, urn=None: found.append(message))
    return found


def _from_registration(reg: Registration, *, keep_marks: bool = False) -> ResourceValidationArgs:
    props = copy.deepcopy(reg.inputs) if keep_marks else _strip(reg.inputs)
    return _args(reg.type, props, protect=reg.protect, secret_outputs=reg.additional_secret_outputs)


@pytest.fixture
def container(dev_built: Built) -> dict[str, Any]:
    """The dev stack's Redis container as an analyzer sees it (a fresh copy per test)."""
    return _strip(dev_built.one(CONTAINER, "redis-container").inputs)


# -- the pack ----------------------------------------------------------------------------------


def test_pack_has_the_nine_mandatory_rules() -> None:
    assert sorted(p.name for p in POLICIES) == [
        "cluster-placement",
        "containers-healthcheck-restart",
        "credentials-secret",
        "images-pinned",
        "ports-not-public",
        "tls-certificates-mounted",
        "tls-keys-secret",
        "tls-only",
        "volumes-retained",
    ]
    assert all(p.enforcement_level == EnforcementLevel.MANDATORY for p in POLICIES)


def test_pack_main_builds_the_policy_pack_from_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []
    monkeypatch.setattr(pulumi_policy, "PolicyPack", lambda **kw: made.append(kw))
    runpy.run_path(str(INFRA / "policy" / "__main__.py"), run_name="__main__")
    assert len(made) == 1
    assert made[0]["name"] == PACK_NAME
    assert made[0]["policies"] is mas_policies.POLICIES
    assert made[0]["enforcement_level"] == EnforcementLevel.MANDATORY


@pytest.mark.parametrize("keep_marks", [False, True], ids=["validation", "with-secret-marks"])
def test_committed_stacks_pass_every_rule(built: Built, keep_marks: bool) -> None:
    checked = 0
    for reg in built.registrations:
        if not reg.type.startswith(("docker:index/", "tls:index/")):
            continue
        for rule in RULES:
            assert violations(rule, _from_registration(reg, keep_marks=keep_marks)) == [], (
                f"{reg.name} breaks {rule}"
            )
        checked += 1
    hosts = len(built.stack.config.used_hosts)
    # 5 images, 5 volumes, 5 containers; the CA's key and certificate; per host a key, a
    # request and a certificate
    assert checked == 15 + 2 + 3 * hosts


# -- images-pinned -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "problem"),
    [
        ("redis:7.4.11-alpine", None),
        ("redis@sha256:" + "0" * 64, None),
        ("redis:latest", "moving tag 'latest'"),
        ("redis", "no tag"),
        ("localhost:5000/redis", "no tag"),
    ],
)
def test_images_pinned_on_remote_images(ref: str, problem: str | None) -> None:
    found = violations("images-pinned", _args(REMOTE_IMAGE, {"name": ref}))
    assert found == [] if problem is None else (len(found) == 1 and problem in found[0])


def test_images_pinned_on_containers(container: dict[str, Any]) -> None:
    assert violations("images-pinned", _args(CONTAINER, container)) == []  # an image ID
    container["image"] = "redis:latest"
    assert len(violations("images-pinned", _args(CONTAINER, container))) == 1
    # during a first preview the ID is unknown: that is the RemoteImage's business, not a failure
    container["image"] = UNKNOWN_STRING_VALUE
    assert violations("images-pinned", _args(CONTAINER, container)) == []
    with pytest.raises(UnknownValueError):  # the SDK reports it as "can't run during preview"
        violations("images-pinned", _args(REMOTE_IMAGE, {"name": UNKNOWN_STRING_VALUE}))


# -- containers-healthcheck-restart ------------------------------------------------------------


def test_healthcheck_and_restart_pass(container: dict[str, Any]) -> None:
    assert violations("containers-healthcheck-restart", _args(CONTAINER, container)) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c.pop("healthcheck"), "no healthcheck"),
        (lambda c: c["healthcheck"].update(tests=["NONE"]), "no healthcheck"),
        (lambda c: c["healthcheck"].update(tests=["CMD-SHELL"]), "no healthcheck"),
        (lambda c: c.pop("restart"), "restart policy is 'no'"),
        (lambda c: c.update(restart="no"), "restart policy is 'no'"),
    ],
)
def test_healthcheck_and_restart_fail(container: dict[str, Any], change: Any, problem: str) -> None:
    change(container)
    found = violations("containers-healthcheck-restart", _args(CONTAINER, container))
    assert len(found) == 1 and problem in found[0]


# -- volumes-retained --------------------------------------------------------------------------


def test_volume_retained_only_when_protected() -> None:
    props = {"name": "mas-redis-data"}
    assert violations("volumes-retained", _args(VOLUME, props, protect=True)) == []
    found = violations("volumes-retained", _args(VOLUME, props, protect=False))
    assert len(found) == 1 and "not protected" in found[0]


# -- ports-not-public --------------------------------------------------------------------------


def test_ports_on_a_lab_address_pass(container: dict[str, Any]) -> None:
    assert container["ports"][0]["ip"] == "192.168.107.172"
    assert violations("ports-not-public", _args(CONTAINER, container)) == []


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda c: c["ports"][0].update(ip="0.0.0.0"), "all interfaces"),  # noqa: S104
        (lambda c: c["ports"][0].update(ip="::"), "all interfaces"),
        (lambda c: c["ports"][0].pop("ip"), "no 'ip'"),
        (lambda c: c["ports"][0].update(ip="lab-a"), "not an IP address"),
        (lambda c: c.update(publishAllPorts=True), "publishAllPorts"),
        (lambda c: c.update(networkMode="host"), "networkMode 'host'"),
    ],
)
def test_public_ports_fail(container: dict[str, Any], change: Any, problem: str) -> None:
    change(container)
    found = violations("ports-not-public", _args(CONTAINER, container))
    assert len(found) == 1 and problem in found[0]


# -- credentials-secret ------------------------------------------------------------------------


def test_credentials_secret_pass(dev_built: Built) -> None:
    reg = dev_built.one(CONTAINER, "postgres-container")
    assert violations("credentials-secret", _from_registration(reg)) == []
    assert violations("credentials-secret", _from_registration(reg, keep_marks=True)) == []


def test_credential_env_without_secret_output_option_fails(container: dict[str, Any]) -> None:
    found = violations("credentials-secret", _args(CONTAINER, container, secret_outputs=[]))
    assert len(found) == 1 and "REDISCLI_AUTH" in found[0]


def test_no_credential_env_needs_no_option(container: dict[str, Any]) -> None:
    container["envs"] = ["POSTGRES_HOST_AUTH_METHOD=scram-sha-256", "NEO4J_AUTH_PATH=/run/x"]
    container["command"] = ["redis-server"]
    assert violations("credentials-secret", _args(CONTAINER, container)) == []


def test_plain_credential_value_fails_where_secret_marks_are_visible(dev_built: Built) -> None:
    props = copy.deepcopy(dev_built.one(CONTAINER, "postgres-container").inputs)
    envs = rpc.unwrap_rpc_secret(props["envs"])
    # the password alone secret: fine; the password in the clear next to a secret: not
    props["envs"] = [rpc.wrap_rpc_secret(e) if "PASSWORD" in e else e for e in envs]
    props["healthcheck"] = rpc.wrap_rpc_secret(props["healthcheck"])  # marks present elsewhere
    ok = _args(CONTAINER, props, secret_outputs=["envs"])
    assert violations("credentials-secret", ok) == []
    props["envs"] = envs
    found = violations("credentials-secret", _args(CONTAINER, props, secret_outputs=["envs"]))
    assert len(found) == 1 and "POSTGRES_PASSWORD" in found[0] and "plain" in found[0]


@pytest.mark.parametrize(
    "command",
    [
        ["redis-server", "--requirepass", "hunter2-hunter2"],
        ["sh", "-c", "exec redis-server --requirepass=hunter2 --appendonly yes"],
        ["typesense-server", "--api-key=abc123"],
    ],
)
def test_literal_credential_in_command_fails(container: dict[str, Any], command: list[str]) -> None:
    container["command"] = command
    found = violations("credentials-secret", _args(CONTAINER, container, secret_outputs=["envs"]))
    assert len(found) == 1 and "literal value" in found[0]


def test_literal_credential_in_healthcheck_fails(container: dict[str, Any]) -> None:
    container["healthcheck"]["tests"] = ["CMD", "tool", "--password", "s3cret"]
    found = violations("credentials-secret", _args(CONTAINER, container, secret_outputs=["envs"]))
    assert len(found) == 1 and "literal value" in found[0]


# -- tls-only ----------------------------------------------------------------------------------


def _container_of(built: Built, backend: str) -> dict[str, Any]:
    """A backend's container as an analyzer sees it (a fresh copy)."""
    return _strip(built.one(CONTAINER, f"{backend}-container").inputs)


def _tls_args(props: dict[str, Any]) -> ResourceValidationArgs:
    return _args(CONTAINER, props, secret_outputs=["envs", "uploads"])


def _set_env(props: dict[str, Any], name: str, value: str | None) -> None:
    envs = [e for e in props["envs"] if not e.startswith(f"{name}=")]
    props["envs"] = envs if value is None else [*envs, f"{name}={value}"]


def _replace_in_command(props: dict[str, Any], old: str, new: str) -> None:
    assert any(old in part for part in props["command"]), old
    props["command"] = [part.replace(old, new) for part in props["command"]]


def _upload(props: dict[str, Any], path: str) -> dict[str, Any]:
    return next(u for u in props["uploads"] if u["file"] == path)


HBA = "/etc/mas/postgres/pg_hba.conf"


@pytest.mark.parametrize(
    ("backend", "change", "problem"),
    [
        ("postgres", lambda c: _replace_in_command(c, "-c ssl=on ", ""), "without ssl=on"),
        (
            "postgres",
            lambda c: _upload(c, HBA).update(
                content=_upload(c, HBA)["content"] + "host all all 0.0.0.0/0 scram-sha-256\n"
            ),
            "admits connections without TLS",
        ),
        (
            "postgres",
            lambda c: _replace_in_command(c, f" -c hba_file={HBA}", ""),
            "image's pg_hba.conf",
        ),
        ("redis", lambda c: _replace_in_command(c, "--port 0 ", ""), "lacks '--port 0'"),
        (
            "redis",
            lambda c: c["ports"].append({**c["ports"][0], "internal": 6380, "external": 6380}),
            "published but redis serves TLS only on [6379]",
        ),
        (
            "neo4j",
            lambda c: _set_env(c, "NEO4J_server_http_enabled", "true"),
            "plaintext HTTP connector is on",
        ),
        (
            "neo4j",
            lambda c: _set_env(c, "NEO4J_server_bolt_tls__level", "OPTIONAL"),
            "does not require TLS",
        ),
        (
            "neo4j",
            lambda c: c["ports"].append({**c["ports"][0], "internal": 7474, "external": 7474}),
            "published but neo4j serves TLS only on [7473, 7687]",
        ),
        ("typesense", lambda c: c.pop("command"), "no --ssl-certificate"),
        (
            "qdrant",
            lambda c: _set_env(c, "QDRANT__SERVICE__ENABLE_TLS", "false"),
            "QDRANT__SERVICE__ENABLE_TLS is not true",
        ),
        (
            "qdrant",
            lambda c: c.update(labels=[]),
            "no 'mas.backend' label",
        ),
    ],
)
def test_tls_only_fails(dev_built: Built, backend: str, change: Any, problem: str) -> None:
    props = _container_of(dev_built, backend)
    assert violations("tls-only", _tls_args(props)) == []
    change(props)
    found = violations("tls-only", _tls_args(props))
    assert found and problem in found[0], found


def test_tls_only_runs_during_a_first_preview(dev_built: Built) -> None:
    # Certificates and generated passwords are unknown then; the TLS switches are not.
    for backend in ("postgres", "redis", "qdrant", "neo4j", "typesense"):
        props = _container_of(dev_built, backend)
        for upload in props["uploads"]:
            if upload["file"] != HBA:
                upload["content"] = UNKNOWN_STRING_VALUE
        props["envs"] = [
            UNKNOWN_STRING_VALUE if any(k in e for k in ("PASSWORD", "API_KEY", "AUTH=")) else e
            for e in props["envs"]
        ]
        assert violations("tls-only", _tls_args(props)) == [], backend
        with pytest.raises(UnknownValueError):  # reported by the SDK; runs on `up`
            violations("tls-certificates-mounted", _tls_args(props))


# -- tls-certificates-mounted ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "change", "problem"),
    [
        (
            "typesense",
            lambda c: c.update(
                uploads=[u for u in c["uploads"] if u["file"] != "/etc/mas/tls/server.key"]
            ),
            "the key typesense reads (/etc/mas/tls/server.key) is not uploaded",
        ),
        (
            "qdrant",
            lambda c: _upload(c, "/etc/mas/tls/server.key").update(permissions="0644"),
            "readable beyond its owner (mode 0644)",
        ),
        (
            "postgres",
            lambda c: _replace_in_command(c, "install -D -m 0600", "install -D -m 0640"),
            "readable beyond its owner (mode 0640)",
        ),
        (
            "redis",
            lambda c: _upload(c, "/etc/mas/tls/server.crt").update(content="not a certificate"),
            "holds no PEM certificate",
        ),
        (
            "neo4j",
            lambda c: _upload(c, "/var/lib/neo4j/certificates/bolt/private.key").update(
                content="-----BEGIN CERTIFICATE-----\n"
            ),
            "holds no PEM private key",
        ),
        (
            "neo4j",
            lambda c: _set_env(c, "NEO4J_dbms_ssl_policy_bolt_base__directory", "/ssl/bolt"),
            "(/ssl/bolt/public.crt) is not uploaded",
        ),
    ],
)
def test_tls_certificates_mounted_fails(
    dev_built: Built, backend: str, change: Any, problem: str
) -> None:
    props = _container_of(dev_built, backend)
    assert violations("tls-certificates-mounted", _tls_args(props)) == []
    change(props)
    found = violations("tls-certificates-mounted", _tls_args(props))
    assert len(found) >= 1 and any(problem in f for f in found), found


# -- tls-keys-secret ---------------------------------------------------------------------------


def test_key_uploads_need_uploads_as_a_secret_output(dev_built: Built) -> None:
    props = _container_of(dev_built, "typesense")
    found = violations("tls-keys-secret", _args(CONTAINER, props, secret_outputs=["envs"]))
    assert len(found) == 1 and "'uploads' is not in additional_secret_outputs" in found[0]


def test_key_upload_in_the_clear_fails_where_secret_marks_are_visible(dev_built: Built) -> None:
    props = copy.deepcopy(dev_built.one(CONTAINER, "qdrant-container").inputs)
    uploads = [rpc.unwrap_rpc_secret(u) if rpc.is_rpc_secret(u) else u
               for u in rpc.unwrap_rpc_secret(props["uploads"])]  # fmt: skip
    for upload in uploads:  # only the key secret: fine
        if "PRIVATE KEY" in upload["content"]:
            upload["content"] = rpc.wrap_rpc_secret(upload["content"])
    props["uploads"] = uploads
    args = _args(CONTAINER, props, secret_outputs=["envs", "uploads"])
    assert violations("tls-keys-secret", args) == []
    for upload in uploads:
        upload["content"] = (
            rpc.unwrap_rpc_secret(upload["content"])
            if rpc.is_rpc_secret(upload["content"])
            else upload["content"]
        )
    found = violations(
        "tls-keys-secret", _args(CONTAINER, props, secret_outputs=["envs", "uploads"])
    )
    assert len(found) == 1 and "/etc/mas/tls/server.key" in found[0] and "plain" in found[0]


@pytest.mark.parametrize(
    ("name", "secret_outputs", "missing"),
    [
        ("tls-ca-key", ["privateKeyPem"], "privateKeyPemPkcs8"),
        ("tls-lab-a-cert", [], "caPrivateKeyPem"),
        ("tls-lab-a-csr", [], "privateKeyPem"),
        ("tls-ca-cert", [], "privateKeyPem"),
    ],
)
def test_tls_resources_keep_private_keys_secret(
    dev_built: Built, name: str, secret_outputs: list[str], missing: str
) -> None:
    reg = next(r for r in dev_built.registrations if r.name == name)
    assert violations("tls-keys-secret", _from_registration(reg)) == []
    found = violations(
        "tls-keys-secret", _args(reg.type, _strip(reg.inputs), secret_outputs=secret_outputs)
    )
    assert len(found) == 1 and missing in found[0], found
