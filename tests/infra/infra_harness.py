"""Build the Pulumi program under ``pulumi.runtime.set_mocks`` and record what the engine receives.

No CLI, no Docker: a recording mock monitor keeps every ``RegisterResource`` request (type, name,
parent, provider, options and the inputs with their secret marks) and the harness resolves the
stack outputs with their secretness.

Each build runs in a fresh thread, in a fresh ``contextvars`` context, on its own event loop:
Pulumi keeps its settings, config and root stack in context variables and drives its own loop,
so nothing leaks between builds or into pytest-asyncio's session loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import json
import string
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from mock_tls import TLS_TYPES, tls_state

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
for _path in (INFRA, INFRA / "policy"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import pulumi  # noqa: E402
from pulumi.runtime import mocks as pulumi_mocks  # noqa: E402
from pulumi.runtime import rpc  # noqa: E402
from pulumi.runtime import settings as pulumi_settings  # noqa: E402
from pulumi.runtime.stack import run_pulumi_func  # noqa: E402

PROJECT = "mas-memory"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
VOLUME = "docker:index/volume:Volume"
PROVIDER = "pulumi:providers:docker"
RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"
SECRET_KEYS = (
    "postgresPassword",
    "postgresSuperuserPassword",
    "postgresAppPassword",
    "redisPassword",
    "redisAppPassword",
    "qdrantApiKey",
    "qdrantReadOnlyApiKey",
    "neo4jPassword",
    "typesenseApiKey",
    "typesenseScopedApiKey",
)


@dataclass
class Registration:
    """One ``RegisterResource`` request as the engine would get it."""

    type: str
    name: str
    urn: str
    parent: str
    provider: str
    custom: bool
    protect: bool
    retain_on_delete: bool
    delete_before_replace: bool
    additional_secret_outputs: list[str]
    inputs: dict[str, Any]  # secret values keep their wire mark {sig: secret, value: ...}
    #: Properties whose change replaces the resource (``replace_on_changes``).
    replace_on_changes: list[str] = field(default_factory=list)


@dataclass
class Built:
    """The result of one mocked program run."""

    stack: Any  # mas_infra.MasStack
    registrations: list[Registration]
    outputs: dict[str, str]  # what the adapters read
    secret_outputs: set[str]  # of outputs and admin_outputs
    admin_outputs: dict[str, str] = field(default_factory=dict)  # owner and admin credentials
    state: dict[str, dict[str, Any]] = field(default_factory=dict)  # urn -> mock state

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == typ]

    def one(self, typ: str, name: str) -> Registration:
        found = [r for r in self.registrations if r.type == typ and r.name == name]
        assert len(found) == 1, f"{typ} {name}: {len(found)} registrations"
        return found[0]

    def provider_of(self, reg: Registration) -> Registration:
        """The provider registration a resource's ``provider`` reference (``urn::id``) names."""
        urn = reg.provider.rsplit("::", 1)[0]
        found = [r for r in self.registrations if r.type == PROVIDER and r.urn == urn]
        assert len(found) == 1, f"no provider registration for {reg.provider}"
        return found[0]


class RecordingMocks(pulumi.runtime.Mocks):
    """Plausible provider answers: image IDs for images, fixed-length passwords, real (and
    deterministic) keys and certificates for pulumi-tls (``mock_tls``), inputs echoed."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        state = dict(args.inputs)
        digest = hashlib.sha256(args.name.encode()).hexdigest()
        if args.typ == REMOTE_IMAGE:
            state["imageId"] = f"sha256:{digest}"
            state["repoDigest"] = f"{rpc.unwrap_rpc_secret(args.inputs['name'])}@sha256:{digest}"
        elif args.typ == RANDOM_PASSWORD:
            length = int(args.inputs["length"])
            alphabet = string.ascii_letters + string.digits
            seed = hashlib.sha256(f"password:{args.name}".encode()).digest() * 4
            state["result"] = "".join(alphabet[b % len(alphabet)] for b in seed[:length])
        elif args.typ in TLS_TYPES:
            state.update(tls_state(args.typ, args.name, state))
        return f"{args.name}-id", state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list | None]:
        return {}, None


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps each request's options and secret-marked inputs."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Registration] = []
        self._lock = threading.Lock()

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            reg = Registration(
                type=request.type,
                name=request.name,
                urn=response.urn,
                parent=request.parent,
                provider=request.provider,
                custom=request.custom,
                protect=bool(request.protect),
                retain_on_delete=bool(request.retainOnDelete),
                delete_before_replace=bool(request.deleteBeforeReplace),
                additional_secret_outputs=list(request.additionalSecretOutputs),
                inputs=inputs,
                replace_on_changes=list(request.replaceOnChanges),
            )
            with self._lock:
                self.registrations.append(reg)
        return response


class _LoopClosingExecutor(ThreadPoolExecutor):
    """The loop's default executor, where Pulumi runs its monitor calls.

    The mock monitor makes sure each worker thread has an event loop (it creates one when
    missing) and never closes it; closing it after each call keeps those loops and their
    sockets from being garbage-collected open (a ResourceWarning, an error under pytest's
    ``filterwarnings = error``).
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return super().submit(_closing_thread_loop, fn, *args, **kwargs)


def _closing_thread_loop(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    finally:
        try:
            thread_loop = asyncio.get_event_loop()  # the one the monitor set, if any
        except RuntimeError:
            thread_loop = None
        if thread_loop is not None and not thread_loop.is_running():
            asyncio.set_event_loop(None)
            thread_loop.close()


def _finish_pending_tasks(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel and reap what the program left running, as ``asyncio.run`` does before closing.

    Applies whose results no resource and no awaited output needs (``Output.apply`` runs,
    ``Output.all`` gathers) can still be pending when the program's function returns. Closing
    the loop over them leaves coroutines that were never awaited; the garbage collector reports
    them later, as an unraisable warning inside whichever test runs then (an error under
    ``filterwarnings = error``).
    """
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


def stack_file_config(stack: str) -> dict[str, Any]:
    """The ``config:`` of ``Pulumi.<stack>.yaml``, keys without the project prefix."""
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text(encoding="utf-8"))
    prefix = f"{PROJECT}:"
    config = {}
    for key, value in (data.get("config") or {}).items():
        assert key.startswith(prefix), f"config key {key} is not in the {PROJECT} namespace"
        config[key[len(prefix) :]] = value
    return config


def _flat_config(config: Mapping[str, Any]) -> dict[str, str]:
    """What the CLI hands the program: ``project:key`` -> string (objects as JSON)."""
    return {
        f"{PROJECT}:{key}": value if isinstance(value, str) else json.dumps(value)
        for key, value in config.items()
    }


def build_program(
    config: Mapping[str, Any],
    *,
    stack: str = "dev",
    program: Callable[[], Any] | None = None,
) -> Built:
    """Run ``mas_infra.build_stack()`` (or ``program``) under mocks with this stack config.

    Keys in :data:`SECRET_KEYS` are passed as secret config, as ``pulumi config set --secret``
    would. Raises whatever the program raised.
    """
    result: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        loop.set_default_executor(_LoopClosingExecutor(max_workers=4))

        def on_loop_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
            # A failed program leaves Pulumi's resource futures holding the same error; they are
            # collected later ("Future exception was never retrieved"). The error itself is
            # re-raised to the test, so only that echo is dropped.
            if "error" in result and "never retrieved" in str(context.get("message")):
                return
            loop.default_exception_handler(context)

        loop.set_exception_handler(on_loop_error)
        asyncio.set_event_loop(loop)
        try:
            # Pending output tasks live on the module-level settings object, not in the context:
            # drop any a failed build left behind (pulumi.runtime.test does the same).
            pulumi_settings.SETTINGS.outputs.clear()
            mocks = RecordingMocks()
            monitor = RecordingMonitor(mocks)
            pulumi.runtime.set_mocks(
                mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor
            )
            flat = _flat_config(config)
            secret = [f"{PROJECT}:{k}" for k in config if k in SECRET_KEYS]
            pulumi.runtime.set_all_config(flat, secret)

            def body() -> None:
                if program is not None:
                    result["stack"] = program()
                else:
                    from mas_infra import build_stack

                    result["stack"] = build_stack()

            async def main() -> None:
                await run_pulumi_func(body)
                built = result["stack"]
                secrets: set[str] = set()
                for kind in ("outputs", "admin_outputs"):
                    values = {}
                    for key, out in getattr(built, kind, {}).items() if built is not None else ():
                        values[key] = await out.future()
                        if await out.is_secret():
                            secrets.add(key)
                    result[kind] = values
                result["secrets"] = secrets

            loop.run_until_complete(main())
            result["registrations"] = list(monitor.registrations)
            result["state"] = {urn: reg.state for urn, reg in monitor.resources.items()}
        except BaseException as exc:  # handed to the calling thread
            result["error"] = exc
        finally:
            pulumi_settings.SETTINGS.outputs.clear()
            _finish_pending_tasks(loop)
            loop.run_until_complete(loop.shutdown_default_executor())
            asyncio.set_event_loop(None)
            loop.close()

    thread = threading.Thread(target=lambda: contextvars.Context().run(run), name="pulumi-mocks")
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive(), "the mocked Pulumi program did not finish in 120 s"
    if "error" in result:
        raise result["error"]
    return Built(
        stack=result["stack"],
        registrations=result["registrations"],
        outputs=result["outputs"],
        secret_outputs=result["secrets"],
        admin_outputs=result["admin_outputs"],
        state=result["state"],
    )


def load_lab_outputs() -> Any:
    """``scripts/lab-outputs`` as a module (a script without a .py name), for its functions."""
    import importlib.machinery
    import importlib.util

    path = str(ROOT / "scripts" / "lab-outputs")
    loader = importlib.machinery.SourceFileLoader("lab_outputs", path)
    spec = importlib.util.spec_from_loader("lab_outputs", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module
