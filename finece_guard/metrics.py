"""Calibration and discrimination metrics: ECE, AUROC, Brier, accuracy, bootstrap intervals.

Each metric is computed once, by a vectorised *unchecked* kernel (``ece_unchecked`` ...) that
takes float arrays as they are: bootstrap loops (1000 resamples x dozens of series in a report)
call the kernels directly, since validating every resample would cost more than the metric. The
public functions validate first: empty or mismatched inputs and single-class labels (AUROC is
undefined there) raise :class:`~finece_guard.errors.MetricError` naming the problem.

* ECE: equal-width bins over [0, 1], as in the paper;
* AUROC: the Mann-Whitney statistic with tied ranks averaged (equal to sklearn's ``roc_auc_score``);
* Brier: mean squared error between confidence and correctness.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

from finece_guard.errors import MetricError

__all__ = [
    "UNCHECKED",
    "Interval",
    "accuracy",
    "accuracy_unchecked",
    "auroc",
    "auroc_unchecked",
    "bootstrap",
    "bootstrap_indices",
    "brier",
    "brier_unchecked",
    "ece",
    "ece_unchecked",
]

Array = NDArray[np.float64]


def _prepare(confidences: Sequence[float] | Array, labels: Sequence[int | bool] | Array) -> tuple[Array, Array]:
    c = np.asarray(confidences, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if c.ndim != 1 or y.ndim != 1:
        raise MetricError("confidences and labels must be 1-D sequences")
    if c.size == 0:
        raise MetricError("no predictions given: confidences and labels are empty")
    if c.size != y.size:
        raise MetricError(f"{c.size} confidences but {y.size} labels; give one label per confidence")
    if np.isnan(c).any():
        raise MetricError("confidences contain NaN; drop unscored items before computing metrics")
    if ((c < 0) | (c > 1)).any():
        raise MetricError("confidences must lie in [0, 1]")
    if not np.isin(y, (0.0, 1.0)).all():
        raise MetricError("labels must be 0/1 (or False/True)")
    return c, y


def ece_unchecked(c: Array, y: Array, n_bins: int = 10) -> float:
    """ECE of float arrays ``c`` (in [0, 1]) and ``y`` (0/1), unvalidated: sum over bins of |Σc - Σy| / n."""
    bins = np.minimum((c * n_bins).astype(int), n_bins - 1)
    sum_c = np.bincount(bins, weights=c, minlength=n_bins)
    sum_y = np.bincount(bins, weights=y, minlength=n_bins)
    return float(np.abs(sum_c - sum_y).sum() / c.size)


def auroc_unchecked(c: Array, y: Array) -> float:
    """AUROC of float arrays as the Mann-Whitney statistic (tied ranks averaged); raises on one class."""
    n1 = float(y.sum())
    n0 = float(y.size) - n1
    if n1 == 0 or n0 == 0:
        raise MetricError("AUROC needs both correct and incorrect answers")
    ranks = rankdata(c)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def brier_unchecked(c: Array, y: Array) -> float:
    """Brier score of float arrays, unvalidated."""
    return float(np.mean((c - y) ** 2))


def accuracy_unchecked(c: Array, y: Array) -> float:
    """Share of correct answers (``c`` is ignored: the signature of the other kernels, for bootstrap)."""
    return float(y.mean())


#: the kernels by report name, for bootstrap loops
UNCHECKED: dict[str, Callable[[Array, Array], float]] = {
    "ece": ece_unchecked,
    "auroc": auroc_unchecked,
    "brier": brier_unchecked,
    "accuracy": accuracy_unchecked,
}


def ece(confidences: Sequence[float] | Array, labels: Sequence[int | bool] | Array, *, n_bins: int = 10) -> float:
    """Expected calibration error with ``n_bins`` equal-width bins over [0, 1]."""
    if n_bins < 1:
        raise MetricError(f"n_bins={n_bins} must be at least 1")
    c, y = _prepare(confidences, labels)
    return ece_unchecked(c, y, n_bins)


def auroc(confidences: Sequence[float] | Array, labels: Sequence[int | bool] | Array) -> float:
    """Area under the ROC curve of confidence as a predictor of correctness."""
    c, y = _prepare(confidences, labels)
    if np.unique(y).size < 2:
        raise MetricError(
            f"AUROC needs both correct and incorrect answers; all labels are {int(y[0])}. Evaluate on more questions."
        )
    return auroc_unchecked(c, y)


def brier(confidences: Sequence[float] | Array, labels: Sequence[int | bool] | Array) -> float:
    """Mean squared error between confidence and correctness."""
    c, y = _prepare(confidences, labels)
    return brier_unchecked(c, y)


def accuracy(labels: Sequence[int | bool] | Array) -> float:
    """Share of correct answers."""
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 1 or y.size == 0:
        raise MetricError("no labels given: pass a non-empty 1-D sequence of 0/1")
    if not np.isin(y, (0.0, 1.0)).all():
        raise MetricError("labels must be 0/1 (or False/True)")
    return float(y.mean())


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    value: float
    low: float
    high: float
    n_resamples: int

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def _check_bootstrap(level: float, n_resamples: int) -> None:
    if not 0.0 < level < 1.0:
        raise MetricError(f"level={level} must be in (0, 1)")
    if n_resamples < 1:
        raise MetricError(f"n_resamples={n_resamples} must be at least 1 (1000 is typical)")


def bootstrap_indices(
    statistic: Callable[[NDArray[np.intp]], float],
    n: int,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, int]:
    """``(low, high, resamples used)``: percentile interval of ``statistic`` over resampled indices.

    ``statistic`` gets the indices of one resample of ``n`` items (drawn with replacement), so any
    statistic of paired data can be bootstrapped, e.g. the difference of two estimators' AUROC on
    the same answers. Resamples on which it raises :class:`MetricError` are skipped; if fewer than
    half remain, a MetricError says so.
    """
    _check_bootstrap(level, n_resamples)
    rng = np.random.default_rng(seed)
    stats: list[float] = []
    for _ in range(n_resamples):
        idx = rng.integers(0, n, n)
        try:
            stats.append(statistic(idx))
        except MetricError:
            continue
    if len(stats) < n_resamples / 2:
        raise MetricError(f"only {len(stats)} of {n_resamples} resamples gave a defined value")
    lo, hi = np.quantile(stats, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi), len(stats)


def bootstrap(
    metric: Callable[[Array, Array], float],
    confidences: Sequence[float] | Array,
    labels: Sequence[int | bool] | Array,
    *,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``metric(confidences, labels)`` over paired resamples.

    Resamples on which the metric is undefined (e.g. one class for AUROC) are skipped; if too
    few remain (< half), a MetricError says so.
    """
    _check_bootstrap(level, n_resamples)
    c, y = _prepare(confidences, labels)
    point = metric(c, y)
    low, high, used = bootstrap_indices(
        lambda idx: metric(c[idx], y[idx]), c.size, n_resamples=n_resamples, level=level, seed=seed
    )
    return Interval(value=point, low=low, high=high, n_resamples=used)
