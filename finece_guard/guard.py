"""``FineCEGuard``: a LangChain Runnable that wraps a chain or chat model and acts on FineCE scores.

``FineCEGuard(chain, scorer=..., policies=[...], retriever=...)`` streams the wrapped runnable
with a :class:`~finece_guard.callbacks.FineCECallbackHandler` attached, so every model call inside
it is scored at checkpoints as it streams. It then carries out what the policies decide
(precedence in :mod:`finece_guard.policies.compose`):

* **abort** — raised from the token callback; the stream closes and vLLM cancels the request;
* **retry** — run again with other sampling (``.bind(temperature=..., seed=...)`` on the chat
  model inside, never mutating it), keeping the attempt with the best final confidence;
* **retrieve** — query the retriever (e.g. Chroma via langchain-chroma), put the passages into the
  prompt (``context_key`` for dict inputs, else ahead of the question) and regenerate;
* **accept / reject** — the verdict on the kept answer. A rejection is explicit: the result keeps
  the answer text, score and reason; its ``content`` is the fallback message.

The output is a :class:`GuardResult`, an ``AIMessage`` whose ``content`` is what the caller should
show (the answer, or the fallback when rejected), so ``prompt | FineCEGuard(llm) | parser``
works; the result's attributes (``accepted``, ``confidence``, ``attempts``, ``trace``...) hold the
full story, and the same summary is in ``response_metadata["finece_guard"]``.

Streaming (``astream``/``stream``) has two documented modes:

* ``stream_mode="live"`` (default): tokens are yielded as they arrive. If the guard restarts
  (retry / retrieval), it yields a marker chunk with empty content and
  ``response_metadata["finece_guard"]["event"] == "restart"`` and dispatches a ``finece_restart``
  custom event: a UI clears the text shown so far. The last chunk carries the verdict in
  ``response_metadata["finece_guard"]``.
* ``stream_mode="final"``: nothing is yielded until the verdict; then the kept answer (or the
  fallback) is yielded as one chunk, so downstream steps never see superseded text.

In both modes ``astream_events(version="v2")`` shows custom events ``finece_checkpoint`` (each
scored checkpoint, for a live confidence bar), ``finece_decision``, ``finece_restart`` and
``finece_result`` (its data holds the summary and, under ``"result"``, the :class:`GuardResult`).

Scorer failures never hang the run (per-request timeouts, and a deadline for pending scores)
and never lose the answer: ``on_scorer_error="open"`` accepts it with ``scoring_failed`` set and a
``finece_scoring_failed`` event; ``"closed"`` rejects it with that reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, adispatch_custom_event
from langchain_core.documents import Document
from langchain_core.language_models import BaseLanguageModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableSequence
from langchain_core.runnables.config import ensure_config, patch_config
from pydantic import ConfigDict

from finece_guard.backends.base import BaseScorer
from finece_guard.callbacks.handler import QUESTION_KEY, SESSION_KEY, FineCECallbackHandler, question_of_messages
from finece_guard.checkpoints import CheckpointStrategy
from finece_guard.data.records import CONTEXT_TEMPLATE  # same shape as the passage training data
from finece_guard.errors import ConfigError, GenerationAborted
from finece_guard.policies.accept import DEFAULT_FALLBACK, AcceptAbove
from finece_guard.policies.base import Action, Decision, Policy, PolicyView
from finece_guard.policies.compose import (
    Budget,
    decide_regeneration,
    decide_verdict,
    kept_attempt,
    scoring_failed_verdict,
)
from finece_guard.types import ScoredCheckpoint, Trace

StreamMode = Literal["live", "final"]
ScorerErrorMode = Literal["open", "closed"]


@dataclass(frozen=True)
class Attempt:
    """One generation of the answer: its trace, how it was sampled and how it ended."""

    number: int
    trace: Trace
    sampling: dict[str, Any] = field(default_factory=dict)
    retrieved_ids: tuple[str, ...] = ()
    aborted: Decision | None = None
    next_step: Decision | None = None
    error: str | None = None

    @property
    def confidence(self) -> float | None:
        """Final confidence of this attempt: the score of its last state (None when aborted, failed or unscored).

        An answer cut by the token limit (``finish_reason == "length"``) still has one: it is the
        text the caller gets.
        """
        if self.aborted is not None or self.error is not None or not self.trace.checkpoints:
            return None
        return self.trace.checkpoints[-1].score.value if self.trace.checkpoints[-1].score else None


@dataclass(frozen=True)
class GuardTrace:
    """Everything a guarded run did: attempts, decisions, retrievals, tokens, verdict."""

    question: str
    attempts: tuple[Attempt, ...]
    kept: int
    verdict: Decision
    decisions: tuple[Decision, ...]
    refused: tuple[str, ...] = ()
    scoring_failed: bool = False
    scoring_errors: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def tokens_generated(self) -> int:
        return sum(a.trace.n_tokens for a in self.attempts)

    @property
    def retrieved_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i for a in self.attempts for i in a.retrieved_ids))

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["tokens_generated"] = self.tokens_generated
        data["retrieved_ids"] = list(self.retrieved_ids)
        return data


class GuardResult(AIMessage):
    """The guarded answer: an ``AIMessage`` plus the guard's verdict and full trace.

    ``content`` is what to show: the kept answer when accepted, the fallback message when not.
    ``answer`` is always the kept answer's text, accepted or not.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    answer: str = ""
    accepted: bool = True
    confidence: float | None = None
    refined_confidence: float | None = None
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


def _text_of(chunk: Any) -> str:
    if isinstance(chunk, str):
        return chunk
    if isinstance(chunk, BaseMessage):
        content = chunk.content
        if isinstance(content, str):
            return content
        return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)
    return ""


def _doc_id(doc: Document) -> str:
    return str(doc.id or doc.metadata.get("id") or doc.metadata.get("source") or "")


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


class FineCEGuard(Runnable[Any, BaseMessage]):
    """Wraps a chain or chat model with FineCE scoring and policies (see the module docstring).

    Args:
        runnable: a chat model streaming from an OpenAI-compatible server with logprobs, or a
            chain containing one (its output may be a message or a string).
        scorer: the FineCE scorer.
        policies: e.g. ``[AbortBelow(0.2), RetrieveBelow(0.4), AcceptAbove(0.5)]``.
        checkpoints: checkpoint strategy (default: paragraph ends).
        retriever: any LangChain retriever (needed by RetrieveBelow).
        budget: global caps on attempts, retrievals and tokens.
        question_key / question_from: how to find the question in the input (default: the
            string itself, ``input["question"]``, or the last human message).
        context_key: for dict inputs, the prompt variable that receives retrieved passages.
        stream_mode: ``"live"`` or ``"final"`` (see the module docstring).
        on_scorer_error: ``"open"`` (accept, flagged) or ``"closed"`` (reject).
        deadline_s: the longest a run waits for pending scores when its answer ends.
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
        budget: Budget | None = None,
        question_key: str = "question",
        question_from: Callable[[Any], str] | None = None,
        context_key: str = "context",
        stream_mode: StreamMode = "live",
        on_scorer_error: ScorerErrorMode = "open",
        alpha: float = 0.5,
        window: int = 2,
        deadline_s: float = 30.0,
        fallback: str | None = None,
        name: str | None = None,
    ) -> None:
        if not isinstance(runnable, Runnable):
            raise ConfigError(f"FineCEGuard wraps a LangChain Runnable (chat model or chain), got {type(runnable)!r}")
        if stream_mode not in ("live", "final"):
            raise ConfigError(f"stream_mode={stream_mode!r}: use 'live' or 'final'")
        if on_scorer_error not in ("open", "closed"):
            raise ConfigError(f"on_scorer_error={on_scorer_error!r}: use 'open' or 'closed'")
        for p in policies:
            if not isinstance(p, Policy):
                raise ConfigError(f"{p!r} is not a policy (it needs a name and decide(view) -> Decision)")
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
        accept = next((p for p in self.policies if isinstance(p, AcceptAbove)), None)
        self.fallback = fallback if fallback is not None else accept.fallback if accept else DEFAULT_FALLBACK
        self.handler = FineCECallbackHandler(
            scorer, strategy=checkpoints, policies=self.policies, alpha=alpha, window=window, deadline_s=deadline_s
        )
        self.name = name or "FineCEGuard"

    # ------------------------------------------------------------------ inputs
    def question_of(self, input: Any) -> str:
        """The question in ``input`` (what the scorer is asked about)."""
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
        context = "\n\n".join(d.page_content for d in docs)
        head = CONTEXT_TEMPLATE.format(context=context)
        if isinstance(input, dict):
            return {**input, self.context_key: context}
        if isinstance(input, str):
            return head + input
        messages = input.to_messages() if isinstance(input, PromptValue) else list(input)
        for i in range(len(messages) - 1, -1, -1):
            if isinstance(messages[i], HumanMessage):
                messages[i] = HumanMessage(content=head + _text_of(messages[i]))
                return messages
        raise ConfigError("cannot add retrieved context: the input has no human message")

    # -------------------------------------------------------------------- core
    async def _emit(self, name: str, data: dict[str, Any], config: RunnableConfig) -> None:
        await adispatch_custom_event(name, data, config=config)

    async def _emit_handler_events(self, session: str, attempt: int, config: RunnableConfig) -> None:
        for ev in self.handler.drain_events(session):
            if isinstance(ev, ScoredCheckpoint):
                cp, s = ev.checkpoint, ev.score
                await self._emit("finece_checkpoint", {
                    "attempt": attempt, "position": cp.position, "kind": cp.kind.value, "n_tokens": cp.n_tokens,
                    "reason": cp.reason, "score": s.value if s else None, "spread": s.spread if s else None,
                    "error": ev.error,
                }, config)  # fmt: skip
            else:
                await self._emit("finece_decision", {"attempt": attempt, **dataclasses.asdict(ev)}, config)

    async def _run(self, input: Any, config: RunnableConfig) -> AsyncIterator[Any]:
        """Yields ``("token", chunk)``, ``("restart", attempt)`` and finally ``("result", GuardResult)``."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        question = self.question_of(input)
        attempts: list[Attempt] = []
        decisions: list[Decision] = []
        refused: list[str] = []
        docs: list[Document] = []
        sampling: dict[str, Any] = {}
        retrievals = 0
        while True:
            number = len(attempts) + 1
            session = uuid.uuid4().hex
            scored_question = CONTEXT_TEMPLATE.format(context="\n\n".join(d.page_content for d in docs)) + question \
                if docs else question  # fmt: skip
            runnable, applied = _with_sampling(self.runnable, sampling)
            run_config = patch_config(config, run_name=f"attempt {number}")
            inner_callbacks = config.get("callbacks")
            if inner_callbacks is None or isinstance(inner_callbacks, list):
                run_config["callbacks"] = [*(inner_callbacks or []), self.handler]
            else:
                manager = inner_callbacks.copy()
                manager.add_handler(self.handler, inherit=True)
                run_config["callbacks"] = manager
            run_config["metadata"] = {
                **(config.get("metadata") or {}), SESSION_KEY: session, QUESTION_KEY: scored_question,
            }  # fmt: skip
            aborted: Decision | None = None
            error: str | None = None
            text_parts: list[str] = []
            try:
                async for chunk in runnable.astream(self.with_context(input, docs), run_config):
                    piece = _text_of(chunk)
                    text_parts.append(piece)
                    if piece:
                        yield ("token", chunk, number)
                    await self._emit_handler_events(session, number, config)
            except GenerationAborted as exc:
                aborted = exc.decision
            except Exception as exc:  # the model call failed: record it, the run still returns
                error = f"{type(exc).__name__}: {exc}"
            traces = await self.handler.atraces_for_session(session)
            await self._emit_handler_events(session, number, config)
            self.handler.forget(session)
            trace = traces[-1] if traces else Trace(question=scored_question, answer="".join(text_parts),
                                                    checkpoints=(), finished=False, finish_reason=error)  # fmt: skip
            if aborted is not None:
                decisions.append(aborted)
            view = self._view(trace, number, retrievals, aborted)
            tokens_used = sum(a.trace.n_tokens for a in attempts) + trace.n_tokens
            nxt, why_not = decide_regeneration(
                self.policies, view, self.budget, tokens_used=tokens_used, can_retrieve=self.retriever is not None
            )
            refused += why_not
            attempt = Attempt(
                number=number, trace=trace, sampling=dict(sampling) if applied else {},
                retrieved_ids=tuple(_doc_id(d) for d in docs), aborted=aborted,
                next_step=nxt if nxt.acts else None, error=error,
            )  # fmt: skip
            attempts.append(attempt)
            if not nxt.acts:
                break
            decisions.append(nxt)
            await self._emit("finece_decision", {"attempt": number, **dataclasses.asdict(nxt)}, config)
            if nxt.action is Action.RETRY:
                sampling = dict(nxt.params)
            else:
                assert self.retriever is not None
                retrievals += 1
                found = await self.retriever.ainvoke(str(nxt.params.get("query") or question), config)
                docs = list(found)[: int(nxt.params.get("k") or len(found))]
            await self._emit("finece_restart", {"attempt": number + 1, "reason": nxt.reason}, config)
            yield ("restart", None, number + 1)
        yield ("result", self._result(question, attempts, decisions, refused, retrievals, loop.time() - t0), 0)

    def _view(self, trace: Trace, number: int, retrievals: int, aborted: Decision | None) -> PolicyView:
        return PolicyView(
            question=trace.question, text=trace.answer, n_tokens=trace.n_tokens, checkpoints=trace.checkpoints,
            raw=trace.raw_scores, refined=trace.refined, phase="attempt_end", attempt=number,
            attempts_used=number, retrievals_used=retrievals, finished=trace.finished and aborted is None,
            aborted=aborted is not None or (trace.finish_reason or "").startswith(("aborted", "error")),
            scoring_failed=bool(trace.checkpoints) and trace.checkpoints[-1].score is None,
        )  # fmt: skip

    def _result(
        self,
        question: str,
        attempts: list[Attempt],
        decisions: list[Decision],
        refused: list[str],
        retrievals: int,
        seconds: float,
    ) -> GuardResult:
        # a retrieval supersedes what came before it (the new attempts saw more); among the
        # attempts since the last retrieval, the best final confidence wins
        kept = kept_attempt(attempts, confidence=lambda a: a.confidence, context=lambda a: a.retrieved_ids)
        view = self._view(kept.trace, kept.number, retrievals, kept.aborted)
        errors = tuple(sc.error for a in attempts for sc in a.trace.checkpoints if sc.error)
        final_missing = not kept.trace.checkpoints or kept.trace.checkpoints[-1].score is None
        scoring_failed = final_missing and kept.aborted is None and kept.error is None
        if scoring_failed:
            verdict = scoring_failed_verdict(self.on_scorer_error, errors[-1] if errors else "no checkpoint was scored")
        elif kept.aborted is not None:
            why = f"aborted and not regenerated: {kept.aborted.reason}"
            verdict = Decision(Action.REJECT, why, kept.aborted.policy, kept.aborted.score)
        elif kept.error is not None and not kept.trace.answer:
            verdict = Decision(Action.REJECT, f"generation failed: {kept.error}", "guard", None)
        else:
            verdict = decide_verdict(self.policies, view)
        decisions.append(verdict)
        gt = GuardTrace(
            question=question, attempts=tuple(attempts), kept=kept.number, verdict=verdict,
            decisions=tuple(decisions), refused=tuple(refused), scoring_failed=scoring_failed,
            scoring_errors=errors, seconds=seconds,
        )  # fmt: skip
        accepted = verdict.action is Action.ACCEPT
        # an aborted answer reports its last scored state; a finished one only its final state
        confidence = kept.trace.final_confidence if kept.aborted is not None else kept.confidence
        refined = [v for v in kept.trace.refined if v is not None]
        summary = {
            "accepted": accepted, "confidence": confidence,
            "refined_confidence": refined[-1] if refined else None, "reason": verdict.reason,
            "attempts": len(attempts), "kept": kept.number, "tokens_generated": gt.tokens_generated,
            "retrieved_ids": list(gt.retrieved_ids), "scoring_failed": scoring_failed,
        }  # fmt: skip
        return GuardResult(
            content=kept.trace.answer if accepted else self.fallback,
            answer=kept.trace.answer,
            accepted=accepted,
            confidence=confidence,
            refined_confidence=refined[-1] if refined else None,
            reason=verdict.reason,
            guard_trace=gt,
            response_metadata={"finece_guard": summary},
        )

    async def _finish_events(self, result: GuardResult, config: RunnableConfig) -> None:
        if result.scoring_failed:
            await self._emit("finece_scoring_failed", {"errors": list(result.trace.scoring_errors),
                                                       "mode": self.on_scorer_error}, config)  # fmt: skip
        await self._emit("finece_result", {**result.response_metadata["finece_guard"], "result": result}, config)

    # ------------------------------------------------------------ Runnable API
    async def _ainvoke(
        self, input: Any, run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> GuardResult:
        config = patch_config(config, callbacks=run_manager.get_child())
        result: GuardResult | None = None
        async for kind, item, _ in self._run(input, config):
            if kind == "result":
                result = item
        assert result is not None
        await self._finish_events(result, config)
        return result

    async def ainvoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> GuardResult:
        result = await self._acall_with_config(self._ainvoke, input, ensure_config(config), **kwargs)
        return cast(GuardResult, result)

    async def _atransform(
        self, inputs: AsyncIterator[Any], run_manager: AsyncCallbackManagerForChainRun, config: RunnableConfig
    ) -> AsyncIterator[BaseMessage]:
        input: Any = None
        async for item in inputs:
            input = item
        result: GuardResult | None = None
        async for kind, item, number in self._run(input, config):
            if kind == "token" and self.stream_mode == "live":
                text = _text_of(item)
                yield AIMessageChunk(content=text, response_metadata={"finece_attempt": number})
            elif kind == "restart" and self.stream_mode == "live":
                yield AIMessageChunk(content="", response_metadata={"finece_guard": {"event": "restart",
                                                                                     "attempt": number}})  # fmt: skip
            elif kind == "result":
                result = item
        assert result is not None
        await self._finish_events(result, config)
        meta = {"finece_guard": {"event": "result", **result.response_metadata["finece_guard"]}}
        if self.stream_mode == "final":
            yield AIMessageChunk(content=result.content, response_metadata=meta, chunk_position="last")
        else:
            yield AIMessageChunk(content="", response_metadata=meta, chunk_position="last")

    async def astream(
        self, input: Any, config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[BaseMessage]:
        async def one() -> AsyncIterator[Any]:
            yield input

        async for chunk in self._atransform_stream_with_config(one(), self._atransform, ensure_config(config)):
            yield chunk

    def invoke(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> GuardResult:
        """Sync wrapper of :meth:`ainvoke` (runs on the guards' shared background event loop)."""
        return cast(GuardResult, _run_blocking(lambda: self.ainvoke(input, config, **kwargs)))

    def stream(self, input: Any, config: RunnableConfig | None = None, **kwargs: Any) -> Iterator[BaseMessage]:
        """Sync wrapper of :meth:`astream` (runs on the guards' shared background event loop)."""
        q: queue.Queue[tuple[str, Any]] = queue.Queue()

        async def pump() -> None:
            try:
                async for chunk in self.astream(input, config, **kwargs):
                    q.put(("chunk", chunk))
            except BaseException as exc:  # handed to the caller's thread, re-raised there
                q.put(("error", exc))
            else:
                q.put(("done", None))

        future = asyncio.run_coroutine_threadsafe(pump(), _SyncLoop.get())
        try:
            while True:
                kind, item = q.get()
                if kind == "chunk":
                    yield item
                elif kind == "error":
                    raise item
                else:
                    return
        finally:
            future.cancel()


class _SyncLoop:
    """One event loop on a daemon thread that every sync call of every guard shares.

    A fresh loop per sync call (``asyncio.run``) would break clients that cache an async HTTP
    client bound to the first loop that used it (langchain-openai does), so the sync wrappers
    always run on this one long-lived loop.
    """

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None or cls._loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="finece-guard-sync", daemon=True).start()
                cls._loop = loop
            return cls._loop


def _run_blocking(make: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine from sync code on the shared background loop and wait for its result."""
    return asyncio.run_coroutine_threadsafe(make(), _SyncLoop.get()).result()
