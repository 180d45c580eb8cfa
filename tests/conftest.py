"""Shared fixtures. The real vLLM server is started once per session, only if a test needs it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.stack import Stack, resolve_stack
from finece_guard.backends.vllm_server import VLLMServer, free_port
from finece_guard.config import load_settings
from finece_guard.types import CheckpointKind


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    stack: Stack
    pid: int
    startup_s: float


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[LiveServer]:
    """A real vLLM (CPU build) serving the default model + FineCE adapter on 127.0.0.1:<free port>.

    Fails (never skips) when vLLM cannot start: run `make test`, which installs it first.
    Teardown checks that every process of the server's group is gone.
    """
    settings = load_settings()
    stack = resolve_stack(settings, port=free_port())
    server = VLLMServer(stack.spec, startup_timeout_s=settings.startup_timeout_s)
    server.start()
    pid = server.pid
    assert pid is not None
    try:
        # warm-up: the first LoRA batch compiles kernels (tens of seconds on CPU)
        scorer = OpenAICompatScorer(server.base_url, timeout_s=300)
        asyncio.run(scorer.ascore_many([(f"warm-up {i}?", None, CheckpointKind.QUESTION) for i in range(8)]))
        yield LiveServer(server.base_url, stack, pid, server.startup_s or 0.0)
    finally:
        server.stop()
    deadline = time.monotonic() + 10
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _group_alive(pid), f"vLLM process group {pid} outlived the fixture"
