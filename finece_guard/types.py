"""Frozen value types shared by every part of the library.

They are plain data: a token as it streamed, a checkpoint (a state worth scoring), a score
read from the FineCE model, and the trace of one answer. Keeping them immutable lets many
concurrent runs share them without locks and makes traces safe to log and replay.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class TokenEvent:
    """One streamed token of the generator, with its logprobs when the server sent them.

    ``top_logprobs`` holds ``(token, logprob)`` pairs of the most likely alternatives at this
    position (at most the server's ``--max-logprobs``), so anything computed from it is a
    truncated estimate over the full vocabulary.
    """

    index: int
    text: str
    logprob: float | None = None
    top_logprobs: tuple[tuple[str, float], ...] = ()


class CheckpointKind(StrEnum):
    """Which of the paper's three states a checkpoint is (Fig. 3)."""

    QUESTION = "question"
    PARTIAL = "partial"
    FINAL = "final"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A state of the answer worth scoring: the answer text up to ``n_tokens`` tokens."""

    position: int
    kind: CheckpointKind
    n_tokens: int
    answer_prefix: str
    reason: str


@dataclass(frozen=True, slots=True)
class Score:
    """A FineCE confidence read out as an expected value over score tokens.

    ``value`` is in [0, 1]; ``spread`` is the standard deviation of the score distribution;
    ``mass`` is the share of probability the scorer put on score tokens at all (low mass means
    the scorer barely answered with a score); ``distribution`` maps score levels to their
    renormalised probabilities. When a recalibrator was applied, ``value`` is the recalibrated
    confidence and ``raw_value`` the scorer's own expected value (``None``: not recalibrated).
    ``fused`` is FineCE+ (:mod:`finece_guard.backends.fusion`): the adapter's score combined with
    the stream's token probabilities by the scorer's fitted fusion model (``None``: no model, or the
    question-only state). Policies read ``value``; ``fused`` is reported beside it.
    ``rater_text`` names what the rater-text filter (:mod:`finece_guard.rating_filter`) removed from
    the question and answer before scoring, e.g. ``("self-rating",)``: the text carried forged
    confidence or instructions to the rater (empty: nothing was removed, or the filter is off).
    """

    value: float
    spread: float
    mass: float
    distribution: tuple[tuple[float, float], ...] = ()
    latency_s: float = 0.0
    raw_value: float | None = None
    fused: float | None = None
    rater_text: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not (0.0 <= self.value <= 1.0) or math.isnan(self.value):
            raise ValueError(f"score value must be in [0, 1], got {self.value!r}")
        if self.raw_value is not None and (not (0.0 <= self.raw_value <= 1.0) or math.isnan(self.raw_value)):
            raise ValueError(f"score raw_value must be in [0, 1] or None, got {self.raw_value!r}")
        if self.fused is not None and (not (0.0 <= self.fused <= 1.0) or math.isnan(self.fused)):
            raise ValueError(f"score fused must be in [0, 1] or None, got {self.fused!r}")


@dataclass(frozen=True, slots=True)
class ScoredCheckpoint:
    """A checkpoint with its raw score, or the error that prevented scoring it."""

    checkpoint: Checkpoint
    score: Score | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Trace:
    """Everything known about one answer: checkpoints, raw and BCI-refined scores.

    ``refined`` is aligned with ``checkpoints`` (``None`` where a checkpoint could not be
    scored). ``finished`` is False when generation stopped before the model ended the answer.
    """

    question: str
    answer: str
    checkpoints: tuple[ScoredCheckpoint, ...]
    refined: tuple[float | None, ...] = ()
    n_tokens: int = 0
    finished: bool = True
    finish_reason: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def raw_scores(self) -> tuple[float | None, ...]:
        """Raw score values aligned with ``checkpoints``."""
        return tuple(sc.score.value if sc.score else None for sc in self.checkpoints)

    @property
    def final_confidence(self) -> float | None:
        """Raw score of the last scored checkpoint (the full answer when it was scored)."""
        scored = [v for v in self.raw_scores if v is not None]
        return scored[-1] if scored else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (enums as strings)."""
        return asdict(self)
