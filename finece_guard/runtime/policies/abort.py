"""Abort a generation whose confidence fell below a threshold, once there is enough text to judge.

Acts only while streaming (phase ``"checkpoint"``) on the newest scored partial checkpoint. The
callback handler (the one in-stream decider) carries it out by raising
:class:`~finece_guard.errors.GenerationAborted` from the token callback, which closes the HTTP
stream; vLLM then cancels the request.

With ``confirm=LookAhead(width, depth)`` the abort is first confirmed by look-ahead BCI: the
handler samples ``width`` continuations of the current prefix, scores them, integrates them with
eq. 5, and asks again; the policy then aborts only if the refined value is still below the
threshold. Generation keeps streaming while the confirmation runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from finece_guard.runtime.bci import LookAhead
from finece_guard.runtime.policies import _validate
from finece_guard.runtime.policies.base import CONTINUE, Action, Decision, PolicyView
from finece_guard.types import CheckpointKind


@dataclass(frozen=True)
class AbortBelow:
    """Abort when a partial checkpoint scores below ``threshold`` after ``min_tokens`` tokens.

    ``include_question``: also abort on a low question-only score (before any text), which
    stops hopeless questions at the first checkpoint after ``min_tokens``.
    ``confirm``: confirm with look-ahead BCI before aborting (see the module docstring).
    """

    threshold: float
    min_tokens: int = 16
    include_question: bool = False
    confirm: LookAhead | None = None
    name: str = "abort_below"

    def __post_init__(self) -> None:
        _validate.threshold("threshold", self.threshold)
        _validate.at_least("min_tokens", self.min_tokens, 0)
        _validate.lookahead("confirm", self.confirm)

    def decide(self, view: PolicyView) -> Decision:
        if view.phase != "checkpoint" or view.n_tokens < self.min_tokens:
            return CONTINUE
        kinds = frozenset({CheckpointKind.PARTIAL} | ({CheckpointKind.QUESTION} if self.include_question else set()))
        i = view.newest(kinds)
        if i is None:
            return CONTINUE
        value = view.value_at(i)
        if value is None or value >= self.threshold:
            return CONTINUE
        cp = view.checkpoints[i].checkpoint
        confirmed = view.confirmed_at(i)
        label = "look-ahead confidence" if confirmed else "confidence"
        return Decision(
            Action.ABORT,
            f"{label} {value:.3f} < {self.threshold} at checkpoint #{cp.position} ({cp.n_tokens} tokens)",
            self.name,
            value,
            {"checkpoint": cp.position},
            confirm=None if confirmed else self.confirm,
        )
