"""FineCE for LangChain v1 agents: a ``create_agent`` middleware (optional extra ``agents``).

:class:`FineCEMiddleware` wraps every model call of an agent (``wrap_model_call`` /
``awrap_model_call``). When the model answers in text (not a tool call), the answer is scored
with FineCE against the conversation's last human message, and the same policies as
:class:`~finece_guard.guard.FineCEGuard` apply at the end of the call:

* ``RetryBelow`` re-calls the model with other sampling (``model_settings``);
* ``RetrieveBelow`` queries the retriever and re-calls the model with the passages put ahead of
  the question;
* ``AcceptAbove`` keeps an accepted answer; a rejected one is replaced by the fallback message
  (the original text stays in ``response_metadata["finece_guard"]["answer"]``).

Tool-calling turns are passed through unscored: they are steps, not answers. Token-level abort
needs the token stream and therefore lives in the callback handler / guard, not here. The kept
answer is chosen as in the guard (:func:`~finece_guard.policies.compose.kept_attempt`: a retrieval
supersedes earlier attempts, then the highest confidence); the budget bounds attempts and
retrievals; scorer failures follow ``on_scorer_error`` exactly as in the guard.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.retrievers import BaseRetriever

from finece_guard.backends.base import BaseScorer
from finece_guard.backends.http import run_sync
from finece_guard.callbacks.handler import question_of_messages
from finece_guard.data.records import CONTEXT_TEMPLATE  # same shape as the passage training data
from finece_guard.errors import FineCEError, SetupError
from finece_guard.policies.base import Action, Decision, Policy, PolicyView
from finece_guard.policies.compose import (
    Budget,
    decide_regeneration,
    decide_verdict,
    kept_attempt,
    scoring_failed_verdict,
)
from finece_guard.types import Checkpoint, CheckpointKind, ScoredCheckpoint

try:
    from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
except ImportError as exc:  # pragma: no cover - only without the extra
    raise SetupError("FineCEMiddleware needs LangChain v1 agents: pip install 'finece-guard[agents]'") from exc



@dataclass
class _Attempt:
    response: Any
    text: str
    confidence: float | None
    error: str | None
    context: tuple[str, ...] = ()  # the passages this attempt was given (none before a retrieval)


def _answer_message(response: Any) -> AIMessage | None:
    result = response.result if hasattr(response, "result") else [response]
    for msg in reversed(result):
        if isinstance(msg, AIMessage):
            return msg
    return None


def _text(msg: BaseMessage) -> str:
    content = msg.content
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)


def _with_passages(messages: Sequence[Any], docs: Sequence[Document]) -> list[Any]:
    head = CONTEXT_TEMPLATE.format(context="\n\n".join(d.page_content for d in docs))
    out = list(messages)
    for i in range(len(out) - 1, -1, -1):
        if isinstance(out[i], HumanMessage):
            out[i] = HumanMessage(content=head + _text(out[i]))
            break
    return out


class FineCEMiddleware(AgentMiddleware):
    """Scores an agent's text answers with FineCE and applies retry / retrieve / accept policies."""

    def __init__(
        self,
        scorer: BaseScorer,
        *,
        policies: Sequence[Policy] = (),
        retriever: BaseRetriever | None = None,
        budget: Budget | None = None,
        on_scorer_error: Literal["open", "closed"] = "open",
        fallback: str = "I am not confident enough in an answer to this question.",
    ) -> None:
        super().__init__()
        self.scorer = scorer
        self.policies = tuple(policies)
        self.retriever = retriever
        self.budget = budget or Budget()
        self.on_scorer_error = on_scorer_error
        self.fallback = fallback

    def _view(self, question: str, attempt: _Attempt, number: int, retrievals: int) -> PolicyView:
        cp = Checkpoint(0, CheckpointKind.FINAL, 0, attempt.text, "final answer")
        scored = ScoredCheckpoint(cp, None, attempt.error)
        return PolicyView(
            question=question, text=attempt.text, n_tokens=0, checkpoints=(scored,), raw=(attempt.confidence,),
            refined=(attempt.confidence,), phase="attempt_end", attempt=number, attempts_used=number,
            retrievals_used=retrievals, finished=True, scoring_failed=attempt.confidence is None,
        )  # fmt: skip

    def _finish(
        self, question: str, attempts: list[_Attempt], retrievals: int, decisions: list[Decision]
    ) -> ModelResponse:
        kept = kept_attempt(attempts, confidence=lambda a: a.confidence, context=lambda a: a.context)
        number = attempts.index(kept) + 1
        if kept.confidence is None:
            verdict = scoring_failed_verdict(self.on_scorer_error, kept.error or "no score")
        else:
            verdict = decide_verdict(self.policies, self._view(question, kept, number, retrievals))
        accepted = verdict.action is Action.ACCEPT
        msg = _answer_message(kept.response)
        assert msg is not None
        summary = {
            "accepted": accepted, "confidence": kept.confidence, "reason": verdict.reason, "attempts": len(attempts),
            "kept": number, "answer": kept.text, "decisions": [d.reason for d in decisions],
        }  # fmt: skip
        new_msg = msg.model_copy(
            update={
                "content": msg.content if accepted else self.fallback,
                "response_metadata": {**msg.response_metadata, "finece_guard": summary},
            }
        )
        result = [new_msg if m is msg else m for m in kept.response.result]
        return ModelResponse(result=result, structured_response=kept.response.structured_response)

    async def _ascore(self, question: str, text: str) -> tuple[float | None, str | None]:
        try:
            return (await self.scorer.ascore(question, text, CheckpointKind.FINAL)).value, None
        except FineCEError as exc:
            return None, f"{type(exc).__name__}: {exc}"

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> ModelResponse:
        question = question_of_messages(request.messages)
        attempts: list[_Attempt] = []
        decisions: list[Decision] = []
        retrievals = 0
        current = request
        context: tuple[str, ...] = ()
        while True:
            response = await handler(current)
            msg = _answer_message(response)
            if msg is None or msg.tool_calls:
                return response  # a tool-calling step, not an answer
            text = _text(msg)
            scored_q = question_of_messages(current.messages)
            confidence, error = await self._ascore(scored_q, text)
            attempts.append(_Attempt(response, text, confidence, error, context))
            view = self._view(question, attempts[-1], len(attempts), retrievals)
            nxt, _ = decide_regeneration(self.policies, view, self.budget, tokens_used=0,
                                         can_retrieve=self.retriever is not None)  # fmt: skip
            if not nxt.acts:
                return self._finish(question, attempts, retrievals, decisions)
            decisions.append(nxt)
            if nxt.action is Action.RETRY:
                current = current.override(model_settings={**current.model_settings, **nxt.params})
            else:
                assert self.retriever is not None
                retrievals += 1
                docs = (await self.retriever.ainvoke(str(nxt.params.get("query") or question)))[: nxt.params.get("k")]
                context = tuple(d.page_content for d in docs)
                current = current.override(messages=_with_passages(request.messages, docs))

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> ModelResponse:
        async def call(req: ModelRequest) -> ModelResponse:
            return handler(req)

        response: ModelResponse = run_sync(self.awrap_model_call(request, call))
        return response
