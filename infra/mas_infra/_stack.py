"""The whole program as a function: providers per host, one component per backend, outputs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from ._backends import BACKEND_COMPONENTS, BackendService
from ._config import BACKENDS, InfraConfig, load_config

__all__ = ["STACK_OUTPUT_KEYS", "MasStack", "build_stack", "export_outputs"]

#: The stack outputs, named as the core settings read them (``mas_storage.STACK_OUTPUT_KEYS``
#: without ``qdrant_path``, which only the local embedded Qdrant has).
STACK_OUTPUT_KEYS = (
    "postgres_url",
    "redis_url",
    "qdrant_url",
    "qdrant_api_key",
    "neo4j_url",
    "neo4j_user",
    "neo4j_password",
    "typesense_url",
    "typesense_api_key",
)


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
    outputs: dict[str, pulumi.Output[str]] = {}
    for backend in backends.values():
        outputs.update(backend.outputs)
    if sorted(outputs) != sorted(STACK_OUTPUT_KEYS):  # a programming error, not a config one
        raise RuntimeError(f"stack outputs {sorted(outputs)} != {sorted(STACK_OUTPUT_KEYS)}")
    return MasStack(cfg, providers, backends, {k: outputs[k] for k in STACK_OUTPUT_KEYS})


def export_outputs(stack: MasStack) -> None:
    """Export the outputs under the keys the core settings read."""
    for key, value in stack.outputs.items():
        pulumi.export(key, value)
