"""The ``mas-devstack`` command line: status table, errors as one line and exit status 1."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from mas_devstack import SERVICE_NAMES
from mas_devstack.__main__ import main
from mas_storage import backend_versions


@pytest.fixture(autouse=True)
def _keep_logger_levels() -> Iterator[None]:
    """``main()`` quiets the drivers' loggers for the process, as a command should; here it
    runs inside the test process, whose later tests assert that httpx and httpcore log."""
    loggers = [logging.getLogger(n) for n in ("neo4j", "httpx", "httpcore", "yoyo")]
    levels = [logger.level for logger in loggers]
    yield
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


def test_status_prints_every_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--root", str(tmp_path), "--port-base", "62900", "status"])
    assert caught.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["service", "state", "pid", "address", "version", "tested"]
    assert [line.split()[0] for line in lines[1:]] == list(SERVICE_NAMES)
    assert all(line.split()[1] in ("stopped", "embedded") for line in lines[1:])
    # the last column: the backend versions manifest's version of each
    tested = backend_versions()
    assert {line.split()[0]: line.split()[-1] for line in lines[1:]} == {
        name: tested[name].version for name in SERVICE_NAMES
    }


def test_an_unknown_service_is_an_error_with_exit_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--root", str(tmp_path), "up", "mongodb"])
    assert caught.value.code == 1
    err = capsys.readouterr().err
    assert "mas-devstack: error: unknown service(s) ['mongodb']" in err


def test_down_with_nothing_running(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["--root", str(tmp_path), "--port-base", "62900", "down"])
    assert "stopped: nothing" in capsys.readouterr().out


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
