"""The mas-memory policy rules, as plain checks plus the ``ResourceValidationPolicy`` list.

Run with ``pulumi preview --policy-pack infra/policy``. Each rule is a pure function over a
resource's properties (engine names: ``waitTimeout``, ``volumeName``, ...) and options, so the
tests run it on passing and failing resources without the CLI.

What a Python policy can see, and what follows:

* Analyzers get the resource options ``protect``, ``deleteBeforeReplace`` and
  ``additionalSecretOutputs``, but not ``retainOnDelete``: "every data volume is retained" is
  checked as ``protect=True`` (the program sets both).
* Python policies get secret values already decrypted and without their secret mark
  (pulumi/pulumi-policy#241). "Every credential-bearing env value is secret" is checked through
  what the engine does pass: a container with a credential in its env must list ``envs`` in
  ``additionalSecretOutputs`` (the engine then stores the env encrypted whatever the input), and
  no command, entrypoint or healthcheck may carry a literal credential flag value. Where the
  properties do carry secret marks (``pulumi_policy.Secret`` or the wire form, as in
  remediations and in the unit tests' captured inputs), a credential env value outside a secret
  is a violation too.
* The three TLS rules (``tls-only``, ``tls-certificates-mounted``, ``tls-keys-secret``) are in
  ``mas_tls_policies``; how every rule reads marks, env and uploads is ``mas_policy_values``.
* During a first preview some values are unknown (the container's image ID, env built from a
  password not generated yet): the SDK then reports "can't run policy during preview" and the
  rule runs on ``pulumi up``, where the values are known.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from mas_cluster_policies import CLUSTER_POLICIES
from mas_policy_values import has_marks as _has_marks
from mas_policy_values import is_secret as _is_secret
from mas_policy_values import label as _label
from mas_policy_values import plain as _plain
from mas_tls_policies import check_tls_files, check_tls_keys_secret, check_tls_served
from pulumi_policy import (
    EnforcementLevel,
    Policy,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

__all__ = [
    "CONTAINER",
    "PACK_NAME",
    "POLICIES",
    "REMOTE_IMAGE",
    "VOLUME",
    "check_container_health",
    "check_credentials_secret",
    "check_image_pinned",
    "check_no_public_ports",
    "check_tls_files",
    "check_tls_keys_secret",
    "check_tls_served",
    "check_volume_retained",
    "credential_env_names",
    "image_reference_problem",
]

PACK_NAME = "mas-memory-infra"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"

_RESTARTS = frozenset({"always", "unless-stopped", "on-failure"})
_CREDENTIAL_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|AUTH)", re.IGNORECASE)
# Names that mention a credential but hold a setting or a path to one, not the value.
_NOT_A_CREDENTIAL = re.compile(
    r"_(FILE|PATH|METHOD|ENABLED|MINIMUM\w*|CLIENT_+AUTH)$", re.IGNORECASE
)
_CREDENTIAL_FLAG = re.compile(
    r"--(requirepass|masterauth|password|pass|api-key|apikey|auth|token|secret)(?:=|\s+)(\S+)",
    re.IGNORECASE,
)


# -- pure checks: each returns the list of problems (empty = pass) ---------------------------


def image_reference_problem(ref: object) -> str | None:
    """Why ``ref`` is not pinned to an exact version (tag other than ``latest``, or digest).

    The one rule: the program checks its ``images`` config with this same function
    (``mas_infra`` imports it), so the config check and the policy cannot disagree.
    """
    if not isinstance(ref, str) or not ref.strip():
        return "the image reference is empty"
    if "@sha256:" in ref or re.fullmatch(r"sha256:[0-9a-f]{64}", ref):
        return None  # a digest, or an image ID (what a container gets from RemoteImage.image_id)
    last = ref.rsplit("/", 1)[-1]  # a registry port (host:5000/img) is not a tag
    if ":" not in last or not last.rsplit(":", 1)[1]:
        return f"image '{ref}' has no tag (it would pull 'latest'); pin an exact version"
    if last.rsplit(":", 1)[1].lower() == "latest":
        return f"image '{ref}' uses the moving tag 'latest'; pin an exact version"
    return None


def check_image_pinned(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """No ``latest`` or untagged image on a RemoteImage (``name``) or a Container (``image``)."""
    key = {REMOTE_IMAGE: "name", CONTAINER: "image"}.get(resource_type)
    if key is None:
        return []
    try:
        ref = _plain(props.get(key))
    except UnknownValueError:
        if resource_type == CONTAINER:
            return []  # computed: another resource's image ID, which that resource is checked for
        raise
    problem = image_reference_problem(ref)
    return [problem] if problem else []


def check_container_health(props: Mapping[str, Any]) -> list[str]:
    """A container has a real healthcheck and a restart policy that brings it back."""
    problems = []
    health = _plain(props.get("healthcheck")) or {}
    tests = list(health.get("tests") or []) if isinstance(health, Mapping) else []
    if not tests or tests[0] == "NONE" or (tests[0] in ("CMD", "CMD-SHELL") and len(tests) < 2):
        problems.append("the container has no healthcheck (healthcheck.tests is empty)")
    restart = _plain(props.get("restart"))
    if restart not in _RESTARTS:
        problems.append(
            f"restart policy is {restart or 'no'!r}; use one of {sorted(_RESTARTS)} "
            "(the program uses 'unless-stopped')"
        )
    return problems


def check_volume_retained(protect: bool) -> list[str]:
    """A data volume is protected (``protect`` is the retention option analyzers are given)."""
    if protect:
        return []
    return [
        "the data volume is not protected: set protect=True (and retain_on_delete=True) so "
        "that neither 'pulumi destroy' nor a replacement deletes the data"
    ]


def check_no_public_ports(props: Mapping[str, Any]) -> list[str]:
    """Every published port names an address, and not 0.0.0.0 or ::."""
    problems = []
    if _plain(props.get("publishAllPorts")):
        problems.append("publishAllPorts publishes every port on all interfaces")
    if _plain(props.get("networkMode")) == "host" and not _binds_only_its_address(props):
        problems.append("networkMode 'host' exposes every listening port on all interfaces")
    for port in _plain(props.get("ports")) or []:
        ip = port.get("ip") if isinstance(port, Mapping) else None
        where = f"port {port.get('external', '?')}->{port.get('internal', '?')}"
        if not ip:
            problems.append(f"{where} has no 'ip': Docker would publish it on 0.0.0.0")
            continue
        try:
            unspecified = ipaddress.ip_address(str(ip).split("/")[0].strip("[]")).is_unspecified
        except ValueError:
            problems.append(f"{where} has ip {ip!r}, which is not an IP address")
            continue
        if unspecified:
            problems.append(f"{where} is published on {ip} (all interfaces); use the lab address")
    return problems


#: Servers whose every listener takes an address to bind: on the host's network, a container
#: of theirs that names a specific address for each binds nothing else (a Typesense Raft
#: member must bind the address its ``--nodes`` list names, so it runs there).
_BIND_FLAGS: Mapping[str, tuple[str, ...]] = {"typesense": ("api-address", "peering-address")}


def _binds_only_its_address(props: Mapping[str, Any]) -> bool:
    flags = _BIND_FLAGS.get(_label(props, "mas.backend") or "")
    if not flags:
        return False
    command = " ".join(str(_plain(p)) for p in _plain(props.get("command")) or [])
    for flag in flags:
        found = re.search(rf"--{flag}=(\S+)", command)
        try:
            if found is None or ipaddress.ip_address(found.group(1)).is_unspecified:
                return False
        except ValueError:
            return False
    return True


def credential_env_names(envs: Iterable[str]) -> list[str]:
    """The names among ``KEY=VALUE`` entries that hold a credential."""
    names = []
    for entry in envs:
        name = str(entry).split("=", 1)[0]
        if _CREDENTIAL_NAME.search(name) and not _NOT_A_CREDENTIAL.search(name):
            names.append(name)
    return names


def check_credentials_secret(
    props: Mapping[str, Any], additional_secret_outputs: Sequence[str]
) -> list[str]:
    """Credential env values are secret, and no argument carries a literal credential."""
    problems = []
    raw_envs = props.get("envs") if isinstance(props, Mapping) else None
    env_secret = _is_secret(raw_envs)
    envs = [_plain(e) for e in (_plain(raw_envs) or [])]
    names = credential_env_names(envs)
    if names and "envs" not in additional_secret_outputs:
        problems.append(
            f"env {names} carries credentials but 'envs' is not in additional_secret_outputs, "
            "so the engine could store it in plain text"
        )
    if names and _has_marks(props) and not env_secret:
        plain = [
            _plain(e).split("=", 1)[0]
            for e in _plain(raw_envs) or []
            if credential_env_names([_plain(e)]) and not _is_secret(e)
        ]
        if plain:
            problems.append(f"env {plain} holds credentials as plain (non-secret) values")
    health = _plain(props.get("healthcheck")) or {}
    args: list[Any] = [
        *(_plain(props.get("command")) or []),
        *(_plain(props.get("entrypoints")) or []),
        *((health.get("tests") or []) if isinstance(health, Mapping) else []),
    ]
    joined = " ".join(str(_plain(a)) for a in args)
    for flag, value in _CREDENTIAL_FLAG.findall(joined):
        if not value.lstrip("\"'").startswith("$"):
            problems.append(
                f"--{flag} is given a literal value in the command or healthcheck; pass the "
                "credential through a secret env variable and reference it ($NAME)"
            )
    return problems


# -- the policies ------------------------------------------------------------------------------


def _report(report_violation: ReportViolation, problems: Iterable[str]) -> None:
    for problem in problems:
        report_violation(problem, None)


def _validate_images(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    _report(report_violation, check_image_pinned(args.resource_type, args.props))


def _validate_health(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        _report(report_violation, check_container_health(args.props))


def _validate_volumes(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == VOLUME:
        _report(report_violation, check_volume_retained(bool(args.opts.protect)))


def _validate_ports(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        _report(report_violation, check_no_public_ports(args.props))


def _validate_credentials(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        secret_outputs = list(args.opts.additional_secret_outputs or [])
        _report(report_violation, check_credentials_secret(args.props, secret_outputs))


def _validate_tls_served(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        _report(report_violation, check_tls_served(args.props))


def _validate_tls_files(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        _report(report_violation, check_tls_files(args.props))


def _validate_tls_keys(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    secret_outputs = list(args.opts.additional_secret_outputs or [])
    _report(report_violation, check_tls_keys_secret(args.resource_type, args.props, secret_outputs))


def _mandatory(
    name: str, description: str, validate: Callable[[ResourceValidationArgs, ReportViolation], None]
) -> ResourceValidationPolicy:
    """A rule that blocks the deployment when violated: every rule of this pack is one."""
    return ResourceValidationPolicy(
        name=name,
        description=description,
        validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


#: ``list[Policy]``, the type ``PolicyPack`` takes (a list is invariant).
POLICIES: list[Policy] = [
    _mandatory(
        "images-pinned",
        "Images are pinned to an exact tag or digest: no 'latest', no untagged.",
        _validate_images,
    ),
    _mandatory(
        "containers-healthcheck-restart",
        "Every container has a healthcheck and a restart policy.",
        _validate_health,
    ),
    _mandatory(
        "volumes-retained",
        "Every data volume is protected, so its data outlives destroy and replace.",
        _validate_volumes,
    ),
    _mandatory(
        "ports-not-public",
        "No port is published on 0.0.0.0 (or ::): only on a host's lab address.",
        _validate_ports,
    ),
    _mandatory(
        "credentials-secret",
        "Credential-bearing env values are secret; no literal credential in args.",
        _validate_credentials,
    ),
    _mandatory(
        "tls-only",
        "Every backend serves TLS only: its TLS switches on, no plaintext listener, and "
        "only TLS ports published.",
        _validate_tls_served,
    ),
    _mandatory(
        "tls-certificates-mounted",
        "The certificate and key each server reads are uploaded into its container, and the "
        "key is readable by its owner only.",
        _validate_tls_files,
    ),
    _mandatory(
        "tls-keys-secret",
        "Private keys are secret: in the containers' uploads and in every pulumi-tls resource.",
        _validate_tls_keys,
    ),
    *CLUSTER_POLICIES,
]
