"""The cluster topology's postgres: a PostgreSQL primary and a hot standby (streaming replication).

Two nodes, PostgreSQL's own replication and nothing home-made:

* ``postgres-0`` (the single-node port, base+0; with ``--hosts`` the first host) and
  ``postgres-1`` (base+40; the second host): the same server as the single-node stack
  (:class:`~._services.Postgres`: TLS, ``hostssl`` only, SCRAM), each with its own data
  directory (``.mas/postgres-0``, ``.mas/postgres-1``) and ``cluster_name`` (which is also the
  ``application_name`` its WAL receiver shows the primary).
* The standby is made by ``pg_basebackup -R -X stream -C -S <node>`` from the primary: over
  TLS (``sslmode=verify-full`` against the stack's CA), as the dedicated replication role
  ``mas_replicator`` (``REPLICATION LOGIN``, nothing else; ``hostssl replication`` in
  ``pg_hba.conf``), with a physical replication slot (so the primary keeps the WAL a stopped
  standby still needs, at most ``max_slot_wal_keep_size``). ``-R`` writes ``standby.signal``
  and ``primary_conninfo`` (with the role's password, in ``postgresql.auto.conf``, mode 0600
  in the 0700 data directory).
* **Synchronous.** The primary names its standby in ``synchronous_standby_names`` (``ALTER
  SYSTEM``, once the standby streams), and every node runs ``synchronous_commit=remote_apply``
  (:data:`SYNCHRONOUS_COMMIT`): a commit is acknowledged only once the standby has *applied*
  it, so a read sent to the standby after the acknowledgement sees the write (the adapter's
  ``read_from="prefer-standby"``), and a failover loses no acknowledged write. The price, and
  what happens to writes while the standby is down (they wait: the adapter's ``query_timeout``
  ends them), are in the package README and docs/reliability.md.
* **Roles are state.** Which node is the primary is kept in ``.mas/postgres-cluster.json``
  (it outlives ``down``). :meth:`PostgresCluster.promote` is the failover manager's step (the
  test harness plays Patroni): it clears the promoted node's ``synchronous_standby_names``
  (no standby is left to wait for: availability over durability until a standby is back, as
  Patroni's non-strict synchronous mode), runs ``pg_ctl promote`` and records the new
  primary. A node that is not the recorded primary and has no ``standby.signal`` (the old
  primary: it may hold WAL the new one never got) or another system identifier is cloned
  again from the primary at its next start (:meth:`start`: the rejoin), which also names it
  the synchronous standby again.
* The stack's own sessions (role setup, replication setup) run with
  ``synchronous_commit=local``: they must not wait for a standby that is not there yet.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import shutil
import struct
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from ._cluster import ClusterBackend, ClusterContext, Ensure, stop_node
from ._errors import DevstackError, ServiceStartError
from ._process import log_tail
from ._runtime import postgres_bin
from ._secrets import write_private_json
from ._services import PG_APP_USER, PG_DATABASE, PG_USER, Postgres

__all__ = [
    "CLUSTER",
    "PG_REPLICATION_USER",
    "SYNCHRONOUS_COMMIT",
    "PostgresCluster",
    "PostgresNode",
]

log = logging.getLogger("mas_devstack")

PG_REPLICATION_USER: Final = "mas_replicator"
"""The role the standby replicates as: ``REPLICATION LOGIN`` and nothing else."""
SYNCHRONOUS_COMMIT: Final = "remote_apply"
"""When a commit is acknowledged: once the synchronous standby has applied it (see the
module's docstring; ``on`` would be once it has flushed it to disk)."""
NODE_NAMES: Final = ("postgres-0", "postgres-1")
#: How long ``start`` waits for the standby to stream and be the synchronous one.
SYNC_WAIT_S: Final = 60.0
#: WAL a replication slot may hold for a stopped standby before PostgreSQL drops it.
MAX_SLOT_WAL: Final = "1GB"


class PostgresNode(Postgres):
    """One node of the pair: the single-node server, plus replication."""

    def __init__(self, cluster: PostgresCluster, name: str, port: int, host: str) -> None:
        context = cluster.context
        super().__init__(
            context.layout, context.ports, context.secrets, **context.node_options(host)
        )
        self.name = name
        self.cluster = cluster
        self._port = port

    @property
    def port(self) -> int:
        return self._port

    @property
    def slot_name(self) -> str:
        """Its replication slot on the primary (slot names take ``[a-z0-9_]`` only)."""
        return self.name.replace("-", "_")

    @property
    def is_primary(self) -> bool:
        return self.cluster.primary_name == self.name

    def env(self) -> dict[str, str]:
        # libpq in the WAL receiver (and in pg_basebackup) looks for ~/.postgresql/ client
        # certificates: as root's HOME it finds one it may not read, and fails.
        return {"HOME": self._home()}

    def _home(self) -> str:
        owner = self.owner
        return pwd.getpwuid(owner[0]).pw_dir if owner else os.environ.get("HOME", "/")

    def _admin(self, timeout: float, dbname: str = "postgres") -> dict[str, Any]:
        # The stack's own sessions never wait for a standby (it may not run yet).
        return {**super()._admin(timeout, dbname), "options": "-c synchronous_commit=local"}

    def hba_lines(self) -> list[str]:
        kind = "hostssl" if self.tls else "host"
        line = f"{kind} replication {PG_REPLICATION_USER} {self.clients} scram-sha-256"
        return [*super().hba_lines(), line]

    def command(self) -> list[str]:
        return [
            *super().command(),
            "-c",
            f"cluster_name={self.name}",
            "-c",
            f"synchronous_commit={SYNCHRONOUS_COMMIT}",
            # A standby's queries hold back the primary's cleanup instead of being cancelled.
            "-c",
            "hot_standby_feedback=on",
            "-c",
            f"max_slot_wal_keep_size={MAX_SLOT_WAL}",
        ]

    def prepare(self) -> None:
        if not self.is_primary:
            reason = self.cluster.clone_reason(self)
            if reason:
                self.cluster.clone(self, reason)
        elif not (self.data_dir / "PG_VERSION").is_file():
            other = self.cluster.other(self)
            if (other.data_dir / "PG_VERSION").is_file():
                raise DevstackError(
                    f"{self.name} is the recorded primary but has no data, while {other.name} "
                    f"has: remove {other.data_dir} too to start the pair afresh"
                )
        super().prepare()

    def after_start(self) -> None:
        if not self.is_primary:
            return  # a hot standby takes no writes: its roles come from the primary
        super().after_start()
        import psycopg
        from psycopg import sql

        with psycopg.connect(**self._admin(10), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (PG_REPLICATION_USER,)
            ).fetchone()
            statement = sql.SQL("{} ROLE {} WITH LOGIN REPLICATION PASSWORD {}").format(
                sql.SQL("ALTER" if exists else "CREATE"),
                sql.Identifier(PG_REPLICATION_USER),
                sql.Literal(self.secrets.postgres_replication_password),
            )
            conn.execute(statement)

    def version(self, timeout: float = 3.0) -> str | None:
        found = super().version(timeout)
        if found is None:
            return None
        import psycopg

        with psycopg.connect(**self._admin(timeout)) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        return f"{found} ({'standby' if row and row[0] else 'primary'})"

    def upstream(self) -> tuple[str, str] | None:
        """(host, port) of the ``primary_conninfo`` that ``pg_basebackup -R`` wrote, if any."""
        from psycopg.conninfo import conninfo_to_dict

        try:
            text = (self.data_dir / "postgresql.auto.conf").read_text(encoding="utf-8")
        except OSError:
            return None
        found: tuple[str, str] | None = None
        for line in text.splitlines():  # the last setting wins, as in PostgreSQL
            key, _, value = line.partition("=")
            if key.strip() == "primary_conninfo":
                raw = value.strip()
                if raw.startswith("'") and raw.endswith("'"):
                    raw = raw[1:-1].replace("''", "'")
                params = conninfo_to_dict(raw)
                found = str(params.get("host")), str(params.get("port"))
        return found

    def system_identifier(self) -> int | None:
        """The cluster's system identifier from ``global/pg_control`` (its first 8 bytes),
        ``None`` without data."""
        try:
            with (self.data_dir / "global" / "pg_control").open("rb") as handle:
                head = handle.read(8)
        except OSError:
            return None
        return int(struct.unpack("<Q", head)[0]) if len(head) == 8 else None


class PostgresCluster(ClusterBackend):
    """The primary and its hot standby (see the module's docstring)."""

    backend = "postgres"

    def __init__(self, context: ClusterContext) -> None:
        super().__init__(context)
        hosts = context.hosts
        second = hosts[1] if len(hosts) > 1 else hosts[0]
        ports = (context.ports.postgres, context.ports.postgres_standby)
        self._nodes = tuple(
            PostgresNode(self, name, port, host)
            for name, port, host in zip(NODE_NAMES, ports, (hosts[0], second), strict=True)
        )

    # -- roles ----------------------------------------------------------------------------

    @property
    def state_path(self) -> Path:
        """``.mas/postgres-cluster.json``: which node is the primary (kept across ``down``)."""
        return self.context.layout.home / "postgres-cluster.json"

    @property
    def primary_name(self) -> str:
        """The recorded primary (``postgres-0`` until a failover)."""
        try:
            recorded = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return NODE_NAMES[0]
        name = recorded.get("primary") if isinstance(recorded, dict) else None
        return name if name in NODE_NAMES else NODE_NAMES[0]

    @property
    def primary(self) -> PostgresNode:
        return self.node(self.primary_name)

    @property
    def standby(self) -> PostgresNode:
        return self.other(self.primary)

    def node(self, name: str) -> PostgresNode:
        found = super().node(name)
        assert isinstance(found, PostgresNode)
        return found

    def other(self, node: PostgresNode) -> PostgresNode:
        return self._nodes[1] if node is self._nodes[0] else self._nodes[0]

    def nodes(self) -> Sequence[PostgresNode]:
        return self._nodes

    # -- start, stop ------------------------------------------------------------------------

    def start(self, ensure: Ensure) -> list[str]:
        """Start the primary, then the standby (cloned from it if needed), then make the
        standby the synchronous one; idempotent."""
        self.context.layout.ensure()
        primary, standby = self.primary, self.standby
        started = [n.name for n in (primary, standby) if ensure(n)]
        self._make_synchronous(primary, standby)
        return started

    def stop(self, *, kill: bool = False) -> list[str]:
        """The primary first (a fast shutdown sends its last WAL to the standby), then the
        standby; SIGKILL both at once with ``kill``."""
        if kill:
            return super().stop(kill=True)
        layout = self.context.layout
        return [n.name for n in (self.primary, self.standby) if stop_node(layout, n)]

    # -- failover ---------------------------------------------------------------------------

    def promote(self, name: str) -> float:
        """The failover manager's step: make standby ``name`` the primary (``pg_ctl promote``,
        waiting until it takes writes) and record it; returns the seconds it took.

        Its ``synchronous_standby_names`` is cleared first: the old primary is gone, and a
        synchronous primary without a standby would hold every commit. The old primary is
        cloned again from this one at its next start (:meth:`start`)."""
        node = self.node(name)
        if node.is_primary:
            raise DevstackError(f"{name} is the primary already")
        self._set_sync_names(node, "")
        began = time.monotonic()
        result = subprocess.run(
            [str(postgres_bin() / "pg_ctl"), "promote", "-w", "-t", "60", "-D", str(node.data_dir)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "HOME": node._home()},
            **node.popen_kwargs(),
        )
        if result.returncode != 0:
            raise DevstackError(
                f"pg_ctl promote of {name} exited {result.returncode}: "
                f"{(result.stdout + result.stderr).strip()[-500:]}"
            )
        took = time.monotonic() - began
        write_private_json(self.state_path, {"primary": name})
        with self._session(node) as conn:  # a primary follows nobody (a clone copies this)
            conn.execute("ALTER SYSTEM RESET primary_conninfo")
            conn.execute("ALTER SYSTEM RESET primary_slot_name")
        log.info("postgres: %s promoted in %.2f s (the primary now)", name, took)
        return took

    def clone_reason(self, node: PostgresNode) -> str | None:
        """Why ``node`` (not the primary) must be cloned again from the primary, if it must."""
        if not (node.data_dir / "PG_VERSION").is_file():
            return "no data yet"
        if not (node.data_dir / "standby.signal").is_file():
            return "it was a primary (it may hold WAL the new primary never got)"
        primary = self.other(node)
        mine, theirs = node.system_identifier(), primary.system_identifier()
        if theirs is not None and mine != theirs:
            return "its data belongs to another cluster"
        if node.upstream() != (primary.host, str(primary.port)):
            return "it streams from another address (the hosts changed)"
        return None

    def clone(self, node: PostgresNode, reason: str) -> None:
        """``pg_basebackup -R`` of the primary into ``node``'s data directory (the old one is
        removed first: only a whole copy ever appears under the real name)."""
        primary = self.other(node)
        log.info("postgres: cloning %s from %s (%s)", node.name, primary.name, reason)
        began = time.monotonic()
        self._drop_slot(primary, node.slot_name)
        target = node._place_cluster()  # .mas/<node>, or where its symlink points
        staging = target.with_name(f"{target.name}.clone")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700, parents=True)
        owner = node.owner
        if owner is not None:
            os.chown(staging, *owner)
        conninfo = " ".join(
            f"{k}={v}"
            for k, v in {
                "host": primary.host,
                "port": primary.port,
                "user": PG_REPLICATION_USER,
                "application_name": node.name,
                "connect_timeout": 10,
                **primary.tls_kwargs(),
            }.items()
        )
        command = [
            str(postgres_bin() / "pg_basebackup"),
            "-d",
            conninfo,
            "-D",
            str(staging),
            "-R",  # standby.signal and primary_conninfo
            "-X",
            "stream",
            "-c",
            "fast",  # an immediate checkpoint: a spread one took 100 s here
            "-C",
            "-S",
            node.slot_name,
        ]
        log_path = self.context.layout.log_path(node.name)
        env = {
            **os.environ,
            "HOME": node._home(),
            "PGPASSWORD": self.context.secrets.postgres_replication_password,
        }
        with log_path.open("ab") as out:
            result = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=staging,
                check=False,
                **node.popen_kwargs(),
            )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise ServiceStartError(
                node.name,
                f"pg_basebackup from {primary.name} exited {result.returncode}",
                log_tail(log_path, redact=self.context.secrets.values()),
            )
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        # The server's own files are rewritten by prepare(): its certificate, pg_hba.conf.
        (target / "postmaster.pid").unlink(missing_ok=True)
        log.info("postgres: %s cloned in %.1f s", node.name, time.monotonic() - began)

    # -- outputs ------------------------------------------------------------------------------

    def _url(self, user: str, password: str, dbname: str = PG_DATABASE) -> str:
        hosts = ",".join(f"{n.host}:{n.port}" for n in self._nodes)
        query = "sslmode=verify-full&" if self.context.ca is not None else ""
        query += "target_session_attrs=read-write"
        return f"postgresql://{user}:{password}@{hosts}/{dbname}?{query}"

    @property
    def migrate_url(self) -> str:
        """The owner's URL with the CA file, for the stack's own ``yoyo apply`` (on the
        primary, wherever it is: ``target_session_attrs=read-write``)."""
        url = self._url(PG_USER, self.context.secrets.postgres_password)
        ca = self.context.ca
        return f"{url}&sslrootcert={ca.ca_cert_path}" if ca is not None else url

    def outputs(self) -> dict[str, Any]:
        """``postgres_url``: both nodes in libpq's multi-host syntax, for the least-privileged
        role, with ``target_session_attrs=read-write`` (the single-node key, same meaning)."""
        return {"postgres_url": self._url(PG_APP_USER, self.context.secrets.postgres_app_password)}

    def admin_outputs(self) -> dict[str, Any]:
        secrets = self.context.secrets
        return {
            "postgres_owner_url": self._url(PG_USER, secrets.postgres_password),
            # pg_basebackup -d "$postgres_replication_url" ... (a node rejoining by hand)
            "postgres_replication_url": self._url(
                PG_REPLICATION_USER, secrets.postgres_replication_password, ""
            ),
        }

    # -- internals ----------------------------------------------------------------------------

    @contextmanager
    def _session(self, node: PostgresNode) -> Iterator[Any]:
        import psycopg

        with psycopg.connect(**node._admin(10), autocommit=True) as conn:
            yield conn

    def _set_sync_names(self, node: PostgresNode, names: str) -> None:
        from psycopg import sql

        with self._session(node) as conn:
            current = conn.execute("SHOW synchronous_standby_names").fetchone()
            if current is not None and current[0] == names:
                return
            conn.execute(
                sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(
                    sql.Literal(names)
                )
            )
            conn.execute("SELECT pg_reload_conf()")

    def _drop_slot(self, primary: PostgresNode, slot: str) -> None:
        """Drop the clone's old slot on the primary (a former clone's), if any."""
        with self._session(primary) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (slot,),
            )

    def _make_synchronous(self, primary: PostgresNode, standby: PostgresNode) -> None:
        """Wait until ``standby`` streams from ``primary``, then make it the synchronous
        standby (``synchronous_standby_names``) and wait until the primary says ``sync``."""
        deadline = time.monotonic() + SYNC_WAIT_S
        wanted = f'"{standby.name}"'
        state: tuple[Any, ...] | None = None
        while time.monotonic() < deadline:
            with self._session(primary) as conn:
                state = conn.execute(
                    "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s",
                    (standby.name,),
                ).fetchone()
            if state is not None and state[0] == "streaming":
                self._set_sync_names(primary, wanted)
                if state[1] == "sync":
                    return
            time.sleep(0.2)
        raise DevstackError(
            f"postgres: {standby.name} is not the synchronous standby of {primary.name} within "
            f"{SYNC_WAIT_S:.0f} s (replication state {state}); see "
            f"{self.context.layout.log_path(standby.name)}"
        )


CLUSTER: type[ClusterBackend] | None = PostgresCluster
