"""The stack settles: right after ``pulumi up``, ``pulumi preview --expect-no-changes`` is clean.

A program that sends different inputs on each run diffs for ever: two builds of the same config
must register byte-identical inputs for every resource (certificates, uploads, ACL file,
durations...), with nothing taken from the clock. Two diffs every lab user saw on a real
engine (issue 16) are pinned here too:

* ``memorySwap``: with only ``memory`` set, Docker gives a container twice that in memory+swap
  and the provider reads it back, so every container sets ``memory`` and ``memorySwap`` (equal:
  no swap) explicitly;
* durations: the provider compares them as Go's ``time.Duration.String()`` prints them, so
  ``60s`` against the engine's ``1m0s`` is a diff; every duration is written in that form.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

import pytest
from infra_harness import CONTAINER, Built, build_program
from mas_infra import go_duration
from pulumi.runtime import rpc

#: What Go 1.26's ``(time.Duration(s) * time.Second).String()`` printed for these seconds.
GO_PRINTS = {
    0: "0s",
    1: "1s",
    5: "5s",
    30: "30s",
    59: "59s",
    60: "1m0s",
    61: "1m1s",
    90: "1m30s",
    600: "10m0s",
    3599: "59m59s",
    3600: "1h0m0s",
    3661: "1h1m1s",
    7322: "2h2m2s",
    86400: "24h0m0s",
}
#: Container properties that hold a duration (pulumi-docker 5: the healthcheck's four).
DURATION_KEYS = ("interval", "timeout", "startPeriod", "startInterval")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def _seconds(text: str) -> int:
    """Whole seconds in a ``[Nh][Nm][Ns]`` duration, whatever its form (``60s`` or ``1m0s``)."""
    found = _DURATION.match(text)
    assert found and text, f"{text!r} is not a duration in h/m/s"
    hours, minutes, secs = (int(part or 0) for part in found.groups())
    return hours * 3600 + minutes * 60 + secs


def _plain(value: Any) -> Any:
    return rpc.unwrap_rpc_secret(value) if rpc.is_rpc_secret(value) else value


@pytest.mark.parametrize(("seconds", "printed"), sorted(GO_PRINTS.items()))
def test_go_duration_prints_what_go_prints(seconds: int, printed: str) -> None:
    assert go_duration(seconds) == printed


@pytest.mark.parametrize("bad", [-1, 1.5, True, "60"])
def test_go_duration_refuses_what_is_not_whole_seconds(bad: Any) -> None:
    with pytest.raises(ValueError, match="whole, non-negative number of seconds"):
        go_duration(bad)


def test_every_duration_is_written_as_go_prints_it(built: Built) -> None:
    found = 0
    for container in built.of_type(CONTAINER):
        health = _plain(container.inputs["healthcheck"])
        for key in DURATION_KEYS:
            if key not in health:
                continue
            text = str(health[key])
            assert text == go_duration(_seconds(text)), (
                f"{container.name}: healthcheck.{key} = {text!r}; the provider reads back "
                f"{go_duration(_seconds(text))!r} and shows a diff on every preview"
            )
            found += 1
    assert found >= 15  # interval, timeout and startPeriod of five containers


def test_neo4j_start_period_is_one_minute_in_go_form(built: Built) -> None:
    health = built.one(CONTAINER, "neo4j-container").inputs["healthcheck"]
    assert health["startPeriod"] == "1m0s"


def test_every_container_sets_memory_and_swap_equal(built: Built) -> None:
    config = built.stack.config
    containers = built.of_type(CONTAINER)
    assert len(containers) == 5
    for container in containers:
        backend = container.name.removesuffix("-container")
        inputs = container.inputs
        assert "memory" in inputs and "memorySwap" in inputs, (
            f"{container.name}: memory and memorySwap must both be set, or Docker picks the swap "
            "and the provider reads it back as a diff"
        )
        assert int(inputs["memory"]) == config.memory_mb[backend] > 0
        assert int(inputs["memorySwap"]) == int(inputs["memory"])


def test_two_builds_register_identical_inputs(dev_config: dict[str, Any], dev_built: Built) -> None:
    time.sleep(1.1)  # a second later: anything taken from the clock would differ
    again = build_program(copy.deepcopy(dev_config))
    first = {(r.type, r.name): r for r in dev_built.registrations}
    second = {(r.type, r.name): r for r in again.registrations}
    assert sorted(first) == sorted(second)
    for key, reg in first.items():
        other = second[key]
        assert reg.inputs == other.inputs, f"{key} changes from one run to the next"
        assert reg.additional_secret_outputs == other.additional_secret_outputs, key
    assert (dev_built.outputs, dev_built.admin_outputs) == (again.outputs, again.admin_outputs)


def test_uploads_are_in_the_providers_own_form(built: Built) -> None:
    # The provider validates permissions against ^0[0-7]{3}$ and stores them as given: a mode
    # written otherwise would fail the up, or be read back in another form.
    for container in built.of_type(CONTAINER):
        uploads = _plain(container.inputs["uploads"])
        assert uploads, container.name
        for upload in uploads:
            upload = _plain(upload)
            assert re.fullmatch(r"0[0-7]{3}", upload["permissions"]), upload["file"]
            assert isinstance(_plain(upload["content"]), str) and _plain(upload["content"])
            assert not {"contentBase64", "source", "executable"} & set(upload), upload["file"]
