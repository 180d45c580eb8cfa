"""The one in-stream decider: finished scores in, decisions (abort, early retrieval) out, per run.

Exactly one component consumes finished scores while an answer streams and decides: this one.
The callback handler feeds it every score as it lands (on the run's loop) and carries out what it
decides — a decision that stops the stream is raised from the next token callback. Everyone else
(the guard, the middleware, event streams) only reports its decisions, which it emits as events.

A decision that asks for confirmation (``confirm=LookAhead(width, depth)``) is confirmed here with
look-ahead BCI (:func:`~finece_guard.runtime.bci.look_ahead`) while generation goes on: the
integrated value is put into the view's ``refined`` at that checkpoint and the policies decide
again. A confirmation that fails never acts; one still running when the answer ends is cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from finece_guard.backends.base import BaseScorer
from finece_guard.runtime.bci import ContinuationSampler, LookAhead, look_ahead
from finece_guard.runtime.monitor import RunMonitor
from finece_guard.runtime.policies.base import Action, Decision, Policy, PolicyView
from finece_guard.runtime.policies.compose import Budget, decide_in_stream
from finece_guard.types import ScoredCheckpoint, Trace

HandlerEvent = ScoredCheckpoint | Decision


@dataclass(frozen=True)
class SessionBudget:
    """What a guarded session has spent before this attempt (the in-stream decider's budget view)."""

    attempt: int = 1
    retrievals_used: int = 0
    tokens_before: int = 0
    can_retrieve: bool = False


@dataclass
class RunState:
    """One model run as the handler and the decider see it (lives on the run's loop)."""

    monitor: RunMonitor
    session: str | None
    loop: asyncio.AbstractEventLoop
    scored: dict[int, ScoredCheckpoint] = field(default_factory=dict)
    refined: dict[int, float] = field(default_factory=dict)
    decisions: list[Decision] = field(default_factory=list)
    lookaheads: list[dict[str, Any]] = field(default_factory=list)
    stop: Decision | None = None  # the in-stream decision that stops the stream (set once, by the decider)
    raised: bool = False
    ended: bool = False
    confirming: asyncio.Task[None] | None = None
    finish: asyncio.Task[Trace] | None = None


class InStreamDecider:
    """Asks the in-stream policies when a score lands; confirms by look-ahead when a decision asks."""

    def __init__(
        self,
        policies: Sequence[Policy],
        caps: Budget,
        *,
        scorer: BaseScorer,
        sampler: ContinuationSampler | None,
        alpha: float,
        emit: Callable[[RunState, HandlerEvent], None],
        budget_of: Callable[[RunState], SessionBudget],
    ) -> None:
        self.policies = tuple(policies)
        self.caps = caps
        self.scorer = scorer
        self.sampler = sampler
        self.alpha = alpha
        self.emit = emit
        self.budget_of = budget_of

    def _view(self, run: RunState) -> PolicyView:
        scored = [run.scored[p] for p in sorted(run.scored)]
        budget = self.budget_of(run)
        return PolicyView(
            question=run.monitor.question, text=run.monitor.text, n_tokens=len(run.monitor.tokens),
            checkpoints=tuple(scored), raw=tuple(sc.score.value if sc.score else None for sc in scored),
            refined=tuple(run.refined.get(sc.checkpoint.position) for sc in scored), phase="checkpoint",
            attempt=budget.attempt, attempts_used=budget.attempt, retrievals_used=budget.retrievals_used,
        )  # fmt: skip

    def on_scored(self, run: RunState, sc: ScoredCheckpoint) -> None:
        """A score arrived (on the run's loop): record it, report it, and decide."""
        run.scored[sc.checkpoint.position] = sc
        self.emit(run, sc)
        self._decide(run)

    def _decide(self, run: RunState) -> None:
        if run.stop is not None or run.ended or run.confirming is not None or not self.policies:
            return
        decision = self._ask(run)
        if not decision.acts:
            return
        if decision.confirm is not None and self.sampler is not None:
            run.confirming = run.loop.create_task(self._confirm(run, decision, decision.confirm))
            return
        self._act(run, decision)

    def _ask(self, run: RunState) -> Decision:
        """The in-stream policies' decision on the run as it stands (budget from its session)."""
        budget = self.budget_of(run)
        decision, _ = decide_in_stream(
            self.policies, self._view(run), self.caps,
            tokens_used=budget.tokens_before + len(run.monitor.tokens), can_retrieve=budget.can_retrieve,
        )  # fmt: skip
        return decision

    def _act(self, run: RunState, decision: Decision) -> None:
        run.stop = decision
        run.decisions.append(decision)
        self.emit(run, decision)

    async def _confirm(self, run: RunState, decision: Decision, spec: LookAhead) -> None:
        """Look-ahead BCI at the decision's checkpoint, then decide again on the integrated value."""
        position = int(decision.params.get("checkpoint", -1))
        sc = run.scored.get(position)
        assert self.sampler is not None
        try:
            if sc is None or sc.score is None:
                raise ValueError(f"checkpoint #{position} has no score to confirm")
            result = await look_ahead(
                run.monitor.question, sc.checkpoint.answer_prefix, sc.score.value, sampler=self.sampler,
                scorer=self.scorer, width=spec.width, depth=spec.depth,
                alpha=self.alpha if spec.alpha is None else spec.alpha, max_tokens_per_step=spec.max_tokens_per_step,
            )  # fmt: skip
        except asyncio.CancelledError:
            run.lookaheads.append({"checkpoint": position, "policy": decision.policy, "cancelled": True,
                                   "reason": "the answer ended before the confirmation finished"})  # fmt: skip
            raise
        except Exception as exc:  # a failed confirmation never acts: the decision stays unconfirmed
            note = f"look-ahead failed ({type(exc).__name__}: {exc}); {decision.policy} not carried out"
            run.lookaheads.append({"checkpoint": position, "policy": decision.policy, "error": note})
            overturned = Decision(Action.CONTINUE, note, decision.policy, decision.score)
            run.decisions.append(overturned)
            self.emit(run, overturned)
            run.confirming = None
            return
        cost = {"checkpoint": position, "policy": decision.policy, **result.to_dict()}
        run.lookaheads.append(cost)
        run.refined[position] = result.value
        run.confirming = None
        if run.ended:
            return
        again = self._ask(run)
        lookahead = {k: v for k, v in cost.items() if k != "continuations"}
        if again.acts and again.confirm is None:
            self._act(run, dataclasses.replace(again, params={**again.params, "lookahead": lookahead}))
            return
        verdict = Decision(
            Action.CONTINUE,
            f"look-ahead overturned {decision.policy}: confidence {result.raw:.3f} -> {result.value:.3f} "
            f"at checkpoint #{position}",
            decision.policy, result.value, {"checkpoint": position, "lookahead": lookahead},
        )  # fmt: skip
        run.decisions.append(verdict)
        self.emit(run, verdict)
        if again.acts:  # a newer checkpoint wants its own confirmation
            self._decide(run)
