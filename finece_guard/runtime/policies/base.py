"""What a policy sees and says: :class:`PolicyView` in, :class:`Decision` out, no I/O in between.

A policy is a pure object with one method, ``decide(view) -> Decision``. It is asked at three
moments (``view.phase``):

* ``"question"`` — before an attempt generates anything, when a policy wants the question-only
  state judged first (``RetrieveBelow(early=True)``): :attr:`Action.RETRIEVE` retrieves before
  generating.
* ``"checkpoint"`` — while the answer streams, each time a checkpoint's score arrives (asked by
  the one in-stream decider, the callback handler). :attr:`Action.ABORT` and (early)
  :attr:`Action.RETRIEVE` act here: both stop the stream. A decision may carry
  ``confirm=LookAhead(...)``: the handler then looks ahead (BCI), puts the integrated value into
  ``view.refined`` at that checkpoint and asks again; the policy decides on that value.
* ``"attempt_end"`` — when an attempt ended (finished, aborted, or stopped by the budget). A
  policy may ask to regenerate (:attr:`Action.RETRY`, :attr:`Action.RETRIEVE`) or give a verdict
  (:attr:`Action.ACCEPT`, :attr:`Action.REJECT`).

Precedence is fixed and documented in :mod:`finece_guard.runtime.policies.compose`. Because policies only
read data and return data, they are trivially testable and the guard is the one place where
anything happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from finece_guard.runtime.bci import LookAhead
from finece_guard.types import CheckpointKind, ScoredCheckpoint

Phase = Literal["question", "checkpoint", "attempt_end"]


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
    confirm: LookAhead | None = None

    @property
    def acts(self) -> bool:
        return self.action is not Action.CONTINUE

    @property
    def stops_stream(self) -> bool:
        """Whether carrying this out in-stream stops the generation (abort, early retrieval)."""
        return self.action in (Action.ABORT, Action.RETRIEVE)


CONTINUE = Decision(Action.CONTINUE)


@dataclass(frozen=True, slots=True)
class PolicyView:
    """A read-only snapshot of one guarded run, as policies see it.

    ``raw`` and ``refined`` are aligned with ``checkpoints`` (``None`` where scoring failed or
    is still pending). While streaming, ``refined`` holds look-ahead BCI values where a
    confirmation ran (``None`` elsewhere); when an attempt ended it holds retrospective BCI.
    ``attempt`` counts from 1; ``attempts_used``/``retrievals_used`` count what the run has spent
    so far including the current attempt.
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

    def value_at(self, i: int) -> float | None:
        """The value to act on at checkpoint ``i``: its refined value if there is one, else raw."""
        if i < len(self.refined) and self.refined[i] is not None:
            return self.refined[i]
        return self.raw[i] if i < len(self.raw) else None

    def confirmed_at(self, i: int) -> bool:
        """Whether checkpoint ``i`` carries a refined (look-ahead) value while streaming."""
        return self.phase == "checkpoint" and i < len(self.refined) and self.refined[i] is not None

    def newest(self, kinds: frozenset[CheckpointKind]) -> int | None:
        """Index of the newest scored checkpoint of one of ``kinds`` (None if none is scored)."""
        for i in range(len(self.checkpoints) - 1, -1, -1):
            if self.checkpoints[i].checkpoint.kind in kinds and i < len(self.raw) and self.raw[i] is not None:
                return i
        return None

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
