"""mas-storage-redis: the L1 turn cache of mas-memory on Redis (``RedisAdapter``, kind "redis").

The key scheme helpers are public so that other layers can build and parse turn ids the same
way the adapter does.
"""

from ._adapter import RedisAdapter
from ._keys import parse_record_id, record_id, session_key

__all__ = ["RedisAdapter", "parse_record_id", "record_id", "session_key"]
