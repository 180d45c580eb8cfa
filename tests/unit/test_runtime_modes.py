"""One decision path in every mode (fakes): the same scenarios through every LangChain entry point.

Modes: ``invoke``, ``ainvoke``, ``stream``, ``astream`` (live and final), ``astream_events(v2)``,
``batch``, ``abatch``, and the ``create_agent`` middleware (sync and async). Each scenario must
produce the same decisions (in order), the same kept answer and the same verdict in all of them,
and leave no handler run and no task behind. The real-server version is
``tests/integration/test_runtime_modes_live.py``.
"""

from __future__ import annotations

import asyncio
import gc
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.retrievers import BaseRetriever

from finece_guard.runtime.bci import LookAhead, integrate_paths
from finece_guard.runtime.guard import FineCEGuard, GuardResult
from finece_guard.runtime.monitor import PRESCORED_QUESTION
from finece_guard.runtime.policies import (
    DEFAULT_FALLBACK,
    AbortBelow,
    AcceptAbove,
    Action,
    Policy,
    RetrieveBelow,
    RetryBelow,
)
from finece_guard.sync_bridge import bridge_loop
from finece_guard.testing import EchoChatModel, KeywordScorer
from finece_guard.types import CheckpointKind

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::langchain_core._api.beta_decorator.LangChainBetaWarning")]

FILLER = " ".join(["filler"] * 300)
WRONG = "It is wrong to say this.\nIt keeps going wrong.\n" + FILLER + "\nEnd."
RIGHT = "The answer is right.\nIt is right indeed."
PASSAGE = "Gold has the chemical symbol Au."


Echo = EchoChatModel


class Fixed(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(PASSAGE, id="gold")]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        return [Document(PASSAGE, id="gold")]


def rule(question: str, answer: str | None, kind: CheckpointKind) -> float:
    if answer is None:
        return 0.9 if PASSAGE in question or "easy" in question else 0.2
    return 0.1 if "wrong" in answer else 0.9


@dataclass
class Scenario:
    name: str
    question: str
    reply: Callable[[str, dict[str, Any]], str]
    policies: Callable[[], list[Policy]]
    retriever: bool = False


SCENARIOS = [
    Scenario("abort", "easy question?", lambda p, k: WRONG, lambda: [AbortBelow(0.5, min_tokens=3)]),
    Scenario("retry", "easy question?", lambda p, k: RIGHT if k.get("temperature") else "This is wrong.",
             lambda: [RetryBelow(0.5, max_attempts=2, temperatures=(1.0,)), AcceptAbove(0.5)]),
    Scenario("early_retrieval_before_generation", "What is gold's symbol?",
             lambda p, k: RIGHT if PASSAGE in p else WRONG, lambda: [RetrieveBelow(0.5, early=True, k=1)], True),
    Scenario("early_retrieval_in_stream", "easy question?", lambda p, k: RIGHT if PASSAGE in p else WRONG,
             lambda: [RetrieveBelow(0.5, early=True, k=1, min_tokens=3), AcceptAbove(0.5)], True),
    Scenario("reject", "easy question?", lambda p, k: "This is wrong.", lambda: [AcceptAbove(0.5, fallback="no")]),
]  # fmt: skip

GUARD_MODES = ["invoke", "ainvoke", "stream", "astream_live", "astream_final", "astream_events", "batch", "abatch"]
AGENT_MODES = ["agent_sync", "agent_async", "agent_stream_events_v3"]


@dataclass
class Outcome:
    decisions: list[tuple[str, str]]
    kept: int
    attempts: int
    accepted: bool
    answer: str
    content: str
    events: list[str]
    result: GuardResult | None = None


def _guard(s: Scenario, model: Echo) -> FineCEGuard:
    retriever = Fixed() if s.retriever else None
    return FineCEGuard(model, scorer=KeywordScorer(rule), policies=s.policies(), retriever=retriever)


def _from_result(r: GuardResult, events: list[str]) -> Outcome:
    return Outcome([(d.action.value, d.policy) for d in r.trace.decisions], r.trace.kept, len(r.attempts), r.accepted,
                   r.answer, str(r.content), events, r)  # fmt: skip


async def _run_guard(mode: str, guard: FineCEGuard, q: str) -> Outcome:
    events: list[str] = []
    if mode == "invoke":
        r = await asyncio.to_thread(guard.invoke, q)
    elif mode == "ainvoke":
        r = await guard.ainvoke(q)
    elif mode == "stream":
        chunks = await asyncio.to_thread(lambda: list(guard.stream(q)))
        return await _from_stream(guard, chunks, events)
    elif mode in ("astream_live", "astream_final"):
        guard.stream_mode = "live" if mode == "astream_live" else "final"
        chunks = [c async for c in guard.astream(q)]
        return await _from_stream(guard, chunks, events)
    elif mode == "astream_events":
        found: list[GuardResult] = []
        async for e in guard.astream_events(q, version="v2"):
            if e["event"] == "on_custom_event":
                events.append(e["name"])
                if e["name"] == "finece_result":
                    found.append(e["data"]["result"])
        r = found[-1]
    elif mode == "batch":
        r = (await asyncio.to_thread(guard.batch, [q]))[0]
    elif mode == "abatch":
        r = (await guard.abatch([q]))[0]
    else:  # pragma: no cover
        raise AssertionError(mode)
    assert isinstance(r, GuardResult)
    return _from_result(r, events)


async def _from_stream(guard: FineCEGuard, chunks: list[Any], events: list[str]) -> Outcome:
    last = chunks[-1].response_metadata["finece_guard"]
    assert last["event"] == "result"
    # the stream's summary is the verdict; rebuild the same view as the other modes from it
    text = "".join(str(c.content) for c in chunks)
    r = _LAST_RESULTS.pop()
    if guard.stream_mode == "final":
        assert text == r.content
    elif r.accepted:
        restart_at = max((i for i, c in enumerate(chunks) if c.response_metadata.get("finece_guard", {}).get("event")
                          == "restart"), default=-1)  # fmt: skip
        assert "".join(str(c.content) for c in chunks[restart_at + 1:]) == r.answer
    assert last["accepted"] == r.accepted and last["kept"] == r.trace.kept
    return _from_result(r, events)


_LAST_RESULTS: list[GuardResult] = []


@pytest.fixture(autouse=True)
def _capture_results(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    original = FineCEGuard._result

    def spy(self: FineCEGuard, outcome: Any) -> GuardResult:
        result = original(self, outcome)
        _LAST_RESULTS.append(result)
        return result

    monkeypatch.setattr(FineCEGuard, "_result", spy)
    yield
    _LAST_RESULTS.clear()


def _agent_outcome(state: dict[str, Any]) -> Outcome:
    meta = state["messages"][-1].response_metadata["finece_guard"]
    return Outcome([tuple(x) for x in meta["actions"]], meta["kept"], meta["attempts"], meta["accepted"],  # type: ignore[misc]
                   meta["answer"], str(state["messages"][-1].content), [])  # fmt: skip


async def _run_agent(mode: str, s: Scenario, model: Echo, scorer: KeywordScorer | None = None) -> Outcome:
    from langchain.agents import create_agent

    from finece_guard.runtime.middleware import FineCEMiddleware

    mw = FineCEMiddleware(scorer or KeywordScorer(rule), policies=s.policies(),
                          retriever=Fixed() if s.retriever else None,
                          fallback="no" if s.name == "reject" else DEFAULT_FALLBACK)  # fmt: skip
    agent = create_agent(model, tools=[], middleware=[mw])
    inp = {"messages": [{"role": "user", "content": s.question}]}
    if mode == "agent_sync":
        state = await asyncio.to_thread(agent.invoke, inp)
    elif mode == "agent_stream_events_v3":  # the newer content-block protocol (experimental in langgraph)
        def v3() -> dict[str, Any]:
            values = [e for e in agent.stream_events(inp, version="v3") if e["method"] == "values"]
            return values[-1]["params"]["data"]  # type: ignore[no-any-return]

        state = await asyncio.to_thread(v3)
    else:
        state = await agent.ainvoke(inp)
    assert mw.handler.active_runs == 0 and mw.handler.pending_tasks() == 0
    return _agent_outcome(state)


def _bridge_tasks() -> int:
    async def count() -> int:
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    return asyncio.run_coroutine_threadsafe(count(), bridge_loop()).result(5)


EXPECTED = {
    "abort": dict(decisions=[("abort", "abort_below"), ("reject", "abort_below")], kept=1, attempts=1, accepted=False),
    "retry": dict(decisions=[("retry", "retry_below"), ("accept", "accept_above")], kept=2, attempts=2, accepted=True),
    "early_retrieval_before_generation": dict(decisions=[("retrieve", "retrieve_below"), ("accept", "default")],
                                              kept=1, attempts=1, accepted=True),
    "early_retrieval_in_stream": dict(decisions=[("retrieve", "retrieve_below"), ("accept", "accept_above")], kept=2,
                                      attempts=2, accepted=True),
    "reject": dict(decisions=[("reject", "accept_above")], kept=1, attempts=1, accepted=False),
}  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_every_mode_takes_the_same_decisions(scenario: Scenario) -> None:
    outcomes: dict[str, Outcome] = {}
    for mode in GUARD_MODES:
        model = Echo(reply=scenario.reply)
        guard = _guard(scenario, model)
        outcomes[mode] = await _run_guard(mode, guard, scenario.question)
        assert guard.handler.active_runs == 0 and guard.handler.pending_tasks() == 0, mode
    for mode in AGENT_MODES:
        outcomes[mode] = await _run_agent(mode, scenario, Echo(reply=scenario.reply))
    want = EXPECTED[scenario.name]
    for mode, got in outcomes.items():
        assert (got.decisions, got.kept, got.attempts, got.accepted) == (
            want["decisions"], want["kept"], want["attempts"], want["accepted"]), mode  # fmt: skip
    answers = {mode: o.answer for mode, o in outcomes.items()}
    assert len(set(answers.values())) == 1, answers
    if scenario.name == "abort":
        assert all(len(o.answer) < len(WRONG) / 3 for o in outcomes.values())  # the stream really stopped
    assert {"finece_checkpoint", "finece_decision", "finece_result"} <= set(outcomes["astream_events"].events)
    assert _bridge_tasks() == 0


@pytest.mark.asyncio
async def test_aborted_trace_says_aborted_never_stop_in_every_guard_mode() -> None:
    s = SCENARIOS[0]
    for mode in GUARD_MODES:
        guard = _guard(s, Echo(reply=s.reply))
        result = (await _run_guard(mode, guard, s.question)).result
        assert result is not None
        trace = result.attempts[0].trace
        assert trace.finish_reason == "aborted" and not trace.finished, mode
        assert all(sc.checkpoint.kind is not CheckpointKind.FINAL for sc in trace.checkpoints), mode


# --------------------------------------------------------------------------- look-ahead confirmation
class Sampler:
    """Returns fixed continuations; records the calls (one request with n=width)."""

    def __init__(self, continuations: list[str]) -> None:
        self.continuations = continuations
        self.calls: list[tuple[str, int]] = []

    async def sample_continuations(self, question: str, answer_prefix: str, *, n: int, max_tokens: int) -> list[str]:
        self.calls.append((answer_prefix, n))
        return self.continuations[:n]


def la_rule(question: str, answer: str | None, kind: CheckpointKind) -> float:
    if answer is None:
        return 0.5
    if "recovers" in answer:
        return 0.8
    if "doomed" in answer:
        return 0.05
    return 0.15 if "shaky" in answer else 0.9


@pytest.mark.asyncio
@pytest.mark.parametrize("future,aborts", [("It recovers.\n", False), ("It is doomed.\n", True)])
async def test_lookahead_confirmation_decides_on_the_eq5_value(future: str, aborts: bool) -> None:
    start = "A shaky start to this answer.\n"
    reply = start + FILLER + "\nEnd."
    sampler = Sampler([future, future])
    guard = FineCEGuard(
        Echo(reply=lambda p, k: reply, delay_s=0.002), scorer=KeywordScorer(la_rule), sampler=sampler,
        policies=[AbortBelow(0.2, min_tokens=3, confirm=LookAhead(width=2, depth=1))],
    )  # fmt: skip
    result = await guard.ainvoke("Q?")
    raw = 0.15
    future_score = la_rule("Q?", start + future, CheckpointKind.PARTIAL)
    # eq. 5 by hand: c' = α·c + (1-α)·mean(first refined value of each path); a depth-1 path is its score
    expected = 0.5 * raw + 0.5 * future_score
    assert integrate_paths(raw, [[future_score], [future_score]], alpha=0.5) == pytest.approx(expected)
    attempt = result.attempts[0]
    la = attempt.trace.meta["lookahead"][0]
    assert la["value"] == pytest.approx(expected) and la["raw"] == pytest.approx(raw)
    assert la["requests"] == 1 + 2 and sampler.calls[0] == (start, 2)  # one sampling request (n=2) + 2 scores
    assert result.trace.lookahead_cost["requests"] == 3 * len(sampler.calls)
    if aborts:  # 0.1 < 0.2: the confirmed abort stops the stream
        assert attempt.aborted is not None and "look-ahead confidence 0.100" in attempt.aborted.reason
        assert attempt.aborted.params["lookahead"]["value"] == pytest.approx(expected)
        assert attempt.trace.finish_reason == "aborted" and not result.accepted
    else:  # 0.475 >= 0.2: the look-ahead overturns the abort and the answer finishes
        assert attempt.aborted is None and attempt.trace.finish_reason == "stop" and result.accepted
        overturned = [d for d in result.trace.decisions if d.action is Action.CONTINUE]
        assert not overturned  # overturns are trace events, not run decisions
        assert any("overturned" in d["reason"] for d in attempt.trace.meta["decisions"])
    assert guard.handler.active_runs == 0 and guard.handler.pending_tasks() == 0


def test_lookahead_without_a_sampler_is_a_config_error() -> None:
    from finece_guard.errors import ConfigError

    with pytest.raises(ConfigError, match="sampler="):
        FineCEGuard(Echo(reply=lambda p, k: "x"), scorer=KeywordScorer(la_rule),
                    policies=[AbortBelow(0.2, confirm=LookAhead(2, 1))])  # fmt: skip


# --------------------------------------------------------------------------- nothing left running
def _slow_guard(**kw: Any) -> FineCEGuard:
    return FineCEGuard(Echo(reply=lambda p, k: WRONG, delay_s=0.005), scorer=KeywordScorer(rule, delay_s=0.05), **kw)


async def _clean(guard: FineCEGuard) -> None:
    for _ in range(100):  # a broken-off async generator is finalized by the loop soon after
        gc.collect()
        await asyncio.sleep(0.02)
        if guard.handler.active_runs == 0 and guard.handler.pending_tasks() == 0:
            break
    assert guard.handler.active_runs == 0 and guard.handler.pending_tasks() == 0
    assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert _bridge_tasks() == 0


@pytest.mark.asyncio
async def test_nothing_left_after_normal_end_abort_and_scorer_failure() -> None:
    await _slow_guard(policies=[AcceptAbove(0.0)]).ainvoke("easy question?")
    for guard in (_slow_guard(policies=[AbortBelow(0.5, min_tokens=3)]),
                  FineCEGuard(Echo(reply=lambda p, k: RIGHT), scorer=KeywordScorer(lambda q, a, k: -1.0))):  # fmt: skip
        result = await guard.ainvoke("easy question?")
        assert not result.accepted
        await _clean(guard)


@pytest.mark.asyncio
async def test_a_scorer_error_of_any_type_is_a_scoring_failure_not_an_escape() -> None:
    def boom(q: str, a: str | None, k: CheckpointKind) -> float:
        raise ZeroDivisionError("not a FineCEError")

    for mode in ("open", "closed"):
        guard = FineCEGuard(Echo(reply=lambda p, k: RIGHT), scorer=KeywordScorer(boom), on_scorer_error=mode)  # type: ignore[arg-type]
        result = await guard.ainvoke("easy question?")
        assert result.scoring_failed and result.accepted is (mode == "open")
        assert "ZeroDivisionError" in " ".join(result.trace.scoring_errors)
        await _clean(guard)


@pytest.mark.asyncio
async def test_caller_cancellation_cleans_up() -> None:
    guard = _slow_guard()
    task = asyncio.create_task(guard.ainvoke("easy question?"))
    await asyncio.sleep(0.2)
    assert guard.handler.active_runs == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await _clean(guard)


@pytest.mark.asyncio
async def test_caller_break_out_of_astream_cleans_up() -> None:
    guard = _slow_guard()
    n = 0
    async for _ in guard.astream("easy question?"):
        n += 1
        if n == 5:
            break
    await _clean(guard)


@pytest.mark.asyncio
async def test_caller_break_out_of_sync_stream_cleans_up_and_stops_the_model() -> None:
    model = Echo(reply=lambda p, k: WRONG, delay_s=0.005)
    guard = FineCEGuard(model, scorer=KeywordScorer(rule, delay_s=0.05))

    def consume() -> int:
        n = 0
        for _ in guard.stream("easy question?"):
            n += 1
            if n == 5:
                break
        return n

    assert await asyncio.to_thread(consume) == 5
    await _clean(guard)


@pytest.mark.asyncio
async def test_broken_answers_are_never_accepted_without_a_policy() -> None:
    class Breaks(Echo):
        def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Iterator[Any]:
            yield from list(super()._stream(messages, stop, run_manager, **kw))[:6]
            raise ConnectionError("stream cut")

        async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
            n = 0
            async for c in super()._astream(messages, stop, run_manager, **kw):
                yield c
                n += 1
                if n == 6:
                    raise ConnectionError("stream cut")

    guard = FineCEGuard(Breaks(reply=lambda p, k: RIGHT), scorer=KeywordScorer(rule))
    for result in (await guard.ainvoke("easy question?"), await asyncio.to_thread(guard.invoke, "easy question?")):
        assert not result.accepted and "generation failed: ConnectionError" in result.reason
        assert result.answer and "partial text kept" in result.reason


# --------------------------------------------------------------------------- events where users look
@pytest.mark.asyncio
async def test_agent_events_reach_langgraph_custom_stream_sync_and_async() -> None:
    from langchain.agents import create_agent

    from finece_guard.runtime.middleware import FineCEMiddleware

    s = SCENARIOS[0]  # abort
    inp = {"messages": [{"role": "user", "content": s.question}]}

    def agent() -> Any:
        middleware = FineCEMiddleware(KeywordScorer(rule), policies=s.policies())
        return create_agent(Echo(reply=s.reply), tools=[], middleware=[middleware])

    sync_items = await asyncio.to_thread(lambda: list(agent().stream(inp, stream_mode="custom")))
    async_items = [x async for x in agent().astream(inp, stream_mode="custom")]
    for items in (sync_items, async_items):
        events = [x["finece_guard"]["event"] for x in items if isinstance(x, dict) and "finece_guard" in x]
        assert events.count("checkpoint") >= 2 and "decision" in events, events
        decisions = [x["finece_guard"] for x in items if x.get("finece_guard", {}).get("event") == "decision"]
        assert decisions[0]["action"] == "abort" and decisions[-1]["action"] == "reject"


class ToolThenAnswer(BaseChatModel):
    """Does not stream: first a tool call, then (after the tool ran) a text answer."""

    answer: str = "The answer is right."
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "tool-then-answer"

    def bind_tools(self, tools: Any, **kw: Any) -> Any:
        return self

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        self.calls += 1
        if not any(getattr(m, "type", "") == "tool" for m in messages):
            msg = AIMessage("", tool_calls=[{"name": "lookup", "args": {"q": "x"}, "id": "call-1"}])
        else:
            msg = AIMessage(self.answer)
        return ChatResult(generations=[ChatGeneration(message=msg)])


@pytest.mark.asyncio
@pytest.mark.parametrize("answer,accepted", [("The answer is right.", True), ("This is wrong.", False)])
async def test_agent_tool_turns_pass_through_and_an_unstreamed_answer_is_still_scored(answer: str,
                                                                                      accepted: bool) -> None:
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from finece_guard.runtime.middleware import FineCEMiddleware

    @tool
    def lookup(q: str) -> str:
        """Look something up."""
        return "found"

    model = ToolThenAnswer(answer=answer)
    mw = FineCEMiddleware(KeywordScorer(rule), policies=[RetryBelow(0.5, max_attempts=3), AcceptAbove(0.5)])
    state = await create_agent(model, tools=[lookup], middleware=[mw]).ainvoke(
        {"messages": [{"role": "user", "content": "easy question?"}]}
    )
    final = state["messages"][-1]
    meta = final.response_metadata["finece_guard"]
    assert meta["accepted"] is accepted and meta["confidence"] == pytest.approx(0.9 if accepted else 0.1)
    # one tool turn (not retried) + the answer (retried up to 3 attempts only when it scores low)
    assert model.calls == 1 + (1 if accepted else 3)
    assert meta["attempts"] == (1 if accepted else 3)


@pytest.mark.asyncio
async def test_fused_scores_reach_the_result_in_every_mode() -> None:
    """A scorer with a FineCE+ model: every mode's trace carries ``fused`` beside the adapter's value."""
    from finece_guard.backends.fusion import FEATURES, FusionModel

    n = len(FEATURES)  # a model that reads the adapter's logit only: fused = sigmoid(logit(value) + 0.5)
    fusion = FusionModel(mean=(0.0,) * n, scale=(1.0,) * n, coef=(1.0,) + (0.0,) * (n - 1), intercept=0.5)
    s = SCENARIOS[-1]  # reject: one complete attempt
    for mode in GUARD_MODES:
        scorer = KeywordScorer(rule)
        scorer.fusion = fusion
        guard = FineCEGuard(Echo(reply=s.reply, logprob=-0.1), scorer=scorer, policies=s.policies())
        result = (await _run_guard(mode, guard, s.question)).result
        assert result is not None and not result.accepted, mode  # policies still read the adapter's value
        scored = [sc.score for sc in result.attempts[0].trace.checkpoints]
        assert scored[0] is not None and scored[0].fused is None, mode  # the question alone is never fused
        assert len(scored) >= 2, mode
        for score in scored[1:]:
            assert score is not None and score.value in (0.1, 0.9), mode
            logit = math.log(score.value / (1 - score.value))
            assert score.fused == pytest.approx(1 / (1 + math.exp(-(logit + 0.5)))), mode


@pytest.mark.asyncio
async def test_a_question_scored_before_generation_is_not_scored_again_in_every_mode() -> None:
    """Early ``RetrieveBelow`` scores the question before generating; when it does not retrieve, the
    attempt's question checkpoint is that score (recorded, same value), not a second scorer call."""
    s = Scenario("early_no_retrieval", "easy question?", lambda p, k: RIGHT,
                 lambda: [RetrieveBelow(0.5, early=True, k=1), AcceptAbove(0.5)], True)  # fmt: skip

    def question_calls(scorer: KeywordScorer) -> int:
        return sum(kind is CheckpointKind.QUESTION for _, _, kind in scorer.calls)

    for mode in GUARD_MODES:
        guard = _guard(s, Echo(reply=s.reply))
        result = (await _run_guard(mode, guard, s.question)).result
        assert result is not None and result.accepted and len(result.attempts) == 1, mode
        scorer = guard.scorer
        assert isinstance(scorer, KeywordScorer)
        assert question_calls(scorer) == 1, (mode, scorer.calls)
        questions = [sc for sc in result.attempts[0].trace.checkpoints if sc.checkpoint.kind is CheckpointKind.QUESTION]
        assert [sc.score.value for sc in questions if sc.score] == [0.9], mode
        assert questions[0].checkpoint.reason == PRESCORED_QUESTION, mode
    for mode in AGENT_MODES:
        scorer = KeywordScorer(rule)
        outcome = await _run_agent(mode, s, Echo(reply=s.reply), scorer)
        assert outcome.accepted and outcome.attempts == 1, mode
        assert question_calls(scorer) == 1, (mode, scorer.calls)


@pytest.mark.asyncio
async def test_a_retrieval_before_generation_scores_the_question_with_its_passages() -> None:
    """When the pre-score retrieves, the attempt asks about a different state (passages + question):
    that one is scored, the bare question's pre-score is not reused for it."""
    s = SCENARIOS[2]
    for mode in GUARD_MODES:
        guard = _guard(s, Echo(reply=s.reply))
        result = (await _run_guard(mode, guard, s.question)).result
        assert result is not None
        scorer = guard.scorer
        assert isinstance(scorer, KeywordScorer)
        asked = [q for q, _, kind in scorer.calls if kind is CheckpointKind.QUESTION]
        assert len(asked) == 2 and PASSAGE not in asked[0] and PASSAGE in asked[1], (mode, asked)
