"""Retrieve context and regenerate when confidence is low (retrieval on demand, not on every call).

The policy only decides; the guard queries its retriever (e.g. a Chroma collection through
langchain-chroma) with the question, and with the partial answer too when
``include_partial_answer`` is set, puts the passages into the prompt and regenerates.
"""

from __future__ import annotations

from dataclasses import dataclass

from finece_guard.policies import _validate
from finece_guard.policies.base import CONTINUE, Action, Decision, PolicyView


@dataclass(frozen=True)
class RetrieveBelow:
    """Retrieve and regenerate when the attempt's confidence is below ``threshold``."""

    threshold: float
    max_retrievals: int = 1
    k: int = 3
    include_partial_answer: bool = False
    name: str = "retrieve_below"

    def __post_init__(self) -> None:
        _validate.threshold("threshold", self.threshold)
        _validate.at_least("max_retrievals", self.max_retrievals, 1)
        _validate.at_least("k", self.k, 1)

    def decide(self, view: PolicyView) -> Decision:
        if view.phase != "attempt_end" or view.retrievals_used >= self.max_retrievals:
            return CONTINUE
        conf = view.confidence
        if view.aborted or conf is None or conf < self.threshold:
            why = "aborted" if view.aborted else "no score" if conf is None else f"confidence {conf:.3f}"
            query = view.question + (f"\n{view.text}" if self.include_partial_answer and view.text else "")
            return Decision(
                Action.RETRIEVE,
                f"{why} < {self.threshold}; retrieval {view.retrievals_used + 1} of {self.max_retrievals}",
                self.name,
                conf,
                {"query": query, "k": self.k},
            )
        return CONTINUE
