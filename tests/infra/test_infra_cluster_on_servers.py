"""The cluster topology's nodes for real, no Docker: six ``redis-server`` processes started
from the program's own commands form Redis Cluster by themselves, and three ``typesense-server``
processes started with the program's flags and ``--nodes`` file elect one leader and replicate.

As ``test_infra_on_servers.py`` does for one container: a cluster stack whose two "hosts" are
the loopback addresses 127.0.0.2 and 127.0.0.3 (this machine) is built under mocks; each node's
uploads are written under a private root of its own and its command runs, with the container's
paths moved there and, since no Docker publishes ports here, the container ports replaced by the
published ones (the client port and the cluster bus, moved into this run's port range). Nothing
else is changed: the join in each node's command (``CLUSTER ADDSLOTSRANGE``/``MEET``/
``REPLICATE`` as the ACL admin) must form the cluster, each replica must follow the primary the
config names, and the adapter's user must read and write through the outputs'
``redis_cluster_nodes`` over TLS. Needs root (the command's ``install -o redis``).
"""

from __future__ import annotations

import os
import pwd
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import redis
from infra_harness import Built, build_program, load_lab_outputs
from redis.cluster import ClusterNode, RedisCluster
from test_infra_on_servers import (
    POSTGRES_ENTRYPOINT,
    REDIS_ENTRYPOINT,
    ContainerRun,
    _ports,
    _start_postgres,
)

from mas_devstack._runtime import postgres_bin, typesense_binary

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the containers' commands as root")

HOSTS = {"lab-a": "127.0.0.2", "lab-b": "127.0.0.3"}
NODE_HOSTS = ["lab-a", "lab-b", "lab-a", "lab-b", "lab-a", "lab-b"]


@pytest.fixture(scope="module")
def ports() -> list[int]:
    """Redis: the six nodes' client ports, then their bus ports; Typesense: the three API
    ports, then the three peering ports; PostgreSQL: the primary's port (all in this run's
    range)."""
    return _ports(20, 40)


@pytest.fixture(scope="module")
def loopback_cluster(ports: list[int]) -> Built:
    config: dict[str, Any] = {
        "hosts": {
            name: {"address": address, "docker": "unix:///var/run/docker.sock"}
            for name, address in HOSTS.items()
        },
        "placement": dict.fromkeys(("postgres", "redis", "qdrant", "neo4j", "typesense"), "lab-a"),
        "topology": "cluster",
        "cluster": {
            "postgres": ["lab-a", "lab-b"],
            "redis": NODE_HOSTS,
            "typesense": ["lab-a", "lab-b", "lab-b"],
        },
        "ports": {
            "redis": {"redis": ports[0]},
            "typesense": {"http": ports[12]},
            "postgres": {"postgres": ports[18]},
        },
    }
    return build_program(config, stack="cluster")


def _moves(index: int, ports: list[int], root: Path) -> dict[str, str]:
    address, port, bus = HOSTS[NODE_HOSTS[index]], ports[index], ports[6 + index]
    moves = {
        "-h 127.0.0.1 -p 6379": f"-h {address} -p {port}",
        "--tls-port 6379": f"--tls-port {port}",
        "--port 0": f"--bind {address} --port 0",
        "--cluster-port 16379": f"--cluster-port {bus}",
        "/data/": f"{root}/data/",
    }
    # the published bus ports (client port + 10000) are the ones run here
    for other in range(6):
        moves[f"{ports[other]} {ports[0] + 10000 + other}"] = f"{ports[other]} {ports[6 + other]}"
        moves[f"--cluster-announce-bus-port {ports[0] + 10000 + other}"] = (
            f"--cluster-announce-bus-port {ports[6 + other]}"
        )
    return moves


@pytest.fixture
def nodes(loopback_cluster: Built, ports: list[int], root: Path) -> Iterator[list[ContainerRun]]:
    runs = []
    try:
        # Replicas first: each meets its primary as soon as that is up, often before the
        # primary has met node 0, the order that once left a primary and its replica apart.
        for index in reversed(range(6)):
            node_root = root / f"redis-{index}"
            node_root.mkdir(mode=0o755)
            run = ContainerRun(
                loopback_cluster, f"redis-{index}", node_root, _moves(index, ports, node_root)
            )
            run.entrypoint(REDIS_ENTRYPOINT)
            data = node_root / "data"
            data.mkdir()
            os.chown(data, *_redis_ids())
            run.start(run.command, cwd=data)
            runs.append(run)
        for run in runs:
            run.healthy()
        yield runs[::-1]  # in node order
    finally:
        for run in runs:
            run.stop()


def _redis_ids() -> tuple[int, int]:
    entry = pwd.getpwnam("redis")
    return entry.pw_uid, entry.pw_gid


def _cluster_info(client: redis.Redis) -> dict[str, str]:
    """``CLUSTER INFO`` as a dict (redis-py may or may not have parsed it)."""
    raw = client.execute_command("CLUSTER INFO")
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    return dict(line.split(":", 1) for line in str(raw).split() if ":" in line)


def _admin(built: Built, index: int, ports: list[int], ca: str) -> redis.Redis:
    password = built.admin_outputs["redis_admin_url"].split("admin:", 1)[1].split("@", 1)[0]
    return redis.Redis(
        host=HOSTS[NODE_HOSTS[index]],
        port=ports[index],
        username="admin",
        password=password,
        ssl=True,
        ssl_ca_data=ca,
        ssl_check_hostname=True,
        decode_responses=True,
    )


def test_the_programs_redis_nodes_form_the_configured_cluster(
    loopback_cluster: Built, nodes: list[ContainerRun], ports: list[int]
) -> None:
    ca = loopback_cluster.outputs["tls_ca"]
    admins = [_admin(loopback_cluster, i, ports, ca) for i in range(6)]
    try:
        ids = [a.execute_command("CLUSTER MYID") for a in admins]
        deadline = time.monotonic() + 60
        while True:
            info = _cluster_info(admins[0])
            masters = {
                ids.index(i): a.execute_command("ROLE")[0] for i, a in zip(ids, admins, strict=True)
            }
            # as node 0 sees it: 6 nodes, the slots on 3 primaries (gossip takes a moment)
            formed = info["cluster_state"] == "ok" and info["cluster_known_nodes"] == "6"
            formed = formed and info["cluster_size"] == "3"
            if formed and list(masters.values()).count("slave") == 3:
                break
            logs = "\n".join(f"--- redis-{i}:\n{n.log_tail()[-600:]}" for i, n in enumerate(nodes))
            assert time.monotonic() < deadline, f"{info}\n{masters}\n{logs}"
            time.sleep(1)
        for replica in range(3, 6):
            role = admins[replica].execute_command("ROLE")
            primary = replica - 3
            # ROLE of a replica: ['slave', primary host, primary port, state, offset]
            assert role[0] == "slave" and (role[1], int(role[2])) == (
                HOSTS[NODE_HOSTS[primary]],
                ports[primary],
            )
            assert NODE_HOSTS[replica] != NODE_HOSTS[primary]
    finally:
        for a in admins:
            a.close()
    # the adapter's user, through the outputs' seed nodes, over TLS verified for each address
    seeds = loopback_cluster.outputs["redis_cluster_nodes"]
    assert seeds == [f"{HOSTS[h]}:{ports[0] + i}" for i, h in enumerate(NODE_HOSTS)]
    app_password = loopback_cluster.outputs["redis_url"].split("mas_app:", 1)[1].split("@")[0]
    client = RedisCluster(
        startup_nodes=[ClusterNode(s.rsplit(":", 1)[0], int(s.rsplit(":", 1)[1])) for s in seeds],
        username="mas_app",
        password=app_password,
        ssl=True,
        ssl_ca_data=ca,
        ssl_check_hostname=True,
    )
    try:
        keys = [f"session:{{s{i}}}:turns" for i in range(12)]
        slots = {client.keyslot(k) for k in keys}
        owners = {client.get_node_from_key(k).name for k in keys}
        assert len(slots) == 12 and len(owners) == 3  # spread over the three primaries
        for key in keys:
            assert client.lpush(key, key) == 1
        for key in keys:
            assert client.lrange(key, 0, -1) == [key.encode()]
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.set("session:{s0}:x", "1")  # still the adapter's ACL, not the admin's
    finally:
        client.close()


# -- Typesense ---------------------------------------------------------------------------------

TS_HOSTS = ["lab-a", "lab-b", "lab-b"]


@pytest.fixture
def typesense_nodes(
    loopback_cluster: Built, ports: list[int], root: Path
) -> Iterator[list[ContainerRun]]:
    api = ports[12:15]
    peering = ports[15:18]
    published = [api[0] + 100 + i for i in range(3)]  # the program's peering ports
    runs = []
    try:
        for index in range(3):
            node_root = root / f"typesense-{index}"
            node_root.mkdir(mode=0o755)
            moves = {f"--peering-port={published[index]}": f"--peering-port={peering[index]}"}
            run = ContainerRun(loopback_cluster, f"typesense-{index}", node_root, moves)
            # the --nodes file, with the peering ports of this run
            nodes_file = node_root / "etc/mas/typesense/nodes"
            members = nodes_file.read_text(encoding="utf-8")
            for program, here in zip(published, peering, strict=True):
                members = members.replace(f":{program}:", f":{here}:")
            nodes_file.write_text(members, encoding="utf-8")
            data = node_root / "data"
            data.mkdir()
            run.env = {k: v for k, v in run.env.items() if k != "TYPESENSE_DATA_DIR"}
            run.start([str(typesense_binary()), *run.command, f"--data-dir={data}"])
            runs.append(run)
        for run in runs:
            run.healthy(timeout=120)  # /health ok: a member of a group with a leader
        yield runs
    finally:
        for run in runs:
            run.stop()


def test_the_programs_typesense_nodes_form_one_raft_group(
    loopback_cluster: Built, typesense_nodes: list[ContainerRun], root: Path
) -> None:
    urls = loopback_cluster.outputs["typesense_nodes"]
    assert [urlsplit(u).hostname for u in urls] == ["127.0.0.2", "127.0.0.3", "127.0.0.3"]
    ca = ssl.create_default_context(cadata=loopback_cluster.outputs["tls_ca"])
    key = {"X-TYPESENSE-API-KEY": loopback_cluster.admin_outputs["typesense_admin_api_key"]}
    with httpx.Client(verify=ca, headers=key, timeout=10) as http:
        # /debug's state: 1 leader, 4 follower (braft's states)
        states = [http.get(f"{u}/debug").json()["state"] for u in urls]
        assert sorted(states) == [1, 4, 4], states
        leader = urls[states.index(1)]
        schema = {"name": "raft_check", "fields": [{"name": "t", "type": "string"}]}
        assert http.post(f"{leader}/collections", json=schema).status_code == 201
        doc = {"id": "d1", "t": "replicated"}
        assert http.post(f"{leader}/collections/raft_check/documents", json=doc).status_code == 201
        deadline = time.monotonic() + 30
        for url in urls:  # every member applies the write through the Raft log
            while True:
                got = http.get(f"{url}/collections/raft_check/documents/d1")
                if got.status_code == 200:
                    assert got.json() == doc
                    break
                assert time.monotonic() < deadline, (url, got.status_code, got.text)
                time.sleep(0.5)


def test_lab_outputs_makes_typesense_0_the_leader(
    loopback_cluster: Built, typesense_nodes: list[ContainerRun]
) -> None:
    """The outputs' ``typesense_url`` is node 0, and a follower applies a write a heartbeat
    after the leader acknowledged it: the suites that read their writes back through it need
    node 0 to lead, as the local stack makes it. The lab rehearsal of issue 17 had typesense-1
    leading (lab-b's nodes started first) and 22 Typesense tests failed on stale reads."""
    urls = loopback_cluster.outputs["typesense_nodes"]
    ca = ssl.create_default_context(cadata=loopback_cluster.outputs["tls_ca"])
    key = {"X-TYPESENSE-API-KEY": loopback_cluster.admin_outputs["typesense_admin_api_key"]}
    with httpx.Client(verify=ca, headers=key, timeout=10) as http:

        def states() -> list[int]:
            return [http.get(f"{u}/debug").json()["state"] for u in urls]

        # another node leads first, as on the lab
        deadline, next_vote = time.monotonic() + 60, 0.0
        while states()[1] != 1:
            assert time.monotonic() < deadline, states()
            if time.monotonic() >= next_vote:
                http.post(f"{urls[1]}/operations/vote")
                next_vote = time.monotonic() + 10
            time.sleep(0.5)
        assert states()[0] == 4
        values = {**loopback_cluster.outputs, **loopback_cluster.admin_outputs}
        assert load_lab_outputs().lead_from_first(values) is True
        assert states() == [1, 4, 4]


# -- PostgreSQL --------------------------------------------------------------------------------

#: Stand-in for the image's gosu: run a command as a user.
GOSU = """#!/bin/sh
set -eu
user="$1"; shift
exec setpriv --reuid="$user" --regid="$user" --init-groups "$@"
"""


def _postgres_standins(listen: str) -> Callable[[ContainerRun], None]:
    """Listen on the node's address too, and a gosu stand-in (the standby's base backup)."""

    def adjust(run: ContainerRun) -> None:
        script = POSTGRES_ENTRYPOINT.replace(
            "listen_addresses=127.0.0.1", f"listen_addresses={listen}"
        )
        run.entrypoint(script)
        gosu = run.bin / "gosu"
        gosu.write_text(GOSU, encoding="utf-8")
        gosu.chmod(0o755)

    return adjust


@pytest.fixture
def postgres_pair(
    loopback_cluster: Built, ports: list[int], root: Path
) -> Iterator[list[ContainerRun]]:
    runs = []
    try:
        for index, host in enumerate(("lab-a", "lab-b")):
            node_root = root / f"postgres-{index}"
            node_root.mkdir(mode=0o755)
            run = _start_postgres(
                loopback_cluster,
                node_root,
                ports[18] + index,
                name=f"postgres-{index}",
                moves={
                    '"$PGDATA"': f'"{node_root}/pgdata"',
                    "host=/var/run/postgresql": f"host={node_root}/sock",
                },
                before=_postgres_standins(f"127.0.0.1,{HOSTS[host]}"),
                pgdata=index == 0,
                # the image's gosu sets the user's home; libpq (pg_basebackup, the WAL
                # receiver) looks for a client certificate under it
                HOME=pwd.getpwnam("postgres").pw_dir,
            )
            runs.append(run)
            run.healthy(timeout=120)
        yield runs
    finally:
        for run in reversed(runs):
            run.stop()


def test_the_programs_postgres_standby_is_synchronous(
    loopback_cluster: Built, postgres_pair: list[ContainerRun], ports: list[int], root: Path
) -> None:
    ca = root / "client-ca.pem"
    ca.write_text(loopback_cluster.outputs["tls_ca"], encoding="ascii")
    url = loopback_cluster.admin_outputs["postgres_owner_url"]
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    assert hosts == f"127.0.0.2:{ports[18]},127.0.0.3:{ports[18] + 1}"
    # libpq's failover: the multi-host URL reaches the read-write node, the primary
    with psycopg.connect(url, sslrootcert=str(ca), autocommit=True) as owner:
        assert owner.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)
        owner.execute("CREATE TABLE sync_check (v text)")
        owner.execute("INSERT INTO sync_check VALUES ('acknowledged')")
    # the standby streams and is the synchronous one (the superuser, on the primary's socket)
    primary = postgres_pair[0]
    with psycopg.connect(
        host=str(root / "postgres-0/sock"),
        port=ports[18],
        user="postgres",
        password=primary.env["POSTGRES_PASSWORD"],
        dbname="postgres",
    ) as superuser:
        rows = superuser.execute(
            "SELECT application_name, sync_state FROM pg_stat_replication"
        ).fetchall()
        assert rows == [("postgres_1", "sync")]
        assert superuser.execute("SHOW synchronous_commit").fetchone() == ("remote_apply",)
    # remote_apply: once acknowledged, the standby has applied it
    standby = f"host=127.0.0.3 port={ports[18] + 1} dbname=mas_memory sslmode=verify-full"
    password = urlsplit(url).password
    with psycopg.connect(
        standby, user="mas", password=password, sslrootcert=str(ca), autocommit=True
    ) as conn:
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
        assert conn.execute("SELECT v FROM sync_check").fetchall() == [("acknowledged",)]


def test_the_programs_standby_is_unhealthy_while_it_does_not_stream(
    postgres_pair: list[ContainerRun], ports: list[int]
) -> None:
    """The standby's healthcheck passed (the fixture) while it streamed; with its primary gone
    it fails, though the standby still accepts connections (``pg_isready`` alone says yes):
    a standby that does not stream holds every synchronous commit of its primary."""
    primary, standby = postgres_pair
    kind, *test = standby.health
    argv = ["sh", "-c", test[0]] if kind == "CMD-SHELL" else test
    env = {**os.environ, **standby.env, "PATH": f"{postgres_bin()}:{os.environ['PATH']}"}
    primary.stop()
    deadline = time.monotonic() + 30
    while subprocess.run(argv, env=env, capture_output=True, check=False).returncode == 0:
        assert time.monotonic() < deadline, "the standby stayed healthy without its primary"
        time.sleep(0.5)
    ready = subprocess.run(
        ["pg_isready", "-h", str(standby.root / "sock"), "-p", str(ports[18] + 1)],
        env=env,
        capture_output=True,
        check=False,
    )
    assert ready.returncode == 0, ready.stdout  # it still accepts connections
