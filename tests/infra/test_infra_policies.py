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
from pulumi_policy import EnforcementLevel, ResourceValidationArgs
from pulumi_policy.policy import PolicyCustomTimeouts, PolicyResourceOptions
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

RULES = {p.name: p for p in POLICIES}


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


def test_pack_has_the_five_mandatory_rules() -> None:
    assert sorted(RULES) == [
        "containers-healthcheck-restart",
        "credentials-secret",
        "images-pinned",
        "ports-not-public",
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
        if not reg.type.startswith("docker:index/"):
            continue
        for rule in RULES:
            assert violations(rule, _from_registration(reg, keep_marks=keep_marks)) == [], (
                f"{reg.name} breaks {rule}"
            )
        checked += 1
    assert checked == 15  # 5 images, 5 volumes, 5 containers


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
