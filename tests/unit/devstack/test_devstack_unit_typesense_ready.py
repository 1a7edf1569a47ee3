"""A Typesense start counts as up only once caught up: a write through its log is answered
(404 for the probe's missing collection, not 503) and ``pending_write_batches`` is 0.

After a restart Typesense replays its Raft log through a write queue and answers ``/health``
ok while up to 1000 entries still wait; writes are refused (503) while more than 500 wait, and
the queued documents read as 404 meanwhile. The start's readiness check must wait for both;
the plain check (status, reuse) must not, or a busy server would be restarted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mas_devstack import Stack
from mas_devstack._services import Typesense


def _typesense(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pending: int, write_status: int = 404
) -> Typesense:
    service = Stack(tmp_path, port_base=62500)._service("typesense")
    assert isinstance(service, Typesense)
    answers: dict[str, Any] = {
        "/health": {"ok": True},
        "/collections": [],
        "/stats.json": {"pending_write_batches": pending},
    }

    def fake_get(path: str, timeout: float, *, auth: bool = True) -> Any:
        return answers[path]

    monkeypatch.setattr(service, "_get", fake_get)
    monkeypatch.setattr(service, "_write_through_log", lambda timeout: write_status)
    return service


def test_a_start_is_not_up_while_writes_are_queued(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _typesense(tmp_path, monkeypatch, pending=256)
    assert service.check(2.0, ready=True) is False
    with pytest.raises(RuntimeError, match="256 write batches queued"):
        service.probe_ready(2.0)


def test_a_start_is_up_once_the_queue_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _typesense(tmp_path, monkeypatch, pending=0).check(2.0, ready=True) is True


def test_status_and_reuse_ignore_the_queue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _typesense(tmp_path, monkeypatch, pending=256).check(2.0) is True


def test_a_start_is_not_up_while_writes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = _typesense(tmp_path, monkeypatch, pending=0, write_status=503)
    assert service.check(2.0, ready=True) is False
    with pytest.raises(RuntimeError, match="HTTP 503"):
        service.probe_ready(2.0)
    assert service.check(2.0) is True
