"""The stack config parser: the committed stack files, and every way a config can be wrong."""

from __future__ import annotations

import copy
import os
import re
from typing import Any
from urllib.parse import urlsplit

import mas_policies
import pytest
from infra_harness import stack_file_config
from mas_infra import (
    BACKENDS,
    DEFAULT_IMAGES,
    DEFAULT_PORTS,
    InfraConfigError,
    image_reference_problem,
    parse_config,
)

from mas_storage import get_adapter_class


@pytest.fixture
def dev() -> dict[str, Any]:
    return {**stack_file_config("dev"), "sshUser": "labuser"}


def test_dev_stack_places_backends_as_the_spec_prerequisites() -> None:
    cfg = parse_config({**stack_file_config("dev"), "sshUser": "labuser"})
    first = {b for b in BACKENDS if cfg.host_for(b).address == "192.168.107.172"}
    second = {b for b in BACKENDS if cfg.host_for(b).address == "192.168.107.187"}
    assert first == {"postgres", "redis"}
    assert second == {"qdrant", "neo4j", "typesense"}
    assert {h.docker_host for h in cfg.hosts.values()} == {
        "ssh://labuser@192.168.107.172",
        "ssh://labuser@192.168.107.187",
    }
    assert cfg.used_hosts == ("lab-a", "lab-b")
    # the lab keeps the services' standard ports
    assert cfg.ports == {b: dict(p) for b, p in DEFAULT_PORTS.items()}


def test_default_images_are_exact_versions() -> None:
    # One source of truth for versions: the backend versions manifest (test_infra_versions.py);
    # the stack files leave the images to it.
    assert "images" not in stack_file_config("dev")
    for ref in DEFAULT_IMAGES.values():
        assert image_reference_problem(ref) is None
        assert re.search(r":v?\d+(\.\d+)+", ref), f"{ref} is not an exact version"


def test_dev_stack_needs_the_ssh_user_from_config() -> None:
    with pytest.raises(InfraConfigError, match="sshUser"):
        parse_config(stack_file_config("dev"))


def test_local_stack_is_the_local_daemon_on_the_core_settings_default_ports(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    cfg = parse_config(stack_file_config("local"))
    assert cfg.used_hosts == ("local",)
    local = cfg.hosts["local"]
    assert local.docker_host == "unix:///var/run/docker.sock"
    assert local.address == "127.0.0.1"
    # The Docker stack replaces mas-devstack: same ports as the core settings' loopback defaults.
    monkeypatch.chdir(tmp_path)  # no .env, no .mas/stack-outputs.json
    for name in list(os.environ):
        if name.split("_")[0] in {"POSTGRES", "REDIS", "NEO4J", "TYPESENSE", "MAS"}:
            monkeypatch.delenv(name)
    pg, rd, neo, ts = (
        get_adapter_class(kind).settings_model
        for kind in ("postgres", "redis", "neo4j", "typesense")
    )
    defaults = {
        "postgres": urlsplit(pg.model_fields["url"].get_default().get_secret_value()).port,
        "redis": rd.model_fields["port"].get_default(),
        "neo4j": urlsplit(neo.model_fields["url"].get_default()).port,
        "typesense": urlsplit(ts.model_fields["url"].get_default()).port,
    }
    assert cfg.ports["postgres"]["postgres"] == defaults["postgres"]
    assert cfg.ports["redis"]["redis"] == defaults["redis"]
    assert cfg.ports["neo4j"]["bolt"] == defaults["neo4j"]
    assert cfg.ports["typesense"]["http"] == defaults["typesense"]


def test_a_third_host_is_one_more_entry(dev: dict[str, Any]) -> None:
    dev["hosts"]["lab-c"] = {"address": "192.168.107.200", "user": "ops"}
    dev["placement"]["typesense"] = "lab-c"
    cfg = parse_config(dev)
    assert cfg.used_hosts == ("lab-a", "lab-b", "lab-c")
    assert cfg.host_for("typesense").docker_host == "ssh://ops@192.168.107.200"
    assert cfg.host_for("neo4j").name == "lab-b"


def test_ipv6_host_is_bracketed_in_urls(dev: dict[str, Any]) -> None:
    dev["hosts"]["lab-a"] = {"address": "fd00::172"}
    cfg = parse_config(dev)
    assert cfg.hosts["lab-a"].url_host == "[fd00::172]"
    assert cfg.hosts["lab-a"].docker_host == "ssh://labuser@[fd00::172]"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c.pop("hosts"), "hosts must be a map"),
        (lambda c: c.update(hosts={}), "hosts must be a map"),
        (lambda c: c["hosts"].update({"Lab_A": {"address": "10.0.0.1"}}), "name 'Lab_A'"),
        (lambda c: c["hosts"]["lab-a"].update(address="0.0.0.0"), "every interface"),  # noqa: S104
        (lambda c: c["hosts"]["lab-a"].update(address="::"), "every interface"),
        (lambda c: c["hosts"]["lab-a"].update(address="lab-a.example"), "IP address"),
        (lambda c: c["hosts"]["lab-a"].update(docker="http://x"), "Docker daemon URL"),
        (lambda c: c["hosts"]["lab-a"].update(sshOpts="-v"), "sshOpts"),
        (lambda c: c["placement"].pop("redis"), "placement.redis is missing"),
        (lambda c: c["placement"].update(redis="lab-z"), "host 'lab-z'"),
        (lambda c: c["placement"].update(mysql="lab-a"), "unknown backend"),
        (lambda c: c.update(images={"redis": "redis:latest"}), "images.redis: .*latest"),
        (lambda c: c.update(images={"redis": "redis"}), "images.redis: .*no tag"),
        (lambda c: c.update(images={"redis": "reg:5000/redis"}), "images.redis: .*no tag"),
        (lambda c: c.update(images={"kafka": "kafka:3.7.0"}), "unknown backend"),
        (lambda c: c.update(ports={"redis": {"redis": 70000}}), "ports.redis.redis"),
        (lambda c: c.update(ports={"redis": {"tls": 6380}}), "unknown port name"),
        (lambda c: c.update(ports={"redis": {"redis": 5432}}), "already published by postgres"),
        (lambda c: c["memoryMb"].update(neo4j="3G"), "memoryMb.neo4j"),
        (lambda c: c.update(neo4jHeap="lots"), "neo4jHeap"),
        (lambda c: c.update(namePrefix="Bad Prefix"), "namePrefix"),
        (lambda c: c["hosts"]["lab-a"].update(adress="10.0.0.1"), "hosts.lab-a.adress"),
        (lambda c: c.update(ports={"redis": {"redis": True}}), "ports.redis.redis"),
        (lambda c: c.update(placement=["lab-a"]), "placement must be a map"),
    ],
)
def test_bad_config_is_refused_naming_the_key(
    dev: dict[str, Any], mutate: Any, message: str
) -> None:
    cfg = copy.deepcopy(dev)
    mutate(cfg)
    with pytest.raises(InfraConfigError, match=message):
        parse_config(cfg)


def test_same_port_on_different_hosts_is_fine(dev: dict[str, Any]) -> None:
    dev["ports"] = {"qdrant": {"http": 5432}}  # postgres has 5432 on lab-a, qdrant is on lab-b
    assert parse_config(dev).ports["qdrant"]["http"] == 5432


@pytest.mark.parametrize(
    ("ref", "ok"),
    [
        ("postgres:16.13-bookworm", True),
        ("registry.local:5000/team/redis:7.4.11", True),
        ("redis@sha256:" + "a" * 64, True),
        ("redis", False),
        ("redis:latest", False),
        ("redis:LATEST", False),
        ("registry.local:5000/redis", False),
        ("redis:", False),
        ("", False),
    ],
)
def test_image_reference_pinning(ref: str, ok: bool) -> None:
    assert (image_reference_problem(ref) is None) is ok
    # one rule: the program checks its config with the policy pack's own function
    assert image_reference_problem is mas_policies.image_reference_problem
