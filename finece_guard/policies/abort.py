"""Abort a generation whose confidence fell below a threshold, once there is enough text to judge.

Acts only while streaming (phase ``"checkpoint"``) on the newest scored partial checkpoint. The
guard (or the callback handler) carries it out by raising :class:`~finece_guard.errors.GenerationAborted`
from the token callback, which closes the HTTP stream; vLLM then cancels the request.
"""

from __future__ import annotations

from dataclasses import dataclass

from finece_guard.policies import _validate
from finece_guard.policies.base import CONTINUE, Action, Decision, PolicyView
from finece_guard.types import CheckpointKind


@dataclass(frozen=True)
class AbortBelow:
    """Abort when a partial checkpoint scores below ``threshold`` after ``min_tokens`` tokens.

    ``include_question``: also abort on a low question-only score (before any text), which
    stops hopeless questions at the first checkpoint after ``min_tokens``.
    """

    threshold: float
    min_tokens: int = 16
    include_question: bool = False
    name: str = "abort_below"

    def __post_init__(self) -> None:
        _validate.threshold("threshold", self.threshold)
        _validate.at_least("min_tokens", self.min_tokens, 0)

    def decide(self, view: PolicyView) -> Decision:
        if view.phase != "checkpoint" or view.n_tokens < self.min_tokens:
            return CONTINUE
        kinds = {CheckpointKind.PARTIAL} | ({CheckpointKind.QUESTION} if self.include_question else set())
        for sc, value in zip(reversed(view.checkpoints), reversed(view.raw), strict=False):
            if value is None or sc.checkpoint.kind not in kinds:
                continue
            if value < self.threshold:
                return Decision(
                    Action.ABORT,
                    f"confidence {value:.3f} < {self.threshold} at checkpoint #{sc.checkpoint.position} "
                    f"({sc.checkpoint.n_tokens} tokens)",
                    self.name,
                    value,
                )
            return CONTINUE
        return CONTINUE
