"""Confidence-filtered acceptance: accept an answer only if its confidence reaches δ.

A rejection is explicit, never a silent drop: the guard's result keeps the answer text, the
score and the reason, and carries a configurable fallback message for the caller to show.
"""

from __future__ import annotations

from dataclasses import dataclass

from finece_guard.runtime.policies import _validate
from finece_guard.runtime.policies.base import CONTINUE, Action, Decision, PolicyView

DEFAULT_FALLBACK = "I am not confident enough in an answer to this question."


@dataclass(frozen=True)
class AcceptAbove:
    """Accept when the final confidence is ≥ ``delta``; otherwise reject with ``fallback``."""

    delta: float
    fallback: str = DEFAULT_FALLBACK
    name: str = "accept_above"

    def __post_init__(self) -> None:
        _validate.threshold("delta", self.delta)

    def decide(self, view: PolicyView) -> Decision:
        if view.phase != "attempt_end":
            return CONTINUE
        conf = view.confidence
        if view.aborted:
            return Decision(Action.REJECT, "the answer was aborted before it ended", self.name, conf)
        if conf is None:
            return Decision(Action.REJECT, "the answer could not be scored", self.name, None)
        if conf >= self.delta:
            return Decision(Action.ACCEPT, f"confidence {conf:.3f} >= {self.delta}", self.name, conf)
        return Decision(Action.REJECT, f"confidence {conf:.3f} < {self.delta}", self.name, conf)
