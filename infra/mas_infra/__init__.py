"""The Pulumi program that stands up the five mas-memory backends with Docker (see docs/lab.md)."""

from ._backends import (
    BACKEND_COMPONENTS,
    CREDENTIAL_LENGTH,
    BackendService,
    Healthcheck,
    Neo4jService,
    PostgresService,
    QdrantService,
    RedisService,
    TypesenseService,
    http_probe,
)
from ._config import (
    BACKENDS,
    DEFAULT_IMAGES,
    DEFAULT_MEMORY_MB,
    DEFAULT_PORTS,
    Host,
    InfraConfig,
    InfraConfigError,
    image_reference_problem,
    load_config,
    parse_config,
)
from ._stack import MasStack, build_stack, export_outputs

__all__ = [
    "BACKENDS",
    "BACKEND_COMPONENTS",
    "CREDENTIAL_LENGTH",
    "DEFAULT_IMAGES",
    "DEFAULT_MEMORY_MB",
    "DEFAULT_PORTS",
    "BackendService",
    "Healthcheck",
    "Host",
    "InfraConfig",
    "InfraConfigError",
    "MasStack",
    "Neo4jService",
    "PostgresService",
    "QdrantService",
    "RedisService",
    "TypesenseService",
    "build_stack",
    "export_outputs",
    "http_probe",
    "image_reference_problem",
    "load_config",
    "parse_config",
]
