"""FineCE for LangChain v1 agents: a ``create_agent`` middleware (optional extra ``agents``).

:class:`FineCEMiddleware` wraps every model call of an agent (``wrap_model_call`` /
``awrap_model_call``) with the **same** attempt loop and the same in-stream decider as
:class:`~finece_guard.runtime.guard.FineCEGuard` (:mod:`finece_guard.runtime.session`):

* the model call streams (switched on per call, the model object is not touched) with
  the FineCE callback handler attached, so checkpoints are scored while it streams and an
  ``AbortBelow`` / early ``RetrieveBelow`` stops the call mid-stream (vLLM cancels the request);
* when the call ends, ``RetryBelow`` re-calls the model with other sampling (``model_settings``),
  ``RetrieveBelow`` queries the retriever and re-calls it with the passages ahead of the question;
* the verdict on the kept answer: an accepted answer passes, a rejected one (or a stopped or
  failed one) is replaced by the fallback message (the original text stays in
  ``response_metadata["finece_guard"]["answer"]``).

Tool-calling turns pass through (they are steps, not answers; their scores are still recorded).
Events reach LangGraph users through ``get_stream_writer()``: stream the agent with
``stream_mode="custom"`` (or ``["messages", "custom"]``) to receive ``{"finece_guard": {...}}``
items for each checkpoint, decision, restart and result.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Literal

from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.config import var_child_runnable_config

from finece_guard.backends.base import BaseScorer
from finece_guard.config import setting_default
from finece_guard.errors import SetupError
from finece_guard.runtime.bci import ContinuationSampler
from finece_guard.runtime.checkpoints import CheckpointStrategy
from finece_guard.runtime.handler import FineCECallbackHandler
from finece_guard.runtime.policies.accept import DEFAULT_FALLBACK
from finece_guard.runtime.policies.base import Action, Policy
from finece_guard.runtime.policies.compose import Budget
from finece_guard.runtime.session import AttemptRequest, GuardedSession, GuardTrace
from finece_guard.runtime.text import message_text, question_of_messages, with_passages
from finece_guard.sync_bridge import run_sync

_ALPHA = setting_default("bci_alpha")
_WINDOW = setting_default("bci_window")
_DEADLINE_S = setting_default("score_deadline_s")
_MAX_PARTIAL = setting_default("max_partial_scores")

try:
    from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
except ImportError as exc:  # pragma: no cover - only without the extra
    raise SetupError("FineCEMiddleware needs LangChain v1 agents: pip install 'finece-guard[agents]'") from exc

__all__ = ["FineCEMiddleware"]


def _answer_message(response: Any) -> AIMessage | None:
    result = response.result if hasattr(response, "result") else [response]
    for msg in reversed(result):
        if isinstance(msg, AIMessage):
            return msg
    return None


def _text(response: Any) -> str:
    msg = _answer_message(response)
    return message_text(msg) if msg is not None and not msg.tool_calls else ""


def _kind(response: Any) -> str:
    """``"passthrough"`` for a tool-calling turn (a step, not an answer), else ``"payload"``."""
    msg = _answer_message(response)
    return "passthrough" if msg is None or msg.tool_calls else "payload"


def _writer() -> Callable[[Any], None] | None:
    """LangGraph's stream writer of the running node, if there is one."""
    try:
        from langgraph.config import get_stream_writer

        return get_stream_writer()
    except Exception:  # outside a graph run (or without langgraph): no custom stream
        return None


class FineCEMiddleware(AgentMiddleware):
    """Scores an agent's model calls with FineCE and applies the guard's policies (see the module docstring)."""

    def __init__(
        self,
        scorer: BaseScorer,
        *,
        policies: Sequence[Policy] = (),
        checkpoints: CheckpointStrategy | None = None,
        retriever: BaseRetriever | None = None,
        sampler: ContinuationSampler | None = None,
        budget: Budget | None = None,
        on_scorer_error: Literal["open", "closed"] = "closed",
        alpha: float = _ALPHA,
        window: int = _WINDOW,
        deadline_s: float = _DEADLINE_S,
        max_partial_scores: int | None = _MAX_PARTIAL,
        fallback: str = DEFAULT_FALLBACK,
    ) -> None:
        super().__init__()
        self.scorer = scorer
        self.policies = tuple(policies)
        self.retriever = retriever
        self.budget = budget or Budget()
        self.on_scorer_error: Literal["open", "closed"] = on_scorer_error
        self.fallback = fallback
        self.handler = FineCECallbackHandler(
            scorer, strategy=checkpoints, policies=self.policies, budget=self.budget, sampler=sampler,
            alpha=alpha, window=window, deadline_s=deadline_s, max_partial_scores=max_partial_scores,
        )  # fmt: skip

    # ------------------------------------------------------------------ pieces
    def _context(self, request: AttemptRequest) -> contextvars.Context:
        """A copy of the node's context whose run config adds the handler and the session's metadata."""
        parent = var_child_runnable_config.get() or {}
        cfg = self.handler.config_for(parent, request.session, request.scored_question)
        ctx = contextvars.copy_context()
        ctx.run(var_child_runnable_config.set, cfg)
        return ctx

    def _request(self, base: ModelRequest, attempt: AttemptRequest) -> ModelRequest:
        """The model request of one attempt: streaming on, the attempt's sampling and passages.

        Streaming is switched on per call: on a copy of the model with ``streaming=True`` where the
        model has that field (ChatOpenAI; the user's object is not touched), else with the call
        keyword ``stream=True``.
        """
        settings = {**base.model_settings, **attempt.sampling}
        model = base.model
        if "streaming" in type(model).model_fields:
            model = model.model_copy(update={"streaming": True})
        else:
            settings["stream"] = True
        messages = with_passages(base.messages, [d.page_content for d in attempt.docs])
        return base.override(messages=messages, model_settings=settings, model=model)  # type: ignore[arg-type]

    def _session(self, writer: Callable[[Any], None] | None) -> GuardedSession:
        async def emit(name: str, data: dict[str, Any]) -> None:
            if writer is not None:
                writer({"finece_guard": {"event": name.removeprefix("finece_"), **data}})

        return GuardedSession(
            self.handler, scorer=self.scorer, policies=self.policies, budget=self.budget, retriever=self.retriever,
            on_scorer_error=self.on_scorer_error, emit=emit,
        )  # fmt: skip

    def _finish(self, outcome: GuardTrace) -> ModelResponse:
        kept, verdict = outcome.kept_attempt, outcome.verdict
        accepted = verdict.action is Action.ACCEPT
        answered = [a for a in outcome.attempts if a.payload is not None and _answer_message(a.payload) is not None]
        source = kept if kept.payload is not None else answered[-1] if answered else None
        summary = {
            "accepted": accepted, "confidence": kept.confidence, "reason": verdict.reason,
            "attempts": len(outcome.attempts), "kept": kept.number, "answer": kept.trace.answer,
            "decisions": [d.reason for d in outcome.decisions],
            "actions": [(d.action.value, d.policy) for d in outcome.decisions],
            "finish_reason": kept.trace.finish_reason, "tokens_generated": outcome.tokens_generated,
            "scoring_failed": outcome.scoring_failed,
        }  # fmt: skip
        if source is None:  # every attempt was stopped or failed: answer with the fallback
            msg = AIMessage(content=self.fallback, response_metadata={"finece_guard": summary})
            return ModelResponse(result=[msg])
        answer = _answer_message(source.payload)
        assert answer is not None
        msg = answer
        new_msg = msg.model_copy(update={
            "content": msg.content if accepted and source is kept else self.fallback,
            "response_metadata": {**msg.response_metadata, "finece_guard": summary},
        })  # fmt: skip
        result = [new_msg if m is msg else m for m in source.payload.result]
        return ModelResponse(result=result, structured_response=source.payload.structured_response)

    @staticmethod
    def _is_tool_step(outcome: GuardTrace) -> bool:
        kept = outcome.kept_attempt
        return kept.payload is not None and _kind(kept.payload) == "passthrough"

    # -------------------------------------------------------------- async path
    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        async def attempt(req: AttemptRequest) -> AsyncIterator[tuple[str, Any]]:
            async def call_model() -> ModelResponse:
                return await handler(self._request(request, req))

            call = asyncio.get_running_loop().create_task(call_model(), context=self._context(req))
            try:
                response = await call
            finally:
                if not call.done():
                    call.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await call
            yield ("text", _text(response))
            yield (_kind(response), response)

        return await self._run(request, attempt)

    async def _run(self, request: ModelRequest, attempt: Any) -> ModelResponse:
        question = question_of_messages(request.messages)
        session = self._session(_writer())
        outcome: GuardTrace | None = None
        async with contextlib.aclosing(session.run(question, attempt)) as events:
            async for kind, item, _ in events:
                if kind == "outcome":
                    outcome = item
        assert outcome is not None
        if self._is_tool_step(outcome):
            return outcome.kept_attempt.payload  # type: ignore[no-any-return]
        return self._finish(outcome)

    # --------------------------------------------------------------- sync path
    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse:
        async def attempt(req: AttemptRequest) -> AsyncIterator[tuple[str, Any]]:
            ctx = self._context(req)
            model_request = self._request(request, req)
            response = await asyncio.to_thread(ctx.run, handler, model_request)
            yield ("text", _text(response))
            yield (_kind(response), response)

        return run_sync(self._run(request, attempt))
