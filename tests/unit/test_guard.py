"""FineCEGuard and the callback handler with fake models and a rule-based scorer (unit level).

The real vLLM server and Chroma are exercised in tests/integration; here the model and scorer
are fakes so that each decision path (accept, reject, retry, retrieve, abort, scorer failure,
deadline, concurrency, events, sync wrappers, LCEL) is checked deterministically.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.retrievers import BaseRetriever

from finece_guard.errors import ConfigError, GenerationAborted
from finece_guard.runtime.guard import FineCEGuard, GuardResult
from finece_guard.runtime.handler import FineCECallbackHandler
from finece_guard.runtime.policies import AbortBelow, AcceptAbove, Action, RetrieveBelow, RetryBelow
from finece_guard.testing import EchoChatModel, KeywordScorer
from finece_guard.types import CheckpointKind

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def EchoModel(**kw: Any) -> EchoChatModel:
    return EchoChatModel(delay_s=0.0, **kw)


class ListRetriever(BaseRetriever):
    docs: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self.docs

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self.docs


def good_or_bad(question: str, answer: str | None, kind: CheckpointKind) -> float:
    if answer is None:
        return 0.5
    return 0.1 if "wrong" in answer else 0.9


LONG = "It is wrong to say this.\nIt keeps going wrong for a while.\n" + " ".join(["filler"] * 200) + "\nEnd."


@pytest.mark.asyncio
async def test_accepted_answer_with_checkpoints_and_summary() -> None:
    model = EchoModel(reply=lambda p, k: "The symbol of gold is Au.\nIt is a metal.")
    guard = FineCEGuard(model, scorer=KeywordScorer(good_or_bad), policies=[AcceptAbove(0.5)])
    result = await guard.ainvoke("What is the symbol for gold?")
    assert isinstance(result, GuardResult) and isinstance(result, AIMessage)
    assert result.accepted and result.content == result.answer == "The symbol of gold is Au.\nIt is a metal."
    kinds = [sc.checkpoint.kind for sc in result.attempts[0].trace.checkpoints]
    assert kinds[0] is CheckpointKind.QUESTION and kinds[-1] is CheckpointKind.FINAL and CheckpointKind.PARTIAL in kinds
    assert result.confidence == pytest.approx(0.9)
    assert result.response_metadata["finece_guard"]["accepted"] is True
    assert result.trace.tokens_generated == result.attempts[0].trace.n_tokens > 0


@pytest.mark.asyncio
async def test_rejection_keeps_text_score_and_reason() -> None:
    model = EchoModel(reply=lambda p, k: "This is wrong.")
    guard = FineCEGuard(model, scorer=KeywordScorer(good_or_bad), policies=[AcceptAbove(0.5, fallback="Not sure.")])
    result = await guard.ainvoke("Q?")
    assert not result.accepted and result.content == "Not sure."
    assert result.answer == "This is wrong." and result.confidence == pytest.approx(0.1)
    assert "0.100 < 0.5" in result.reason and result.trace.verdict.action is Action.REJECT


@pytest.mark.asyncio
async def test_retry_changes_sampling_and_keeps_best_attempt() -> None:
    replies = iter(["A wrong answer.", "A right answer.", "Another wrong one."])
    model = EchoModel(reply=lambda p, k: next(replies))
    before = model.model_dump(exclude={"seen", "prompts"})
    guard = FineCEGuard(model, scorer=KeywordScorer(good_or_bad), policies=[RetryBelow(0.95, max_attempts=3)])
    result = await guard.ainvoke("Q?")
    assert len(result.attempts) == 3
    assert [a.sampling for a in result.attempts] == [{}, {"temperature": 0.7}, {"temperature": 1.0}]
    assert [s.get("temperature") for s in model.seen] == [None, 0.7, 1.0]  # bound per call ...
    assert model.model_dump(exclude={"seen", "prompts"}) == before  # ... the user's model object untouched
    assert "temperature" not in vars(model)
    assert result.trace.kept == 2 and result.answer == "A right answer."


@pytest.mark.asyncio
async def test_retrieval_puts_passages_into_the_regenerated_prompt() -> None:
    model = EchoModel(reply=lambda p, k: "The answer is fine." if "Passage:" in p else "Something right.")
    docs = [Document("Gold has the symbol Au.", id="doc-1"), Document("Au is gold.", id="doc-2")]

    def rule(q: str, a: str | None, kind: CheckpointKind) -> float:
        return 0.5 if a is None else 0.9 if "right" in a else 0.6 if "fine" in a else 0.1

    guard = FineCEGuard(
        model, scorer=KeywordScorer(rule), retriever=ListRetriever(docs=docs),
        policies=[RetrieveBelow(0.95, k=2), AcceptAbove(0.5)],
    )  # fmt: skip
    result = await guard.ainvoke("What is the symbol for gold?")
    # the first answer scored 0.9, the passage-grounded one only 0.6: retrieval still supersedes it
    assert result.accepted and len(result.attempts) == 2 and result.answer == "The answer is fine."
    assert "Gold has the symbol Au." in model.prompts[1] and "Passage:" not in model.prompts[0]
    assert result.attempts[1].retrieved_ids == ("doc-1", "doc-2") and result.trace.retrieved_ids == ("doc-1", "doc-2")
    # the scorer saw the passage too (same shape as the passage-conditioned training data)
    assert any("Gold has the symbol Au." in q for q, _, _ in guard.scorer.calls)  # type: ignore[attr-defined]


def test_retrieve_policy_without_retriever_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="retriever"):
        FineCEGuard(EchoModel(reply=lambda p, k: "x"), scorer=KeywordScorer(good_or_bad), policies=[RetrieveBelow(0.5)])


@pytest.mark.asyncio
async def test_abort_stops_the_stream_early_and_keeps_the_trace() -> None:
    model = EchoModel(reply=lambda p, k: LONG)
    guard = FineCEGuard(model, scorer=KeywordScorer(good_or_bad), policies=[AbortBelow(0.5, min_tokens=3)])
    result = await guard.ainvoke("Q?")
    attempt = result.attempts[0]
    assert attempt.aborted is not None and attempt.aborted.action is Action.ABORT
    full_tokens = len([t for t in re.split(r"(\s)", LONG) if t])
    assert 0 < attempt.trace.n_tokens < full_tokens / 2 and not attempt.trace.finished
    assert attempt.trace.finish_reason == "aborted" and attempt.trace.meta["aborted"]["policy"] == "abort_below"
    assert not result.accepted  # nothing else to keep: the run says so instead of passing it


@pytest.mark.asyncio
async def test_handler_alone_raises_generation_aborted() -> None:
    handler = FineCECallbackHandler(KeywordScorer(good_or_bad), policies=[AbortBelow(0.5, min_tokens=3)])
    model = EchoModel(reply=lambda p, k: LONG)
    with pytest.raises(GenerationAborted):
        async for _ in model.astream("Q?", config={"callbacks": [handler]}):
            pass
    (rid,) = list(handler._runs)
    trace = await handler.atrace(rid)
    assert not trace.finished and trace.n_tokens > 0


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_scorer_failure_fail_open_or_closed(mode: str) -> None:
    def broken(q: str, a: str | None, kind: CheckpointKind) -> float:
        return -1.0 if kind is CheckpointKind.FINAL else 0.9

    guard = FineCEGuard(
        EchoModel(reply=lambda p, k: "Fine answer."), scorer=KeywordScorer(broken),
        policies=[AcceptAbove(0.5)], on_scorer_error=mode,  # type: ignore[arg-type]
    )  # fmt: skip
    events = [e async for e in guard.astream_events("Q?", version="v2") if e["event"] == "on_custom_event"]
    names = [e["name"] for e in events]
    assert "finece_scoring_failed" in names
    result = await guard.ainvoke("Q?")
    assert result.scoring_failed and result.answer == "Fine answer."
    assert result.accepted is (mode == "open")
    assert ("fail open" if mode == "open" else "fail closed") in result.reason
    assert "ScoreReadoutError" in result.trace.scoring_errors[-1]


@pytest.mark.asyncio
async def test_slow_scorer_never_hangs_past_the_deadline() -> None:
    guard = FineCEGuard(
        EchoModel(reply=lambda p, k: "Fine answer."), scorer=KeywordScorer(good_or_bad, delay_s=30.0),
        policies=[AcceptAbove(0.5)], deadline_s=0.5, on_scorer_error="closed",
    )  # fmt: skip
    t0 = time.perf_counter()
    result = await guard.ainvoke("Q?")
    assert time.perf_counter() - t0 < 5.0
    assert not result.accepted and "deadline" in result.reason


@pytest.mark.asyncio
async def test_astream_events_show_checkpoints_decisions_and_result() -> None:
    replies = iter(["A wrong answer.\nStill wrong here.", "A right answer."])
    guard = FineCEGuard(
        EchoModel(reply=lambda p, k: next(replies)), scorer=KeywordScorer(good_or_bad),
        policies=[RetryBelow(0.5), AcceptAbove(0.5)],
    )  # fmt: skip
    names = [e["name"] async for e in guard.astream_events("Q?", version="v2") if e["event"] == "on_custom_event"]
    assert names.count("finece_checkpoint") >= 4
    assert "finece_decision" in names and "finece_restart" in names and names[-1] == "finece_result"


@pytest.mark.asyncio
async def test_live_stream_marks_restart_and_ends_with_the_verdict() -> None:
    replies = iter(["A wrong answer.", "A right answer."])
    guard = FineCEGuard(
        EchoModel(reply=lambda p, k: next(replies)), scorer=KeywordScorer(good_or_bad), policies=[RetryBelow(0.5)]
    )
    chunks = [c async for c in guard.astream("Q?")]
    metas = [c.response_metadata.get("finece_guard", {}) for c in chunks]
    restart = next(i for i, m in enumerate(metas) if m.get("event") == "restart")
    after = "".join(str(c.content) for c in chunks[restart + 1 :])
    assert after == "A right answer." and metas[-1]["event"] == "result" and metas[-1]["attempts"] == 2


@pytest.mark.asyncio
async def test_final_stream_mode_yields_only_the_kept_answer() -> None:
    replies = iter(["A wrong answer.", "A right answer."])
    guard = FineCEGuard(
        EchoModel(reply=lambda p, k: next(replies)), scorer=KeywordScorer(good_or_bad),
        policies=[RetryBelow(0.5)], stream_mode="final",
    )  # fmt: skip
    chunks = [c async for c in guard.astream("Q?")]
    assert "".join(str(c.content) for c in chunks) == "A right answer."


@pytest.mark.asyncio
async def test_32_concurrent_runs_through_one_handler_keep_traces_apart() -> None:
    model = EchoModel(reply=lambda p, k: f"Answer for {p}.\nMore about {p}.")
    guard = FineCEGuard(model, scorer=KeywordScorer(good_or_bad, delay_s=0.01), policies=[AcceptAbove(0.5)])
    questions = [f"question-{i}" for i in range(32)]
    results = await guard.abatch(questions, config={"max_concurrency": 32})
    for q, r in zip(questions, results, strict=True):
        assert isinstance(r, GuardResult)
        trace = r.attempts[0].trace
        assert trace.question == q and trace.answer == f"Answer for {q}.\nMore about {q}."
        assert all(q in (sc.checkpoint.answer_prefix or q) for sc in trace.checkpoints if sc.checkpoint.answer_prefix)
    assert not guard.handler._runs and not guard.handler._sessions  # nothing left behind


def test_sync_invoke_stream_and_lcel_composition() -> None:
    model = EchoModel(reply=lambda p, k: "Gold is Au.")
    guard = FineCEGuard(model, scorer=KeywordScorer(good_or_bad), policies=[AcceptAbove(0.5)])
    assert guard.invoke("Q?").accepted
    assert "".join(str(c.content) for c in guard.stream("Q?")) == "Gold is Au."
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | guard | StrOutputParser()
    assert chain.invoke({"question": "What is gold?"}) == "Gold is Au."


def test_question_extraction() -> None:
    guard = FineCEGuard(EchoModel(reply=lambda p, k: "x"), scorer=KeywordScorer(good_or_bad))
    assert guard.question_of("plain") == "plain"
    assert guard.question_of({"question": "from dict", "context": "c"}) == "from dict"
    assert guard.question_of({"only": "single value"}) == "single value"
    with pytest.raises(ConfigError, match="question_key"):
        guard.question_of({"a": "1", "b": "2"})
    with pytest.raises(ConfigError, match="question_from"):
        guard.question_of(42)


def test_stop_token_with_logprobs_but_no_text_is_not_answer_text() -> None:
    from finece_guard.runtime.text import chunk_token_events as token_events

    lp = {"content": [{"token": "<|im_end|>", "logprob": -0.1, "top_logprobs": []}]}
    assert token_events("", None, lp, 7) == []
    events = token_events("Au", None, {"content": [{"token": "Au", "logprob": -0.2, "top_logprobs": []}]}, 7)
    assert [(e.index, e.text, e.logprob) for e in events] == [(7, "Au", -0.2)]


def test_langchain_callback_warning_for_a_deliberate_abort_is_hidden(caplog: pytest.LogCaptureFixture) -> None:
    """LangChain logs "Error in ... callback" for every raised callback exception; an abort is not an error."""
    import logging

    import finece_guard.runtime.handler  # noqa: F401  (installs the filter)
    from finece_guard.errors import GenerationAborted

    log = logging.getLogger("langchain_core.callbacks.manager")
    with caplog.at_level(logging.WARNING, logger=log.name):
        log.warning("Error in %s.%s callback: %s", "FineCECallbackHandler", "on_llm_new_token",
                    repr(GenerationAborted("generation aborted by abort_below")))  # fmt: skip
        log.warning("Error in %s.%s callback: %s", "Other", "on_llm_new_token", repr(ValueError("real")))
    assert [r.getMessage() for r in caplog.records] == ["Error in Other.on_llm_new_token callback: ValueError('real')"]
