"""Shared fixtures. The real vLLM server is started once per session, only if a test needs it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.backends.stack import Stack, resolve_stack
from finece_guard.backends.vllm_server import VLLMServer, free_port
from finece_guard.commands.common import sigterm_as_interrupt
from finece_guard.config import load_settings
from finece_guard.types import CheckpointKind

#: the dtype of the shared test server (see :func:`vllm_server`)
TEST_SERVER_DTYPE = "float32"


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


async def _warm_up(base_url: str, generator: str) -> None:
    scorer = OpenAICompatScorer(base_url, timeout_s=300)
    await scorer.ascore_many([(f"warm-up {i}?", None, CheckpointKind.QUESTION) for i in range(8)])
    body = {"model": generator, "messages": [{"role": "user", "content": "Tell a story."}], "max_tokens": 48,
            "stream": True, "ignore_eos": True}  # fmt: skip
    states = [("Tell a story.", "Once upon a time " * (4 * i + 1), CheckpointKind.PARTIAL) for i in range(6)]
    async with (
        httpx.AsyncClient(timeout=300) as client,
        client.stream("POST", base_url + "/chat/completions", json=body) as resp,
    ):
        resp.raise_for_status()
        lines = resp.aiter_lines()
        await anext(lines)  # generation is running: score beside it
        await scorer.ascore_many(states)
        async for _ in lines:
            pass


@pytest.fixture(scope="session")
def vllm_server() -> Iterator[LiveServer]:
    """A real vLLM (CPU build) serving the default model + FineCE adapter on 127.0.0.1:<free port>.

    Fails (never skips) when vLLM cannot start: run `make test`, which installs it first.
    Teardown checks that every process of the server's group is gone. A SIGTERM to pytest (e.g.
    from `timeout`) becomes an interrupt, so the teardown still stops the server; a SIGKILL is
    left to the server's supervisor (finece_guard.backends.supervise).
    """
    # fp32 on every machine: a bf16 server scores the same prompt up to 0.022 apart depending on whether it
    # is in the prefix cache (benchmarks/results/score_noise.md, Intel AMX), which is as large as the
    # effects the reproducibility tests must tell apart; fp32 repeats to 1e-5. It is what `dtype=auto`
    # chooses on an AVX2 machine (the CI reference); bf16 serving is measured by benchmarks.score_noise.
    settings = load_settings(dtype=TEST_SERVER_DTYPE)
    stack = resolve_stack(settings, port=free_port())
    server = VLLMServer(stack.spec, startup_timeout_s=settings.startup_timeout_s)
    with sigterm_as_interrupt():
        server.start()
        pid = server.pid
        assert pid is not None
        try:
            # warm-up: the first LoRA batch compiles kernels (tens of seconds on CPU); then batches that
            # mix a generation stream with scoring of longer states, as every guarded test does
            asyncio.run(_warm_up(server.base_url, stack.spec.served_name))
            yield LiveServer(server.base_url, stack, pid, server.startup_s or 0.0)
        finally:
            server.stop()
    deadline = time.monotonic() + 10
    while _group_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _group_alive(pid), f"vLLM process group {pid} outlived the fixture"
