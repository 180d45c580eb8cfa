"""What a policy sees and says: :class:`PolicyView` in, :class:`Decision` out, no I/O in between.

A policy is a pure object with one method, ``decide(view) -> Decision``. It is asked at two
moments (``view.phase``):

* ``"checkpoint"`` — while the answer streams, each time a checkpoint's score arrives. Only
  :attr:`Action.ABORT` is acted on here (the rest would need the answer to end first).
* ``"attempt_end"`` — when an attempt ended (finished, aborted, or stopped by the budget). A
  policy may ask to regenerate (:attr:`Action.RETRY`, :attr:`Action.RETRIEVE`) or give a verdict
  (:attr:`Action.ACCEPT`, :attr:`Action.REJECT`).

Precedence is fixed and documented in :mod:`finece_guard.policies.compose`. Because policies only
read data and return data, they are trivially testable and the guard is the one place where
anything happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from finece_guard.types import ScoredCheckpoint

Phase = Literal["checkpoint", "attempt_end"]


class Action(StrEnum):
    """What a policy wants done."""

    CONTINUE = "continue"
    ABORT = "abort"
    RETRY = "retry"
    RETRIEVE = "retrieve"
    ACCEPT = "accept"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class Decision:
    """A policy's verdict with its reason; ``params`` carries e.g. new sampling settings."""

    action: Action
    reason: str = ""
    policy: str = ""
    score: float | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def acts(self) -> bool:
        return self.action is not Action.CONTINUE


CONTINUE = Decision(Action.CONTINUE)


@dataclass(frozen=True, slots=True)
class PolicyView:
    """A read-only snapshot of one guarded run, as policies see it.

    ``raw`` and ``refined`` are aligned with ``checkpoints`` (``None`` where scoring failed or
    is still pending). ``attempt`` counts from 1; ``attempts_used``/``retrievals_used`` count
    what the run has spent so far including the current attempt.
    """

    question: str
    text: str
    n_tokens: int
    checkpoints: tuple[ScoredCheckpoint, ...] = ()
    raw: tuple[float | None, ...] = ()
    refined: tuple[float | None, ...] = ()
    phase: Phase = "checkpoint"
    attempt: int = 1
    attempts_used: int = 1
    retrievals_used: int = 0
    finished: bool = False
    aborted: bool = False
    scoring_failed: bool = False

    @property
    def latest(self) -> float | None:
        """The most recent scored value (refined when the attempt ended, raw while streaming)."""
        values = self.refined if self.phase == "attempt_end" and self.refined else self.raw
        for v in reversed(values):
            if v is not None:
                return v
        return None

    @property
    def confidence(self) -> float | None:
        """Confidence of the attempt's answer: the score of its last state (c'_N = c_N in eq. 5).

        When the attempt has ended this is the last checkpoint's value, ``None`` if that state
        could not be scored; an earlier checkpoint's score never stands in for the final one.
        """
        if self.phase == "attempt_end" and self.checkpoints:
            values = self.refined or self.raw
            return values[-1] if values else None
        return self.latest


@runtime_checkable
class Policy(Protocol):
    """Anything with a ``name`` and a pure ``decide``."""

    @property
    def name(self) -> str: ...

    def decide(self, view: PolicyView) -> Decision: ...
