"""Local real-backend stack for mas-memory: PostgreSQL, Redis, Typesense, Neo4j and Qdrant.

``mas-devstack up`` (or :meth:`Stack.up`) runs the servers as processes bound to 127.0.0.1,
with data, logs, PID files and generated secrets under ``<root>/.mas``, and writes
``<root>/.mas/stack-outputs.json`` for the adapters. See ``docs/local-stack.md``.
"""

from ._cluster import TOPOLOGIES, ClusterBackend, ClusterContext
from ._errors import DevstackError, ServiceStartError
from ._layout import SERVICE_NAMES, Ports, resolve_root
from ._stack import ServiceStatus, Stack, UpResult

__all__ = [
    "SERVICE_NAMES",
    "TOPOLOGIES",
    "ClusterBackend",
    "ClusterContext",
    "DevstackError",
    "Ports",
    "ServiceStartError",
    "ServiceStatus",
    "Stack",
    "UpResult",
    "resolve_root",
]
