"""Retrieve context and regenerate when confidence is low (retrieval on demand, not on every call).

The policy only decides; the guard queries its retriever (e.g. a Chroma collection through
langchain-chroma) with the question, and with the partial answer too when
``include_partial_answer`` is set, puts the passages into the prompt and regenerates.

By default it acts when an attempt ends. With ``early=True`` it also acts *before and during*
generation (the paper's "trigger remedial actions early"):

* phase ``"question"`` — the question-only state is scored before any token; below the threshold
  the guard retrieves first and generates once, with the passages;
* phase ``"checkpoint"`` — at a partial checkpoint (after ``min_tokens``) below the threshold the
  handler stops the attempt there and the guard regenerates with the passages, instead of
  finishing a doomed answer first. ``confirm=LookAhead(...)`` confirms that by look-ahead BCI.

Budget and precedence are the guard's (:mod:`finece_guard.runtime.policies.compose`): an early
retrieval needs the same budget (attempts, retrievals, a retriever) as one at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

from finece_guard.runtime.bci import LookAhead
from finece_guard.runtime.policies import _validate
from finece_guard.runtime.policies.base import CONTINUE, Action, Decision, PolicyView
from finece_guard.types import CheckpointKind


@dataclass(frozen=True)
class RetrieveBelow:
    """Retrieve and regenerate when confidence is below ``threshold`` (see the module docstring)."""

    threshold: float
    max_retrievals: int = 1
    k: int = 3
    include_partial_answer: bool = False
    early: bool = False
    min_tokens: int = 16
    confirm: LookAhead | None = None
    name: str = "retrieve_below"

    def __post_init__(self) -> None:
        _validate.threshold("threshold", self.threshold)
        _validate.at_least("max_retrievals", self.max_retrievals, 1)
        _validate.at_least("k", self.k, 1)
        _validate.at_least("min_tokens", self.min_tokens, 0)
        _validate.lookahead("confirm", self.confirm)

    def _retrieve(
        self, view: PolicyView, why: str, conf: float | None, *, confirm: LookAhead | None = None, **extra: object
    ) -> Decision:
        query = view.question + (f"\n{view.text}" if self.include_partial_answer and view.text else "")
        return Decision(
            Action.RETRIEVE,
            f"{why} < {self.threshold}; retrieval {view.retrievals_used + 1} of {self.max_retrievals}",
            self.name,
            conf,
            {"query": query, "k": self.k, **extra},
            confirm=confirm,
        )

    def decide(self, view: PolicyView) -> Decision:
        if view.retrievals_used >= self.max_retrievals:
            return CONTINUE
        if view.phase == "question":
            i = view.newest(frozenset({CheckpointKind.QUESTION})) if self.early else None
            conf = view.value_at(i) if i is not None else None
            if conf is not None and conf < self.threshold:
                return self._retrieve(view, f"question-only confidence {conf:.3f}", conf, stage="before_generation")
            return CONTINUE
        if view.phase == "checkpoint":
            if not self.early or view.n_tokens < self.min_tokens:
                return CONTINUE
            i = view.newest(frozenset({CheckpointKind.PARTIAL}))
            conf = view.value_at(i) if i is not None else None
            if i is None or conf is None or conf >= self.threshold:
                return CONTINUE
            confirmed = view.confirmed_at(i)
            cp = view.checkpoints[i].checkpoint
            label = "look-ahead confidence" if confirmed else "confidence"
            return self._retrieve(
                view, f"{label} {conf:.3f} at checkpoint #{cp.position} ({cp.n_tokens} tokens)", conf,
                stage="in_stream", checkpoint=cp.position, confirm=None if confirmed else self.confirm,
            )  # fmt: skip
        conf = view.confidence
        if view.aborted or conf is None or conf < self.threshold:
            why = "aborted" if view.aborted else "no score" if conf is None else f"confidence {conf:.3f}"
            return self._retrieve(view, why, conf, stage="attempt_end")
        return CONTINUE
