"""FineCEGuard end to end on a REAL vLLM (CPU build) server and a REAL Chroma store.

The generator is ``ChatOpenAI`` streaming from vLLM with logprobs, the scorer is the FineCE LoRA
served by the same process, retrieval is langchain-chroma over an embedded persistent Chroma
with the offline MiniLM embeddings. Abort is checked against the server's own token counter
(``/metrics``), not assumed. Answers are kept short so the suite fits CI on 2 cores.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_openai import ChatOpenAI

from finece_guard import OpenAICompatScorer, Periodic
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.runtime.guard import FineCEGuard, GuardResult
from finece_guard.runtime.policies import AbortBelow, AcceptAbove, RetrieveBelow, RetryBelow
from tests.integration.server_watch import metric as _metric
from tests.integration.server_watch import run_abort_scenario

# one event loop for the module: langchain-openai caches its async HTTP client per process
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def _llm(base_url: str, max_tokens: int = 48, **kwargs: Any) -> ChatOpenAI:
    settings: dict[str, Any] = {"timeout": 120, **kwargs}
    return ChatOpenAI(
        base_url=base_url, api_key="EMPTY", model=DEFAULT_GENERATOR, temperature=0, max_tokens=max_tokens,
        logprobs=True, top_logprobs=5, max_retries=1, **settings,
    )  # fmt: skip


async def test_guarded_stream_emits_scored_checkpoints_and_a_result(vllm_server) -> None:
    # room for the whole answer: one cut at max_tokens ends in a "stopped" partial state, never a final one
    # (bf16 on AVX-512 answers this question in more than 48 tokens, fp32 on AVX2 in fewer)
    guard = FineCEGuard(
        _llm(vllm_server.base_url, max_tokens=400), scorer=OpenAICompatScorer(vllm_server.base_url),
        checkpoints=Periodic(12), policies=[AcceptAbove(0.0)],
    )  # fmt: skip
    events = [
        e async for e in guard.astream_events("Which planet is known as the Red Planet?", version="v2")
        if e["event"] in ("on_custom_event", "on_chain_stream")
    ]  # fmt: skip
    checkpoints = [e["data"] for e in events if e.get("name") == "finece_checkpoint"]
    assert len(checkpoints) >= 3  # question, ≥1 periodic, final
    assert all(c["score"] is not None and 0.0 <= c["score"] <= 1.0 for c in checkpoints)
    result = next(e["data"] for e in events if e.get("name") == "finece_result")
    assert {c["kind"] for c in checkpoints} >= {"question", "final"}, result
    assert result["accepted"] is True and result["tokens_generated"] > 0
    streamed = "".join(str(e["data"]["chunk"].content) for e in events if e["event"] == "on_chain_stream")
    assert len(streamed) > 0


async def test_abort_stops_the_request_inside_vllm(vllm_server) -> None:
    url = vllm_server.base_url
    limit = 1500  # with EOS ignored only the abort can end the stream early, even where scores are slow

    async def scenario() -> dict[str, Any]:
        llm = _llm(url, max_tokens=limit, extra_body={"ignore_eos": True}, timeout=300)
        guard = FineCEGuard(
            llm, scorer=OpenAICompatScorer(url), checkpoints=Periodic(8),
            policies=[AbortBelow(1.0, min_tokens=8)],  # every real score is < 1: abort at the first scored checkpoint
        )  # fmt: skip
        result = await guard.ainvoke("Write a long story about a dragon who learns to paint, in ten paragraphs.")
        attempt = result.attempts[0]
        latencies = [(c.checkpoint.kind.value, c.checkpoint.n_tokens, c.score and c.score.latency_s)
                     for c in attempt.trace.checkpoints]  # fmt: skip
        assert attempt.aborted is not None and not result.accepted and "aborted" in result.reason, latencies
        assert attempt.trace.finish_reason == "aborted", latencies
        return {"tokens": attempt.trace.n_tokens, "scores (kind, tokens, s)": latencies}

    await run_abort_scenario(url, limit, scenario, slack=40)
    assert _metric(url, "vllm:num_requests_running") == 0


async def test_retry_makes_two_attempts_and_keeps_the_best(vllm_server) -> None:
    guard = FineCEGuard(
        _llm(vllm_server.base_url, max_tokens=32), scorer=OpenAICompatScorer(vllm_server.base_url),
        policies=[RetryBelow(1.0, max_attempts=2, temperatures=(1.0,))],
    )  # fmt: skip
    result = await guard.ainvoke("What is the chemical symbol for gold?")
    assert len(result.attempts) == 2 and result.attempts[1].sampling == {"temperature": 1.0}
    confs = [a.confidence for a in result.attempts]
    assert all(c is not None for c in confs)
    assert result.confidence == max(c for c in confs if c is not None)
    assert result.trace.kept == 1 + confs.index(result.confidence)


async def test_retrieval_puts_chroma_passages_into_the_regenerated_prompt(vllm_server, tmp_path: Path) -> None:
    from finece_guard.embeddings import MiniLMEmbeddings
    from finece_guard.retrieval import ChromaConfig, document_id, ingest, open_vectorstore

    passages = [
        "Mercury is the smallest planet in the Solar System and the closest to the Sun.",
        "Photosynthesis converts carbon dioxide and water into glucose and oxygen using light.",
        "The mitochondrion is the organelle that produces most of the cell's ATP.",
    ]
    store = open_vectorstore(ChromaConfig(collection="guard-test", persist_dir=tmp_path / "chroma"), MiniLMEmbeddings())
    ingest(store, [Document(p) for p in passages])
    guard = FineCEGuard(
        _llm(vllm_server.base_url, max_tokens=32), scorer=OpenAICompatScorer(vllm_server.base_url),
        retriever=store.as_retriever(search_kwargs={"k": 1}), policies=[RetrieveBelow(1.0, k=1)],
    )  # fmt: skip
    result = await guard.ainvoke("Which planet is closest to the Sun?")
    assert len(result.attempts) == 2
    second = result.attempts[1]
    assert second.retrieved_ids == (document_id(passages[0]),)
    # the regenerated prompt (and so the scored question) starts with the retrieved passage
    assert second.trace.question.startswith("Passage: " + passages[0])
    assert result.trace.retrieved_ids == (document_id(passages[0]),)


async def test_filter_rejects_below_delta_and_keeps_the_text(vllm_server) -> None:
    guard = FineCEGuard(
        _llm(vllm_server.base_url, max_tokens=24), scorer=OpenAICompatScorer(vllm_server.base_url),
        policies=[AcceptAbove(1.0, fallback="I'm not sure.")],
    )  # fmt: skip
    result = await guard.ainvoke("Who wrote the novel 'One Hundred Years of Solitude'?")
    assert not result.accepted and result.content == "I'm not sure."
    assert result.answer.strip() and result.confidence is not None and result.confidence < 1.0
    assert "< 1.0" in result.reason


async def test_32_concurrent_guarded_runs_keep_their_traces_separate(vllm_server) -> None:
    guard = FineCEGuard(
        _llm(vllm_server.base_url, max_tokens=12), scorer=OpenAICompatScorer(vllm_server.base_url, max_concurrency=16),
        policies=[AcceptAbove(0.0)],
    )  # fmt: skip
    numbers = list(range(100, 132))
    questions = [f"Repeat this number exactly: {n}" for n in numbers]
    results = await guard.abatch(questions, config={"max_concurrency": 32})
    for q, r in zip(questions, results, strict=True):
        assert isinstance(r, GuardResult)
        trace = r.attempts[0].trace
        assert trace.question == q
        assert all(trace.answer.startswith(sc.checkpoint.answer_prefix) for sc in trace.checkpoints)
        # each trace's scores came from its own checkpoints (positions are 0..n-1, no foreign entries)
        assert [sc.checkpoint.position for sc in trace.checkpoints] == list(range(len(trace.checkpoints)))
    answers_with_own_number = sum(str(n) in r.answer for n, r in zip(numbers, results, strict=True))
    assert answers_with_own_number >= 16  # the model mostly repeats its own number: no cross-talk
    assert not guard.handler._runs and not guard.handler._sessions
    assert guard.handler.active_runs == 0 and guard.handler.pending_tasks() == 0


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a hung scorer)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    stop = threading.Event()
    conns: list[socket.socket] = []

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(sock.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        stop.set()
        thread.join(timeout=2)
        for c in conns:
            c.close()
        sock.close()


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_scorer_down_fail_open_or_closed(vllm_server, mode: str) -> None:
    guard = FineCEGuard(
        _llm(vllm_server.base_url, max_tokens=16), scorer=OpenAICompatScorer(_dead_url(), retries=1),
        policies=[AcceptAbove(0.5)], on_scorer_error=mode,  # type: ignore[arg-type]
    )  # fmt: skip
    result = await guard.ainvoke("Name a colour.")
    assert result.scoring_failed and result.answer.strip()
    assert result.accepted is (mode == "open")
    assert re.search("BackendConnectionError", " ".join(result.trace.scoring_errors))


async def test_hung_scorer_never_holds_the_run_past_the_deadline(vllm_server, silent_server: str) -> None:
    guard = FineCEGuard(
        _llm(vllm_server.base_url, max_tokens=16),
        scorer=OpenAICompatScorer(silent_server, timeout_s=60, retries=0),
        policies=[AcceptAbove(0.5)], deadline_s=3.0, on_scorer_error="closed",
    )  # fmt: skip
    t0 = time.perf_counter()
    result = await guard.ainvoke("Name a colour.")
    elapsed = time.perf_counter() - t0
    gen_only = result.attempts[0].trace.n_tokens  # generation itself is bounded by max_tokens=16
    assert elapsed < 3.0 + 30.0, elapsed  # deadline + generous generation time on a busy CPU
    assert not result.accepted and "deadline" in result.reason and gen_only > 0


async def test_sync_invoke_twice_with_chatopenai(vllm_server) -> None:
    """Plain sync user code (its own process, no event loop): two invokes in a row both work.

    The sync wrappers share one background loop, so langchain-openai's cached async client
    (bound to the first loop that used it) keeps working across calls.
    """
    script = f"""
import json
from langchain_openai import ChatOpenAI
from finece_guard import FineCEGuard, OpenAICompatScorer
url = {vllm_server.base_url!r}
llm = ChatOpenAI(base_url=url, api_key="EMPTY", model={DEFAULT_GENERATOR!r}, temperature=0, max_tokens=8,
                 logprobs=True, top_logprobs=5)
guard = FineCEGuard(llm, scorer=OpenAICompatScorer(url))
a, b = guard.invoke("Name a fruit."), guard.invoke("Name a fruit.")
print(json.dumps([[r.answer, r.confidence, [x.error for x in r.attempts]] for r in (a, b)]))
"""
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True,
                                  timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    (a_text, a_conf, a_err), (b_text, b_conf, b_err) = json.loads(out.stdout.strip().splitlines()[-1])
    assert a_text and a_text == b_text and a_err == [None] and b_err == [None]
    assert a_conf is not None and b_conf is not None
