"""The whole program as a function: providers per host, one component per backend, outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from ._backends import BACKEND_COMPONENTS, BackendService
from ._config import BACKENDS, InfraConfig, load_config

__all__ = ["MasStack", "build_stack", "export_outputs"]


@dataclass(frozen=True)
class MasStack:
    """What :func:`build_stack` created, for ``__main__`` to export and tests to inspect."""

    config: InfraConfig
    providers: Mapping[str, docker.Provider]
    backends: Mapping[str, BackendService]
    outputs: Mapping[str, pulumi.Output[str]]


def build_stack(config: InfraConfig | None = None) -> MasStack:
    """Create one Docker provider per host in use and the five backend components on them."""
    cfg = config if config is not None else load_config()
    providers = {
        name: docker.Provider(
            f"docker-{name}",
            host=cfg.hosts[name].docker_host,
            ssh_opts=list(cfg.hosts[name].ssh_opts) or None,
        )
        for name in cfg.used_hosts
    }
    backends = {
        kind: BACKEND_COMPONENTS[kind](kind, config=cfg, provider=providers[cfg.placement[kind]])
        for kind in BACKENDS
    }
    # Each component exports its backend's outputs, named as the adapters' settings models read
    # them (``mas_storage.stack_output_keys()``, less ``qdrant_path``: the lab runs a Qdrant
    # server); a test holds the two together.
    outputs: dict[str, pulumi.Output[str]] = {}
    for backend in backends.values():
        outputs.update(backend.outputs)
    return MasStack(cfg, providers, backends, outputs)


def export_outputs(stack: MasStack) -> None:
    """Export the outputs under the keys the adapters' settings read."""
    for key, value in stack.outputs.items():
        pulumi.export(key, value)
