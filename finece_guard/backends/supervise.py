"""Run a server command so that its whole process group goes down with the process that started it.

Why this module exists: a vLLM server we start must never outlive the command that started it.
``VLLMServer.stop()`` covers every exit of that command that runs Python's ``finally`` blocks (a
normal end, Ctrl-C, and SIGTERM where the command turns it into an interrupt). A command killed
outright (SIGKILL, or SIGTERM to a process that does not handle it, e.g. ``timeout`` around
pytest) runs no ``finally``. ``PR_SET_PDEATHSIG`` then sends the server SIGTERM, but vLLM ignores
SIGTERM while it is still starting: it was seen hanging for minutes, its engine gone, with init as
its parent.

So the process we start is this supervisor, the leader of the server's process group. It starts
the server as its child and waits for it. When the launcher is gone (this process was re-parented)
or this process is asked to stop (SIGTERM, SIGINT), it sends the server SIGTERM. After
:data:`GRACE_S` it SIGKILLs the whole group, itself last. While the launcher lives and the server
runs, it only waits, and it ends as the server did (its exit code, or the signal that ended it).

Standard library only: it runs in the *server's* interpreter (the vLLM venv), by file path::

    python supervise.py -- python -m vllm.entrypoints.openai.api_server ...
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from types import FrameType

#: seconds between the server's SIGTERM and SIGKILL of the whole group
GRACE_S = 10.0
#: how often the supervisor checks that its launcher is alive
POLL_S = 0.5


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: supervise.py -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    launcher = os.getppid()
    stop_asked = False

    def ask_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal stop_asked
        stop_asked = True

    signal.signal(signal.SIGTERM, ask_stop)
    signal.signal(signal.SIGINT, ask_stop)
    child = subprocess.Popen(argv[2:])
    kill_at: float | None = None
    while True:
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = child.wait(timeout=POLL_S)
            orphaned = os.getppid() != launcher
            if orphaned:  # nobody is left to clean up the server's own children: do it here
                os.killpg(os.getpgid(0), signal.SIGKILL)
            if code < 0:  # the server died of a signal: so does this process, the launcher sees the same status
                with contextlib.suppress(OSError, ValueError):  # SIGKILL and SIGSTOP have no handler to reset
                    signal.signal(-code, signal.SIG_DFL)
                os.kill(os.getpid(), -code)
            return code
        if kill_at is None and (stop_asked or os.getppid() != launcher):
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
            kill_at = time.monotonic() + GRACE_S
        elif kill_at is not None and time.monotonic() >= kill_at:
            os.killpg(os.getpgid(0), signal.SIGKILL)  # the server, its children, and this process


if __name__ == "__main__":
    sys.exit(main(sys.argv))
