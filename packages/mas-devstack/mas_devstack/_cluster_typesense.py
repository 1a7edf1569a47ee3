"""The cluster topology's typesense: a three-node Typesense Raft cluster (one ``--nodes`` list).

Not built yet: ``CLUSTER = None`` keeps typesense single-node in the cluster topology. The module
sets ``CLUSTER`` to its :class:`~._cluster.ClusterBackend` subclass (see :mod:`._cluster`).
"""

from __future__ import annotations

from ._cluster import ClusterBackend

CLUSTER: type[ClusterBackend] | None = None
