"""The cluster topology's postgres: a PostgreSQL primary and a hot standby (streaming replication).

Not built yet: ``CLUSTER = None`` keeps postgres single-node in the cluster topology. The module
sets ``CLUSTER`` to its :class:`~._cluster.ClusterBackend` subclass (see :mod:`._cluster`).
"""

from __future__ import annotations

from ._cluster import ClusterBackend

CLUSTER: type[ClusterBackend] | None = None
