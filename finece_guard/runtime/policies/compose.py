"""How a list of policies becomes one decision, and the budgets that bound every guarded run.

Precedence (fixed, so any combination is predictable):

0. **Before generating** (only when a policy asks for the question-only state first, e.g.
   ``RetrieveBelow(early=True)``): the first ``RETRIEVE`` the budget allows retrieves before the
   attempt generates anything (:func:`decide_before_generation`).
1. **While streaming** ``ABORT`` and early ``RETRIEVE`` act: the first policy in list order that
   says one of them wins, a retrieval only if the budget allows it (:func:`decide_in_stream`).
   Both stop the stream; after an abort the attempt ends and step 2 runs as usual.
2. **When an attempt ends**, regeneration comes first: the first policy in list order that asks
   for ``RETRY`` or ``RETRIEVE`` wins, *if the budget allows it* (a retrieval also needs a
   retriever). Otherwise the run stops.
3. **The verdict** on the answer the guard keeps: ``REJECT`` if any policy rejects (the first
   one's reason is reported), else ``ACCEPT``. With no filter policy every answer is accepted.

**The kept answer** (:func:`kept_attempt`): a retrieval supersedes what came before it (the new
attempts saw more), so among the attempts made with the latest retrieved context the one with the
best final confidence is kept; with none scored, the latest. The guard and the agent middleware
both keep answers this way, and both say a failed score the same way (:func:`scoring_failed_verdict`).

:class:`Budget` caps attempts, retrievals and total generated tokens for the whole run, whatever
the policies ask, so no combination can loop forever.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from finece_guard.runtime.policies import _validate
from finece_guard.runtime.policies.base import CONTINUE, Action, Decision, Policy, PolicyView


@dataclass(frozen=True)
class Budget:
    """Global caps for one guarded run (all attempts together)."""

    max_attempts: int = 3
    max_retrievals: int = 2
    max_tokens: int = 4096

    def __post_init__(self) -> None:
        _validate.at_least("max_attempts", self.max_attempts, 1)
        _validate.at_least("max_retrievals", self.max_retrievals, 0)
        _validate.at_least("max_tokens", self.max_tokens, 1)


def _refusal(
    decision: Decision, view: PolicyView, budget: Budget, tokens_used: int, can_retrieve: bool
) -> str | None:
    """Why the budget refuses a regeneration (retry / retrieve), or None when it allows it.

    ``view.attempts_used`` counts the current attempt: before generating (phase "question") the
    retrieval replaces nothing, so the attempt cap does not apply there.
    """
    if view.phase != "question" and view.attempts_used >= budget.max_attempts:
        return f"{decision.policy}: budget max_attempts={budget.max_attempts} reached"
    if tokens_used >= budget.max_tokens:
        return f"{decision.policy}: budget max_tokens={budget.max_tokens} reached ({tokens_used} used)"
    if decision.action is Action.RETRIEVE and not can_retrieve:
        return f"{decision.policy}: no retriever configured"
    if decision.action is Action.RETRIEVE and view.retrievals_used >= budget.max_retrievals:
        return f"{decision.policy}: budget max_retrievals={budget.max_retrievals} reached"
    return None


def decide_before_generation(
    policies: Sequence[Policy], view: PolicyView, budget: Budget, *, can_retrieve: bool
) -> tuple[Decision, list[str]]:
    """Phase "question": the first RETRIEVE the budget allows, else CONTINUE; plus refusals."""
    refused: list[str] = []
    for policy in policies:
        decision = policy.decide(view)
        if decision.action is not Action.RETRIEVE:
            continue
        why = _refusal(decision, view, budget, 0, can_retrieve)
        if why is None:
            return decision, refused
        refused.append(why)
    return CONTINUE, refused


def decide_in_stream(
    policies: Sequence[Policy],
    view: PolicyView,
    budget: Budget | None = None,
    *,
    tokens_used: int = 0,
    can_retrieve: bool = False,
) -> tuple[Decision, list[str]]:
    """Phase "checkpoint": the first ABORT, or the first early RETRIEVE the budget allows.

    Returns the decision (CONTINUE when none acts) and why refused retrievals were refused.
    """
    refused: list[str] = []
    for policy in policies:
        decision = policy.decide(view)
        if decision.action is Action.ABORT:
            return decision, refused
        if decision.action is Action.RETRIEVE:
            why = _refusal(decision, view, budget or Budget(), tokens_used, can_retrieve)
            if why is None:
                return decision, refused
            refused.append(why)
    return CONTINUE, refused


def decide_regeneration(
    policies: Sequence[Policy], view: PolicyView, budget: Budget, *, tokens_used: int, can_retrieve: bool
) -> tuple[Decision, list[str]]:
    """The first RETRY/RETRIEVE the budget allows, else CONTINUE; plus why others were refused."""
    refused: list[str] = []
    for policy in policies:
        decision = policy.decide(view)
        if decision.action not in (Action.RETRY, Action.RETRIEVE):
            continue
        why = _refusal(decision, view, budget, tokens_used, can_retrieve)
        if why is None:
            return decision, refused
        refused.append(why)
    return CONTINUE, refused


def decide_verdict(policies: Sequence[Policy], view: PolicyView) -> Decision:
    """REJECT if any policy rejects, else the first ACCEPT, else an implicit accept."""
    accept: Decision | None = None
    for policy in policies:
        decision = policy.decide(view)
        if decision.action is Action.REJECT:
            return decision
        if decision.action is Action.ACCEPT and accept is None:
            accept = decision
    return accept or Decision(Action.ACCEPT, "no acceptance policy", "default", view.confidence)


A = TypeVar("A")


def kept_attempt(
    attempts: Sequence[A], *, confidence: Callable[[A], float | None], context: Callable[[A], Hashable]
) -> A:
    """The attempt to keep: best final confidence among those with the latest retrieved context.

    ``context`` names what an attempt was grounded on (e.g. the retrieved document ids; equal for
    attempts made without retrieval). Unscored attempts lose to scored ones; with none scored the
    latest attempt of that context is kept. Ties keep the earlier attempt.
    """
    if not attempts:
        raise ValueError("no attempt to keep")
    latest = context(attempts[-1])
    pool = [a for a in attempts if context(a) == latest]
    best: A | None = None
    best_value = float("-inf")
    for a in pool:
        value = confidence(a)
        if value is not None and value > best_value:
            best, best_value = a, value
    return best if best is not None else pool[-1]


def scoring_failed_verdict(mode: Literal["open", "closed"], why: str) -> Decision:
    """The verdict when the kept answer has no final score: accept (fail open) or reject (fail closed)."""
    action = Action.ACCEPT if mode == "open" else Action.REJECT
    return Decision(action, f"scoring failed, fail {mode}: {why}", "on_scorer_error", None)
