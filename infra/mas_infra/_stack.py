"""The whole program as a function: providers per host, the CA, the backends, outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_docker as docker

from ._backends import BACKEND_COMPONENTS
from ._cluster import ClusterService
from ._config import BACKENDS, InfraConfig, load_config
from ._service import BackendService
from ._tls import StackCertificates

__all__ = ["CA_OUTPUT", "MasStack", "build_stack", "export_outputs"]

#: The stack output with the CA certificate (PEM) that every adapter's ``tls_ca`` reads.
CA_OUTPUT = "tls_ca"


@dataclass(frozen=True)
class MasStack:
    """What :func:`build_stack` created, for ``__main__`` to export and tests to inspect."""

    config: InfraConfig
    providers: Mapping[str, docker.Provider]
    certificates: StackCertificates
    backends: Mapping[str, BackendService]
    #: What the adapters read (the stack-outputs file): URLs, least-privileged credentials, CA;
    #: a cluster's node lists are lists.
    outputs: Mapping[str, pulumi.Output[Any]]
    #: The owner and admin credentials no adapter reads (the admin outputs file).
    admin_outputs: Mapping[str, pulumi.Output[str]]
    #: The clustered backends (``topology: cluster``), in place of their single containers.
    clusters: Mapping[str, ClusterService] = field(default_factory=dict)


def build_stack(config: InfraConfig | None = None) -> MasStack:
    """Create one Docker provider per host in use, the stack's CA, and the five backends
    (in the cluster topology, the clustered ones as :class:`ClusterService` nodes)."""
    cfg = config if config is not None else load_config()
    providers = {
        name: docker.Provider(
            f"docker-{name}",
            host=cfg.hosts[name].docker_host,
            ssh_opts=list(cfg.hosts[name].ssh_opts) or None,
        )
        for name in cfg.used_hosts
    }
    certificates = StackCertificates("tls", stack=pulumi.get_stack())
    backends = {
        kind: BACKEND_COMPONENTS[kind](
            kind,
            config=cfg,
            provider=providers[cfg.placement[kind]],
            certificates=certificates,
        )
        for kind in BACKENDS
        if kind not in cfg.clustered
    }
    clusters = {
        kind: ClusterService(kind, config=cfg, providers=providers, certificates=certificates)
        for kind in cfg.clustered
    }
    # Named as the adapters' settings models read them (``mas_storage.stack_output_keys()``,
    # less ``qdrant_path``: the lab runs a Qdrant server; the admin ones as the admin keys);
    # a test holds the two together.
    outputs: dict[str, pulumi.Output[Any]] = {CA_OUTPUT: certificates.ca_pem}
    admin: dict[str, pulumi.Output[str]] = {}
    parts = [(b.outputs, b.admin) for b in backends.values()]
    parts += [(c.outputs, c.admin) for c in clusters.values()]
    for backend_outputs, backend_admin in parts:
        outputs.update(backend_outputs)
        admin.update(backend_admin)
    return MasStack(cfg, providers, certificates, backends, outputs, admin, clusters)


def export_outputs(stack: MasStack) -> None:
    """Export every output under the key its settings field reads (``scripts/lab-outputs``
    sorts them into the stack-outputs and the admin outputs files)."""
    for key, value in {**stack.outputs, **stack.admin_outputs}.items():
        pulumi.export(key, value)
