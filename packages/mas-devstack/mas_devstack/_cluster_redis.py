"""The cluster topology's Redis: Redis Cluster, 3 primaries and 3 replicas.

Not built yet: ``CLUSTER = None`` keeps redis single-node in the cluster topology. The module
sets ``CLUSTER`` to its :class:`~._cluster.ClusterBackend` subclass (see :mod:`._cluster`).
"""

from __future__ import annotations

from ._cluster import ClusterBackend

CLUSTER: type[ClusterBackend] | None = None
