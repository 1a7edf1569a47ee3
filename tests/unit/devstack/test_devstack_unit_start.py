"""Start, reuse, restart and stop through the Stack, with a stand-in echo server as backend:
detached processes, PID files, errors that carry the (masked) tail of the log.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from devstack_fakes import ECHO, EchoService, with_echo

from mas_devstack import DevstackError, ServiceStartError, Stack
from mas_devstack._process import port_open
from mas_devstack._stack import START_ATTEMPTS

Spawn = Callable[..., subprocess.Popen[bytes]]


def _free_base() -> int:
    """Five free ports from a random base: two test runs at once must not meet on one port."""
    for _ in range(200):
        base = random.randrange(62000, 64900, 5)
        if not any(port_open(port) for port in range(base, base + 5)):
            return base
    raise AssertionError("no five free consecutive ports in 62000-64900")


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path, port_base=_free_base())
    yield stack
    stack.down(["redis"])


def test_start_runs_it_detached_with_a_pid_file_and_a_log(stack: Stack) -> None:
    service = with_echo(stack)
    assert stack.start("redis") is True
    pid = stack.pid("redis")
    assert pid is not None
    assert os.getsid(pid) == pid  # its own session: our terminal's signals do not reach it
    assert stack.layout.pid_path("redis").read_text().split()[0] == str(pid)
    assert service.check(2.0)
    log = stack.layout.log_path("redis").read_text()
    assert "=== mas-devstack: starting redis" in log
    assert f"echo pid {pid}" in log
    status = stack.status()["redis"]
    assert (status.state, status.pid, status.version) == ("running", pid, "echo 1")
    assert status.address == f"127.0.0.1:{stack.ports.redis}"


def test_start_again_reuses_the_running_process(stack: Stack) -> None:
    with_echo(stack)
    assert stack.start("redis") is True
    pid = stack.pid("redis")
    assert stack.start("redis") is False
    assert stack.pid("redis") == pid


def test_stop_ends_it_closes_its_port_and_removes_the_pid_file(stack: Stack) -> None:
    with_echo(stack)
    stack.start("redis")
    pid = stack.pid("redis")
    assert pid is not None
    assert stack.stop("redis") is True
    assert _gone(pid)
    assert not port_open(stack.ports.redis)
    assert not stack.layout.pid_path("redis").exists()
    assert stack.stop("redis") is False
    assert stack.status()["redis"].state == "stopped"


def test_a_frozen_process_is_replaced_by_a_fresh_one(stack: Stack) -> None:
    with_echo(stack)
    stack.start("redis")
    old = stack.pid("redis")
    assert old is not None
    os.kill(old, signal.SIGSTOP)
    assert stack.status()["redis"].state == "unresponsive"
    assert stack.start("redis") is True
    new = stack.pid("redis")
    assert new not in (None, old)
    assert _gone(old)


def test_the_process_outlives_the_python_that_started_it(tmp_path: Path) -> None:
    base = _free_base()
    helper = Path(__file__).with_name("devstack_fakes.py")
    done = subprocess.run(
        [sys.executable, str(helper), str(tmp_path), str(base)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    started, pid = done.stdout.split()
    stack = Stack(tmp_path, port_base=base)
    service = with_echo(stack)
    try:
        assert started == "True"
        assert stack.pid("redis") == int(pid)
        assert service.check(2.0)  # mirakuru's exit hook did not take it along
    finally:
        stack.down()
    assert _gone(int(pid))


def test_a_crashing_backend_raises_with_its_masked_log_tail(stack: Stack) -> None:
    class Crashing(EchoService):
        script = (
            "import os, sys; print('boom: bad config, secret', os.environ['FAKE_SECRET']); "
            "sys.exit(3)"
        )

    service = with_echo(stack, Crashing)
    with pytest.raises(ServiceStartError, match="exited with status 3") as caught:
        stack.start("redis")
    message = str(caught.value)
    assert "boom: bad config, secret ***" in message
    assert service.secrets.redis_password not in message
    assert caught.value.service == "redis"
    assert stack.pid("redis") is None
    assert not stack.layout.pid_path("redis").exists()
    # Started START_ATTEMPTS times before giving up (each attempt logs its line).
    log_text = stack.layout.log_path("redis").read_text()
    assert log_text.count("boom: bad config") == START_ATTEMPTS


def test_a_backend_that_exits_at_its_first_start_is_started_again(stack: Stack) -> None:
    class FlakyBind(EchoService):
        # Exits the first time, as a server does when its port is briefly held elsewhere.
        script = (
            "import os, sys\n"
            "if not os.path.exists('tried-once'):\n"
            "    open('tried-once', 'w').close()\n"
            "    print('Fail to listen', flush=True)\n"
            "    sys.exit(255)\n" + ECHO
        )

    service = with_echo(stack, FlakyBind)
    try:
        assert stack.start("redis") is True
        assert service.check(2.0)
        assert stack.pid("redis") is not None
        assert "Fail to listen" in stack.layout.log_path("redis").read_text()
    finally:
        stack.down()


def test_a_backend_that_never_answers_is_killed_after_its_timeout(stack: Stack) -> None:
    class Mute(EchoService):
        start_timeout = 2.0
        script = "import os, time; print('mute pid', os.getpid(), flush=True); time.sleep(120)"

    with_echo(stack, Mute)
    with pytest.raises(ServiceStartError, match="did not answer within 2 s") as caught:
        stack.start("redis")
    found = re.search(r"mute pid (\d+)", str(caught.value))
    assert found
    assert _gone(int(found.group(1)))
    assert stack.pid("redis") is None


def test_a_port_taken_by_a_foreign_process_is_named(stack: Stack) -> None:
    with_echo(stack)
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", stack.ports.redis))
        squatter.listen()
        with pytest.raises(DevstackError, match=rf"already taken by pid {os.getpid()}"):
            stack.start("redis")
    assert stack.pid("redis") is None


def test_a_failed_setup_after_start_is_reported(stack: Stack) -> None:
    class Unwelcoming(EchoService):
        fail_after_start = True

    with_echo(stack, Unwelcoming)
    with pytest.raises(ServiceStartError, match="setting it up failed: RuntimeError"):
        stack.start("redis")


def test_down_stops_only_what_the_stack_started(stack: Stack, spawn: Spawn) -> None:
    stranger = spawn("import time; time.sleep(120)")
    with_echo(stack)
    stack.start("redis")
    pid = stack.pid("redis")
    assert pid is not None
    assert stack.down() == ["redis"]
    assert _gone(pid)
    assert stranger.poll() is None  # not ours: untouched
    assert stack.down() == []


def test_leftovers_of_a_killed_leader_are_cleared_before_a_restart(stack: Stack) -> None:
    class Forking(EchoService):
        # Like PostgreSQL: the leader has children in its process group that outlive it.
        script = (
            "import subprocess, sys, time\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            "print('child pid', child.pid, flush=True)\n" + ECHO
        )

    with_echo(stack, Forking)
    stack.start("redis")
    leader = stack.pid("redis")
    assert leader is not None
    found = re.search(r"child pid (\d+)", stack.layout.log_path("redis").read_text())
    assert found
    child = int(found.group(1))
    os.kill(leader, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(leader)], timeout=10)
    assert not _gone(child)  # orphaned, still in the old group
    assert stack.start("redis") is True
    assert _gone(child)
    assert stack.pid("redis") not in (None, leader)
