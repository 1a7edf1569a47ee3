"""What the adapter may do on Redis: the commands it sends and the keys it touches, as an ACL.

The local stack and the lab's Redis create the adapter's user from :func:`adapter_acl_rule`,
so the rule and the adapter cannot drift apart: a command the adapter starts to send must be
added here, and the integration suite (which runs as this user) fails until it is.

* **Commands**: the connection handshake (``AUTH``/``HELLO``; ``SELECT`` for a database other
  than 0), ``PING`` (health checks), the write script (``EVAL``) and every command the script
  calls (ACLs apply inside scripts too: ``TYPE``, ``LREM``, ``LRANGE``, ``DEL``, ``RPUSH``,
  ``LPUSH``, ``LTRIM``, ``EXPIRE``),
  ``WAIT`` (``wait_replicas``), the reads and deletes (``LRANGE``, ``LLEN``, ``EXISTS``,
  ``DEL``), ``MULTI``/``EXEC`` (a turn's delete), and ``INFO`` (the backend metrics, and the
  check at connect whether the server runs in cluster mode). Nothing else: no ``FLUSHALL``,
  ``KEYS``, ``CONFIG``, ``DEBUG``, ``SHUTDOWN``. Not ``CLIENT SETINFO`` either: redis-py sends
  it and ignores a refusal, and Redis 7.0 does not know it (naming it makes 7.0 refuse the rule).
* **Keys**: ``session:*`` only (:data:`~mas_storage_redis._keys.KEY_PREFIX`); no Pub/Sub
  channel.

A Redis Cluster adds what redis-py's cluster client sends (:data:`CLUSTER_COMMANDS`, given as
``extra_commands``): ``CLUSTER SLOTS`` (the topology, at connect and after a failover or a
``MOVED``), ``COMMAND`` (the client's key-position table, at connect), ``ASKING`` (a slot in
migration), ``CLUSTER INFO`` (the backend metrics). Its replicas log in to their primary with
:func:`replication_acl_rule`'s user, which may only replicate. The password goes into a rule
as its SHA-256 (``#<hex>``), so an ACL file or a ``redis.conf`` holds no clear password.

**The default user** (:data:`DISABLED_DEFAULT_USER`) is off and has no password, so no client
can log in as it, but it keeps every permission: Redis replays its append-only file as the
``default`` user and, up to Redis 8.2 (redis/redis#14541, fixed by #14545), re-checks the ACL
at each replayed ``EXEC``. Redis 7 writes every script run (the adapter's writes) to the AOF
as a ``MULTI``/``EXEC`` of its effects, so a ``default`` user without permissions makes a
restarted Redis drop, silently, every acknowledged write of the adapter (``NOPERM ACLs rules
changed between the moment the transaction was accumulated and the EXEC`` in its log).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from ._keys import KEY_PREFIX

__all__ = [
    "ADAPTER_COMMANDS",
    "ADAPTER_KEY_PATTERNS",
    "CLUSTER_COMMANDS",
    "DISABLED_DEFAULT_USER",
    "REPLICATION_COMMANDS",
    "adapter_acl_rule",
    "admin_acl_rule",
    "replication_acl_rule",
]

#: Every command the adapter (and redis-py on its behalf) sends, and those its script calls.
ADAPTER_COMMANDS: tuple[str, ...] = (
    # connection: handshake, health check, database choice
    "auth",
    "hello",
    "ping",
    "select",
    # the write script and what it calls
    "eval",
    "type",
    "lrem",
    "lpush",
    "rpush",
    "ltrim",
    "expire",
    # acknowledge a write once replicas have it (wait_replicas)
    "wait",
    # reads, deletes, session utilities
    "lrange",
    "llen",
    "exists",
    "del",
    "multi",
    "exec",
    # backend metrics (get_metrics), and whether the server runs in cluster mode (connect)
    "info",
)
#: What redis-py's cluster client sends besides: the topology, its key table, redirections.
CLUSTER_COMMANDS: tuple[str, ...] = ("cluster|slots", "cluster|info", "command", "asking")
#: What a replica sends its primary (``masteruser``): the handshake and the stream.
REPLICATION_COMMANDS: tuple[str, ...] = ("psync", "replconf", "ping")
#: The keys the adapter touches: its sessions' lists.
ADAPTER_KEY_PATTERNS: tuple[str, ...] = (f"{KEY_PREFIX}*",)
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: The ``user default ...`` line: off and without a password (nobody logs in as it), with every
#: permission kept for the AOF replay, which runs as this user (see the module's docstring).
DISABLED_DEFAULT_USER = "user default reset off ~* &* +@all"


def _password_hash(password: str) -> str:
    if len(password) < 16 or any(c.isspace() for c in password):
        raise ValueError("an ACL password must be 16+ characters without whitespace")
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def adapter_acl_rule(username: str, password: str, *, extra_commands: Iterable[str] = ()) -> str:
    """The ``user ...`` line (ACL file / redis.conf) of the adapter's least-privileged user."""
    if not _NAME.match(username) or username == "default":
        raise ValueError(f"invalid ACL user name {username!r}")
    commands = " ".join(f"+{c}" for c in (*ADAPTER_COMMANDS, *extra_commands))
    keys = " ".join(f"~{k}" for k in ADAPTER_KEY_PATTERNS)
    return (
        f"user {username} reset on {_password_hash(password)} resetchannels {keys} -@all {commands}"
    )


def replication_acl_rule(username: str, password: str) -> str:
    """The ``user ...`` line of the replicas' user (``masteruser``): replication only, no key."""
    if not _NAME.match(username) or username == "default":
        raise ValueError(f"invalid ACL user name {username!r}")
    commands = " ".join(f"+{c}" for c in REPLICATION_COMMANDS)
    return f"user {username} reset on {_password_hash(password)} resetchannels -@all {commands}"


def admin_acl_rule(username: str, password: str) -> str:
    """The ``user ...`` line of an operator's user: every command, key and channel."""
    if not _NAME.match(username) or username == "default":
        raise ValueError(f"invalid ACL user name {username!r}")
    return f"user {username} reset on {_password_hash(password)} ~* &* +@all"
