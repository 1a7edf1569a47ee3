"""The five backends: TLS only, and each adapter's credential able to do its job and no more.

The roles, keys and outputs are the contract of ``docs/security.md``; the per-backend TLS
switches and healthchecks are documented on each class. Every class builds on
:class:`~._service.BackendService` (image, volume, container, uploads, credentials).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar
from urllib.parse import quote

import pulumi

from mas_storage_redis import DISABLED_DEFAULT_USER, adapter_acl_rule, admin_acl_rule

from ._service import (
    TLS_DIR,
    BackendService,
    Credential,
    Healthcheck,
    Upload,
    https_probe,
    own_copy,
)

__all__ = [
    "BACKEND_COMPONENTS",
    "Neo4jService",
    "PostgresService",
    "QdrantService",
    "RedisService",
    "TypesenseService",
]

#: Where a server that drops root keeps its owner-only copy of the key (and Redis its ACL file).
_OWN_DIR = "/run/mas"
#: The login role and the ACL user of the adapters (docs/security.md).
APP_USER = "mas_app"
#: ASCII whitespace: a Redis ACL password cannot hold it (the rule is one line of words).
_WHITESPACE = " \t\n\r\x0b\x0c"


class PostgresService(BackendService):
    """PostgreSQL over TLS only, with a superuser, a schema owner and the adapter's DML role.

    * **Roles** (created by the image's init on an empty volume, see :meth:`uploads`): the
      superuser ``postgres`` (``POSTGRES_PASSWORD``; socket logins only, no output carries it),
      the owner ``mas`` (owns ``mas_memory``; migrations run as it: ``postgres_owner_url``,
      admin outputs) and ``mas_app``, a member of the group ``mas_memory_rw`` to which the
      migration ``0003_app_role_grants`` grants the DML on the tables (``postgres_url``).
    * **TLS**: ``ssl=on`` with the host's certificate, TLS 1.2 at least, and a ``pg_hba.conf``
      of ``hostssl`` lines only (``scram-sha-256``): ``mas_memory_rw`` members to
      ``mas_memory``, ``mas`` to every database; nothing in plaintext, no other role over TCP.
    """

    kind = "postgres"
    component_type = "mas:infra:Postgres"
    data_path = "/var/lib/postgresql/data"
    container_ports: ClassVar[Mapping[str, int]] = {"postgres": 5432}
    credential_specs: ClassVar[Mapping[str, Credential]] = {
        "owner": Credential("postgresPassword"),
        "superuser": Credential("postgresSuperuserPassword"),
        "app": Credential("postgresAppPassword"),
    }
    superuser = "postgres"
    owner = "mas"
    app_user = APP_USER
    app_group = "mas_memory_rw"
    database = "mas_memory"
    hba_file = "/etc/mas/postgres/pg_hba.conf"
    init_script = "/docker-entrypoint-initdb.d/10-mas-roles.sh"
    key_copy = f"{_OWN_DIR}/postgres/server.key"

    def envs(self) -> list[pulumi.Input[str]]:
        return [
            f"POSTGRES_USER={self.superuser}",
            f"POSTGRES_DB={self.database}",
            # initdb's own pg_hba.conf (unused: hba_file points at ours) is strict as well.
            "POSTGRES_INITDB_ARGS=--auth-local=scram-sha-256 --auth-host=scram-sha-256",
            self._env("POSTGRES_PASSWORD", self.credentials["superuser"]),
            # Read by the init script only (see uploads()).
            self._env("MAS_OWNER_PASSWORD", self.credentials["owner"]),
            self._env("MAS_APP_PASSWORD", self.credentials["app"]),
        ]

    def command(self) -> list[str]:
        # The image's entrypoint runs as root, then as postgres: give postgres its own copy
        # of the key first (PostgreSQL refuses a key others may read). Its temporary init
        # server gets the same flags, so even the first start serves TLS.
        server = " ".join(
            (
                "exec docker-entrypoint.sh postgres",
                "-c ssl=on",
                f"-c ssl_cert_file={TLS_DIR}/server.crt",
                f"-c ssl_key_file={self.key_copy}",
                "-c ssl_min_protocol_version=TLSv1.2",
                "-c password_encryption=scram-sha-256",
                f"-c hba_file={self.hba_file}",
                *self.extra_settings(),
            )
        )
        copy = own_copy(f"{TLS_DIR}/server.key", self.key_copy, "postgres")
        return ["sh", "-c", " && ".join((copy, *self.before_start(), server))]

    def extra_settings(self) -> list[str]:
        """More ``-c`` settings (a cluster node's replication ones)."""
        return []

    def before_start(self) -> list[str]:
        """Shell steps between the key's copy and the server (a standby's base backup)."""
        return []

    def uploads(self) -> Sequence[Upload]:
        return [
            *super().uploads(),
            Upload(self.hba_file, self.pg_hba()),
            Upload(self.init_script, self.roles_script()),
        ]

    def pg_hba(self) -> str:
        """TLS only, scram-sha-256 only; the adapter's group to its database only."""
        lines = [
            "# mas-memory (docs/security.md): hostssl only, scram-sha-256 for every login.",
            "# TYPE  DATABASE    USER                ADDRESS     METHOD",
            "local   all         all                             scram-sha-256",
        ]
        for network in ("0.0.0.0/0", "::/0"):
            lines.append(f"hostssl {self.database}  +{self.app_group}  {network}  scram-sha-256")
        for network in ("0.0.0.0/0", "::/0"):
            lines.append(f"hostssl all         {self.owner}  {network}  scram-sha-256")
        lines += self.extra_hba()
        return "\n".join(lines) + "\n"

    def extra_hba(self) -> list[str]:
        """More ``pg_hba.conf`` lines (a cluster node's replication ones)."""
        return []

    def roles_script(self) -> str:
        """The roles, made once by the image's entrypoint on an empty volume (it sources
        ``*.sh`` files of ``/docker-entrypoint-initdb.d`` as the superuser, with its
        ``docker_process_sql``). The passwords come from the container's secret env as psql
        variables: nothing secret is in the script.

        The same roles as the local stack's (``mas-devstack``), so the suites run on both:
        the owner may create databases (the migration tests' scratch databases); the
        adapter's group may connect and create temporary tables (a keyed ``store_many``
        stages its batch in one, dropped at commit), which PUBLIC loses with the ``REVOKE``."""
        return f"""\
# mas-memory roles (docs/security.md); sourced once by the postgres image's entrypoint.
docker_process_sql \\
    --set owner_password="$MAS_OWNER_PASSWORD" \\
    --set app_password="$MAS_APP_PASSWORD" <<'EOSQL'
CREATE ROLE {self.owner} LOGIN CREATEDB PASSWORD :'owner_password';
ALTER DATABASE {self.database} OWNER TO {self.owner};
REVOKE ALL ON DATABASE {self.database} FROM PUBLIC;
CREATE ROLE {self.app_group} NOLOGIN;
GRANT CONNECT, TEMPORARY ON DATABASE {self.database} TO {self.app_group};
CREATE ROLE {self.app_user} LOGIN PASSWORD :'app_password' IN ROLE {self.app_group};
EOSQL
""" + self.extra_roles()

    def extra_roles(self) -> str:
        """More of the init script (a cluster's replication role)."""
        return ""

    def healthcheck(self) -> Healthcheck:
        # pg_isready ships with the server. Over TCP on purpose: the entrypoint's temporary
        # init server listens on the socket only, so the check turns healthy only once the real
        # server accepts network connections; and over TLS, verified against the stack's CA
        # (verify-ca: the probe connects to 127.0.0.1, which the certificate does not name).
        conninfo = (
            f"host=127.0.0.1 port=5432 user={self.app_user} dbname={self.database} "
            f"sslmode=verify-ca sslrootcert={TLS_DIR}/ca.crt"
        )
        return Healthcheck(
            test=("CMD", "pg_isready", "-d", conninfo),
            interval_s=5,
            timeout_s=5,
            start_period_s=30,
            retries=6,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {"postgres_url": self._pg_url(self.app_user, self.credentials["app"])}

    def admin_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {"postgres_owner_url": self._pg_url(self.owner, self.credentials["owner"])}

    def _pg_url(self, user: str, password: pulumi.Output[str]) -> pulumi.Output[str]:
        userinfo = pulumi.Output.concat(user, ":", password.apply(_quote), "@")
        path = f"/{self.database}?sslmode=verify-full"
        return pulumi.Output.secret(self._url("postgresql", "postgres", userinfo, path))


class RedisService(BackendService):
    """Redis over TLS only (``port 0``), with ACL users: ``default`` off, the adapter's user
    limited to its commands and keys (``mas_storage_redis.adapter_acl_rule``), an admin.

    The ACL file holds the passwords as SHA-256 hashes only; it is uploaded root-only and the
    command gives the ``redis`` user its own copy at each start, as for the key.
    """

    kind = "redis"
    component_type = "mas:infra:Redis"
    data_path = "/data"
    container_ports: ClassVar[Mapping[str, int]] = {"redis": 6379}
    credential_specs: ClassVar[Mapping[str, Credential]] = {
        "admin": Credential("redisPassword", forbidden=_WHITESPACE),
        "app": Credential("redisAppPassword", forbidden=_WHITESPACE),
    }
    app_user = APP_USER
    #: Commands the adapter's user needs besides its own (a cluster client's).
    app_extra_commands: ClassVar[tuple[str, ...]] = ()
    admin_user = "admin"
    acl_upload = "/etc/mas/redis/users.acl"
    acl_file = f"{_OWN_DIR}/redis/users.acl"
    key_copy = f"{_OWN_DIR}/redis/server.key"

    def envs(self) -> list[pulumi.Input[str]]:
        # redis-cli reads REDISCLI_AUTH, so the healthcheck authenticates (as the adapter's
        # user) without the password in its arguments. The server itself needs no password:
        # the ACL file has the hashes.
        return [self._env("REDISCLI_AUTH", self.credentials["app"])]

    def command(self) -> list[str]:
        # Re-entering the image's entrypoint with "redis-server" keeps its chown of /data and
        # its drop to the redis user, after the copies the redis user can read.
        server = " ".join(
            (
                "exec docker-entrypoint.sh redis-server",
                "--port 0",
                "--tls-port 6379",
                f"--tls-cert-file {TLS_DIR}/server.crt",
                f"--tls-key-file {self.key_copy}",
                f"--tls-ca-cert-file {TLS_DIR}/ca.crt",
                "--tls-auth-clients no",
                "--tls-replication yes",
                "--tls-cluster yes",
                f"--aclfile {self.acl_file}",
                "--appendonly yes",
                *self.extra_args(),
            )
        )
        steps = (
            own_copy(f"{TLS_DIR}/server.key", self.key_copy, "redis"),
            own_copy(self.acl_upload, self.acl_file, "redis"),
            *self.before_start(),
        )
        return ["sh", "-c", f"{' && '.join(steps)} && {server}"]

    def extra_args(self) -> list[str]:
        """More ``redis-server`` arguments (a cluster node's)."""
        return []

    def before_start(self) -> list[str]:
        """Shell steps before the server (a cluster node's join, in the background)."""
        return []

    def uploads(self) -> Sequence[Upload]:
        return [*super().uploads(), Upload(self.acl_upload, self.acl(), secret=True)]

    def acl(self) -> pulumi.Output[str]:
        """``default`` off, the adapter's user, the admin: one ``user`` line each.

        ``default`` keeps its permissions while off: Redis replays the append-only file as
        that user and (up to 8.2) re-checks the ACL at each replayed ``EXEC``, so without them
        a restart drops the adapter's acknowledged writes (``mas_storage_redis._acl``)."""
        return pulumi.Output.all(self.credentials["app"], self.credentials["admin"]).apply(
            lambda pw: (
                "\n".join(
                    (
                        DISABLED_DEFAULT_USER,
                        adapter_acl_rule(
                            self.app_user, pw[0], extra_commands=self.app_extra_commands
                        ),
                        admin_acl_rule(self.admin_user, pw[1]),
                    )
                )
                + "\n"
            )
        )

    def healthcheck(self) -> Healthcheck:
        # PONG only when the server is up, its certificate chains to the stack's CA and the
        # adapter's user may log in and PING; plain POSIX sh.
        cli = (
            f"redis-cli --tls --cacert {TLS_DIR}/ca.crt -h 127.0.0.1 -p 6379 "
            f"--user {self.app_user} ping"
        )
        return Healthcheck(
            test=("CMD-SHELL", f'[ "$({cli})" = PONG ]'),
            interval_s=5,
            timeout_s=3,
            start_period_s=10,
            retries=6,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {"redis_url": self._redis_url(self.app_user, self.credentials["app"])}

    def admin_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {"redis_admin_url": self._redis_url(self.admin_user, self.credentials["admin"])}

    def _redis_url(self, user: str, password: pulumi.Output[str]) -> pulumi.Output[str]:
        userinfo = pulumi.Output.concat(user, ":", password.apply(_quote), "@")
        return pulumi.Output.secret(self._url("rediss", "redis", userinfo, "/0"))


class QdrantService(BackendService):
    """Qdrant server over TLS (REST and gRPC), with an API key and a read-only API key."""

    kind = "qdrant"
    component_type = "mas:infra:Qdrant"
    data_path = "/qdrant/storage"
    container_ports: ClassVar[Mapping[str, int]] = {"http": 6333, "grpc": 6334}
    credential_specs: ClassVar[Mapping[str, Credential]] = {
        "api": Credential("qdrantApiKey"),
        "read-only": Credential("qdrantReadOnlyApiKey"),
    }

    def envs(self) -> list[pulumi.Input[str]]:
        # Qdrant runs as root in its image: it reads the root-only key where it is uploaded.
        return [
            self._env("QDRANT__SERVICE__API_KEY", self.credentials["api"]),
            self._env("QDRANT__SERVICE__READ_ONLY_API_KEY", self.credentials["read-only"]),
            "QDRANT__SERVICE__ENABLE_TLS=true",
            f"QDRANT__TLS__CERT={TLS_DIR}/server.crt",
            f"QDRANT__TLS__KEY={TLS_DIR}/server.key",
            # The stack's CA for Qdrant's own HTTPS client (the image's config names a
            # ./tls/cacert.pem that does not exist) and, later, cluster peers.
            f"QDRANT__TLS__CA_CERT={TLS_DIR}/ca.crt",
            "QDRANT__TELEMETRY_DISABLED=true",
        ]

    def healthcheck(self) -> Healthcheck:
        # /readyz is on Qdrant's API-key whitelist and answers 200 once all shards are loaded;
        # over TLS with openssl s_client (no curl in the image; see https_probe).
        return Healthcheck(
            test=https_probe(6333, "/readyz"),
            interval_s=10,
            timeout_s=5,
            start_period_s=30,
            retries=6,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {
            "qdrant_url": self._url("https", "http"),
            "qdrant_api_key": pulumi.Output.secret(self.credentials["api"]),
            "qdrant_read_only_api_key": pulumi.Output.secret(self.credentials["read-only"]),
        }


class Neo4jService(BackendService):
    """Neo4j Community: Bolt with TLS required, HTTPS instead of HTTP; one user (Community has
    no other: docs/security.md says what Enterprise would allow)."""

    kind = "neo4j"
    component_type = "mas:infra:Neo4j"
    data_path = "/data"
    container_ports: ClassVar[Mapping[str, int]] = {"bolt": 7687, "https": 7473}
    credential_specs: ClassVar[Mapping[str, Credential]] = {
        # The image parses NEO4J_AUTH as user/password: a '/' in the password breaks it.
        "password": Credential("neo4jPassword", forbidden="/"),
    }
    user = "neo4j"
    #: ``$NEO4J_HOME/certificates``: the image's entrypoint (running as root) hands everything
    #: under ``$NEO4J_HOME`` to the neo4j user, mode 700, before it drops to that user.
    certificates = "/var/lib/neo4j/certificates"
    policies = ("bolt", "https")

    def envs(self) -> list[pulumi.Input[str]]:
        heap, pagecache = self.config.neo4j_heap, self.config.neo4j_pagecache
        tls = ["NEO4J_server_bolt_tls__level=REQUIRED"]
        for policy in self.policies:
            setting = f"NEO4J_dbms_ssl_policy_{policy}_"
            tls += [
                f"{setting}enabled=true",
                f"{setting}base__directory={self.certificates}/{policy}",
                f"{setting}private__key=private.key",
                f"{setting}public__certificate=public.crt",
                f"{setting}client__auth=NONE",
            ]
        return [
            self._env("NEO4J_AUTH", pulumi.Output.concat(self.user, "/", self.credential)),
            f"NEO4J_server_memory_heap_initial__size={heap}",
            f"NEO4J_server_memory_heap_max__size={heap}",
            f"NEO4J_server_memory_pagecache_size={pagecache}",
            "NEO4J_server_http_enabled=false",
            "NEO4J_server_https_enabled=true",
            *tls,
        ]

    def uploads(self) -> Sequence[Upload]:
        files: list[Upload] = []
        for policy in self.policies:
            files += self.tls_uploads(
                f"{self.certificates}/{policy}", cert="public.crt", key="private.key", ca=None
            )
        return files

    def healthcheck(self) -> Healthcheck:
        # cypher-shell is in the image; curl is purged from it. A query over Bolt with TLS
        # (bolt+ssc: encrypted; the certificate names the lab address, not 127.0.0.1, and
        # cypher-shell takes no CA file) proves the server is up and the password works; the
        # shell strips "neo4j/" from NEO4J_AUTH at run time, so no secret is in the test.
        return Healthcheck(
            test=(
                "CMD-SHELL",
                'cypher-shell -a bolt+ssc://127.0.0.1:7687 -u neo4j -p "${NEO4J_AUTH#neo4j/}" '
                '"RETURN 1" > /dev/null',
            ),
            interval_s=15,
            timeout_s=15,
            start_period_s=60,
            retries=8,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {
            "neo4j_url": self._url("bolt+s", "bolt"),
            "neo4j_user": pulumi.Output.from_input(self.user),
            "neo4j_password": pulumi.Output.secret(self.credential),
        }


class TypesenseService(BackendService):
    """Typesense over TLS, with its bootstrap admin key and the adapter's scoped key.

    The server knows only the admin key (``TYPESENSE_API_KEY``). The scoped key's value is
    generated here and exported as ``typesense_api_key``; provisioning (``scripts/lab-outputs``
    runs ``mas_storage_typesense.provision`` with the admin key) creates the collection and
    registers the scoped key with exactly that value, for ``documents:*`` and
    ``collections:get`` on the adapter's collection.
    """

    kind = "typesense"
    component_type = "mas:infra:Typesense"
    data_path = "/data"
    container_ports: ClassVar[Mapping[str, int]] = {"http": 8108}
    credential_specs: ClassVar[Mapping[str, Credential]] = {
        "admin": Credential("typesenseApiKey"),
        "scoped": Credential("typesenseScopedApiKey"),
    }

    def envs(self) -> list[pulumi.Input[str]]:
        # typesense-server reads every flag from TYPESENSE_<FLAG> too: no key in the command.
        return [
            self._env("TYPESENSE_API_KEY", self.credentials["admin"]),
            f"TYPESENSE_DATA_DIR={self.data_path}",
        ]

    def command(self) -> list[str]:
        # Arguments to the image's entrypoint (/opt/typesense-server). Typesense runs as root
        # in its image: it reads the root-only key where it is uploaded.
        return [
            f"--ssl-certificate={TLS_DIR}/server.crt",
            f"--ssl-certificate-key={TLS_DIR}/server.key",
        ]

    def healthcheck(self) -> Healthcheck:
        # GET /health needs no key and answers 200 {"ok":true} once the node is ready (503
        # before); over TLS with openssl s_client (no curl in the image; see https_probe).
        return Healthcheck(
            test=https_probe(8108, "/health"),
            interval_s=10,
            timeout_s=5,
            start_period_s=20,
            retries=6,
        )

    def stack_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {
            "typesense_url": self._url("https", "http"),
            # The node list (a comma-separated string): this one node (a cluster lists all).
            "typesense_nodes": self._url("https", "http"),
            "typesense_api_key": pulumi.Output.secret(self.credentials["scoped"]),
        }

    def admin_outputs(self) -> dict[str, pulumi.Output[str]]:
        return {"typesense_admin_api_key": pulumi.Output.secret(self.credentials["admin"])}


#: Backend name -> component class.
BACKEND_COMPONENTS: Mapping[str, type[BackendService]] = {
    cls.kind: cls
    for cls in (PostgresService, RedisService, QdrantService, Neo4jService, TypesenseService)
}


def _quote(value: str) -> str:
    """Percent-encode a credential for the userinfo part of a URL."""
    return quote(value, safe="")
