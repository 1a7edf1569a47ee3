"""The program's files and flags on real servers: Redis, PostgreSQL and Typesense, no Docker.

The mocked tests prove what the program asks the engine for. These run what it would put in
the containers: the local stack file (address 127.0.0.1, so the host certificate names the
address the clients dial) is built under mocks, each container's uploads are written under a
private root with their modes, and its command runs for real, with the container's paths moved
under that root and a stand-in for the image's ``docker-entrypoint.sh`` that does only what
the program relies on (drop to the server's user; PostgreSQL's first-start initialisation with
the image's env contract and ``/docker-entrypoint-initdb.d``). The container's own healthcheck
says when the server is ready. Then clients connect with the stack outputs, the CA from
``tls_ca``, and find what docs/security.md promises: TLS only, verified for the address, and
each credential able to do its job and no more.

The servers are Debian's Redis 7.0 and PostgreSQL 15 and the Typesense 0.24.1 binary (the
versions the lab images run). Neo4j and Qdrant are not here: the local stack has no Neo4j
image layout (its server is embedded) and no Qdrant server. Needs root, as the containers
are: the command's ``install -o redis`` and the servers' users.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import redis
from infra_harness import CONTAINER, ROOT, Built
from pulumi.runtime import rpc

from mas_devstack._runtime import postgres_bin, typesense_binary
from mas_storage import create_adapter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs the containers' commands as root")

#: Stand-in for the redis image's entrypoint: run redis-server as the redis user.
REDIS_ENTRYPOINT = """#!/bin/sh
set -eu
[ "$(id -u)" = 0 ] && exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
exec "$@"
"""
#: Stand-in for the postgres image's entrypoint: its env contract (POSTGRES_USER, _PASSWORD,
#: _DB, _INITDB_ARGS, PGDATA), initdb and the init scripts on the first start (as the
#: superuser, with PGPASSWORD and a docker_process_sql on the socket), then the server as
#: postgres with the command's flags. PGPORT and PGSOCK place it beside the other tests.
POSTGRES_ENTRYPOINT = """#!/bin/sh
set -eu
[ "$1" = postgres ] && shift
[ "$(id -u)" = 0 ] && \\
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    pw="$(mktemp)"
    printf '%s\\n' "$POSTGRES_PASSWORD" > "$pw"
    initdb -D "$PGDATA" --username="$POSTGRES_USER" --pwfile="$pw" $POSTGRES_INITDB_ARGS \\
        --encoding=UTF8 --locale=C.UTF-8 --no-instructions > /dev/null
    rm -f "$pw"
    export PGPASSWORD="$POSTGRES_PASSWORD"
    pg_ctl -D "$PGDATA" -w -o "$* -c listen_addresses= -p $PGPORT -k $PGSOCK" start > /dev/null
    docker_process_sql() {
        psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc \\
            --dbname "$POSTGRES_DB" -h "$PGSOCK" -p "$PGPORT" "$@"
    }
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --dbname postgres \\
        -h "$PGSOCK" -p "$PGPORT" -c "CREATE DATABASE \\"$POSTGRES_DB\\"" > /dev/null
    for f in "$INITDB_DIR"/*.sh; do . "$f"; done
    pg_ctl -D "$PGDATA" -m fast -w stop > /dev/null
    unset PGPASSWORD
fi
exec postgres -D "$PGDATA" "$@" -p "$PGPORT" -k "$PGSOCK" -c listen_addresses=127.0.0.1
"""


def _plain(value: Any) -> Any:
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


def _ports(count: int, offset: int) -> list[int]:
    """Ports of this test, consecutive: the port base's +offset.. when set (the machine is
    shared), else a free run of ``count`` in 62000-64999, outside the ephemeral range.

    Consecutive because the program numbers a cluster's nodes from its configured port (node
    ``i`` on port + ``i``); scattered free ports made the Redis replicas look for their primaries
    on ports where nothing ran (CI, which sets no port base).
    """
    base = os.environ.get("MAS_DEVSTACK_PORT_BASE")
    if base:
        return [int(base) + offset + i for i in range(count)]
    for _ in range(200):
        start = random.randrange(62000, 65000 - count)
        if all(_bindable(port) for port in range(start, start + count)):
            return list(range(start, start + count))
    raise AssertionError(f"no {count} free consecutive ports in 62000-64999")


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class ContainerRun:
    """One container of the built program, run as a process under ``root`` (see module doc)."""

    def __init__(self, built: Built, backend: str, root: Path, moves: dict[str, str]) -> None:
        container = built.one(CONTAINER, f"{backend}-container")
        self.root = root
        self.moves = {
            "/etc/mas/": f"{root}/etc/mas/",
            "/run/mas/": f"{root}/run/mas/",
            "/docker-entrypoint-initdb.d/": f"{root}/docker-entrypoint-initdb.d/",
            **moves,
        }
        self.env = dict(e.split("=", 1) for e in _plain(container.inputs["envs"]))
        self.command = [self.move(part) for part in container.inputs.get("command", [])]
        self.health = [self.move(part) for part in container.inputs["healthcheck"]["tests"]]
        self.bin = root / "bin"
        self.bin.mkdir()
        self.log = root / f"{backend}.log"
        self.process: subprocess.Popen[bytes] | None = None
        for upload in (_plain(u) for u in _plain(container.inputs["uploads"])):
            path = Path(self.move(upload["file"]))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(_plain(upload["content"])), encoding="utf-8")
            path.chmod(int(upload["permissions"], 8))

    def move(self, text: str) -> str:
        for old, new in self.moves.items():
            text = text.replace(old, new)
        return text

    def entrypoint(self, script: str) -> None:
        path = self.bin / "docker-entrypoint.sh"
        path.write_text(script, encoding="utf-8")
        path.chmod(0o755)

    def start(self, argv: list[str], cwd: Path | None = None, **env: str) -> None:
        path = f"{self.bin}:{postgres_bin()}:{os.environ['PATH']}"
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                env={**os.environ, **self.env, "PATH": path, **env},
                cwd=cwd or self.root,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def healthy(self, timeout: float = 60.0) -> None:
        """Run the container's healthcheck until it passes, as Docker would."""
        kind, *test = self.health
        argv = ["sh", "-c", test[0]] if kind == "CMD-SHELL" else test
        deadline = time.monotonic() + timeout
        path = f"{postgres_bin()}:{os.environ['PATH']}"
        while time.monotonic() < deadline:
            assert self.process is not None and self.process.poll() is None, self.log_tail()
            done = subprocess.run(
                argv, env={**os.environ, **self.env, "PATH": path}, capture_output=True, check=False
            )
            if done.returncode == 0:
                return
            time.sleep(0.3)
        raise AssertionError(f"healthcheck never passed: {argv}\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def _ca_file(built: Built, root: Path) -> str:
    path = root / "client-ca.pem"
    path.write_text(built.outputs["tls_ca"], encoding="ascii")
    return str(path)


def _url_on(url: str, port: int, host: str = "127.0.0.1") -> str:
    """The output URL with the port (and host) of the server this test runs."""
    parts = urlsplit(url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


# -- Redis -------------------------------------------------------------------------------------


def test_redis_serves_tls_only_with_the_programs_acl(local_built: Built, root: Path) -> None:
    (port,) = _ports(1, 80)
    # on this shared machine, loopback only (in its container the server has its own network)
    moves = {"--tls-port 6379": f"--tls-port {port}", "--port 0": "--bind 127.0.0.1 --port 0"}
    run = ContainerRun(local_built, "redis", root, moves)
    run.health = [part.replace("-p 6379", f"-p {port}") for part in run.health]
    run.entrypoint(REDIS_ENTRYPOINT)
    data = root / "data"
    data.mkdir()
    shutil.chown(data, "redis", "redis")
    run.start(run.command, cwd=data)  # the image's WORKDIR
    try:
        run.healthy()  # redis-cli --tls, as mas_app: PONG
        # the key and the ACL file the server reads: owner-only copies for the redis user
        for name in ("server.key", "users.acl"):
            copy = root / "run/mas/redis" / name
            assert (copy.stat().st_mode & 0o777, copy.owner()) == (0o600, "redis")
        ca = local_built.outputs["tls_ca"]
        verified = {"ssl_ca_data": ca, "ssl_check_hostname": True}
        app = redis.Redis.from_url(_url_on(local_built.outputs["redis_url"], port), **verified)
        admin = redis.Redis.from_url(
            _url_on(local_built.admin_outputs["redis_admin_url"], port), **verified
        )
        # the certificate is verified, its name included: good for 127.0.0.1, not "localhost"
        wrong_name = redis.Redis.from_url(
            _url_on(local_built.outputs["redis_url"], port, host="localhost"),
            **verified,
        )
        with wrong_name, pytest.raises(redis.exceptions.ConnectionError, match="certificate"):
            wrong_name.ping()
        with app, admin:
            assert app.ping() is True
            assert app.lpush("session:t1", "a") == 1
            assert app.lrange("session:t1", 0, -1) == [b"a"]
            # outside the adapter's commands and keys: refused by the server
            with pytest.raises(redis.exceptions.NoPermissionError):
                app.flushall()
            with pytest.raises(redis.exceptions.NoPermissionError):
                app.set("session:t1:x", "1")  # SET is not an adapter command
            with pytest.raises(redis.exceptions.NoPermissionError):
                app.lpush("other:key", "x")  # another key prefix
            with pytest.raises(redis.exceptions.NoPermissionError):
                app.execute_command("CONFIG", "GET", "dir")
            assert admin.acl_whoami() == "admin"
            assert admin.exists("session:t1") == 1  # the admin reads everything ...
            assert "off" in admin.acl_getuser("default")["flags"]
            # the default user is off: a client without a user cannot log in at all
            anonymous = redis.Redis(host="127.0.0.1", port=port, ssl=True, **verified)
            with anonymous, pytest.raises(redis.exceptions.AuthenticationError):
                anonymous.ping()
        # the adapter's acknowledged writes survive a restart: Redis replays its append-only
        # file as the default user, which keeps its permissions while off (up to Redis 8.2 a
        # default user without them drops every replayed EXEC: mas_storage_redis._acl)
        session = f"restart-{uuid.uuid4().hex[:8]}"
        app_url = _url_on(local_built.outputs["redis_url"], port)
        asyncio.run(_redis_adapter_stores(app_url, ca, session))
        run.stop()
        run.start(run.command, cwd=data)
        run.healthy()
        admin = redis.Redis.from_url(
            _url_on(local_built.admin_outputs["redis_admin_url"], port), **verified
        )
        with admin:
            assert admin.llen(f"session:{session}:turns") == 1, run.log_tail()
        # no plaintext: the TLS port does not speak RESP in the clear
        plain = redis.Redis(host="127.0.0.1", port=port, socket_timeout=3)
        with plain, pytest.raises(redis.exceptions.ConnectionError):
            plain.ping()
    finally:
        run.stop()


async def _redis_adapter_stores(url: str, ca: str, session: str) -> None:
    """One turn stored by the adapter itself (a script: Redis 7 logs it as MULTI/EXEC)."""
    async with create_adapter("redis", {"url": url, "tls_ca": ca}) as adapter:
        await adapter.store({"session_id": session, "turn_id": 1, "content": "kept"})


# -- PostgreSQL --------------------------------------------------------------------------------


def _start_postgres(
    built: Built,
    root: Path,
    port: int,
    *,
    name: str = "postgres",
    moves: dict[str, str] | None = None,
    before: Callable[[ContainerRun], None] | None = None,
    pgdata: bool = True,
    **env: str,
) -> ContainerRun:
    """The PostgreSQL container ``name``'s command, run under ``root``, on ``port``; ``before``
    adjusts the run before it starts; ``pgdata``: make the data directory (a standby's command
    makes its own)."""
    run = ContainerRun(built, name, root, {"port=5432": f"port={port}", **(moves or {})})
    run.entrypoint(POSTGRES_ENTRYPOINT)
    if before is not None:
        before(run)
    data, sock = root / "pgdata", root / "sock"
    for path in (data, sock) if pgdata else (sock,):
        path.mkdir(mode=0o700)
        shutil.chown(path, "postgres", "postgres")
    run.start(
        run.command,
        PGDATA=str(data),
        PGPORT=str(port),
        PGSOCK=str(sock),
        INITDB_DIR=str(root / "docker-entrypoint-initdb.d"),
        **env,
    )
    return run


def _start_typesense(built: Built, root: Path, api: int, peering: int) -> ContainerRun:
    """The Typesense container's command (the image's entrypoint is the server), on ``api``."""
    run = ContainerRun(built, "typesense", root, {"127.0.0.1:8108": f"127.0.0.1:{api}"})
    data = root / "ts-data"
    data.mkdir()
    argv = [
        str(typesense_binary()),
        *run.command,  # --ssl-certificate, --ssl-certificate-key
        f"--data-dir={data}",
        "--api-address=127.0.0.1",
        f"--api-port={api}",
        "--peering-address=127.0.0.1",
        f"--peering-port={peering}",
    ]
    run.env = {k: v for k, v in run.env.items() if k != "TYPESENSE_DATA_DIR"}
    run.start(argv)
    return run


def test_postgres_serves_tls_only_with_the_programs_roles(local_built: Built, root: Path) -> None:
    (port,) = _ports(1, 81)
    run = _start_postgres(local_built, root, port)
    try:
        run.healthy(timeout=90)  # pg_isready over TLS, verify-ca against the stack's CA
        ca = _ca_file(local_built, root)
        app_url = _url_on(local_built.outputs["postgres_url"], port)
        owner_url = _url_on(local_built.admin_outputs["postgres_owner_url"], port)
        # the adapter's role, TLS verified for the address (sslmode=verify-full in the URL)
        with psycopg.connect(app_url, sslrootcert=ca, autocommit=True) as app:
            row = app.execute(
                "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()
            assert row == ("mas_app", True)
            member = app.execute("SELECT pg_has_role('mas_app', 'mas_memory_rw', 'MEMBER')")
            assert member.fetchone() == (True,)
            attrs = app.execute(
                "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles "
                "WHERE rolname = 'mas_app'"
            ).fetchone()
            assert attrs == (False, False, False)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("CREATE TABLE nope (id int)")
            # ... but a temporary table, as a keyed store_many stages its batch (PUBLIC lost
            # TEMPORARY with the REVOKE: the group has it back)
            with app.transaction():
                app.execute("CREATE TEMPORARY TABLE batch ON COMMIT DROP AS SELECT 1 AS id")
        # the owner: owns the database, may create (migrations run as it), is no superuser
        with psycopg.connect(owner_url, sslrootcert=ca, autocommit=True) as owner:
            row = owner.execute(
                "SELECT r.rolsuper, pg_get_userbyid(d.datdba) FROM pg_roles r, pg_database d "
                "WHERE r.rolname = current_user AND d.datname = current_database()"
            ).fetchone()
            assert row == (False, "mas")
            # CREATEDB, as on the local stack: the migration tests make scratch databases
            scratch = f"scratch_{uuid.uuid4().hex[:8]}"
            owner.execute(f"CREATE DATABASE {scratch}")
            owner.execute(f"DROP DATABASE {scratch}")
            owner.execute("CREATE TABLE t (id int)")
            owner.execute("GRANT SELECT, INSERT ON t TO mas_memory_rw")  # as 0003 does
        with psycopg.connect(app_url, sslrootcert=ca, autocommit=True) as app:
            app.execute("INSERT INTO t VALUES (1)")
            assert app.execute("SELECT count(*) FROM t").fetchone() == (1,)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                app.execute("DROP TABLE t")
        # refused: plaintext, another database for the adapter, the superuser over TCP
        for url, options, reason in (
            (app_url.replace("sslmode=verify-full", "sslmode=disable"), {}, "no encryption"),
            (app_url.replace("/mas_memory?", "/postgres?"), {"sslrootcert": ca}, "no pg_hba"),
        ):
            with pytest.raises(psycopg.OperationalError, match=reason):
                psycopg.connect(url, **options).close()
        superuser = local_built.stack.backends["postgres"]
        assert superuser.superuser == "postgres"
        env = run.env
        with pytest.raises(psycopg.OperationalError, match="no pg_hba"):
            psycopg.connect(
                host="127.0.0.1",
                port=port,
                user="postgres",
                password=env["POSTGRES_PASSWORD"],
                dbname="mas_memory",
                sslmode="verify-full",
                sslrootcert=ca,
            ).close()
        # a certificate check by name: the server's certificate does not name "localhost"
        wrong_name = _url_on(local_built.outputs["postgres_url"], port, host="localhost")
        with pytest.raises(psycopg.OperationalError, match="does not match host name"):
            psycopg.connect(wrong_name, sslrootcert=ca).close()
    finally:
        run.stop()


# -- Typesense ---------------------------------------------------------------------------------


def test_typesense_serves_https_only_with_the_programs_flags(
    local_built: Built, root: Path
) -> None:
    api, peering = _ports(2, 82)
    run = _start_typesense(local_built, root, api, peering)
    env = run.env
    try:
        run.healthy(timeout=90)  # openssl s_client, verified against the CA: GET /health 200
        ca = ssl.create_default_context(cadata=local_built.outputs["tls_ca"])
        url = _url_on(local_built.outputs["typesense_url"], api)
        key = {"X-TYPESENSE-API-KEY": env["TYPESENSE_API_KEY"]}
        with httpx.Client(verify=ca, trust_env=False) as client:
            assert client.get(f"{url}/health").json() == {"ok": True}
            assert client.get(f"{url}/collections", headers=key).status_code == 200
        # the adapter's scoped key is not the server's admin key: it opens nothing by itself
        scoped = {"X-TYPESENSE-API-KEY": local_built.outputs["typesense_api_key"]}
        with httpx.Client(verify=ca, trust_env=False) as client:
            assert client.get(f"{url}/collections", headers=scoped).status_code == 401
        # no plaintext HTTP on the API port
        with httpx.Client(trust_env=False) as client, pytest.raises(httpx.HTTPError):
            client.get(f"http://127.0.0.1:{api}/health", timeout=5)
    finally:
        run.stop()


# -- scripts/lab-outputs against them ----------------------------------------------------------


def _fake_pulumi(bin_dir: Path, outputs: dict[str, Any]) -> None:
    """A ``pulumi`` that prints ``outputs`` as ``stack output --json --show-secrets`` does."""
    printed = bin_dir / "outputs.json"
    printed.write_text(json.dumps(outputs), encoding="utf-8")
    tool = bin_dir / "pulumi"
    tool.write_text(
        f"#!{sys.executable}\nimport sys\nsys.stdout.write(open({str(printed)!r}).read())\n",
        encoding="utf-8",
    )
    tool.chmod(0o755)


def test_lab_outputs_migrates_and_provisions_the_programs_servers(
    local_built: Built, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lab's last steps for real: scripts/lab-outputs with only ``pulumi`` faked, real
    yoyo (migrations 0001-0004, as the owner, over TLS) and real provisioning (the collection
    and the scoped key, with the admin key) on the program's PostgreSQL and Typesense; then the
    adapters do their job with the adapters' file alone, and no more."""
    pg_port, api, peering = _ports(3, 84)
    (root / "pg").mkdir()
    (root / "ts").mkdir()
    postgres = _start_postgres(local_built, root / "pg", pg_port)
    typesense = _start_typesense(local_built, root / "ts", api, peering)
    try:
        postgres.healthy(timeout=90)
        typesense.healthy(timeout=90)
        outputs = {**local_built.outputs, **local_built.admin_outputs}
        for key, port in (("postgres_url", pg_port), ("postgres_owner_url", pg_port)):
            outputs[key] = _url_on(outputs[key], port)
        # typesense_nodes too: an adapter built from the file fails over along it, and it must
        # never reach for the lab's address
        for key in ("typesense_url", "typesense_nodes"):
            outputs[key] = _url_on(outputs[key], api)
        bin_dir = root / "fake-bin"
        bin_dir.mkdir()
        _fake_pulumi(bin_dir, outputs)
        files, admin_file = root / "out" / "stack-outputs.json", root / "out" / "stack-admin.json"
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{Path(sys.executable).parent}:{os.environ['PATH']}",
            # what a user's shell may hold must not redirect the steps
            "POSTGRES_URL": "postgresql://nobody@127.0.0.1:1/nowhere",
            "TYPESENSE_API_KEY": "not-the-stacks-key",
        }
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "lab-outputs"), "--output", str(files),
             "--admin-output", str(admin_file)],
            env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        for secret in (outputs["typesense_admin_api_key"], outputs["typesense_api_key"]):
            assert secret not in done.stdout + done.stderr
        for migration in ("0003_app_role_grants", "0004_fact_session_order"):
            assert f"Applying {migration}" in done.stdout + done.stderr
        assert "adapter key created" in done.stdout

        # the adapters, from the adapters' file only (no admin file within reach)
        for name in list(os.environ):
            if name.startswith(("POSTGRES_", "TYPESENSE_", "MAS_")):
                monkeypatch.delenv(name)
        monkeypatch.chdir(root)
        monkeypatch.setenv("MAS_STACK_OUTPUTS", str(files))
        monkeypatch.setenv("MAS_STACK_ADMIN", str(root / "no-admin-file.json"))
        asyncio.run(_adapters_do_their_job_and_no_more(outputs, _ca_file(local_built, root)))
    finally:
        postgres.stop()
        typesense.stop()


async def _adapters_do_their_job_and_no_more(outputs: dict[str, Any], ca: str) -> None:
    """Through the adapters' file: the PostgreSQL and Typesense adapters store, read and delete;
    their credentials may not drop a table or the collection, nor manage keys."""
    session = f"test-{uuid.uuid4().hex}"
    async with create_adapter("postgres") as pg:
        record = await pg.store({"session_id": session, "turn_id": 0, "content": "hi"})
        assert (await pg.retrieve(record) or {}).get("content") == "hi"
        assert await pg.delete(record)
    # a keyed batch (its rows staged in a temporary table), replayed: the same ids, once
    async with create_adapter("postgres", table="working_memory") as facts:
        keyed = [
            {"session_id": session, "fact_type": "entity", "content": f"fact {i}",
             "confidence": 0.5, "idempotency_key": f"k-{i}"}
            for i in range(3)
        ]  # fmt: skip
        ids = await facts.store_many(keyed)
        assert len(set(ids)) == 3
        assert await facts.store_many(keyed) == ids
        for fact_id in ids:
            assert await facts.delete(fact_id)
    async with create_adapter("typesense") as ts:
        await ts.store(
            {"id": session, "content": "scoped", "session_id": session,
             "fact_type": "test", "confidence": 0.5}
        )  # fmt: skip
        assert (await ts.retrieve(session) or {}).get("content") == "scoped"
        assert await ts.delete(session)
    # ... and no more: the adapters' credentials may not change the schema
    async with await psycopg.AsyncConnection.connect(
        outputs["postgres_url"], sslrootcert=ca, autocommit=True
    ) as app:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await app.execute("DROP TABLE active_context")
    context = ssl.create_default_context(cadata=outputs["tls_ca"])
    scoped = {"X-TYPESENSE-API-KEY": outputs["typesense_api_key"]}
    async with httpx.AsyncClient(verify=context, trust_env=False) as client:
        url = outputs["typesense_url"]
        dropped = await client.delete(f"{url}/collections/semantic_memory", headers=scoped)
        assert dropped.status_code == 401
        assert (await client.get(f"{url}/keys", headers=scoped)).status_code == 401
