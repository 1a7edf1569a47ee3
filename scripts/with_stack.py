"""Run one command with the local stack up, then stop only what this run started.

``uv run python scripts/with_stack.py -- <command> [args...]``

The CI steps that test something other than the workspace's own 3.11 environment (the 3.13.5
root, the built wheels) use the host's stack the way the test session does (``tests/conftest.py``):
``Stack.up()`` reuses every service that already runs and answers, the command gets the outputs
file as ``MAS_STACK_OUTPUTS``, and afterwards only the services this call started are stopped.
The command's exit status is this script's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

from mas_devstack import DevstackError, Stack


def main(argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: with_stack.py -- <command> [args...]", file=sys.stderr)
        return 2
    stack = Stack()
    began = time.monotonic()
    try:
        result = stack.up()
    except DevstackError as exc:  # what it started before failing, it stops itself
        print(f"with_stack: the stack did not come up: {exc}", file=sys.stderr)
        return 1
    started = ", ".join(result.started) or "nothing (all were running)"
    print(f"with_stack: up in {time.monotonic() - began:.1f} s; started: {started}", flush=True)
    env = dict(os.environ, MAS_STACK_OUTPUTS=str(stack.outputs_path))
    try:
        return subprocess.run(argv, env=env, check=False).returncode
    finally:
        stopped = stack.down(result.started)
        print(f"with_stack: stopped: {', '.join(stopped) or 'nothing'}", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
