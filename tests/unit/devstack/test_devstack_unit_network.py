"""Simulated hosts: the plan read from a stack file, and real namespaces, links and faults.

The plan tests are pure. The others build real network namespaces, a bridge and veth links
(they need root, as CI has) under a prefix and a subnet of their own, run a small TCP server
inside a host, and check what a client in this namespace sees: the server on the host's address
only, a partition, a blackhole, random loss, the heal, and nothing left after ``destroy``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mas_devstack import DevstackError
from mas_devstack._network import (
    NET_PREFIX_ENV,
    SUBNET_ENV,
    HostNetwork,
    NetworkPlan,
    network_prefix,
    plan_network,
    read_stack_file,
)

ROOT = Path(__file__).resolve().parents[3]
DEV = ROOT / "Pulumi.dev.yaml"
_ROOT_ONLY = pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces need root (CI runs as root)"
)


def needs_root(test: Callable[..., None]) -> Callable[..., None]:
    """Network namespaces: root, and the host's iproute2 and nftables (``host_system``)."""
    return pytest.mark.host_system(_ROOT_ONLY(test))


def _test_prefix() -> str:
    """Names no other run uses: the developer's prefix (if any) plus random hex digits."""
    return (os.environ.get(NET_PREFIX_ENV) or "mt")[:4] + secrets.token_hex(2)


def _routes() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    return [ipaddress.ip_network(line.split()[0]) for line in out.splitlines() if "/" in line]


def _free_subnet() -> str:
    taken = _routes()
    for _ in range(100):
        candidate = ipaddress.ip_network(f"10.217.{secrets.randbelow(256)}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return str(candidate)
    raise AssertionError("no free 10.217.x.0/24")


# -- the plan ----------------------------------------------------------------------------------


def test_the_dev_stack_file_gives_two_hosts_and_the_placement() -> None:
    parsed = read_stack_file(DEV)
    assert parsed.hosts == ("lab-a", "lab-b")
    assert {b: parsed.placement[b] for b in ("postgres", "redis", "neo4j", "typesense")} == {
        "postgres": "lab-a",
        "redis": "lab-a",
        "neo4j": "lab-b",
        "typesense": "lab-b",
    }


def test_the_plan_maps_hosts_to_the_private_subnet_never_the_lab_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SUBNET_ENV, "10.216.7.0/24")
    plan = plan_network(DEV, "mxy1")
    assert [(h.name, h.address, h.namespace, h.veth) for h in plan.hosts] == [
        ("lab-a", "10.216.7.10", "mxy1-lab-a", "mxy1-0"),
        ("lab-b", "10.216.7.11", "mxy1-lab-b", "mxy1-1"),
    ]
    assert (plan.bridge, plan.gateway, plan.subnet) == ("mxy1-br", "10.216.7.1", "10.216.7.0/24")
    assert plan.host_for("postgres").name == plan.host_for("redis").name == "lab-a"
    assert plan.host_for("neo4j").name == plan.host_for("typesense").name == "lab-b"
    assert "qdrant" not in plan.placement  # embedded in the client's process: no host
    assert "192.168." not in plan.model_dump_json()
    assert NetworkPlan.model_validate_json(plan.model_dump_json()) == plan


@pytest.mark.parametrize(
    ("subnet", "problem"),
    [
        ("192.168.107.0/24", "must lie in 10.0.0.0/8"),
        ("172.16.0.0/24", "must lie in 10.0.0.0/8"),
        ("fd00::/64", "must lie in 10.0.0.0/8"),
        ("10.216.0.0/29", "too small"),
        ("lab", "not a network"),
    ],
)
def test_a_subnet_off_the_private_range_or_too_small_is_refused(
    monkeypatch: pytest.MonkeyPatch, subnet: str, problem: str
) -> None:
    monkeypatch.setenv(SUBNET_ENV, subnet)
    with pytest.raises(DevstackError, match=problem):
        plan_network(DEV, "mxy1")


def test_the_default_prefix_differs_per_root_and_port_base(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(NET_PREFIX_ENV, raising=False)
    names = {network_prefix(root, base) for root in (tmp_path, ROOT) for base in (21000, 55432)}
    assert len(names) == 4
    assert all(name.startswith("mas") and len(name) == 7 for name in names)
    monkeypatch.setenv(NET_PREFIX_ENV, "Bad-Prefix")
    with pytest.raises(DevstackError, match=NET_PREFIX_ENV):
        network_prefix(tmp_path, 21000)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("config: {}\n", "must set mas-memory:hosts"),
        ("hosts: []\n", "no 'config' map"),
        (
            "config:\n  mas-memory:hosts: {a: {address: 10.0.0.1}}\n"
            "  mas-memory:placement: {postgres: a, redis: a, neo4j: a}\n",
            "typesense",
        ),
        (
            "config:\n  mas-memory:hosts: {a: {address: 10.0.0.1}}\n"
            "  mas-memory:placement: {postgres: a, redis: a, neo4j: a, typesense: z}\n",
            r"host\(s\) \['z'\]",
        ),
    ],
)
def test_a_stack_file_without_hosts_or_placement_is_refused(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(text)
    with pytest.raises(DevstackError, match=problem):
        read_stack_file(path)


# -- real namespaces ---------------------------------------------------------------------------

SERVER = """
import socket, sys
server = socket.socket()
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen()
print("listening", flush=True)
while True:
    conn, _ = server.accept()
    data = conn.recv(64)
    conn.sendall(data)
    conn.close()
"""
PORT = 21090


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Iterator[HostNetwork]:
    monkeypatch.setenv(SUBNET_ENV, _free_subnet())
    net = HostNetwork(plan_network(DEV, _test_prefix()))
    net.create()
    try:
        yield net
    finally:
        net.destroy()
        assert net.leftovers() == []


@pytest.fixture
def echo(network: HostNetwork) -> Iterator[str]:
    """A TCP echo server inside lab-a's namespace, on lab-a's address; yields that address."""
    host = network.plan.host("lab-a")
    command, _ = network.wrap(host, [sys.executable, "-c", SERVER, host.address, str(PORT)], {})
    proc = subprocess.Popen(command, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"listening\n"
        yield host.address
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


def _ask(address: str, timeout: float = 2.0) -> bytes:
    with socket.create_connection((address, PORT), timeout=timeout) as sock:
        sock.sendall(b"ping")
        return sock.recv(4)


@needs_root
def test_create_builds_every_namespace_and_link(network: HostNetwork) -> None:
    assert network.exists()
    assert sorted(network.leftovers()) == sorted(
        [f"netns {h.namespace}" for h in network.plan.hosts]
        + [f"link {network.plan.bridge}"]
        + [f"link {h.veth}" for h in network.plan.hosts]
    )
    for host in network.plan.hosts:
        shown = subprocess.run(
            ["ip", "netns", "exec", host.namespace, "ip", "-4", "-o", "addr", "show", "eth0"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"inet {host.address}/24" in shown


@needs_root
def test_a_second_create_with_the_same_names_is_refused(network: HostNetwork) -> None:
    with pytest.raises(DevstackError, match="already exist"):
        HostNetwork(network.plan).create()


@needs_root
def test_an_overlapping_subnet_is_refused_and_builds_nothing(
    network: HostNetwork, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SUBNET_ENV, network.plan.subnet)
    other = HostNetwork(plan_network(DEV, _test_prefix()))
    with pytest.raises(DevstackError, match="overlaps"):
        other.create()
    assert other.leftovers() == []


@needs_root
def test_the_server_answers_on_its_hosts_address_only(network: HostNetwork, echo: str) -> None:
    assert _ask(echo) == b"ping"
    with pytest.raises(ConnectionRefusedError):  # nothing listens on that port in this namespace
        _ask("127.0.0.1")
    # the other host reaches it across the bridge, as a replica would
    other = network.plan.host("lab-b")
    reached = subprocess.run(
        ["ip", "netns", "exec", other.namespace, sys.executable, "-c",
         f"import socket; s = socket.create_connection(({echo!r}, {PORT}), 2); "
         "s.sendall(b'ping'); print(s.recv(4).decode())"],
        capture_output=True, text=True, check=True, timeout=10,
    ).stdout  # fmt: skip
    assert reached.strip() == "ping"


@needs_root
def test_a_partition_cuts_the_host_off_and_the_heal_restores_it(
    network: HostNetwork, echo: str
) -> None:
    assert _ask(echo) == b"ping"
    network.partition("lab-a")
    began = time.monotonic()
    with pytest.raises((TimeoutError, OSError)) as caught:
        _ask(echo, timeout=4.0)
    # no route to the host once the neighbour is unreachable, or silence until the timeout
    assert isinstance(caught.value, TimeoutError) or caught.value.errno == errno.EHOSTUNREACH
    assert time.monotonic() - began <= 4.5
    network.heal("lab-a")
    assert _ask(echo, timeout=5.0) == b"ping"


@needs_root
def test_a_blackhole_drops_silently_no_rst_and_the_heal_restores_it(
    network: HostNetwork, echo: str
) -> None:
    network.blackhole("lab-a")
    began = time.monotonic()
    with pytest.raises(TimeoutError):  # not ConnectionRefusedError (an RST), not unreachable
        _ask(echo, timeout=1.5)
    assert time.monotonic() - began >= 1.4
    network.heal("lab-a")
    assert _ask(echo) == b"ping"


@needs_root
def test_degrade_drops_a_share_of_packets_and_the_heal_removes_the_rule(
    network: HostNetwork, echo: str
) -> None:
    namespace = network.plan.host("lab-a").namespace
    network.degrade("lab-a", 5)
    ruleset = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "list", "ruleset"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert ruleset.count("numgen random mod 100 < 5 drop") == 2  # in and out
    network.degrade("lab-a", 5)  # a second fault replaces the first, it does not stack
    again = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "list", "ruleset"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert again.count("numgen random mod 100 < 5 drop") == 2
    assert all(_ask(echo, timeout=5.0) == b"ping" for _ in range(20))  # TCP retransmits
    network.heal("lab-a")
    healed = subprocess.run(
        ["ip", "netns", "exec", namespace, "nft", "list", "ruleset"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "numgen" not in healed
    with pytest.raises(DevstackError, match="1-99"):
        network.degrade("lab-a", 100)


@needs_root
def test_destroy_removes_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(SUBNET_ENV, _free_subnet())
    net = HostNetwork(plan_network(DEV, _test_prefix()))
    net.create()
    removed = net.destroy()
    assert sorted(removed) == sorted(
        [f"netns {h.namespace}" for h in net.plan.hosts] + [f"link {net.plan.bridge}"]
    )  # the namespaces took their links along
    assert net.leftovers() == []
    assert net.destroy() == []  # idempotent
