"""Simulated hosts: the lab's hosts as Linux network namespaces on this machine.

The hosts and the placement come from the very stack file the Pulumi program reads
(``Pulumi.dev.yaml``: ``mas-memory:hosts``, ``mas-memory:placement``). Their lab addresses are
configuration data only and are never used: each host gets an address on a private test subnet
instead, so no packet leaves this machine.

Layout (``<p>`` is the network prefix, see :func:`network_prefix`)::

      root namespace: the clients (tests, adapters), bridge <p>-br = <subnet>.1
         |                    |
      veth <p>-0           veth <p>-1          ... one per host, in the stack file's order
         |                    |
      netns <p>-lab-a      netns <p>-lab-b
      eth0 <subnet>.10     eth0 <subnet>.11    (host i gets <subnet>.(10 + i))
      PostgreSQL, Redis    Neo4j, Typesense    (the placement)

A bridge rather than one veth pair per host: the hosts also reach each other (what replication
between hosts needs), and a fault on one host's link leaves the others untouched.

Faults act on one host: :meth:`HostNetwork.partition` takes its link down (the cable pulled:
neighbour resolution fails, new connections get "no route to host"); :meth:`blackhole` drops
every TCP packet to and from it in its namespace with nftables (the link stays up, no RST, no
ICMP: only silence); :meth:`degrade` drops a random share of its packets (nftables ``numgen``).
No delay can be added here: the kernel has no ``netem`` qdisc (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._errors import DevstackError

__all__ = [
    "HOSTS_ENV",
    "NET_PREFIX_ENV",
    "SUBNET_ENV",
    "HostNetwork",
    "NetworkPlan",
    "SimHost",
    "network_prefix",
    "plan_network",
    "read_stack_file",
]

HOSTS_ENV = "MAS_DEVSTACK_HOSTS"
NET_PREFIX_ENV = "MAS_DEVSTACK_NET_PREFIX"
SUBNET_ENV = "MAS_DEVSTACK_SUBNET"
PROJECT = "mas-memory"
#: Backends the local stack runs as servers (Qdrant is embedded: it has no host).
SERVER_BACKENDS = ("postgres", "redis", "typesense", "neo4j")
#: Host ``i`` of the stack file gets ``<subnet>.(FIRST_HOST + i)``; ``.1`` is the bridge.
FIRST_HOST = 10
#: Where every private subnet must lie.
PRIVATE = ipaddress.IPv4Network("10.0.0.0/8")
#: The nftables table of the faults, in each host's own namespace.
FAULT_TABLE = "mas_faults"
_PREFIX = re.compile(r"^[a-z][a-z0-9]{1,9}$")


class StackFileHosts(BaseModel):
    """What the local stack reads of a Pulumi stack file: the host names and the placement."""

    model_config = ConfigDict(frozen=True)

    hosts: tuple[str, ...] = Field(min_length=1)
    placement: dict[str, str]

    @field_validator("placement")
    @classmethod
    def _servers_placed(cls, placement: dict[str, str]) -> dict[str, str]:
        missing = [b for b in SERVER_BACKENDS if b not in placement]
        if missing:
            raise ValueError(f"placement names no host for {missing}")
        return placement


def read_stack_file(path: Path) -> StackFileHosts:
    """``mas-memory:hosts`` (names, in file order) and ``mas-memory:placement`` of ``path``."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DevstackError(f"cannot read the stack file {path}: {exc}") from None
    config = (document or {}).get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise DevstackError(f"{path} has no 'config' map: not a Pulumi stack file")
    hosts = config.get(f"{PROJECT}:hosts")
    placement = config.get(f"{PROJECT}:placement")
    if not isinstance(hosts, dict) or not isinstance(placement, dict):
        raise DevstackError(f"{path} must set {PROJECT}:hosts and {PROJECT}:placement (maps)")
    try:
        parsed = StackFileHosts(hosts=tuple(str(h) for h in hosts), placement=placement)
    except ValidationError as exc:
        raise DevstackError(f"{path}: {exc.errors()[0]['msg']}") from None
    unknown = sorted({h for h in parsed.placement.values() if h not in parsed.hosts})
    if unknown:
        raise DevstackError(f"{path}: placement names host(s) {unknown} not under hosts")
    return parsed


class SimHost(BaseModel):
    """One simulated host: its namespace, its link and its address on the private subnet."""

    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str
    veth: str
    address: str


class NetworkPlan(BaseModel):
    """Every name and address of one stack's simulated hosts; kept in ``.mas/run/network.json``."""

    model_config = ConfigDict(frozen=True)

    stack_file: str
    prefix: str
    subnet: str
    bridge: str
    gateway: str
    hosts: tuple[SimHost, ...]
    placement: dict[str, str]

    def host(self, name: str) -> SimHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise DevstackError(f"no simulated host {name!r}; hosts: {[h.name for h in self.hosts]}")

    def host_for(self, backend: str) -> SimHost:
        """The host the placement puts ``backend`` on."""
        return self.host(self.placement[backend])

    def host_at(self, address: str) -> SimHost:
        """The host whose address is ``address`` (where a cluster node was placed)."""
        for host in self.hosts:
            if host.address == address:
                return host
        raise DevstackError(f"no simulated host has the address {address}")


def network_prefix(root: Path, port_base: int) -> str:
    """``$MAS_DEVSTACK_NET_PREFIX``, else ``mas`` + 4 hex digits of the root and port base.

    Two stacks on one machine (a CI run and a developer's, two worktrees) differ in root or
    port base, so their namespaces, bridge and links never share a name.
    """
    named = os.environ.get(NET_PREFIX_ENV)
    if named:
        if not _PREFIX.match(named):
            raise DevstackError(
                f"{NET_PREFIX_ENV}={named!r}: 2 to 10 lower-case letters and digits, "
                "starting with a letter (interface names are at most 15 characters)"
            )
        return named
    digest = hashlib.sha256(f"{root}\0{port_base}".encode()).hexdigest()
    return f"mas{digest[:4]}"


def _default_subnet(prefix: str) -> str:
    third = int(hashlib.sha256(prefix.encode()).hexdigest()[:4], 16) % 256
    return f"10.216.{third}.0/24"


def plan_network(stack_file: Path, prefix: str) -> NetworkPlan:
    """The plan for ``stack_file``'s hosts: names from ``prefix``, addresses from the subnet.

    The subnet is ``$MAS_DEVSTACK_SUBNET`` or ``10.216.<n>.0/24`` with ``n`` from the prefix;
    it must lie in 10.0.0.0/8 and hold every host.
    """
    parsed = read_stack_file(stack_file)
    raw = os.environ.get(SUBNET_ENV) or _default_subnet(prefix)
    try:
        subnet = ipaddress.ip_network(raw)
    except ValueError:
        raise DevstackError(f"{SUBNET_ENV}={raw!r} is not a network like 10.216.0.0/24") from None
    if not isinstance(subnet, ipaddress.IPv4Network) or not subnet.subnet_of(PRIVATE):
        raise DevstackError(f"subnet {subnet} must lie in {PRIVATE} (a private test subnet)")
    if subnet.num_addresses < FIRST_HOST + len(parsed.hosts) + 1:
        raise DevstackError(f"subnet {subnet} is too small for {len(parsed.hosts)} hosts")
    hosts = tuple(
        SimHost(
            name=name,
            namespace=f"{prefix}-{name}",
            veth=f"{prefix}-{index}",
            address=str(subnet.network_address + FIRST_HOST + index),
        )
        for index, name in enumerate(parsed.hosts)
    )
    return NetworkPlan(
        stack_file=str(stack_file),
        prefix=prefix,
        subnet=str(subnet),
        bridge=f"{prefix}-br",
        gateway=str(subnet.network_address + 1),
        hosts=hosts,
        placement={b: h for b, h in parsed.placement.items() if b in SERVER_BACKENDS},
    )


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if not found:
        raise DevstackError(f"{name} is not installed: run scripts/bootstrap (as root)")
    return found


def _run(args: Sequence[str], what: str, *, stdin: str | None = None) -> str:
    result = subprocess.run(
        list(args), input=stdin, capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise DevstackError(f"{what} failed: {' '.join(args)}: {detail}")
    return result.stdout


class HostNetwork:
    """Create, inspect, fault and remove the namespaces, bridge and links of one plan.

    Every command needs root (``CAP_NET_ADMIN``); nothing here touches a name the plan does
    not hold.
    """

    def __init__(self, plan: NetworkPlan) -> None:
        self.plan = plan

    def __repr__(self) -> str:
        return f"HostNetwork(prefix={self.plan.prefix!r}, subnet={self.plan.subnet!r})"

    # -- what exists --------------------------------------------------------------------------

    @staticmethod
    def _namespaces() -> set[str]:
        listed = _run([_tool("ip"), "-json", "netns", "list"], "listing namespaces")
        return {entry["name"] for entry in json.loads(listed or "[]")}

    @staticmethod
    def _links() -> set[str]:
        listed = _run([_tool("ip"), "-json", "link", "show"], "listing links")
        return {entry["ifname"] for entry in json.loads(listed or "[]")}

    def leftovers(self) -> list[str]:
        """The plan's namespaces and root-side links that exist now (empty once removed)."""
        namespaces, links = self._namespaces(), self._links()
        found = [f"netns {h.namespace}" for h in self.plan.hosts if h.namespace in namespaces]
        names = [self.plan.bridge, *(h.veth for h in self.plan.hosts)]
        found += [f"link {name}" for name in names if name in links]
        return found

    def exists(self) -> bool:
        """True when the bridge and every namespace exist."""
        namespaces = self._namespaces()
        return self.plan.bridge in self._links() and all(
            h.namespace in namespaces for h in self.plan.hosts
        )

    # -- create and remove --------------------------------------------------------------------

    def create(self) -> None:
        """Build the bridge, one namespace and link per host; all or nothing.

        Refuses when one of the plan's names exists already, or when the subnet overlaps a
        route of this machine (another stack's subnet, or a real network).
        """
        if os.geteuid() != 0:
            raise DevstackError("simulated hosts need root (ip netns, veth, bridge)")
        taken = self.leftovers()
        if taken:
            raise DevstackError(
                f"{', '.join(taken)} already exist(s): another stack uses prefix "
                f"{self.plan.prefix!r} (mas-devstack down in its root, or set {NET_PREFIX_ENV})"
            )
        self._check_subnet_is_free()
        try:
            self._build()
        except BaseException:
            self.destroy()
            raise

    def _check_subnet_is_free(self) -> None:
        ours = ipaddress.ip_network(self.plan.subnet)
        routes = json.loads(_run([_tool("ip"), "-json", "route", "show"], "listing routes") or "[]")
        for route in routes:
            dst = route.get("dst", "")
            if dst in ("default", ""):
                continue
            try:
                theirs = ipaddress.ip_network(dst, strict=False)
            except ValueError:
                continue
            if isinstance(theirs, ipaddress.IPv4Network) and theirs.overlaps(ours):
                raise DevstackError(
                    f"subnet {ours} overlaps {theirs} (dev {route.get('dev', '?')}) on this "
                    f"machine: set {SUBNET_ENV} to a free 10.x.y.0/24"
                )

    def _build(self) -> None:
        ip = _tool("ip")
        plan = self.plan
        prefix_len = ipaddress.ip_network(plan.subnet).prefixlen
        _run([ip, "link", "add", plan.bridge, "type", "bridge"], "creating the bridge")
        _run([ip, "addr", "add", f"{plan.gateway}/{prefix_len}", "dev", plan.bridge], "addressing")
        _run([ip, "link", "set", plan.bridge, "up"], "bringing the bridge up")
        for host in plan.hosts:
            peer = f"{host.veth}p"
            inside = [ip, "netns", "exec", host.namespace, ip]
            _run([ip, "netns", "add", host.namespace], f"creating namespace {host.namespace}")
            _run([ip, "link", "add", host.veth, "type", "veth", "peer", "name", peer], "veth")
            _run([ip, "link", "set", peer, "netns", host.namespace], "moving the veth peer")
            _run([*inside, "link", "set", peer, "name", "eth0"], "naming eth0")
            _run(
                [*inside, "addr", "add", f"{host.address}/{prefix_len}", "dev", "eth0"],
                f"addressing {host.name}",
            )
            _run([*inside, "link", "set", "eth0", "up"], f"bringing {host.name}'s eth0 up")
            _run([*inside, "link", "set", "lo", "up"], f"bringing {host.name}'s loopback up")
            _run([ip, "link", "set", host.veth, "master", plan.bridge], "joining the bridge")
            _run([ip, "link", "set", host.veth, "up"], f"bringing {host.veth} up")

    def destroy(self, *, within: float = 10.0) -> list[str]:
        """Remove whatever of the plan exists; returns the namespaces and bridge removed.

        A namespace takes its end of each link along, and the kernel removes the other end
        asynchronously: this waits (up to ``within`` s) until every link is gone, deleting any
        left behind by a namespace removed earlier, then removes the bridge.
        """
        ip = _tool("ip")
        removed = []
        for host in self.plan.hosts:
            if host.namespace in self._namespaces():
                _run([ip, "netns", "del", host.namespace], f"removing namespace {host.namespace}")
                removed.append(f"netns {host.namespace}")
        veths = {h.veth for h in self.plan.hosts}
        deadline = time.monotonic() + within
        while veths & self._links():
            if time.monotonic() > deadline:
                for name in sorted(veths & self._links()):
                    subprocess.run([ip, "link", "del", name], capture_output=True, check=False)
                if veths & self._links():
                    raise DevstackError(f"links {sorted(veths & self._links())} did not go away")
                break
            time.sleep(0.05)
        if self.plan.bridge in self._links():
            _run([ip, "link", "del", self.plan.bridge], f"removing link {self.plan.bridge}")
            removed.append(f"link {self.plan.bridge}")
        return removed

    # -- running inside a host ----------------------------------------------------------------

    def wrap(
        self, host: SimHost, command: Sequence[str], popen_kwargs: Mapping[str, Any]
    ) -> tuple[list[str], dict[str, Any]]:
        """``command`` run inside ``host``'s namespace, as the user ``popen_kwargs`` names.

        ``ip netns exec`` and ``setpriv`` both exec: the PID that starts is the server's own.
        Popen's ``user``/``group`` would drop root before ``ip netns exec`` could enter the
        namespace, so they become ``setpriv`` arguments.
        """
        kwargs = dict(popen_kwargs)
        user, group = kwargs.pop("user", None), kwargs.pop("group", None)
        kwargs.pop("extra_groups", None)
        prefix = [_tool("ip"), "netns", "exec", host.namespace]
        if user is not None:
            prefix += [_tool("setpriv"), f"--reuid={user}", f"--regid={group}", "--clear-groups"]
        return [*prefix, *command], kwargs

    # -- faults -------------------------------------------------------------------------------

    def partition(self, name: str) -> None:
        """Cut ``name`` off: its link goes down, as if its cable were pulled."""
        _run([_tool("ip"), "link", "set", self.plan.host(name).veth, "down"], f"cutting {name}")

    def blackhole(self, name: str) -> None:
        """Drop every TCP packet to and from ``name``, silently (no RST, no ICMP)."""
        self._nft(name, "meta l4proto tcp drop")

    def degrade(self, name: str, loss_percent: int) -> None:
        """Drop ``loss_percent`` % of ``name``'s packets at random, both ways."""
        if not 0 < loss_percent < 100:
            raise DevstackError(f"loss must be 1-99 %, got {loss_percent}")
        self._nft(name, f"numgen random mod 100 < {loss_percent} drop")

    def heal(self, name: str) -> None:
        """Undo every fault on ``name``: its link up, its fault table gone."""
        host = self.plan.host(name)
        _run([_tool("ip"), "link", "set", host.veth, "up"], f"reconnecting {name}")
        nft = [_tool("ip"), "netns", "exec", host.namespace, _tool("nft")]
        tables = _run([*nft, "list", "tables"], f"listing {name}'s nftables tables")
        if f"table inet {FAULT_TABLE}" in tables:
            _run([*nft, "delete", "table", "inet", FAULT_TABLE], f"healing {name}")

    def _nft(self, name: str, rule: str) -> None:
        host = self.plan.host(name)
        # Declare, delete, declare again: one atomic transaction that replaces any earlier fault.
        script = (
            f"table inet {FAULT_TABLE}\ndelete table inet {FAULT_TABLE}\n"
            f"table inet {FAULT_TABLE} {{\n"
            f"  chain ingress {{ type filter hook input priority -300; policy accept; "
            f'iifname "eth0" {rule}; }}\n'
            f"  chain egress {{ type filter hook output priority -300; policy accept; "
            f'oifname "eth0" {rule}; }}\n'
            "}\n"
        )
        nft = [_tool("ip"), "netns", "exec", host.namespace, _tool("nft")]
        _run([*nft, "-f", "-"], f"fault on {name}", stdin=script)
