"""The attempt loop of one guarded call, shared by ``FineCEGuard`` and the agent middleware.

A guarded call is a sequence of attempts. This module runs it, the same way for every front end:

0. **The scorer is checked first** (``averify``, once per scorer): a wrong scorer setup raises its
   ConfigError / AdapterMismatchError before any answer is judged, instead of failing every score.
1. **Before generating** (only when a policy asks, ``RetrieveBelow(early=True)``): the question is
   scored; below the threshold the retriever is queried first and the attempt generates once,
   with the passages.
2. **Each attempt** streams through the front end's ``attempt`` function with the callback handler
   attached (the one in-stream decider). An abort or early retrieval decided there stops the
   stream (``GenerationAborted``); a model error is recorded; the attempt's trace is kept.
3. **When it ends**, the policies may ask for a retry or a retrieval (budget permitting); an
   in-stream retrieval is carried out here.
4. **The verdict** on the kept answer (:func:`~finece_guard.runtime.policies.compose.kept_attempt`).
   No broken answer is accepted: an attempt that ended with an error or was stopped is rejected
   whatever the policies say; one whose final state was never scored follows ``on_scorer_error``
   (``"closed"``, the default, rejects it; ``"open"`` accepts it flagged ``scoring_failed``).

Nothing is left running: each attempt's session is closed in a ``finally`` (scores, confirmations
and the trace's finishing are cancelled), also when the caller cancels or stops reading.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from finece_guard.backends.base import BaseScorer
from finece_guard.errors import AdapterMismatchError, ConfigError, GenerationAborted
from finece_guard.runtime.bci import refine
from finece_guard.runtime.handler import FineCECallbackHandler, HandlerEvent, SessionBudget
from finece_guard.runtime.monitor import PRESCORED_QUESTION
from finece_guard.runtime.policies.base import Action, Decision, Policy, PolicyView
from finece_guard.runtime.policies.compose import (
    Budget,
    decide_before_generation,
    decide_regeneration,
    decide_verdict,
    kept_attempt,
    scoring_failed_verdict,
)
from finece_guard.runtime.text import passages_head
from finece_guard.types import Checkpoint, CheckpointKind, ScoredCheckpoint, Trace

ScorerErrorMode = Literal["open", "closed"]
Emit = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Attempt:
    """One generation of the answer: its trace, how it was sampled and how it ended.

    ``aborted`` is the in-stream decision that stopped it (an abort, or an early retrieval).
    """

    number: int
    trace: Trace
    sampling: dict[str, Any] = field(default_factory=dict)
    retrieved_ids: tuple[str, ...] = ()
    aborted: Decision | None = None
    next_step: Decision | None = None
    error: str | None = None
    payload: Any = None  # the front end's own result of the attempt (e.g. the agent's ModelResponse)

    @property
    def broken(self) -> bool:
        """Stopped, failed or cut off: never an answer to accept."""
        return self.aborted is not None or self.error is not None

    @property
    def confidence(self) -> float | None:
        """Final confidence of this attempt: the score of its last state (None when stopped, failed or unscored).

        An answer cut by the token limit (``finish_reason == "length"``) still has one: it is the
        text the caller gets.
        """
        if self.broken or not self.trace.checkpoints:
            return None
        return self.trace.checkpoints[-1].score.value if self.trace.checkpoints[-1].score else None


@dataclass(frozen=True)
class AttemptRequest:
    """What the front end needs to run one attempt."""

    number: int
    session: str
    docs: tuple[Document, ...]
    sampling: dict[str, Any]
    scored_question: str


@dataclass(frozen=True)
class GuardTrace:
    """Everything a guarded call did: attempts, decisions, retrievals, tokens, verdict."""

    question: str
    attempts: tuple[Attempt, ...]
    kept: int
    verdict: Decision
    decisions: tuple[Decision, ...]
    refused: tuple[str, ...] = ()
    scoring_failed: bool = False
    scoring_errors: tuple[str, ...] = ()
    seconds: float = 0.0
    question_score: ScoredCheckpoint | None = None  # the pre-generation score of RetrieveBelow(early=True)

    @property
    def kept_attempt(self) -> Attempt:
        return self.attempts[self.kept - 1]

    @property
    def tokens_generated(self) -> int:
        return sum(a.trace.n_tokens for a in self.attempts)

    @property
    def retrieved_ids(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i for a in self.attempts for i in a.retrieved_ids))

    @property
    def lookahead_cost(self) -> dict[str, float]:
        """Extra generation spent on look-ahead confirmations: tokens, requests, seconds."""
        out = {"tokens": 0.0, "requests": 0.0, "seconds": 0.0}
        for a in self.attempts:
            for k, v in (a.trace.meta.get("lookahead_cost") or {}).items():
                out[k] = out.get(k, 0.0) + float(v)
        return out

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for a in data["attempts"]:
            a.pop("payload", None)
        data["tokens_generated"] = self.tokens_generated
        data["retrieved_ids"] = list(self.retrieved_ids)
        data["lookahead_cost"] = self.lookahead_cost
        return data


#: An attempt streams ``("token", (chunk, text))`` items and may end with one ``("payload", value)``, or
#: ``("passthrough", value)`` for a result that is not an answer (an agent's tool-calling turn): it is
#: kept as the attempt's payload and the loop stops there, without regeneration.
AttemptFn = Callable[[AttemptRequest], AsyncIterator[tuple[str, Any]]]


def _doc_id(doc: Document) -> str:
    return str(doc.id or doc.metadata.get("id") or doc.metadata.get("source") or "")


def scored_question(question: str, docs: Sequence[Document]) -> str:
    """The state the scorer sees: the passages (if any) ahead of the question."""
    return passages_head([d.page_content for d in docs]) + question


def checkpoint_event(attempt: int, sc: ScoredCheckpoint) -> dict[str, Any]:
    cp, s = sc.checkpoint, sc.score
    return {
        "attempt": attempt, "position": cp.position, "kind": cp.kind.value, "n_tokens": cp.n_tokens,
        "reason": cp.reason, "score": s.value if s else None, "spread": s.spread if s else None, "error": sc.error,
        "fused": s.fused if s else None,
    }  # fmt: skip


class GuardedSession:
    """Runs the attempts of one guarded call (see the module docstring)."""

    def __init__(
        self,
        handler: FineCECallbackHandler,
        *,
        scorer: BaseScorer,
        policies: Sequence[Policy],
        budget: Budget,
        retriever: BaseRetriever | None,
        on_scorer_error: ScorerErrorMode,
        emit: Emit,
    ) -> None:
        self.handler = handler
        self.scorer = scorer
        self.policies = tuple(policies)
        self.budget = budget
        self.retriever = retriever
        self.on_scorer_error: ScorerErrorMode = on_scorer_error
        self.emit = emit

    async def _drain(self, queue: asyncio.Queue[HandlerEvent], attempt: int) -> None:
        while not queue.empty():
            ev = queue.get_nowait()
            if isinstance(ev, ScoredCheckpoint):
                await self.emit("finece_checkpoint", checkpoint_event(attempt, ev))
            else:
                await self.emit("finece_decision", {"attempt": attempt, **dataclasses.asdict(ev)})

    async def _verify_scorer(self) -> None:
        """Refuse a wrong scorer before any answer is judged: a missing adapter, the generator used
        as scorer or a mismatched base model raise their ConfigError / AdapterMismatchError here.
        An unreachable server is not a setup error: its checkpoints fail and ``on_scorer_error`` applies.
        """
        verify = getattr(self.scorer, "averify", None)
        if not callable(verify):
            return
        try:
            await verify()
        except (ConfigError, AdapterMismatchError):
            raise
        except Exception:  # transport trouble: recorded per checkpoint when scoring is tried
            return

    async def _retrieve(self, decision: Decision, question: str) -> list[Document]:
        assert self.retriever is not None
        found = await self.retriever.ainvoke(str(decision.params.get("query") or question))
        return list(found)[: int(decision.params.get("k") or len(found))]

    async def _before_generation(
        self, question: str, decisions: list[Decision], refused: list[str]
    ) -> tuple[list[Document], ScoredCheckpoint | None]:
        early = [p for p in self.policies if getattr(p, "early", False)]
        if not early or self.retriever is None:
            return [], None
        cp = Checkpoint(0, CheckpointKind.QUESTION, 0, "", PRESCORED_QUESTION)
        try:
            score = await asyncio.wait_for(self.scorer.ascore(question, None, CheckpointKind.QUESTION),
                                           self.handler.deadline_s)  # fmt: skip
            sc = ScoredCheckpoint(cp, score)
        except Exception as exc:  # a failed pre-score only means: generate without retrieving first
            sc = ScoredCheckpoint(cp, None, f"{type(exc).__name__}: {exc}")
        await self.emit("finece_checkpoint", checkpoint_event(0, sc))
        view = PolicyView(question=question, text="", n_tokens=0, checkpoints=(sc,),
                          raw=(sc.score.value if sc.score else None,), phase="question", attempt=1,
                          attempts_used=1, retrievals_used=0)  # fmt: skip
        decision, why_not = decide_before_generation(self.policies, view, self.budget, can_retrieve=True)
        refused += why_not
        if not decision.acts:
            return [], sc
        decisions.append(decision)
        await self.emit("finece_decision", {"attempt": 0, **dataclasses.asdict(decision)})
        return await self._retrieve(decision, question), sc

    async def run(self, question: str, attempt_fn: AttemptFn) -> AsyncGenerator[tuple[str, Any, int], None]:
        """Yields ``("token", chunk, n)``, ``("restart", reason, n)`` and last ``("outcome", GuardTrace, 0)``."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await self._verify_scorer()
        attempts: list[Attempt] = []
        decisions: list[Decision] = []
        refused: list[str] = []
        sampling: dict[str, Any] = {}
        docs, question_score = await self._before_generation(question, decisions, refused)
        retrievals = 1 if docs or decisions else 0
        # the pre-score is an attempt's question checkpoint whenever the attempt asks about the same
        # state (no passages retrieved): the handler matches it by the scored question's text
        known = (question, question_score.score) if question_score and question_score.score else None
        while True:
            number = len(attempts) + 1
            session = uuid.uuid4().hex
            sq = scored_question(question, docs)
            tokens_before = sum(a.trace.n_tokens for a in attempts)
            queue = self.handler.open_session(session, SessionBudget(number, retrievals, tokens_before,
                                                                     self.retriever is not None),
                                              question_score=known)  # fmt: skip
            aborted: Decision | None = None
            error: str | None = None
            payload: Any = None
            passthrough = False
            final_text = ""
            text_parts: list[str] = []
            traces: list[Trace] = []
            try:
                request = AttemptRequest(number, session, tuple(docs), dict(sampling), sq)
                try:
                    async for kind, item in attempt_fn(request):
                        if kind in ("payload", "passthrough"):
                            payload, passthrough = item, kind == "passthrough"
                            continue
                        if kind == "text":  # the attempt's whole text, from a model that may not stream
                            final_text = str(item)
                            continue
                        text_parts.append(str(item[1]))
                        if item[1]:
                            yield ("token", item[0], number)
                        await self._drain(queue, number)
                except GenerationAborted as exc:
                    aborted = exc.decision
                except Exception as exc:  # the model call failed: record it, the run still returns
                    error = f"{type(exc).__name__}: {exc}"
                traces = await self.handler.atraces_for_session(session)
                await self._drain(queue, number)
            finally:
                await self.handler.aclose_session(session)
            trace = traces[-1] if traces else Trace(question=sq, answer="".join(text_parts), checkpoints=(),
                                                    finished=False, finish_reason=error)  # fmt: skip
            if not passthrough and aborted is None and error is None and final_text.strip() and not trace.answer:
                trace = await self._score_unstreamed(trace, sq, final_text)
            if aborted is not None:
                decisions.append(aborted)
            view = self.view(trace, number, retrievals, aborted is not None or error is not None)
            if passthrough:
                nxt, why_not = Decision(Action.CONTINUE), list[str]()
            elif aborted is not None and aborted.action is Action.RETRIEVE:
                nxt, why_not = aborted, list[str]()  # decided in-stream, budget already checked by the decider
            else:
                nxt, why_not = decide_regeneration(
                    self.policies, view, self.budget, tokens_used=tokens_before + trace.n_tokens,
                    can_retrieve=self.retriever is not None,
                )  # fmt: skip
            refused += why_not
            attempts.append(Attempt(
                number=number, trace=trace, sampling=dict(sampling), retrieved_ids=tuple(_doc_id(d) for d in docs),
                aborted=aborted, next_step=nxt if nxt.acts else None, error=error, payload=payload,
            ))  # fmt: skip
            if not nxt.acts:
                break
            if nxt is not aborted:
                decisions.append(nxt)
                await self.emit("finece_decision", {"attempt": number, **dataclasses.asdict(nxt)})
            if nxt.action is Action.RETRY:
                sampling = dict(nxt.params)
            else:
                retrievals += 1
                docs = await self._retrieve(nxt, question)
            await self.emit("finece_restart", {"attempt": number + 1, "reason": nxt.reason})
            yield ("restart", nxt.reason, number + 1)
        outcome = self._outcome(question, attempts, decisions, refused, retrievals, loop.time() - t0, question_score)
        await self.emit("finece_decision", {"attempt": outcome.kept, "verdict": True,
                                            **dataclasses.asdict(outcome.verdict)})  # fmt: skip
        yield ("outcome", outcome, 0)

    async def _score_unstreamed(self, trace: Trace, question: str, text: str) -> Trace:
        """A model that did not stream: score its whole answer as the final state after the fact."""
        cp = Checkpoint(len(trace.checkpoints), CheckpointKind.FINAL, 0, text, "final answer (not streamed)")
        try:
            score = await asyncio.wait_for(self.scorer.ascore(question, text, CheckpointKind.FINAL),
                                           self.handler.deadline_s)  # fmt: skip
            sc = ScoredCheckpoint(cp, score)
        except Exception as exc:  # a scoring failure, recorded like any other
            sc = ScoredCheckpoint(cp, None, f"{type(exc).__name__}: {exc}")
        checkpoints = (*trace.checkpoints, sc)
        raw = [c.score.value if c.score else None for c in checkpoints]
        return dataclasses.replace(
            trace, answer=text, checkpoints=checkpoints, refined=tuple(refine(raw, alpha=self.handler.alpha,
                                                                            window=self.handler.window)),
            finished=True, finish_reason=trace.finish_reason or "stop",
            meta={**trace.meta, "streamed": False},
        )  # fmt: skip

    def view(self, trace: Trace, number: int, retrievals: int, broken: bool) -> PolicyView:
        return PolicyView(
            question=trace.question, text=trace.answer, n_tokens=trace.n_tokens, checkpoints=trace.checkpoints,
            raw=trace.raw_scores, refined=trace.refined, phase="attempt_end", attempt=number,
            attempts_used=number, retrievals_used=retrievals, finished=trace.finished and not broken,
            aborted=broken or (trace.finish_reason or "").startswith(("aborted", "error")),
            scoring_failed=bool(trace.checkpoints) and trace.checkpoints[-1].score is None,
        )  # fmt: skip

    def _outcome(
        self,
        question: str,
        attempts: list[Attempt],
        decisions: list[Decision],
        refused: list[str],
        retrievals: int,
        seconds: float,
        question_score: ScoredCheckpoint | None,
    ) -> GuardTrace:
        kept = kept_attempt(attempts, confidence=lambda a: a.confidence, context=lambda a: a.retrieved_ids)
        errors = tuple(sc.error for a in attempts for sc in a.trace.checkpoints if sc.error)
        final_missing = not kept.trace.checkpoints or kept.trace.checkpoints[-1].score is None
        scoring_failed = final_missing and not kept.broken
        if kept.aborted is not None:
            how = "aborted" if kept.aborted.action is Action.ABORT else f"stopped ({kept.aborted.action.value})"
            why = f"{how} in-stream and not regenerated: {kept.aborted.reason}"
            verdict = Decision(Action.REJECT, why, kept.aborted.policy, kept.aborted.score)
        elif kept.error is not None:
            kept_text = f" ({len(kept.trace.answer)} characters of partial text kept)" if kept.trace.answer else ""
            verdict = Decision(Action.REJECT, f"generation failed: {kept.error}{kept_text}", "guard", None)
        elif not kept.trace.answer.strip():
            verdict = Decision(Action.REJECT, "the model returned no answer text", "guard", None)
        elif scoring_failed:
            verdict = scoring_failed_verdict(self.on_scorer_error, errors[-1] if errors else "no checkpoint was scored")
        else:
            verdict = decide_verdict(self.policies, self.view(kept.trace, kept.number, retrievals, False))
        decisions.append(verdict)
        return GuardTrace(
            question=question, attempts=tuple(attempts), kept=kept.number, verdict=verdict, decisions=tuple(decisions),
            refused=tuple(refused), scoring_failed=scoring_failed, scoring_errors=errors, seconds=seconds,
            question_score=question_score,
        )  # fmt: skip
