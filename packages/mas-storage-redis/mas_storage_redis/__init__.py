"""mas-storage-redis: the L1 turn cache of mas-memory on Redis (``RedisAdapter``, kind "redis").

``RedisSettings`` is its configuration (every key, from arguments, ``REDIS_*`` variables and the
stack outputs). The key scheme helpers are public so that other layers can build and parse turn
ids the same way the adapter does.
"""

from ._acl import (
    ADAPTER_COMMANDS,
    ADAPTER_KEY_PATTERNS,
    CLUSTER_COMMANDS,
    DISABLED_DEFAULT_USER,
    REPLICATION_COMMANDS,
    adapter_acl_rule,
    admin_acl_rule,
    replication_acl_rule,
)
from ._adapter import RedisAdapter
from ._keys import parse_record_id, record_id, session_key
from ._settings import RedisSettings

__all__ = [
    "ADAPTER_COMMANDS",
    "ADAPTER_KEY_PATTERNS",
    "CLUSTER_COMMANDS",
    "DISABLED_DEFAULT_USER",
    "REPLICATION_COMMANDS",
    "RedisAdapter",
    "RedisSettings",
    "adapter_acl_rule",
    "admin_acl_rule",
    "parse_record_id",
    "record_id",
    "replication_acl_rule",
    "session_key",
]
