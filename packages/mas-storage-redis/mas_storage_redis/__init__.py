"""mas-storage-redis: the RedisAdapter (implemented by its own issue)."""

from ._adapter import RedisAdapter

__all__ = ["RedisAdapter"]
