"""The server supervisor: a server's process group never outlives the process that started it.

A fake server (plain Python, no vLLM) that ignores SIGTERM and has a child of its own stands in for
vLLM while it is starting, which was seen ignoring SIGTERM for minutes after its launcher was killed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from finece_guard.backends import supervise
from finece_guard.backends.vllm_server import supervised

PYTHON = Path(sys.executable)
#: ignores SIGTERM (like vLLM while starting), starts a child of its own, prints both PIDs
STUBBORN = (
    "import os, signal, subprocess, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "kid = subprocess.Popen([sys.executable, '-c', 'import signal, time; "
    "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)'])\n"
    "print(os.getpid(), kid.pid, flush=True)\n"
    "time.sleep(600)\n"
)
#: starts the supervised stubborn server the way VLLMServer.start does, prints its PIDs, then waits
LAUNCHER = (
    "import subprocess, sys, time\n"
    "from pathlib import Path\n"
    "from finece_guard.backends.vllm_server import _die_with_parent, supervised\n"
    "cmd = supervised([sys.executable, '-c', sys.argv[1]], Path(sys.executable))\n"
    "p = subprocess.Popen(cmd, start_new_session=True, preexec_fn=_die_with_parent,\n"
    "                     stdout=subprocess.PIPE, text=True)\n"
    "print(p.pid, p.stdout.readline().strip(), flush=True)\n"
    "time.sleep(600)\n"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie is gone for our purpose
        return f.read().split()[2] != "Z"


def _wait_gone(pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.2)
    return [p for p in pids if _alive(p)]


def test_a_killed_launcher_takes_a_stubborn_server_and_its_children_down() -> None:
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER, STUBBORN], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids = [int(x) for x in launcher.stdout.readline().split()]  # type: ignore[union-attr]
        assert len(pids) == 3 and all(_alive(p) for p in pids), pids  # supervisor, server, server's child
        time.sleep(1.0)
        assert all(_alive(p) for p in pids), "the supervisor must leave a running server alone"
        launcher.kill()  # SIGKILL: no finally, no stop() - only the supervisor can clean up
        launcher.wait(5)
        left = _wait_gone(pids, supervise.GRACE_S + 10)
        assert not left, f"outlived their launcher: {left}"
    finally:
        launcher.kill()
        launcher.wait(5)
        if pids:  # a failed run leaves nothing behind either
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pids[0], signal.SIGKILL)


def test_the_supervisor_exits_with_the_servers_status_and_stops_on_sigterm() -> None:
    done = subprocess.run(supervised([sys.executable, "-c", "raise SystemExit(3)"], PYTHON), timeout=30)
    assert done.returncode == 3
    cooperative = "import time; print('up', flush=True); time.sleep(600)"
    proc = subprocess.Popen(supervised([sys.executable, "-c", cooperative], PYTHON), stdout=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)  # what VLLMServer.stop() sends
        assert proc.wait(timeout=supervise.GRACE_S) == -signal.SIGTERM  # the server's own status
        assert time.monotonic() - t0 < supervise.GRACE_S / 2  # it did not wait for the SIGKILL
    finally:
        proc.kill()
        proc.wait(5)


def test_usage_error_without_a_command() -> None:
    assert supervise.main(["supervise.py"]) == 2


def test_a_server_killed_by_a_signal_is_reported_with_that_signal() -> None:
    done = subprocess.run(supervised([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"], PYTHON),
                          timeout=30)  # fmt: skip
    assert done.returncode == -signal.SIGKILL
