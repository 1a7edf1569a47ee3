"""PID files (stale, damaged, reused PIDs), graceful and forced stops, log tails."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from mas_devstack._process import (
    PidRecord,
    is_alive,
    kill_group,
    log_tail,
    read_pid_file,
    terminate,
    write_pid_file,
)

Spawn = Callable[..., subprocess.Popen[bytes]]
SLEEPER = "import time; print('up', flush=True); time.sleep(120)"
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('up', flush=True); time.sleep(120)"
)


def _ready(proc: subprocess.Popen[bytes]) -> PidRecord:
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"up\n"  # its signal handlers are in place
    return PidRecord.of(proc.pid)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123\n1700000000.250\n", PidRecord(123, 1700000000.25)),
        ("123", None),
        ("abc 1.0", None),
        ("-5 1.0", None),
        ("", None),
        ("1 2 3", None),
    ],
)
def test_pid_record_parsing(text: str, expected: PidRecord | None) -> None:
    assert PidRecord.parse(text) == expected


def test_dump_and_parse_round_trip() -> None:
    record = PidRecord.of(os.getpid())
    parsed = PidRecord.parse(record.dump())
    assert parsed is not None
    assert parsed.pid == record.pid
    assert abs(parsed.create_time - record.create_time) < 0.01


def test_a_missing_pid_file_reads_as_none(tmp_path: Path) -> None:
    assert read_pid_file(tmp_path / "x.pid") is None


def test_a_live_process_is_read_back_and_its_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.pid"
    record = PidRecord.of(os.getpid())
    write_pid_file(path, record)
    assert read_pid_file(path) == record
    assert path.exists()


@pytest.mark.parametrize("content", ["garbage", "", "12 not-a-time"])
def test_a_damaged_pid_file_is_stale_and_removed(tmp_path: Path, content: str) -> None:
    path = tmp_path / "x.pid"
    path.write_text(content)
    assert read_pid_file(path) is None
    assert not path.exists()


def test_the_pid_of_a_dead_process_is_stale_and_removed(tmp_path: Path) -> None:
    proc = subprocess.Popen(["true"])
    record = PidRecord.of(proc.pid)
    proc.wait()
    path = tmp_path / "x.pid"
    write_pid_file(path, record)
    assert not is_alive(record)
    assert read_pid_file(path) is None
    assert not path.exists()


def test_a_pid_reused_by_another_process_is_not_ours(tmp_path: Path) -> None:
    # Our own PID with another start time: what a reused PID looks like. It must not be
    # reported alive (so it is never signalled).
    path = tmp_path / "x.pid"
    record = PidRecord(os.getpid(), PidRecord.of(os.getpid()).create_time - 1000)
    write_pid_file(path, record)
    assert read_pid_file(path) is None
    assert not path.exists()


def test_terminate_stops_gracefully(spawn: Spawn) -> None:
    record = _ready(spawn(SLEEPER))
    assert terminate(record, signal.SIGTERM, timeout=10) is True
    assert _gone(record.pid)
    assert not is_alive(record)


def test_terminate_wakes_a_stopped_process(spawn: Spawn) -> None:
    record = _ready(spawn(SLEEPER))
    os.kill(record.pid, signal.SIGSTOP)
    assert terminate(record, signal.SIGTERM, timeout=10) is True
    assert _gone(record.pid)


def test_terminate_kills_what_ignores_the_signal(spawn: Spawn) -> None:
    record = _ready(spawn(STUBBORN))
    began = time.monotonic()
    assert terminate(record, signal.SIGTERM, timeout=1) is False
    assert _gone(record.pid)
    assert time.monotonic() - began < 10


def test_kill_group_takes_the_children_along(spawn: Spawn) -> None:
    proc = spawn(
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        "print(child.pid, flush=True); time.sleep(120)"
    )
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    record = PidRecord.of(proc.pid)
    kill_group(record)
    assert _gone(record.pid)
    assert _gone(child)


def test_terminate_of_a_process_already_gone_is_harmless(spawn: Spawn) -> None:
    record = _ready(spawn(SLEEPER))
    os.kill(record.pid, signal.SIGKILL)
    psutil.wait_procs([psutil.Process(record.pid)], timeout=10)
    assert terminate(record, signal.SIGTERM, timeout=1) is True


def test_log_tail_gives_the_last_lines_with_secrets_masked(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i} pw=s3cret-value\n" for i in range(100)))
    tail = log_tail(log, lines=3, redact=["s3cret-value", ""])
    assert tail.splitlines() == [f"line {i} pw=***" for i in (97, 98, 99)]
    assert log_tail(tmp_path / "missing.log") == ""
