"""``FineCEGuard``: a LangChain Runnable that wraps a chain or chat model and acts on FineCE scores.

``FineCEGuard(chain, scorer=..., policies=[...], retriever=...)`` streams the wrapped runnable
with a :class:`~finece_guard.runtime.handler.FineCECallbackHandler` attached, so every model call
inside it is scored at checkpoints as it streams. The handler is the one in-stream decider; the
attempt loop (:mod:`finece_guard.runtime.session`) carries out what the policies decide
(precedence in :mod:`finece_guard.runtime.policies.compose`):

* **abort** — decided by the handler when a score arrives (optionally confirmed by look-ahead
  BCI, ``AbortBelow(θ, confirm=LookAhead(4, 1))``), raised from the next token callback; the
  stream closes and vLLM cancels the request. The same in every mode.
* **early retrieval** — ``RetrieveBelow(θ, early=True)``: the question is scored before any
  token and, below θ, retrieval happens first; at a partial checkpoint below θ the attempt is
  stopped there and regenerated with the passages.
* **retry** — run again with other sampling (``.bind(temperature=..., seed=...)`` on the chat
  model inside, never mutating it), keeping the attempt with the best final confidence;
* **retrieve** — query the retriever (e.g. Chroma via langchain-chroma), put the passages into the
  prompt (``context_key`` for dict inputs, else ahead of the question) and regenerate;
* **accept / reject** — the verdict on the kept answer. A rejection is explicit: the result keeps
  the answer text, score and reason; its ``content`` is the fallback message. A stopped, failed
  or empty attempt is never accepted; an unscored one follows ``on_scorer_error``.

The output is a :class:`GuardResult`, an ``AIMessage`` whose ``content`` is what the caller should
show, so ``prompt | FineCEGuard(llm) | parser`` works; its attributes (``accepted``,
``confidence``, ``refined_trace``, ``attempts``, ``trace``...) hold the full story, and the same
summary is in ``response_metadata["finece_guard"]``.

Modes — one decision path in all of them:

* ``ainvoke`` / ``astream`` / ``astream_events`` / ``abatch`` run on the caller's loop and stream
  the model asynchronously.
* ``invoke`` / ``stream`` / ``batch`` run the same coroutine on the package's one bridge loop
  (:mod:`finece_guard.sync_bridge`) and stream the model with its **sync** API in a worker
  thread, so an async HTTP client cached by the model (langchain-openai caches one) is never
  touched from two loops: mixing ``invoke`` and ``ainvoke`` in one process works.
* ``stream_mode="live"`` (default) yields tokens as they arrive; a retry or retrieval yields a
  marker chunk with empty content and ``response_metadata["finece_guard"]["event"] == "restart"``
  (a UI clears the text shown so far); the last chunk carries the verdict.
  ``stream_mode="final"`` yields only the kept answer (or the fallback), after the verdict.
* ``astream_events(version="v2")`` shows custom events ``finece_checkpoint`` (live confidence
  bar), ``finece_decision``, ``finece_restart``, ``finece_scoring_failed`` and ``finece_result``.
* Breaking out of a stream or cancelling the task cancels the model stream, every pending score
  and confirmation, and drops the run's state (``finally``); nothing keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, adispatch_custom_event
from langchain_core.documents import Document
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableSequence
from langchain_core.runnables.config import ensure_config, patch_config
from pydantic import ConfigDict

from finece_guard.backends.base import BaseScorer
from finece_guard.config import setting_default
from finece_guard.errors import ConfigError
from finece_guard.runtime.bci import ContinuationSampler, refine
from finece_guard.runtime.checkpoints import CheckpointStrategy
from finece_guard.runtime.handler import FineCECallbackHandler
from finece_guard.runtime.policies.accept import DEFAULT_FALLBACK, AcceptAbove
from finece_guard.runtime.policies.base import Action, Decision, Policy
from finece_guard.runtime.policies.compose import Budget
from finece_guard.runtime.session import Attempt, AttemptRequest, GuardedSession, GuardTrace, ScorerErrorMode
from finece_guard.runtime.text import (
    message_text,
    passages_head,
    question_of_messages,
    with_passages,
)
from finece_guard.sync_bridge import iterate_sync, run_sync

_ALPHA = setting_default("bci_alpha")
_WINDOW = setting_default("bci_window")
_DEADLINE_S = setting_default("score_deadline_s")
_MAX_PARTIAL = setting_default("max_partial_scores")

StreamMode = Literal["live", "final"]

__all__ = ["Attempt", "FineCEGuard", "GuardResult", "GuardTrace"]


class GuardResult(AIMessage):
    """The guarded answer: an ``AIMessage`` plus the guard's verdict and full trace.

    ``content`` is what to show: the kept answer when accepted, the fallback message when not.
    ``answer`` is always the kept answer's text, accepted or not. ``confidence`` is the score of
    the kept answer's last state, the value the verdict used. ``refined_trace`` is the kept
    attempt's checkpoints after retrospective BCI (eq. 5): the last value equals ``confidence``
    (c'_N = c_N), the earlier ones are smoothed by what came after them; ``refined_confidence`` is
    their mean, a whole-answer summary that weighs how the answer got there (``None`` when fewer
    than two checkpoints were scored).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    answer: str = ""
    accepted: bool = True
    confidence: float | None = None
    refined_confidence: float | None = None
    refined_trace: tuple[float | None, ...] = ()
    reason: str = ""
    guard_trace: Any = None

    @property
    def trace(self) -> GuardTrace:
        return cast(GuardTrace, self.guard_trace)

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        return self.trace.attempts

    @property
    def scoring_failed(self) -> bool:
        return self.trace.scoring_failed


def _with_sampling(runnable: Runnable[Any, Any], params: dict[str, Any]) -> tuple[Runnable[Any, Any], bool]:
    """``runnable`` with every language model inside bound to ``params``; and whether any was."""
    if not params:
        return runnable, True
    if isinstance(runnable, BaseLanguageModel):
        return runnable.bind(**params), True
    if isinstance(runnable, RunnableBinding) and isinstance(runnable.bound, BaseLanguageModel):
        return runnable.bind(**params), True
    if isinstance(runnable, RunnableSequence):
        steps = [_with_sampling(s, params) for s in runnable.steps]
        if any(ok for _, ok in steps):
            return RunnableSequence(*(s for s, _ in steps)), True
    return runnable, False


def _number(name: str, value: object, *, low: float, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
        raise ConfigError(f"{name}={value!r} must be a finite number (e.g. {example})")
    if value <= low:
        raise ConfigError(f"{name}={value!r} must be > {low} (e.g. {example})")
    return float(value)


async def _iterate_in_thread(make: Callable[[], Iterator[Any]], on_stop: Callable[[], None]) -> AsyncIterator[Any]:
    """Iterate a *sync* iterator in a worker thread (with the caller's context) from async code.

    Closing this generator early sets a stop flag, calls ``on_stop`` (the handler then raises at
    the model's next token, which closes its HTTP stream) and waits briefly for the thread.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()
    done = loop.create_future()
    ctx = contextvars.copy_context()

    def put(kind: str, item: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop may be closing
            loop.call_soon_threadsafe(items.put_nowait, (kind, item))

    def work() -> None:
        try:
            it = make()
            try:
                for item in it:
                    put("item", item)
                    if stop.is_set():
                        break
            finally:
                close = getattr(it, "close", None)
                if close is not None:
                    close()
        except BaseException as exc:  # handed to the async side
            put("error", exc)
        else:
            put("done", None)
        finally:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(finished)

    def finished() -> None:
        if not done.done():
            done.set_result(None)

    threading.Thread(target=ctx.run, args=(work,), name="finece-guard-sync-stream", daemon=True).start()
    try:
        while True:
            kind, item = await items.get()
            if kind == "item":
                yield item
            elif kind == "error":
                raise item
            else:
                return
    finally:
        if not done.done():
            stop.set()
            on_stop()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(asyncio.shield(done), 30.0)


class FineCEGuard(Runnable[Any, BaseMessage]):
    """Wraps a chain or chat model with FineCE scoring and policies (see the module docstring).

    Args:
        runnable: a chat model streaming from an OpenAI-compatible server with logprobs, or a
            chain containing one (its output may be a message or a string).
        scorer: the FineCE scorer.
        policies: e.g. ``[AbortBelow(0.2), RetrieveBelow(0.4), AcceptAbove(0.5)]``.
        checkpoints: checkpoint strategy (default: paragraph ends).
        retriever: any LangChain retriever (needed by RetrieveBelow).
        sampler: continuation sampler for look-ahead confirmation (needed by a policy with
            ``confirm=LookAhead(...)``), e.g. ``OpenAICompatGenerator(URL, model=...)``.
        budget: global caps on attempts, retrievals and tokens.
        question_key / question_from: how to find the question in the input (default: the
            string itself, ``input["question"]``, or the last human message).
        context_key: for dict inputs, the prompt variable that receives retrieved passages.
        stream_mode: ``"live"`` or ``"final"`` (see the module docstring).
        on_scorer_error: ``"closed"`` (default: an answer whose final state could not be scored
            is rejected) or ``"open"`` (accepted, flagged ``scoring_failed``).
        alpha, window: BCI settings.
        deadline_s: the longest a run waits for pending scores when its answer ends.
        max_partial_scores: partial-checkpoint scores in flight across all runs of this guard (None: no
            cap); under load the newest checkpoint of a run waits and older ones are skipped (recorded
            in ``trace.meta["skipped"]``); question-only and final scores are never capped.
        fallback: message shown for a rejected answer (default: the AcceptAbove's fallback).
    """

    def __init__(
        self,
        runnable: Runnable[Any, Any],
        *,
        scorer: BaseScorer,
        policies: Sequence[Policy] = (),
        checkpoints: CheckpointStrategy | None = None,
        retriever: BaseRetriever | None = None,
        sampler: ContinuationSampler | None = None,
        budget: Budget | None = None,
        question_key: str = "question",
        question_from: Callable[[Any], str] | None = None,
        context_key: str = "context",
        stream_mode: StreamMode = "live",
        on_scorer_error: ScorerErrorMode = "closed",
        alpha: float = _ALPHA,
        window: int = _WINDOW,
        deadline_s: float = _DEADLINE_S,
        max_partial_scores: int | None = _MAX_PARTIAL,
        fallback: str | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(runnable, Runnable):
            raise ConfigError(f"FineCEGuard wraps a LangChain Runnable (chat model or chain), got {type(runnable)!r}")
        if not isinstance(scorer, BaseScorer):
            raise ConfigError(
                f"scorer={scorer!r} is not a scorer: pass e.g. OpenAICompatScorer('http://127.0.0.1:8011/v1')"
            )
        if stream_mode not in ("live", "final"):
            raise ConfigError(f"stream_mode={stream_mode!r}: use 'live' or 'final'")
        if on_scorer_error not in ("open", "closed"):
            raise ConfigError(f"on_scorer_error={on_scorer_error!r}: use 'open' or 'closed'")
        deadline = _number("deadline_s", deadline_s, low=0.0, example="deadline_s=30.0")
        if isinstance(policies, Policy) or not isinstance(policies, Sequence):
            raise ConfigError(f"policies={policies!r} must be a list of policies, e.g. [AcceptAbove(0.3)]")
        for p in policies:
            if not isinstance(p, Policy):
                raise ConfigError(f"{p!r} is not a policy (it needs a name and decide(view) -> Decision)")
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigError(f"budget={budget!r} must be a Budget(max_attempts=..., ...)")
        needs_retriever = [p.name for p in policies if type(p).__name__ == "RetrieveBelow"]
        if needs_retriever and retriever is None:
            raise ConfigError(f"policy {needs_retriever[0]} retrieves, but no retriever= was given (e.g. "
                              "Chroma(...).as_retriever())")  # fmt: skip
        self.runnable = runnable
        self.scorer = scorer
        self.policies = tuple(policies)
        self.retriever = retriever
        self.budget = budget or Budget()
        self.question_key = question_key
        self.question_from = question_from
        self.context_key = context_key
        self.stream_mode: StreamMode = stream_mode
        self.on_scorer_error: ScorerErrorMode = on_scorer_error
        self.alpha, self.window = alpha, window
        refine([], alpha=alpha, window=window)  # validates alpha / window with a clear error
        accept = next((p for p in self.policies if isinstance(p, AcceptAbove)), None)
        self.fallback = fallback if fallback is not None else accept.fallback if accept else DEFAULT_FALLBACK
        self.handler = FineCECallbackHandler(
            scorer, strategy=checkpoints, policies=self.policies, budget=self.budget, sampler=sampler,
            alpha=alpha, window=window, deadline_s=deadline, max_partial_scores=max_partial_scores,
        )  # fmt: skip
        self.name = name or "FineCEGuard"

    # ------------------------------------------------------------------ inputs
    def question_of(self, input: Any) -> str:
        """The question in ``input`` (what the scorer is asked about); blank questions are refused."""
        question = self._find_question(input)
        if not question.strip():
            raise ConfigError(
                f"the question is empty ({question!r}): pass the text to answer, e.g. "
                "guard.invoke('Which planet is known as the Red Planet?')"
            )
        return question

    def _find_question(self, input: Any) -> str:
        if self.question_from is not None:
            return str(self.question_from(input))
        if isinstance(input, str):
            return input
        if isinstance(input, dict):
            if self.question_key in input:
                return str(input[self.question_key])
            texts = [v for v in input.values() if isinstance(v, str)]
            if len(texts) == 1:
                return texts[0]
            raise ConfigError(
                f"cannot find the question in input keys {sorted(input)}; pass question_key= (default "
                f"{self.question_key!r}) or question_from=lambda x: ..."
            )
        if isinstance(input, PromptValue):
            return question_of_messages(input.to_messages())
        if isinstance(input, Sequence) and all(isinstance(m, BaseMessage) for m in input):
            return question_of_messages(list(input))
        raise ConfigError(f"cannot find the question in a {type(input).__name__}; pass question_from=")

    def with_context(self, input: Any, docs: Sequence[Document]) -> Any:
        """``input`` with retrieved passages added (see ``context_key``)."""
        if not docs:
            return input
        passages = [d.page_content for d in docs]
        if isinstance(input, dict):
            return {**input, self.context_key: "\n\n".join(passages)}
        if isinstance(input, str):
            return passages_head(passages) + input
        messages = input.to_messages() if isinstance(input, PromptValue) else list(input)
        return with_passages(messages, passages)

    # -------------------------------------------------------------------- core
    def _attempt_config(self, config: RunnableConfig, request: AttemptRequest) -> RunnableConfig:
        named = patch_config(config, run_name=f"attempt {request.number}")
        return self.handler.config_for(named, request.session, request.scored_question)

    def _attempts(self, input: Any, config: RunnableConfig, sync_model: bool) -> Callable[..., AsyncIterator[Any]]:
        async def attempt(request: AttemptRequest) -> AsyncIterator[tuple[str, Any]]:
            runnable, _ = _with_sampling(self.runnable, request.sampling)
            run_config = self._attempt_config(config, request)
            model_input = self.with_context(input, request.docs)
            if sync_model:
                stop = Decision(Action.ABORT, "the caller stopped reading the stream", "caller")
                stream: AsyncIterator[Any] = _iterate_in_thread(
                    lambda: iter(runnable.stream(model_input, run_config)),
                    lambda: self.handler.stop_session(request.session, stop),
                )
            else:
                stream = runnable.astream(model_input, run_config)
            async with contextlib.aclosing(stream) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    yield ("token", (chunk, message_text(chunk)))
                    # one HTTP read can carry a hundred buffered chunks, parsed without suspending:
                    # let the scores scheduled by this chunk's checkpoint start (send) right away
                    await asyncio.sleep(0)

        return attempt

    async def _run(self, input: Any, config: RunnableConfig, sync_model: bool) -> AsyncGenerator[Any, None]:
        question = self.question_of(input)

        async def emit(name: str, data: dict[str, Any]) -> None:
            await adispatch_custom_event(name, data, config=config)

        session = GuardedSession(
            self.handler, scorer=self.scorer, policies=self.policies, budget=self.budget, retriever=self.retriever,
            on_scorer_error=self.on_scorer_error, emit=emit,
        )  # fmt: skip
        async with contextlib.aclosing(session.run(question, self._attempts(input, config, sync_model))) as events:
            async for kind, item, number in events:
                if kind == "outcome":
                    result = self._result(cast(GuardTrace, item))
                    await self._finish_events(result, emit)
                    yield ("result", result, 0)
                else:
                    yield (kind, item, number)

    def _result(self, gt: GuardTrace) -> GuardResult:
        kept, verdict = gt.kept_attempt, gt.verdict
        accepted = verdict.action is Action.ACCEPT
        # a stopped answer reports its last scored state; a finished one only its final state
        confidence = kept.trace.final_confidence if kept.aborted is not None else kept.confidence
        refined_trace = tuple(kept.trace.refined)
        values = [v for v in refined_trace if v is not None]
        refined = sum(values) / len(values) if len(values) >= 2 else None
        summary = {
            "accepted": accepted, "confidence": confidence, "refined_confidence": refined,
            "reason": verdict.reason, "attempts": len(gt.attempts), "kept": kept.number,
            "tokens_generated": gt.tokens_generated, "retrieved_ids": list(gt.retrieved_ids),
            "actions": [[d.action.value, d.policy] for d in gt.decisions],
            "scoring_failed": gt.scoring_failed, "finish_reason": kept.trace.finish_reason,
            "lookahead_cost": gt.lookahead_cost,
        }  # fmt: skip
        return GuardResult(
            content=kept.trace.answer if accepted else self.fallback, answer=kept.trace.answer, accepted=accepted,
            confidence=confidence, refined_confidence=refined, refined_trace=refined_trace, reason=verdict.reason,
            guard_trace=gt, response_metadata={"finece_guard": summary},
        )  # fmt: skip

    async def _finish_events(self, result: GuardResult, emit: Callable[[str, dict[str, Any]], Any]) -> None:
        if result.scoring_failed:
            await emit("finece_scoring_failed", {"errors": list(result.trace.scoring_errors),
                                                 "mode": self.on_scorer_error})  # fmt: skip
        await emit("finece_result", {**result.response_metadata["finece_guard"], "result": result})

    # ------------------------------------------------------------ Runnable API
    async def _ainvoke(
        self, input: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig, sync_model: bool
    ) -> GuardResult:
        config = patch_config(config, callbacks=run_manager.get_child())
        result: GuardResult | None = None
        async with contextlib.aclosing(self._run(input, config, sync_model)) as events:
            async for kind, item, _ in events:
                if kind == "result":
                    result = item
        assert result is not None
        return result

    async def _ainvoke_mode(self, input: Any, config: RunnableConfig | None, sync_model: bool) -> GuardResult:
        async def call(inp: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig) -> GuardResult:
            return await self._ainvoke(inp, run_manager, config, sync_model)

        result = await self._acall_with_config(call, input, ensure_config(config))
        return cast(GuardResult, result)

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> GuardResult:
        return await self._ainvoke_mode(input, config, sync_model=False)

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> GuardResult:
        """Same decisions as :meth:`ainvoke`; the model streams through its sync API (see the module docstring)."""
        return run_sync(self._ainvoke_mode(input, config, sync_model=True))

    async def _atransform(
        self,
        inputs: AsyncIterator[Any],
        run_manager: AsyncCallbackManagerForChainRun,
        config: RunnableConfig,
        sync_model: bool = False,
    ) -> AsyncIterator[BaseMessage]:
        input: Any = None
        async for item in inputs:
            input = item
        config = patch_config(config, callbacks=run_manager.get_child())
        result: GuardResult | None = None
        async with contextlib.aclosing(self._run(input, config, sync_model)) as events:
            async for kind, item, number in events:
                if kind == "token" and self.stream_mode == "live":
                    yield AIMessageChunk(content=message_text(item), response_metadata={"finece_attempt": number})
                elif kind == "restart" and self.stream_mode == "live":
                    yield AIMessageChunk(content="", response_metadata={"finece_guard": {
                        "event": "restart", "attempt": number, "reason": item}})  # fmt: skip
                elif kind == "result":
                    result = item
        assert result is not None
        meta = {"finece_guard": {"event": "result", **result.response_metadata["finece_guard"]}}
        content = result.content if self.stream_mode == "final" else ""
        yield AIMessageChunk(content=content, response_metadata=meta, chunk_position="last")

    def _astream_mode(self, input: Any, config: RunnableConfig | None, sync_model: bool) -> AsyncIterator[BaseMessage]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async def transform(
            inputs: AsyncIterator[Any], run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
        ) -> AsyncIterator[BaseMessage]:
            async for chunk in self._atransform(inputs, run_manager, config, sync_model):
                yield chunk

        return self._atransform_stream_with_config(one(), transform, ensure_config(config))

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[BaseMessage]:
        async with contextlib.aclosing(self._astream_mode(input, config, sync_model=False)) as chunks:  # type: ignore[type-var]
            async for chunk in chunks:
                yield chunk

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[BaseMessage]:
        """Same decisions as :meth:`astream`; the model streams through its sync API. ``break`` cleans up."""
        yield from iterate_sync(self._astream_mode(input, config, sync_model=True))
