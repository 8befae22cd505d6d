"""pid_alive: the one test of "does that job still run here", with this process's own pid as the caller says."""

from __future__ import annotations

import os
import subprocess
import sys

from features.processes import pid_alive


def test_a_running_process_is_alive_and_a_finished_one_is_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert pid_alive(child.pid) and pid_alive(child.pid, own=False)
    finally:
        child.kill()
        child.wait()
    assert not pid_alive(child.pid)
    assert pid_alive(os.getppid())


def test_the_own_pid_counts_as_the_caller_says() -> None:
    assert pid_alive(os.getpid()) is True  # a training run tagged with this process is still this process's job
    assert pid_alive(os.getpid(), own=False) is False  # an import folder this process left earlier is stale
