"""Integration tests against a REAL vLLM (CPU build) server started by the session fixture.

Nothing here is mocked: the generator streams from vLLM, the scorer is the LoRA adapter served
by the same process, and the CLI is run as a subprocess against that server.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from finece_guard import (
    BackendHTTPError,
    CheckpointKind,
    OpenAICompatGenerator,
    OpenAICompatScorer,
    Periodic,
    Score,
    ScoredCheckpoint,
    TokenEvent,
    Trace,
    stream_with_confidence,
)
from finece_guard.backends.openai_generator import StreamStats, question_messages
from finece_guard.config import DEFAULT_GENERATOR, DEFAULT_SCORER
from finece_guard.runtime.bci import look_ahead, refine

pytestmark = pytest.mark.integration


def test_models_listed_and_adapter_bound(vllm_server) -> None:
    ids = {m["id"] for m in httpx.get(f"{vllm_server.base_url}/models", timeout=10).json()["data"]}
    assert {DEFAULT_GENERATOR, DEFAULT_SCORER} <= ids
    manifest = vllm_server.stack.manifest
    assert manifest.base_model == vllm_server.stack.base_model


@pytest.mark.asyncio
async def test_stream_with_logprobs(vllm_server) -> None:
    gen = OpenAICompatGenerator(vllm_server.base_url, model=DEFAULT_GENERATOR, top_logprobs=5)
    stats = StreamStats()
    events = [e async for e in gen.astream(question_messages("Name three colours."), max_tokens=40, stats=stats)]
    await gen.aclose()
    assert len(events) >= 3
    assert [e.index for e in events] == list(range(len(events)))
    assert all(e.logprob is not None and e.logprob <= 0.0 for e in events)
    assert all(1 <= len(e.top_logprobs) <= 5 for e in events)
    assert stats.finish_reason in {"stop", "length"}
    # server-side usage counts what streamed (+1 for a stop token that carries no text)
    assert stats.usage["completion_tokens"] in {len(events), len(events) + 1}
    assert "<|im_end|>" not in "".join(e.text for e in events)


@pytest.mark.asyncio
async def test_scorer_selected_by_model_name_returns_value_and_spread(vllm_server) -> None:
    scorer = OpenAICompatScorer(vllm_server.base_url)
    score = await scorer.ascore("What is the capital of France?", "Paris.", CheckpointKind.FINAL)
    assert 0.0 <= score.value <= 1.0
    assert 0.0 < score.spread <= 0.5
    assert 0.5 < score.mass <= 1.0
    assert math.isclose(sum(p for _, p in score.distribution), 1.0, rel_tol=1e-9)
    # deterministic readout at temperature 0
    again = await scorer.ascore("What is the capital of France?", "Paris.", CheckpointKind.FINAL)
    assert again.value == pytest.approx(score.value, abs=1e-6)
    # unchecked (verify=False), an unknown model name is a clean 404, mapped to the library's error
    bad = OpenAICompatScorer(vllm_server.base_url, model="no-such-adapter", retries=0, verify=False)
    with pytest.raises(BackendHTTPError) as info:
        await bad.ascore("q?", None, CheckpointKind.QUESTION)
    assert info.value.status_code == 404
    await scorer.aclose()


@pytest.mark.asyncio
async def test_sixteen_concurrent_scores(vllm_server) -> None:
    scorer = OpenAICompatScorer(vllm_server.base_url, max_concurrency=16)
    reqs = [(f"Question {i}: what is {i} + {i}?", f"It is {2 * i}.", CheckpointKind.FINAL) for i in range(16)]
    t0 = time.perf_counter()
    results = await scorer.ascore_many(reqs)
    elapsed = time.perf_counter() - t0
    await scorer.aclose()
    assert len(results) == 16
    assert all(isinstance(r, Score) and 0.0 <= r.value <= 1.0 for r in results)
    print(f"\n16 concurrent scores in {elapsed:.2f} s = {16 / elapsed:.1f} scores/s")


@pytest.mark.asyncio
async def test_stream_with_confidence_end_to_end(vllm_server) -> None:
    gen = OpenAICompatGenerator(vllm_server.base_url, model=DEFAULT_GENERATOR)
    scorer = OpenAICompatScorer(vllm_server.base_url)
    items = [
        x
        async for x in stream_with_confidence(
            "Explain why the sky is blue in two sentences.", generator=gen, scorer=scorer,
            strategy=Periodic(every=8), max_tokens=40, alpha=0.5, window=2,
        )
    ]  # fmt: skip
    await gen.aclose()
    await scorer.aclose()
    trace = items[-1]
    assert isinstance(trace, Trace)
    assert sum(isinstance(x, Trace) for x in items) == 1
    tokens = [x for x in items if isinstance(x, TokenEvent)]
    assert trace.answer == "".join(t.text for t in tokens) and trace.n_tokens == len(tokens)
    kinds = [sc.checkpoint.kind for sc in trace.checkpoints]
    assert kinds[0] is CheckpointKind.QUESTION
    # every 8th token asks for a partial checkpoint; one whose run still had a partial score in
    # flight waits and may be superseded (how many depends on the machine's speed), but each one
    # asked for is either scored or recorded in meta["skipped"], and none is lost silently
    asked = set(range(8, trace.n_tokens + 1, 8))
    assert trace.n_tokens >= 24 and len(asked) >= 3, trace.answer
    scored_at = {sc.checkpoint.n_tokens for sc in trace.checkpoints[1:]}
    skipped = trace.meta.get("skipped", [])
    assert all("superseded" in s["skipped"] for s in skipped), skipped
    assert asked <= scored_at | {s["n_tokens"] for s in skipped}, (sorted(scored_at), skipped)
    assert kinds.count(CheckpointKind.PARTIAL) >= 1 and kinds[-1] is not CheckpointKind.QUESTION
    assert all(sc.score is not None for sc in trace.checkpoints), [sc.error for sc in trace.checkpoints]
    assert list(trace.refined) == refine(list(trace.raw_scores), alpha=0.5, window=2)
    streamed = [x for x in items if isinstance(x, ScoredCheckpoint)]
    assert len(streamed) == len(trace.checkpoints)


@pytest.mark.asyncio
async def test_look_ahead_on_real_continuations(vllm_server) -> None:
    gen = OpenAICompatGenerator(vllm_server.base_url, model=DEFAULT_GENERATOR)
    scorer = OpenAICompatScorer(vllm_server.base_url)
    question, prefix = "What is the largest planet in the solar system?", "The largest planet is"
    raw = (await scorer.ascore(question, prefix, CheckpointKind.PARTIAL)).value
    result = await look_ahead(question, prefix, raw, sampler=gen, scorer=scorer, width=3, depth=1, alpha=0.5)
    await gen.aclose()
    await scorer.aclose()
    assert len(result.continuations) == 3 and len(result.paths) == 3
    assert all(len(p) == 1 and 0.0 <= p[0] <= 1.0 for p in result.paths)
    expected = 0.5 * raw + 0.5 * sum(p[0] for p in result.paths) / 3
    assert result.value == pytest.approx(expected, abs=1e-12)


def _cli(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("finece-guard")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ))


def test_cli_ask_json(vllm_server) -> None:
    proc = _cli("ask", "--json", "--base-url", vllm_server.base_url, "--max-tokens", "30", "What is 2 + 2?")
    assert proc.returncode == 0, proc.stderr
    trace = json.loads(proc.stdout.strip().splitlines()[-1])
    assert trace["question"] == "What is 2 + 2?"
    assert trace["checkpoints"][0]["checkpoint"]["kind"] == "question"
    assert trace["checkpoints"][-1]["score"]["value"] is not None
    assert len(trace["refined"]) == len(trace["checkpoints"])


def test_cli_serve_port_in_use(vllm_server) -> None:
    port = vllm_server.base_url.rsplit(":", 1)[1].split("/")[0]
    t0 = time.monotonic()
    proc = _cli("serve", "--port", port, timeout=60)
    assert proc.returncode == 2
    assert "already in use" in proc.stderr and "--port" in proc.stderr
    assert time.monotonic() - t0 < 30  # fails fast, does not start vLLM


def test_transformers_scorer_agrees_with_vllm(vllm_server) -> None:
    from finece_guard import TransformersScorer

    spec = vllm_server.stack.spec
    local = TransformersScorer(spec.model_dir, spec.adapter_dir)
    served = OpenAICompatScorer(vllm_server.base_url)
    reqs = [
        ("What is 2 + 2?", "4", CheckpointKind.FINAL),
        ("Who wrote Hamlet?", "Hamlet was written by", CheckpointKind.PARTIAL),
        ("What is the capital of Peru?", None, CheckpointKind.QUESTION),
    ]
    a = local.score_many(reqs)
    b = asyncio.run(served.ascore_many(reqs))
    for x, y in zip(a, b, strict=True):
        assert isinstance(x, Score) and isinstance(y, Score)
        assert x.value == pytest.approx(y.value, abs=0.05)  # fp32 in-process vs bf16 served
