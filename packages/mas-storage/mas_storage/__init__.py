"""mas-storage: the core of the mas-memory storage layer.

The abstract :class:`StorageAdapter`, the six storage errors, the validators, the base of the
adapters' settings models (:class:`AdapterSettings`), the adapter registry, the metrics, and the
manifest of the backend versions every suite tests (:func:`backend_versions`).
Concrete adapters, each with its own settings model, live in their own packages
(``mas-storage-postgres``, ``-redis``, ``-qdrant``, ``-neo4j``, ``-typesense``) and are obtained
through :func:`create_adapter`.
"""

from ._base import AdapterConfig, StorageAdapter
from ._exceptions import (
    StorageConnectionError,
    StorageDataError,
    StorageError,
    StorageNotFoundError,
    StorageQueryError,
    StorageTimeoutError,
)
from ._http import HTTP_STATUS_ERRORS, error_for_status
from ._operations import operation
from ._redact import mask_url, redact
from ._registry import (
    ENTRY_POINT_GROUP,
    AdapterNotFoundError,
    available_adapters,
    create_adapter,
    get_adapter_class,
    register_adapter,
    stack_output_keys,
)
from ._settings import (
    ADMIN_OUTPUTS_ENV,
    DEFAULT_ADMIN_OUTPUTS,
    DEFAULT_STACK_OUTPUTS,
    STACK_OUTPUTS_ENV,
    AdapterSettings,
    StackOutput,
    admin_outputs_path,
    load_admin_outputs,
    load_stack_outputs,
    stack_outputs_path,
)
from ._settings_doc import render_settings_tables, settings_table
from ._telemetry import DatabaseFacts, configure_telemetry
from ._tls import (
    CA_OUTPUT,
    CaCertificate,
    CertificateFailure,
    TlsSettings,
    certificate_error,
    certificate_failure,
)
from ._types import Integer, NodeList, Seconds
from ._validation import validate_field_types, validate_required_fields
from ._version import __version__ as __version__
from ._versions import BackendVersion, backend_versions
from .metrics import MetricsCollector, MetricsSettings

__all__ = [
    "ADMIN_OUTPUTS_ENV",
    "CA_OUTPUT",
    "DEFAULT_ADMIN_OUTPUTS",
    "DEFAULT_STACK_OUTPUTS",
    "ENTRY_POINT_GROUP",
    "HTTP_STATUS_ERRORS",
    "STACK_OUTPUTS_ENV",
    "AdapterConfig",
    "AdapterNotFoundError",
    "AdapterSettings",
    "BackendVersion",
    "CaCertificate",
    "CertificateFailure",
    "DatabaseFacts",
    "Integer",
    "MetricsCollector",
    "MetricsSettings",
    "NodeList",
    "Seconds",
    "StackOutput",
    "StorageAdapter",
    "StorageConnectionError",
    "StorageDataError",
    "StorageError",
    "StorageNotFoundError",
    "StorageQueryError",
    "StorageTimeoutError",
    "TlsSettings",
    "admin_outputs_path",
    "available_adapters",
    "backend_versions",
    "certificate_error",
    "certificate_failure",
    "configure_telemetry",
    "create_adapter",
    "error_for_status",
    "get_adapter_class",
    "load_admin_outputs",
    "load_stack_outputs",
    "mask_url",
    "operation",
    "redact",
    "register_adapter",
    "render_settings_tables",
    "settings_table",
    "stack_output_keys",
    "stack_outputs_path",
    "validate_field_types",
    "validate_required_fields",
]
