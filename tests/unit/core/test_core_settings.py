"""The shared settings base, proved source by source: argument > env > .env > outputs > default.

A test-only model (``WidgetSettings``, as a third-party adapter would declare it) exercises the
base; the five first-party models are reached through the registry, as the core reaches them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pytest
import trustme
from pydantic import Field, SecretStr

from mas_storage import (
    AdapterSettings,
    Integer,
    NodeList,
    Seconds,
    StackOutput,
    StorageAdapter,
    StorageDataError,
    get_adapter_class,
    load_stack_outputs,
    settings_table,
    stack_output_keys,
)

KINDS = ("postgres", "redis", "qdrant", "neo4j", "typesense")
#: The stack-outputs file's keys: Pulumi's exports and the local stack's file (the contract).
OUTPUT_KEYS = (
    "neo4j_password",
    "neo4j_url",
    "neo4j_user",
    "postgres_url",
    "qdrant_api_key",
    "qdrant_path",
    "qdrant_read_only_api_key",
    "qdrant_url",
    "redis_cluster_nodes",
    "redis_url",
    "tls_ca",
    "typesense_api_key",
    "typesense_nodes",
    "typesense_url",
)


class WidgetSettings(AdapterSettings):
    """What a third-party adapter package declares."""

    model_config = AdapterSettings.model_config | {"env_prefix": "WIDGET_"}

    url: Annotated[str, StackOutput("widget_url")] = Field(
        "http://127.0.0.1:1", description="where"
    )
    token: Annotated[SecretStr | None, StackOutput("widget_token")] = Field(
        None, description="credential"
    )
    nodes: Annotated[NodeList, StackOutput("widget_nodes")] = Field((), description="cluster seeds")
    retries: Integer = Field(2, ge=0, description="retries")
    timeout: Seconds = Field(5.0, description="seconds")


def _settings(kind: str, **values: Any) -> AdapterSettings:
    return get_adapter_class(kind).settings_model(**values)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty working directory (no .env, no .mas/) and none of our variables set."""
    import os

    for name in list(os.environ):
        if name.startswith(("POSTGRES_", "REDIS_", "QDRANT_", "NEO4J_", "TYPESENSE_", "WIDGET_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("MAS_STACK_OUTPUTS", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_outputs(path: Path, **values: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    return path


# -- the five first-party models, through the registry ----------------------------------------


def test_every_adapter_declares_its_own_model() -> None:
    models = {kind: get_adapter_class(kind).settings_model for kind in KINDS}
    assert all(issubclass(m, AdapterSettings) and m is not AdapterSettings for m in models.values())
    assert len(set(models.values())) == len(KINDS)
    assert {m.model_config["env_prefix"] for m in models.values()} == {
        f"{kind.upper()}_" for kind in KINDS
    }


def test_stack_output_keys_are_the_models_own() -> None:
    """One source: the union of the models' StackOutput fields is the outputs contract."""
    assert stack_output_keys() == OUTPUT_KEYS


def test_loopback_defaults_without_any_source() -> None:
    assert _settings("postgres").url.get_secret_value() == (  # type: ignore[attr-defined]
        "postgresql://mas@127.0.0.1:55432/mas_memory"
    )
    redis = _settings("redis")
    assert (redis.url, redis.host, redis.port) == (None, "127.0.0.1", 56379)  # type: ignore[attr-defined]
    assert _settings("neo4j").url == "bolt://127.0.0.1:57687"  # type: ignore[attr-defined]
    qdrant = _settings("qdrant")
    assert (qdrant.path, qdrant.url) == (".mas/qdrant", None)  # type: ignore[attr-defined]
    typesense = _settings("typesense", api_key="k" * 8)
    assert typesense.url == "http://127.0.0.1:58108"  # type: ignore[attr-defined]


def test_every_outputs_key_reaches_its_settings(clean_env: Path) -> None:
    """Every key of the contract feeds its field, in every model that reads it (``tls_ca``,
    one key, feeds all five: a PEM text here, as on the lab)."""
    ca_pem = trustme.CA().cert_pem.bytes().decode()
    write_outputs(
        clean_env / ".mas/stack-outputs.json",
        postgres_url="postgresql://mas:pg-pw@127.0.0.1:5/db?sslmode=verify-full",
        redis_url="rediss://mas_app:redis-pw@127.0.0.1:6/0",
        redis_cluster_nodes="127.0.0.1:16,127.0.0.1:17",  # NodeList: comma-separated here
        qdrant_url="https://127.0.0.1:7",
        qdrant_api_key="qdrant-key",
        qdrant_read_only_api_key="qdrant-read-key",
        qdrant_path=None,
        neo4j_url="bolt+s://127.0.0.1:8",
        neo4j_user="neo",
        neo4j_password="neo-pw",
        typesense_url="https://127.0.0.1:9",
        typesense_nodes=["https://127.0.0.1:9", "https://127.0.0.1:10"],
        typesense_api_key="ts-key",
        tls_ca=ca_pem,
        something_pulumi_exports=[1, 2],  # unknown keys are tolerated
    )
    seen: dict[str, Any] = {}
    tls_ca: dict[str, Any] = {}
    for kind in KINDS:
        settings = _settings(kind)
        for field, key in type(settings).stack_output_keys().items():
            value = getattr(settings, field)
            value = value.get_secret_value() if isinstance(value, SecretStr) else value
            if key == "tls_ca":
                tls_ca[kind] = value
            else:
                seen[key] = value
    assert tls_ca == dict.fromkeys(KINDS, ca_pem)
    assert seen == {
        "postgres_url": "postgresql://mas:pg-pw@127.0.0.1:5/db?sslmode=verify-full",
        "redis_url": "rediss://mas_app:redis-pw@127.0.0.1:6/0",
        "redis_cluster_nodes": ("127.0.0.1:16", "127.0.0.1:17"),
        "qdrant_url": "https://127.0.0.1:7",
        "qdrant_api_key": "qdrant-key",
        "qdrant_read_only_api_key": "qdrant-read-key",
        "qdrant_path": ".mas/qdrant",  # null in the file: the default
        "neo4j_url": "bolt+s://127.0.0.1:8",
        "neo4j_user": "neo",
        "neo4j_password": "neo-pw",
        "typesense_url": "https://127.0.0.1:9",
        "typesense_nodes": ("https://127.0.0.1:9", "https://127.0.0.1:10"),
        "typesense_api_key": "ts-key",
    }


def test_secrets_are_hidden_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", "postgresql://mas:pg-secret@127.0.0.1/db")
    monkeypatch.setenv("REDIS_URL", "redis://:redis-secret@127.0.0.1/0")
    monkeypatch.setenv("NEO4J_URL", "bolt://neo4j:url-secret@127.0.0.1:7687")
    monkeypatch.setenv("NEO4J_PASSWORD", "neo-secret")
    monkeypatch.setenv("TYPESENSE_API_KEY", "ts-secret")
    monkeypatch.setenv("QDRANT_API_KEY", "qd-secret")
    text = "".join(repr(_settings(kind)) + str(_settings(kind)) for kind in KINDS)
    for secret in ("pg-secret", "redis-secret", "url-secret", "neo-secret", "ts-secret"):
        assert secret not in text
    assert "qd-secret" not in text


# -- the base, with a model of our own ----------------------------------------------------------


def test_precedence_source_by_source(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = write_outputs(
        clean_env / "out.json", widget_url="http://127.0.0.1:3", widget_token="file-token"
    )
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(outputs))
    assert WidgetSettings().url == "http://127.0.0.1:3"  # file over default
    (clean_env / ".env").write_text("WIDGET_URL=http://127.0.0.1:2\nWIDGET_RETRIES=7\n")
    assert WidgetSettings().url == "http://127.0.0.1:2"  # .env over file
    assert WidgetSettings().retries == 7
    monkeypatch.setenv("WIDGET_URL", "http://127.0.0.1:1")
    assert WidgetSettings().url == "http://127.0.0.1:1"  # env over .env
    assert WidgetSettings(url="http://127.0.0.1:0").url == "http://127.0.0.1:0"  # arg over env
    # Each field resolves on its own: the token still comes from the file.
    token = WidgetSettings().token
    assert token is not None and token.get_secret_value() == "file-token"


def test_a_mapping_is_a_complete_config_and_reads_no_source(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_outputs(clean_env / ".mas/stack-outputs.json", widget_token="file-token")
    monkeypatch.setenv("WIDGET_RETRIES", "9")
    settings = WidgetSettings.from_config({"url": "http://127.0.0.1:5"})
    assert (settings.url, settings.token, settings.retries) == ("http://127.0.0.1:5", None, 2)
    assert WidgetSettings.from_config(None).retries == 9  # None reads the sources
    assert WidgetSettings.from_config("http://h:1").url == "http://h:1"  # a URL string
    instance = WidgetSettings(retries=1)
    assert WidgetSettings.from_config(instance) is instance


def test_a_mapping_is_validated_strictly() -> None:
    """Python types in code: "5" for an int is a mistake there (the environment may say "5")."""
    with pytest.raises(StorageDataError, match="retries: Input should be a valid integer"):
        WidgetSettings.from_config({"retries": "5"})
    with pytest.raises(StorageDataError, match="retries: a bool is not accepted"):
        WidgetSettings.from_config({"retries": True})
    with pytest.raises(StorageDataError, match="timeout: Input should be a finite number"):
        WidgetSettings.from_config({"timeout": float("inf")})
    assert WidgetSettings(retries="5").retries == 5  # type: ignore[arg-type]


def test_unknown_keys_are_refused_with_the_nearest_known_one() -> None:
    with pytest.raises(StorageDataError) as info:
        WidgetSettings.from_config({"retires": 3})
    assert "unknown key 'retires' (did you mean 'retries'?)" in str(info.value)
    assert "known keys: auto_connect, metrics, nodes, retries, timeout, token, url" in str(
        info.value
    )
    with pytest.raises(StorageDataError, match="unknown key 'retires'"):
        WidgetSettings(retires=3)  # type: ignore[call-arg]
    with pytest.raises(StorageDataError, match=r"unknown key 'metrics.sampling_rat'"):
        WidgetSettings.from_config({"metrics": {"sampling_rat": 0.5}})


def test_unknown_variables_of_the_shared_environment_are_ignored(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kubernetes service links and a docker-compose .env hold variables we do not own."""
    monkeypatch.setenv("WIDGET_SERVICE_HOST", "10.0.0.1")
    (clean_env / ".env").write_text("WIDGET_PASSWORD=for-the-container\nOTHER=1\n")
    assert WidgetSettings().retries == 2


def test_invalid_value_error_names_its_sources_never_the_value(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WIDGET_RETRIES", "lots-of-hunter2")
    with pytest.raises(StorageDataError) as info:
        WidgetSettings()
    message = str(info.value)
    assert "hunter2" not in message
    assert message.startswith("Invalid WidgetSettings: retries: ")
    assert "WIDGET_RETRIES" in message


def test_outputs_value_of_wrong_type_names_file_and_key(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_outputs(clean_env / "o.json", widget_url=6379, widget_token=12345678)
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(path))
    with pytest.raises(StorageDataError) as info:
        WidgetSettings()
    assert f"stack output 'widget_url' in {path}" in str(info.value)
    assert "12345678" not in str(info.value)


def test_node_lists_from_every_source(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert WidgetSettings(nodes="h1:1, h2:2").nodes == ("h1:1", "h2:2")  # type: ignore[arg-type]
    assert WidgetSettings.from_config({"nodes": ["h1:1"]}).nodes == ("h1:1",)
    path = write_outputs(clean_env / "o.json", widget_nodes=["a:1", "b:2", "c:3"])
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(path))
    assert WidgetSettings().nodes == ("a:1", "b:2", "c:3")  # a JSON array in the outputs
    (clean_env / ".env").write_text('WIDGET_NODES=["d:4","e:5"]\n')
    assert WidgetSettings().nodes == ("d:4", "e:5")  # JSON in .env
    monkeypatch.setenv("WIDGET_NODES", "f:6,g:7")
    assert WidgetSettings().nodes == ("f:6", "g:7")  # comma-separated in the environment
    monkeypatch.setenv("WIDGET_NODES", "[not json")
    with pytest.raises(StorageDataError, match="nodes: a node list starting with"):
        WidgetSettings()


def test_nested_metrics_keys_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WIDGET_METRICS__SAMPLING_RATE", "0.5")
    monkeypatch.setenv("WIDGET_AUTO_CONNECT", "true")
    settings = WidgetSettings()
    assert (settings.metrics.sampling_rate, settings.auto_connect) == (0.5, True)
    monkeypatch.setenv("WIDGET_METRICS", "false")
    monkeypatch.delenv("WIDGET_METRICS__SAMPLING_RATE")
    assert WidgetSettings().metrics.enabled is False


def test_secret_values_for_redaction() -> None:
    settings = WidgetSettings.from_config({"url": "http://h:1", "token": "tok-12345"})
    assert list(settings.secret_values()) == ["tok-12345"]
    assert "tok-12345" not in repr(settings)


def test_a_model_without_prefix_reads_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTO_CONNECT", "true")
    assert AdapterSettings().auto_connect is False


def test_another_adapters_settings_are_refused() -> None:
    with pytest.raises(StorageDataError, match="WidgetSettings expected, got AdapterSettings"):
        WidgetSettings.from_config(AdapterSettings())
    with pytest.raises(StorageDataError, match="must be a mapping, a WidgetSettings or a URL"):
        WidgetSettings.from_config(42)


def test_settings_are_frozen() -> None:
    settings = WidgetSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.retries = 3  # type: ignore[misc]


def test_stack_output_key_must_be_a_plain_name() -> None:
    with pytest.raises(ValueError, match="stack output key"):
        StackOutput("Widget-URL")


def test_an_adapter_brings_its_own_model() -> None:
    class WidgetAdapter(StorageAdapter):
        kind = "widget"
        settings_model = WidgetSettings

        async def connect(self) -> None: ...
        async def disconnect(self) -> None: ...
        async def store(self, data: dict[str, Any]) -> str: ...
        async def retrieve(self, id: str) -> dict[str, Any] | None: ...
        async def search(self, query: dict[str, Any]) -> list[dict[str, Any]]: ...
        async def delete(self, id: str) -> bool: ...

    adapter = WidgetAdapter({"token": "tok-12345", "metrics": False})
    assert isinstance(adapter.config, WidgetSettings)
    assert adapter._secret_values == ("tok-12345",)
    assert adapter.metrics.enabled is False
    with pytest.raises(TypeError, match="settings_model must subclass AdapterSettings"):

        class Broken(WidgetAdapter):
            settings_model = dict  # type: ignore[assignment]


def test_settings_table_is_generated_from_the_model() -> None:
    table = settings_table(WidgetSettings)
    lines = table.splitlines()
    assert lines[0] == "| key | type | default | env | stack output | meaning |"
    rows = {line.split(" | ")[0].strip("| `"): line for line in lines[2:]}
    assert list(rows) == ["auto_connect", "metrics", "url", "token", "nodes", "retries", "timeout"]
    assert rows["retries"] == "| `retries` | int ≥ 0 | `2` | `WIDGET_RETRIES` | — | retries |"
    assert "secret string, or unset | unset | `WIDGET_TOKEN` | `widget_token`" in rows["token"]
    assert "list of strings | none | `WIDGET_NODES`" in rows["nodes"]
    assert "number > 0 | `5` |" in rows["timeout"]
    assert "`WIDGET_METRICS__*`" in rows["metrics"]


# -- the outputs file itself ----------------------------------------------------------------------


def test_named_outputs_file_that_is_missing(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(clean_env / "nope.json"))
    with pytest.raises(StorageDataError, match=r"nope\.json does not exist"):
        WidgetSettings()


def test_malformed_outputs_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = clean_env / "bad.json"
    bad.write_text("{not json")
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(bad))
    with pytest.raises(StorageDataError, match=r"bad\.json is not valid JSON"):
        WidgetSettings()
    bad.write_text("[1, 2]")
    with pytest.raises(StorageDataError, match=r"bad\.json must hold a JSON object"):
        WidgetSettings()


def test_masked_pulumi_secret_is_explained(clean_env: Path) -> None:
    path = write_outputs(clean_env / "o.json", neo4j_password="[secret]")
    with pytest.raises(StorageDataError, match=r"neo4j_password.*--show-secrets"):
        load_stack_outputs(path)


def test_outputs_file_keeps_unknown_keys_and_drops_nulls(clean_env: Path) -> None:
    path = write_outputs(
        clean_env / "o.json", something_else=[1], redis_url="redis://h/0", qdrant_url=None
    )
    assert load_stack_outputs(path) == {"something_else": [1], "redis_url": "redis://h/0"}


class PairedWidgetSettings(WidgetSettings):
    """A model whose ``url`` and ``nodes`` come from one source (``key_groups``)."""

    key_groups = (frozenset({"url", "nodes"}),)


def test_a_key_group_comes_from_the_highest_source_that_gives_any_of_it(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_outputs(
        clean_env / "o.json", widget_url="http://out:1", widget_nodes=["out:1", "out:2"]
    )
    monkeypatch.setenv("MAS_STACK_OUTPUTS", str(path))
    both = PairedWidgetSettings()
    assert (both.url, both.nodes) == ("http://out:1", ("out:1", "out:2"))
    monkeypatch.setenv("WIDGET_URL", "http://env:1")  # the environment names one server
    env = PairedWidgetSettings()
    assert (env.url, env.nodes) == ("http://env:1", ())  # not mixed with the outputs' nodes
    unpaired = WidgetSettings()  # without the group, each key comes from its own best source
    assert (unpaired.url, unpaired.nodes) == ("http://env:1", ("out:1", "out:2"))
    arg = PairedWidgetSettings(nodes="arg:1")  # type: ignore[arg-type]
    assert (arg.url, arg.nodes) == ("http://127.0.0.1:1", ("arg:1",))
    monkeypatch.delenv("WIDGET_URL")
    (clean_env / ".env").write_text("WIDGET_NODES=dot:1\n")
    dotenv = PairedWidgetSettings()
    assert (dotenv.url, dotenv.nodes) == ("http://127.0.0.1:1", ("dot:1",))
