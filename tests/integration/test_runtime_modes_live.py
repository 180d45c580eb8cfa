"""One decision path in every mode, on the REAL vLLM server: abort and reject through every entry point.

The guard's ``invoke``, ``ainvoke``, ``stream``, ``astream`` (live and final), ``astream_events``,
``batch``, ``abatch`` and the ``create_agent`` middleware (sync and async) run the same scenario
against the real server. An abort must close the stream in every mode, checked against vLLM's
own generated-token counter; the decisions and the verdict must be the same everywhere.
Mixing ``invoke`` and ``ainvoke`` in one process is checked in a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import pytest
from langchain_openai import ChatOpenAI

from finece_guard import OpenAICompatScorer, Periodic
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.runtime.guard import FineCEGuard, GuardResult
from finece_guard.runtime.policies import AbortBelow, AcceptAbove, RetrieveBelow, RetryBelow
from tests.integration.server_watch import metric as _metric
from tests.integration.server_watch import run_abort_scenario

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MODES = ["invoke", "ainvoke", "stream", "astream_live", "astream_final", "astream_events", "batch", "abatch",
         "agent_sync", "agent_async"]  # fmt: skip
STORY = "Write a long story about a dragon who learns to paint, in ten paragraphs."


#: the abort scenario's token limit: high, with EOS ignored, so that only the abort can end the stream
#: early even where scores come back slowly (an AVX2 runner: 10 tok/s, seconds per cold score)
ABORT_LIMIT = 1500


def _llm(url: str, max_tokens: int, *, ignore_eos: bool = False) -> ChatOpenAI:
    extra = {"extra_body": {"ignore_eos": True}} if ignore_eos else {}
    return ChatOpenAI(base_url=url, api_key="EMPTY", model=DEFAULT_GENERATOR, temperature=0, max_tokens=max_tokens,
                      logprobs=True, top_logprobs=5, timeout=300, max_retries=1, **extra)  # fmt: skip


class TimedScorer(OpenAICompatScorer):
    """The real scorer, recording when each score was asked for and how long it took (for failure messages)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.t_start = time.perf_counter()
        self.log: list[tuple[str, int, float, float]] = []  # (kind, chars, asked at s, took s)

    async def ascore(self, question: str, answer: str | None, kind: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return await super().ascore(question, answer, kind)
        finally:
            self.log.append((kind.value, len(answer or ""), round(t0 - self.t_start, 2),
                             round(time.perf_counter() - t0, 2)))  # fmt: skip


async def _guard_run(mode: str, guard: FineCEGuard, q: str) -> dict[str, Any]:
    if mode == "invoke":
        r: Any = await asyncio.to_thread(guard.invoke, q)
    elif mode == "ainvoke":
        r = await guard.ainvoke(q)
    elif mode == "batch":
        r = (await asyncio.to_thread(guard.batch, [q]))[0]
    elif mode == "abatch":
        r = (await guard.abatch([q]))[0]
    elif mode == "astream_events":
        found = [e["data"]["result"] async for e in guard.astream_events(q, version="v2")
                 if e["event"] == "on_custom_event" and e["name"] == "finece_result"]  # fmt: skip
        r = found[-1]
    else:
        guard.stream_mode = "final" if mode == "astream_final" else "live"
        if mode == "stream":
            chunks = await asyncio.to_thread(lambda: list(guard.stream(q)))
        else:
            chunks = [c async for c in guard.astream(q)]
        meta = chunks[-1].response_metadata["finece_guard"]
        streamed = "".join(str(c.content) for c in chunks)
        return {"accepted": meta["accepted"], "kept": meta["kept"], "attempts": meta["attempts"],
                "finish_reason": meta["finish_reason"], "tokens": meta["tokens_generated"], "streamed": streamed,
                "reason": meta["reason"], "actions": meta["actions"], "retrieved": meta["retrieved_ids"]}  # fmt: skip
    assert isinstance(r, GuardResult)
    return {"accepted": r.accepted, "kept": r.trace.kept, "attempts": len(r.attempts),
            "finish_reason": r.attempts[-1].trace.finish_reason, "tokens": r.trace.tokens_generated,
            "streamed": r.answer, "reason": r.reason, "retrieved": list(r.trace.retrieved_ids),
            "actions": [[d.action.value, d.policy] for d in r.trace.decisions]}  # fmt: skip


async def _agent_run(
    mode: str,
    url: str,
    policies: list[Any],
    max_tokens: int,
    q: str,
    retriever: Any = None,
    *,
    scorer: OpenAICompatScorer | None = None,
    ignore_eos: bool = False,
) -> dict[str, Any]:
    from langchain.agents import create_agent

    from finece_guard.runtime.middleware import FineCEMiddleware

    scorer = scorer or OpenAICompatScorer(url)
    mw = FineCEMiddleware(scorer, policies=policies, checkpoints=Periodic(8), retriever=retriever)
    agent = create_agent(_llm(url, max_tokens, ignore_eos=ignore_eos), tools=[], middleware=[mw])
    inp = {"messages": [{"role": "user", "content": q}]}
    state = await (asyncio.to_thread(agent.invoke, inp) if mode == "agent_sync" else agent.ainvoke(inp))
    meta = state["messages"][-1].response_metadata["finece_guard"]
    assert mw.handler.active_runs == 0 and mw.handler.pending_tasks() == 0
    return {"accepted": meta["accepted"], "kept": meta["kept"], "attempts": meta["attempts"],
            "finish_reason": meta["finish_reason"], "tokens": meta["tokens_generated"], "streamed": meta["answer"],
            "reason": meta["reason"], "actions": [list(a) for a in meta["actions"]], "retrieved": None}  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
async def test_abort_closes_the_stream_in_every_mode(vllm_server, mode: str) -> None:
    url = vllm_server.base_url
    policies = [AbortBelow(1.0, min_tokens=8)]  # every real score is < 1: abort at the first scored checkpoint

    async def scenario() -> dict[str, Any]:
        scorer = TimedScorer(url)
        if mode.startswith("agent"):
            got = await _agent_run(mode, url, policies, ABORT_LIMIT, STORY, scorer=scorer, ignore_eos=True)
        else:
            llm = _llm(url, ABORT_LIMIT, ignore_eos=True)
            guard = FineCEGuard(llm, scorer=scorer, checkpoints=Periodic(8), policies=policies)
            got = await _guard_run(mode, guard, STORY)
            assert guard.handler.active_runs == 0 and guard.handler.pending_tasks() == 0
        why = {"mode": mode,
               "scores (kind, chars, asked at s, took s)": scorer.log, **got}  # fmt: skip
        assert not got["accepted"] and got["attempts"] == 1 and got["reason"].startswith("aborted in-stream"), why
        assert got["finish_reason"] == "aborted", why
        return why

    await run_abort_scenario(url, ABORT_LIMIT, scenario)
    assert _metric(url, "vllm:num_requests_running") == 0


@pytest.mark.parametrize("mode", MODES)
async def test_reject_keeps_the_same_verdict_in_every_mode(vllm_server, mode: str) -> None:
    url = vllm_server.base_url
    q = "Who wrote the novel 'One Hundred Years of Solitude'?"
    policies = [AcceptAbove(1.0)]
    if mode.startswith("agent"):
        got = await _agent_run(mode, url, policies, 24, q)
    else:
        guard = FineCEGuard(_llm(url, 24), scorer=OpenAICompatScorer(url), checkpoints=Periodic(8), policies=policies)
        got = await _guard_run(mode, guard, q)
    assert not got["accepted"] and got["kept"] == 1 and "< 1.0" in got["reason"], got
    assert got["finish_reason"] in ("stop", "length"), got


@pytest.fixture(scope="module")
def gold_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from langchain_core.documents import Document

    from finece_guard.embeddings import MiniLMEmbeddings
    from finece_guard.retrieval import ChromaConfig, ingest, open_vectorstore

    store = open_vectorstore(ChromaConfig(collection="modes-live", persist_dir=tmp_path_factory.mktemp("chroma")),
                             MiniLMEmbeddings())  # fmt: skip
    ingest(store, [Document(GOLD), Document("Photosynthesis converts light into chemical energy.")])
    return store


GOLD = "Gold is a chemical element with the symbol Au and atomic number 79."
RETRY = [RetryBelow(1.0, max_attempts=2, temperatures=(1.0,), seeds=(7,))]  # always retries once, seeded


@pytest.mark.parametrize("mode", MODES)
async def test_retry_takes_the_same_two_attempts_in_every_mode(vllm_server, mode: str) -> None:
    url = vllm_server.base_url
    q = "What is the chemical symbol for gold?"
    if mode.startswith("agent"):
        got = await _agent_run(mode, url, RETRY, 24, q)
    else:
        guard = FineCEGuard(_llm(url, 24), scorer=OpenAICompatScorer(url), checkpoints=Periodic(8), policies=RETRY)
        got = await _guard_run(mode, guard, q)
        assert guard.handler.active_runs == 0 and guard.handler.pending_tasks() == 0
    assert got["attempts"] == 2 and got["kept"] in (1, 2), got
    assert got["actions"] == [["retry", "retry_below"], ["accept", "default"]], got


@pytest.mark.parametrize("mode", MODES)
async def test_early_retrieval_before_generation_in_every_mode(vllm_server, gold_store: Any, mode: str) -> None:
    from finece_guard.retrieval import document_id

    url = vllm_server.base_url
    q = "What is the chemical symbol for gold?"
    policies = [RetrieveBelow(1.0, early=True, k=1)]  # every real question-only score is < 1: retrieve first
    retriever = gold_store.as_retriever(search_kwargs={"k": 1})
    if mode.startswith("agent"):
        got = await _agent_run(mode, url, policies, 24, q, retriever=retriever)
    else:
        guard = FineCEGuard(_llm(url, 24), scorer=OpenAICompatScorer(url), checkpoints=Periodic(8),
                            policies=policies, retriever=retriever)  # fmt: skip
        got = await _guard_run(mode, guard, q)
        assert got["retrieved"] == [document_id(GOLD)], got
    # one generation, made with the passage: the retrieval came before any token
    assert got["attempts"] == 1 and got["actions"] == [["retrieve", "retrieve_below"], ["accept", "default"]], got


@pytest.mark.parametrize("mode", MODES)
async def test_a_question_scored_before_generation_is_asked_once_in_every_mode(vllm_server, gold_store: Any,
                                                                               mode: str) -> None:
    """An early retrieval that does not fire (θ = 0: no score is below it) scored the question before
    generating; the attempt records that score as its question checkpoint instead of asking again."""
    url = vllm_server.base_url
    q = "What is the chemical symbol for gold?"
    policies = [RetrieveBelow(0.0, early=True, k=1)]
    retriever = gold_store.as_retriever(search_kwargs={"k": 1})
    scorer = TimedScorer(url)
    if mode.startswith("agent"):
        got = await _agent_run(mode, url, policies, 24, q, retriever=retriever, scorer=scorer)
    else:
        guard = FineCEGuard(_llm(url, 24), scorer=scorer, checkpoints=Periodic(8), policies=policies,
                            retriever=retriever)  # fmt: skip
        got = await _guard_run(mode, guard, q)
        assert got["retrieved"] == [], got
    assert got["attempts"] == 1 and got["actions"] == [["accept", "default"]], got
    asked = [kind for kind, *_ in scorer.log]
    assert asked.count("question") == 1 and asked.count("partial") >= 1, scorer.log


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "agent_async"])
async def test_a_wrong_scorer_is_refused_before_any_answer_is_judged(vllm_server, mode: str) -> None:
    from finece_guard.errors import ConfigError

    url = vllm_server.base_url
    scorer = OpenAICompatScorer(url, model="fince")  # a typo of the adapter's name
    if mode.startswith("agent"):
        from langchain.agents import create_agent

        from finece_guard.runtime.middleware import FineCEMiddleware

        agent = create_agent(_llm(url, 8), tools=[], middleware=[FineCEMiddleware(scorer)])
        with pytest.raises(ConfigError, match="Did you mean model='finece'"):
            await agent.ainvoke({"messages": [{"role": "user", "content": "Name a colour."}]})
        return
    guard = FineCEGuard(_llm(url, 8), scorer=scorer, policies=[AcceptAbove(0.0)])
    with pytest.raises(ConfigError, match="Did you mean model='finece'"):
        if mode == "invoke":
            await asyncio.to_thread(guard.invoke, "Name a colour.")
        else:
            await guard.ainvoke("Name a colour.")
    assert guard.handler.active_runs == 0


async def test_invoke_then_ainvoke_in_one_process(vllm_server) -> None:
    """Plain user code: sync invoke, then ainvoke on the user's own loop, then invoke again."""
    script = f"""
import asyncio, json
from langchain_openai import ChatOpenAI
from finece_guard import FineCEGuard, OpenAICompatScorer, AcceptAbove
url = {vllm_server.base_url!r}
llm = ChatOpenAI(base_url=url, api_key="EMPTY", model={DEFAULT_GENERATOR!r}, temperature=0, max_tokens=8,
                 logprobs=True, top_logprobs=5)
guard = FineCEGuard(llm, scorer=OpenAICompatScorer(url), policies=[AcceptAbove(0.0)])
a = guard.invoke("Name a fruit.")
b = asyncio.run(guard.ainvoke("Name a fruit."))
c = guard.invoke("Name a fruit.")
print(json.dumps([[r.answer, r.confidence, r.accepted, [x.error for x in r.attempts]] for r in (a, b, c)]))
"""
    out = await asyncio.to_thread(subprocess.run, [sys.executable, "-c", script], capture_output=True, text=True,
                                  timeout=600)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads(out.stdout.strip().splitlines()[-1])
    assert all(r[3] == [None] and r[2] and r[1] is not None for r in rows), rows
    assert rows[0][0] == rows[1][0] == rows[2][0] and rows[0][0]


class _FirstCheckpointAt:
    """One partial checkpoint, after ``n`` tokens (so a confirmation has the rest of the stream to run)."""

    name = "first-at"

    def __init__(self, n: int) -> None:
        self.n = n

    def reason(self, tokens: Any, since_last: int) -> str | None:
        return f"after {self.n} tokens" if len(tokens) == self.n else None


class _Seeded:
    """The real generator's continuations, with a fixed seed (the same paths for the probe and the guard)."""

    def __init__(self, generator: Any, seed: int) -> None:
        self.generator, self.seed = generator, seed

    async def sample_continuations(self, question: str, answer_prefix: str, *, n: int, max_tokens: int) -> list[str]:
        texts, _ = await self.sample_continuations_with_usage(question, answer_prefix, n=n, max_tokens=max_tokens)
        return texts

    async def sample_continuations_with_usage(
        self, question: str, answer_prefix: str, *, n: int, max_tokens: int
    ) -> tuple[list[str], int]:
        return await self.generator.sample_continuations_with_usage(  # type: ignore[no-any-return]
            question, answer_prefix, n=n, max_tokens=max_tokens, seed=self.seed
        )


async def test_lookahead_confirmation_overturns_or_confirms_an_abort_on_the_real_server(vllm_server) -> None:
    """θ is set between the raw first-checkpoint score and its look-ahead value (probed with the same seed).

    When the look-ahead value is higher, the abort the raw score asks for is overturned and the answer
    streams to its end; when it is lower, the abort is confirmed and the stream closes.
    """
    from finece_guard import LookAhead, OpenAICompatGenerator
    from finece_guard.runtime.bci import look_ahead

    url = vllm_server.base_url
    scorer = OpenAICompatScorer(url)
    sampler = _Seeded(OpenAICompatGenerator(url, model=DEFAULT_GENERATOR), seed=1234)
    seen: set[str] = set()
    questions = ["Why is the sky blue?", "Which planet is known as the Red Planet?", "What do bees make?",
                 "How do plants make their food?", "What is the boiling point of water?",
                 "Why do leaves change colour in autumn?", "What causes the tides?",
                 "How does a rainbow form?"]  # fmt: skip
    # the default adapter's scores sit in a narrow band (sd ~0.025): a look-ahead differs from the raw
    # score by a few thousandths, well above the scores' run-to-run noise (~1e-4 in fp32)
    min_gap = 0.004
    probed: list[tuple[str, float, float, int]] = []
    for q in questions:
        # EOS ignored, 300 tokens: the confirmation (sampling + scoring) has time to finish on a slow runner too
        probe = await FineCEGuard(_llm(url, 300, ignore_eos=True), scorer=scorer,
                                  checkpoints=_FirstCheckpointAt(8)).ainvoke(q)  # fmt: skip
        cps = [sc for sc in probe.attempts[0].trace.checkpoints if sc.checkpoint.kind.value == "partial"]
        assert cps and cps[0].score is not None
        cp, raw = cps[0].checkpoint, cps[0].score.value
        la = await look_ahead(q, cp.answer_prefix, raw, sampler=sampler, scorer=scorer, width=4, depth=1, alpha=0.5)
        probed.append((q, round(raw, 4), round(la.value, 4), probe.attempts[0].trace.n_tokens))
        if abs(la.value - raw) < min_gap or probe.attempts[0].trace.n_tokens < 60:
            continue
        aim_overturn = la.value > raw
        theta = (raw + la.value) / 2 if aim_overturn else raw + 0.01
        policy = AbortBelow(theta, min_tokens=8, confirm=LookAhead(width=4, depth=1))
        guard = FineCEGuard(_llm(url, 300, ignore_eos=True), scorer=scorer, checkpoints=_FirstCheckpointAt(8),
                            sampler=sampler, policies=[policy])  # fmt: skip
        result = await guard.ainvoke(q)
        attempt = result.attempts[0]
        own = [sc for sc in attempt.trace.checkpoints if sc.checkpoint.kind.value == "partial"]
        assert own and own[0].score is not None
        raw_here = own[0].score.value
        if raw_here >= theta:
            # the guard's own first score landed on the other side of θ from the probe's (its greedy prefix or
            # its batch differed; seen on CI, 2026-12-07): no abort was asked for, so none may happen
            assert "lookahead" not in attempt.trace.meta and attempt.aborted is None, attempt.trace.meta
            probed.append((q, round(raw_here, 4), float("nan"), attempt.trace.n_tokens))
            continue
        assert "lookahead" in attempt.trace.meta, (
            f"score {raw_here:.4f} < θ {theta:.4f} at the first checkpoint of {q!r} but no look-ahead ran; "
            f"decisions: {attempt.trace.meta.get('decisions')}; tokens {attempt.trace.n_tokens}, "
            f"finish {attempt.trace.finish_reason}"
        )
        got = attempt.trace.meta["lookahead"][0]
        assert got["raw"] == pytest.approx(raw_here, abs=1e-6) and got["value"] == pytest.approx(la.value, abs=0.02)
        assert got["requests"] >= 2 and got["tokens"] > 0 and result.trace.lookahead_cost["tokens"] > 0
        overturn = got["value"] >= theta  # AbortBelow acts below θ: the guard's own look-ahead value decides
        if overturn:
            # EOS is ignored, so only max_tokens ends it: the whole answer streamed. Not an equal token count
            # with the probe: the trace counts streamed text tokens, and two 300-token runs that share their
            # batches differently (bf16) have been seen to count 300 and 293 (CI, 2026-12-03).
            assert attempt.aborted is None and attempt.trace.finish_reason == "length"
            assert attempt.trace.n_tokens >= 0.9 * probe.attempts[0].trace.n_tokens
            assert any("overturned" in d["reason"] for d in attempt.trace.meta["decisions"])
        else:
            assert attempt.aborted is not None and "look-ahead confidence" in attempt.aborted.reason
            assert attempt.trace.finish_reason == "aborted"
        seen.add("overturned" if overturn else "confirmed")
        if "overturned" in seen:
            break
    assert "overturned" in seen, (
        f"no question among {len(questions)} had a look-ahead value {min_gap} above its raw score ({seen}); "
        f"(question, raw, look-ahead, tokens): {probed}"
    )
