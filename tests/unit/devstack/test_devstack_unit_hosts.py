"""The Stack on simulated hosts, with a stand-in echo server in the redis slot (milliseconds).

``up`` with a stack file builds the namespaces and runs the server inside its host's namespace
on that host's address only; the outputs name that address; ``down`` removes the namespaces and
links; a failed ``up`` leaves nothing behind; a root that runs a loopback stack refuses to switch.
Needs root (CI runs as root).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from devstack_fakes import ECHO, EchoService, with_echo
from test_devstack_unit_network import DEV, _free_subnet, _test_prefix

from mas_devstack import DevstackError, ServiceStartError, Stack
from mas_devstack._network import NET_PREFIX_ENV, SUBNET_ENV, HostNetwork
from mas_devstack._process import port_open

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI runs as root)"),
    pytest.mark.host_system,
]

NET_ECHO = ECHO.replace(
    'server.bind(("127.0.0.1", int(sys.argv[1])))', "server.bind((sys.argv[2], int(sys.argv[1])))"
)


class NetEcho(EchoService):
    """The echo server on the service's own address (its simulated host's)."""

    def command(self) -> list[str]:
        return [sys.executable, "-c", NET_ECHO, str(self.port), self.host]

    def probe(self, timeout: float) -> None:
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"ping")
            if sock.recv(4) != b"ping":
                raise RuntimeError("no echo")

    def outputs(self) -> dict[str, str | None]:
        return {"redis_url": f"redis://{self.host}:{self.port}/0"}


class BrokenEcho(NetEcho):
    script = "import sys; print('refusing to start', flush=True); sys.exit(3)"

    def command(self) -> list[str]:
        return [sys.executable, "-c", self.script]


def _on_hosts(stack: Stack, cls: type[NetEcho] = NetEcho) -> NetEcho:
    plan = stack.plan
    assert plan is not None
    service = cls(
        stack.layout,
        stack.ports,
        stack._load_secrets(),
        host=plan.host_for("redis").address,
        clients=plan.subnet,
    )
    stack._services["redis"] = service
    return service


@pytest.fixture
def hosts_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    monkeypatch.setenv(SUBNET_ENV, _free_subnet())
    monkeypatch.setenv(NET_PREFIX_ENV, _test_prefix())
    stack = Stack(tmp_path, port_base=21070 + secrets.randbelow(5) * 5, hosts=DEV)
    yield stack
    stack.down()
    plan = stack.plan
    if plan is not None:  # down failed to forget it: clean up, then fail below
        HostNetwork(plan).destroy()
    assert not stack.network_path.exists()


def test_up_runs_the_server_in_its_hosts_namespace_on_that_address_only(
    hosts_stack: Stack,
) -> None:
    plan = hosts_stack.plan
    assert plan is not None
    service = _on_hosts(hosts_stack)
    result = hosts_stack.up(["redis"])
    assert result.started == ["redis"]
    lab_a = plan.host("lab-a")
    pid = hosts_stack.pid("redis")
    assert pid is not None
    identified = subprocess.run(
        ["ip", "netns", "identify", str(pid)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert identified == lab_a.namespace  # the PID started is the server itself, in lab-a
    assert service.check(2.0)
    assert not port_open(service.port)  # nothing on loopback
    assert result.outputs["redis_url"] == f"redis://{lab_a.address}:{service.port}/0"
    assert json.loads(hosts_stack.network_path.read_text()) == plan.model_dump(mode="json")
    # a Stack object made later (no hosts argument) finds the running hosts
    again = Stack(hosts_stack.root, port_base=hosts_stack.ports.postgres)
    assert again.plan == plan


def test_down_removes_the_namespaces_and_links(hosts_stack: Stack) -> None:
    _on_hosts(hosts_stack)
    hosts_stack.up(["redis"])
    network = hosts_stack.network
    assert network.exists()
    assert hosts_stack.down() == ["redis"]
    assert network.leftovers() == []
    assert not hosts_stack.network_path.exists()


def test_a_failed_up_leaves_nothing_behind(hosts_stack: Stack) -> None:
    _on_hosts(hosts_stack, BrokenEcho)
    network = hosts_stack.network
    with pytest.raises(ServiceStartError, match="exited with status 3") as caught:
        hosts_stack.up(["redis"])
    assert "refusing to start" in str(caught.value)
    assert network.leftovers() == []
    assert not hosts_stack.network_path.exists()
    assert hosts_stack.pid("redis") is None


def test_a_root_running_on_loopback_does_not_switch_to_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SUBNET_ENV, _free_subnet())
    monkeypatch.setenv(NET_PREFIX_ENV, _test_prefix())
    loopback = Stack(tmp_path, port_base=21085)
    with_echo(loopback)
    loopback.start("redis")
    try:
        on_hosts = Stack(tmp_path, port_base=21085, hosts=DEV)
        network = HostNetwork(on_hosts.plan)  # type: ignore[arg-type]
        with pytest.raises(DevstackError, match=r"run\(s\) on loopback"):
            on_hosts.up(["redis"])
        assert network.leftovers() == []
        assert loopback.pid("redis") is not None  # untouched
    finally:
        loopback.down(["redis"])
