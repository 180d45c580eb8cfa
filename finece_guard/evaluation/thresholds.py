"""Choosing operating thresholds from labelled answers: accept-if-confident and abort-early.

Why this module exists: a guard acts on a confidence through a threshold, and the right value
depends on the model, the task and the user's tolerance for errors. These functions turn a
labelled calibration set into the trade-off curves and into a suggested threshold, so the
numbers in a configuration come from data (ideally a split not used to fit a recalibrator).

* **Accept** (paper's confidence-based filtering): keep an answer when its final confidence is
  ``>= δ``. Coverage is the share kept, precision the accuracy of the kept answers.
* **Abort** (paper's early-stage prediction): stop generating when the confidence at an early
  checkpoint is ``< θ``. Tokens after the checkpoint of aborted *wrong* answers are saved;
  aborted *correct* answers are lost (they would need a retry).

Candidate thresholds are the observed confidence values, so each one selects a distinct set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from finece_guard.errors import ConfigError, MetricError
from finece_guard.metrics import _prepare

Array = NDArray[np.float64]


class CoveragePoint(NamedTuple):
    """One point of the accuracy-coverage curve for accepting ``conf >= threshold``.

    ``accuracy`` is NaN when no answer is accepted (only possible for explicit thresholds).
    """

    threshold: float
    coverage: float
    accuracy: float
    n_accepted: int


@dataclass(frozen=True)
class AcceptThreshold:
    """A suggested accept threshold δ: accept when confidence ``>= threshold``."""

    threshold: float
    coverage: float
    precision: float
    n_accepted: int


@dataclass(frozen=True)
class AbortThreshold:
    """An abort threshold θ (abort when early confidence ``< threshold``) and what it does.

    ``tokens_saved_share``: tokens after the checkpoint of aborted wrong answers, over all tokens
    generated for all answers (so 0.2 means a fifth of the whole generation budget is saved).
    ``wrong_aborted_share``: aborted wrong answers over wrong answers (0 if there are none).
    ``correct_lost_share``: aborted correct answers over correct answers (0 if there are none).
    """

    threshold: float
    tokens_saved_share: float
    wrong_aborted_share: float
    correct_lost_share: float
    n_aborted: int
    tokens_saved: int


def accuracy_coverage(
    conf: Sequence[float] | Array,
    labels: Sequence[int | bool] | Array,
    thresholds: Sequence[float] | Array | None = None,
) -> list[CoveragePoint]:
    """Accuracy-coverage curve: for each δ, accept answers with ``conf >= δ``.

    ``thresholds`` defaults to the distinct confidence values, ascending (the first accepts all).
    Each point is ``(δ, coverage, accuracy_of_accepted, n_accepted)``.
    """
    c, y = _prepare(conf, labels)
    deltas = np.unique(c) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if deltas.ndim != 1 or deltas.size == 0:
        raise MetricError("thresholds must be a non-empty 1-D sequence (or None for the observed values)")
    if np.isnan(deltas).any():
        raise MetricError("thresholds contain NaN")
    points: list[CoveragePoint] = []
    for delta in deltas:
        accepted = c >= delta
        n = int(accepted.sum())
        acc = float(y[accepted].mean()) if n else float("nan")
        points.append(CoveragePoint(float(delta), n / c.size, acc, n))
    return points


def suggest_accept_threshold(
    conf: Sequence[float] | Array,
    labels: Sequence[int | bool] | Array,
    target_precision: float,
    *,
    min_accepted: int = 1,
) -> AcceptThreshold:
    """Smallest δ (so maximal coverage) whose accepted answers are correct at least ``target_precision``.

    Only thresholds accepting at least ``min_accepted`` answers count (raise it to avoid a δ that
    keeps a handful of lucky answers). Raises :class:`MetricError` naming the best precision
    reachable when no δ meets the target.
    """
    if not 0.0 < target_precision <= 1.0:
        raise ConfigError(f"target_precision={target_precision}: use a value in (0, 1], e.g. 0.9")
    if min_accepted < 1:
        raise ConfigError(f"min_accepted={min_accepted}: use 1 or more")
    eligible = [p for p in accuracy_coverage(conf, labels) if p.n_accepted >= min_accepted]
    if not eligible:
        raise MetricError(f"no threshold accepts at least {min_accepted} answers; lower min_accepted")
    for p in eligible:  # ascending δ: the first that meets the target has the largest coverage
        if p.accuracy >= target_precision:
            return AcceptThreshold(p.threshold, p.coverage, p.accuracy, p.n_accepted)
    best = max(eligible, key=lambda p: (p.accuracy, p.coverage))
    raise MetricError(
        f"target precision {target_precision:.3f} is unreachable: the best precision reachable is "
        f"{best.accuracy:.3f} (δ={best.threshold:.3f}, coverage {best.coverage:.3f}, "
        f"{best.n_accepted} answers accepted); lower the target or improve the confidence estimator"
    )


def _abort_inputs(
    early_conf: Sequence[float] | Array,
    labels: Sequence[int | bool] | Array,
    n_tokens_total: Sequence[int] | NDArray[np.int64],
    n_tokens_at_checkpoint: Sequence[int] | NDArray[np.int64],
) -> tuple[Array, Array, NDArray[np.int64]]:
    c, y = _prepare(early_conf, labels)
    total = np.asarray(n_tokens_total)
    at = np.asarray(n_tokens_at_checkpoint)
    for name, arr in (("n_tokens_total", total), ("n_tokens_at_checkpoint", at)):
        if arr.shape != c.shape:
            raise MetricError(f"{name} has {arr.size} values for {c.size} answers; give one per answer")
        if not np.issubdtype(arr.dtype, np.integer):
            raise MetricError(f"{name} must hold integer token counts")
        if (arr < 0).any():
            raise MetricError(f"{name} must not be negative")
    if (at > total).any():
        i = int(np.argmax(at > total))
        raise MetricError(
            f"answer {i}: checkpoint at token {int(at[i])} is after the answer's end ({int(total[i])} tokens)"
        )
    if total.sum() == 0:
        raise MetricError("all answers have 0 tokens; nothing to save")
    return c, y, (total - at).astype(np.int64)


def abort_tradeoff(
    early_conf: Sequence[float] | Array,
    labels: Sequence[int | bool] | Array,
    n_tokens_total: Sequence[int] | NDArray[np.int64],
    n_tokens_at_checkpoint: Sequence[int] | NDArray[np.int64],
) -> list[AbortThreshold]:
    """The whole abort curve: one :class:`AbortThreshold` per candidate θ, ascending.

    Candidates are the distinct early confidences (θ = the smallest aborts nothing) plus the
    next float above the largest (aborts everything). Savings and losses grow with θ.
    """
    c, y, remaining = _abort_inputs(early_conf, labels, n_tokens_total, n_tokens_at_checkpoint)
    wrong = y == 0.0
    correct = ~wrong
    n_wrong, n_correct = int(wrong.sum()), int(correct.sum())
    total_tokens = int(np.asarray(n_tokens_total).sum())
    values = np.unique(c)
    candidates = [*values.tolist(), float(np.nextafter(values[-1], np.inf))]
    curve: list[AbortThreshold] = []
    for theta in candidates:
        aborted = c < theta
        saved = int(remaining[aborted & wrong].sum())
        curve.append(
            AbortThreshold(
                threshold=float(theta),
                tokens_saved_share=saved / total_tokens,
                wrong_aborted_share=int((aborted & wrong).sum()) / n_wrong if n_wrong else 0.0,
                correct_lost_share=int((aborted & correct).sum()) / n_correct if n_correct else 0.0,
                n_aborted=int(aborted.sum()),
                tokens_saved=saved,
            )
        )
    return curve


def suggest_abort_threshold(
    early_conf: Sequence[float] | Array,
    labels: Sequence[int | bool] | Array,
    n_tokens_total: Sequence[int] | NDArray[np.int64],
    n_tokens_at_checkpoint: Sequence[int] | NDArray[np.int64],
    max_correct_lost: float,
) -> AbortThreshold:
    """θ that saves the most tokens on wrong answers while losing at most ``max_correct_lost`` of correct ones.

    Among thresholds with equal savings the smallest (fewest correct answers lost) wins. θ = the
    smallest early confidence (abort nothing) is always feasible, so this never fails on valid input.
    """
    if not 0.0 <= max_correct_lost <= 1.0:
        raise ConfigError(f"max_correct_lost={max_correct_lost}: use a share in [0, 1], e.g. 0.05")
    curve = abort_tradeoff(early_conf, labels, n_tokens_total, n_tokens_at_checkpoint)
    feasible = [p for p in curve if p.correct_lost_share <= max_correct_lost + 1e-12]  # 1/10 vs 0.1
    best = feasible[0]
    for p in feasible[1:]:  # ascending θ: strictly more savings needed to move up
        if p.tokens_saved > best.tokens_saved:
            best = p
    return best
