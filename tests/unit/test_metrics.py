"""Unit tests for finece_guard.metrics with hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from finece_guard.errors import FineCEError, MetricError
from finece_guard.metrics import Interval, accuracy, auroc, bootstrap, brier, ece

# --------------------------------------------------------------------------- ECE

CONF4 = [0.2, 0.4, 0.6, 0.8]
LAB4 = [0, 1, 1, 1]


def test_ece_two_bins_hand_computed() -> None:
    # bins: 0.2*2=0.4->0, 0.4*2=0.8->0, 0.6*2=1.2->1, 0.8*2=1.6->1
    # bin 0: mean conf 0.3, acc 0.5 -> |0.3-0.5| = 0.2, weight 2/4 -> 0.10
    # bin 1: mean conf 0.7, acc 1.0 -> |0.7-1.0| = 0.3, weight 2/4 -> 0.15
    # ECE = 0.25
    assert ece(CONF4, LAB4, n_bins=2) == pytest.approx(0.25)


def test_ece_bin_count_changes_value() -> None:
    # 4 bins: one item per bin: (|0.2-0| + |0.4-1| + |0.6-1| + |0.8-1|)/4 = (0.2+0.6+0.4+0.2)/4 = 0.35
    assert ece(CONF4, LAB4, n_bins=4) == pytest.approx(0.35)
    # 1 bin: |mean conf 0.5 - acc 0.75| = 0.25
    assert ece(CONF4, LAB4, n_bins=1) == pytest.approx(0.25)
    assert ece(CONF4, LAB4, n_bins=4) != pytest.approx(ece(CONF4, LAB4, n_bins=2))


def test_ece_default_ten_bins() -> None:
    # 10 bins: 0.2->bin 2, 0.4->4, 0.6->6, 0.8->8: one item per bin, same as 4 bins -> 0.35
    assert ece(CONF4, LAB4) == pytest.approx(0.35)


def test_ece_perfect_calibration_is_zero() -> None:
    # 0.25 bin: 1 of 4 correct (acc 0.25) ; 0.75 bin: 3 of 4 correct (acc 0.75)
    conf = [0.25] * 4 + [0.75] * 4
    lab = [1, 0, 0, 0, 1, 1, 1, 0]
    assert ece(conf, lab) == pytest.approx(0.0, abs=1e-12)
    assert ece([1.0, 0.0], [1, 0]) == pytest.approx(0.0, abs=1e-12)


def test_ece_bin_edge_goes_to_upper_bin() -> None:
    # n_bins=2: 0.4 -> bin 0, 0.5 -> int(1.0) = bin 1
    # bin 0: |0.4 - 0| * 1/2 = 0.2 ; bin 1: |0.5 - 1| * 1/2 = 0.25 -> 0.45
    # (if 0.5 fell in bin 0: |0.45 - 0.5| = 0.05)
    assert ece([0.4, 0.5], [0, 1], n_bins=2) == pytest.approx(0.45)


def test_ece_confidence_one_falls_in_last_bin() -> None:
    # 1.0*10 = 10 -> clamped to bin 9, shared with 0.9: mean conf 0.95, acc 1 -> 0.05
    assert ece([1.0, 0.9], [1, 1], n_bins=10) == pytest.approx(0.05)


def test_ece_accepts_bool_labels_and_numpy() -> None:
    assert ece(np.array(CONF4), [False, True, True, True], n_bins=2) == pytest.approx(0.25)


@pytest.mark.parametrize("n_bins", [0, -1])
def test_ece_invalid_bins(n_bins: int) -> None:
    with pytest.raises(MetricError, match="n_bins"):
        ece(CONF4, LAB4, n_bins=n_bins)


# --------------------------------------------------------------------------- AUROC


def test_auroc_hand_computed() -> None:
    # positives {0.35, 0.8}, negatives {0.1, 0.4}; pairs (pos > neg):
    # 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes -> 3/4
    assert auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)


def test_auroc_ties_count_half() -> None:
    # positives {0.5, 0.8}, negatives {0.5, 0.2}:
    # 0.5 vs 0.5 tie = 0.5, 0.5>0.2 = 1, 0.8>0.5 = 1, 0.8>0.2 = 1 -> 3.5/4 = 0.875
    assert auroc([0.5, 0.5, 0.2, 0.8], [1, 0, 0, 1]) == pytest.approx(0.875)


def test_auroc_all_tied_is_half_and_extremes() -> None:
    assert auroc([0.5, 0.5, 0.5], [1, 0, 1]) == pytest.approx(0.5)
    assert auroc([0.1, 0.9], [0, 1]) == pytest.approx(1.0)
    assert auroc([0.9, 0.1], [0, 1]) == pytest.approx(0.0)


@pytest.mark.parametrize("labels", [[1, 1, 1], [0, 0, 0]])
def test_auroc_single_class_raises_helpful(labels: list[int]) -> None:
    with pytest.raises(MetricError, match="both correct and incorrect") as ei:
        auroc([0.2, 0.5, 0.7], labels)
    assert f"all labels are {labels[0]}" in str(ei.value)


# --------------------------------------------------------------------------- Brier / accuracy


def test_brier_hand_computed() -> None:
    # ((0.9-1)^2 + (0.2-0)^2 + (0.6-0)^2) / 3 = (0.01 + 0.04 + 0.36)/3 = 0.41/3
    assert brier([0.9, 0.2, 0.6], [1, 0, 0]) == pytest.approx(0.41 / 3)


def test_brier_single_class() -> None:
    # all correct: ((0.9-1)^2 + (0.7-1)^2)/2 = (0.01 + 0.09)/2 = 0.05
    assert brier([0.9, 0.7], [1, 1]) == pytest.approx(0.05)
    # all wrong: (0.2^2 + 0.4^2)/2 = (0.04 + 0.16)/2 = 0.1
    assert brier([0.2, 0.4], [0, 0]) == pytest.approx(0.1)


def test_accuracy() -> None:
    assert accuracy([1, 0, 1, 1]) == pytest.approx(0.75)
    assert accuracy([True, False]) == pytest.approx(0.5)
    assert accuracy(np.array([0, 0, 0])) == 0.0


def test_accuracy_empty_raises() -> None:
    with pytest.raises(MetricError, match="no labels"):
        accuracy([])


@pytest.mark.parametrize("labels", [[0, 2], [1, math.nan]])
def test_accuracy_rejects_invalid_labels(labels: list[float]) -> None:
    with pytest.raises(MetricError):
        accuracy(labels)


# --------------------------------------------------------------------------- input validation

ALL_METRICS = [ece, auroc, brier]


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_empty_inputs_raise(metric) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MetricError, match="empty"):
        metric([], [])


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_mismatched_lengths_raise(metric) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MetricError, match="3 confidences but 2 labels"):
        metric([0.1, 0.5, 0.9], [0, 1])


@pytest.mark.parametrize("metric", ALL_METRICS)
def test_nan_confidence_raises(metric) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MetricError, match="NaN"):
        metric([0.1, math.nan], [0, 1])


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize("bad", [1.5, -0.1, math.inf])
def test_out_of_range_confidence_raises(metric, bad: float) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MetricError, match=r"\[0, 1\]"):
        metric([0.1, bad], [0, 1])


@pytest.mark.parametrize("metric", ALL_METRICS)
@pytest.mark.parametrize("labels", [[0, 2], [0, 0.5], [-1, 1], [0, math.nan]])
def test_non_binary_labels_raise(metric, labels: list[float]) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MetricError, match="0/1"):
        metric([0.1, 0.9], labels)


def test_two_dimensional_input_raises() -> None:
    with pytest.raises(MetricError, match="1-D"):
        ece([[0.1, 0.2]], [[0, 1]])


def test_metric_error_is_value_error() -> None:
    with pytest.raises(ValueError):
        brier([], [])
    with pytest.raises(FineCEError):
        brier([], [])


# --------------------------------------------------------------------------- bootstrap

RNG_CONF = [0.05, 0.1, 0.2, 0.3, 0.35, 0.4, 0.5, 0.55, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98]
RNG_LAB = [0, 0, 0, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1]


def test_bootstrap_interval_contains_point_estimate() -> None:
    iv = bootstrap(auroc, RNG_CONF, RNG_LAB, n_resamples=300, seed=1)
    assert iv.value == pytest.approx(auroc(RNG_CONF, RNG_LAB))
    assert iv.low <= iv.value <= iv.high
    assert iv.low < iv.high
    assert iv.low >= 0.0 and iv.high <= 1.0


def test_bootstrap_brier_interval_contains_point_estimate() -> None:
    iv = bootstrap(brier, RNG_CONF, RNG_LAB, n_resamples=300, seed=3)
    assert iv.value == pytest.approx(brier(RNG_CONF, RNG_LAB))
    assert iv.low <= iv.value <= iv.high
    assert iv.n_resamples == 300  # brier is defined on every resample


def test_bootstrap_deterministic_for_seed() -> None:
    a = bootstrap(auroc, RNG_CONF, RNG_LAB, n_resamples=200, seed=7)
    b = bootstrap(auroc, RNG_CONF, RNG_LAB, n_resamples=200, seed=7)
    c = bootstrap(auroc, RNG_CONF, RNG_LAB, n_resamples=200, seed=8)
    assert a == b
    assert (c.low, c.high) != (a.low, a.high)


def test_bootstrap_narrower_level_gives_narrower_interval() -> None:
    wide = bootstrap(brier, RNG_CONF, RNG_LAB, n_resamples=300, level=0.95, seed=0)
    narrow = bootstrap(brier, RNG_CONF, RNG_LAB, n_resamples=300, level=0.5, seed=0)
    assert wide.low <= narrow.low <= narrow.high <= wide.high
    assert (narrow.high - narrow.low) < (wide.high - wide.low)


def test_bootstrap_skips_single_class_resamples() -> None:
    # 3 items, one negative: P(resample single-class) = (1/3)^3 + (2/3)^3 = 9/27 = 1/3,
    # so roughly 2/3 of the 300 resamples are kept (well over half, so no error)
    iv = bootstrap(auroc, [0.1, 0.6, 0.8], [0, 1, 1], n_resamples=300, seed=0)
    assert 150 <= iv.n_resamples < 300
    assert iv.value == pytest.approx(1.0)


def test_bootstrap_raises_when_too_few_defined_resamples() -> None:
    def only_without_duplicates(c: np.ndarray, y: np.ndarray) -> float:
        # undefined unless the resample is a permutation: P = 10!/10^10 ~ 3.6e-4
        if np.unique(c).size != c.size:
            raise MetricError("undefined on this resample")
        return float(c.mean())

    conf = [i / 10 for i in range(10)]
    with pytest.raises(MetricError, match=r"of 100 resamples gave a defined value"):
        bootstrap(only_without_duplicates, conf, [0, 1] * 5, n_resamples=100, seed=0)


@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.2])
def test_bootstrap_invalid_level(level: float) -> None:
    with pytest.raises(MetricError, match="level"):
        bootstrap(brier, RNG_CONF, RNG_LAB, level=level)


def test_bootstrap_validates_inputs() -> None:
    with pytest.raises(MetricError, match="empty"):
        bootstrap(brier, [], [])


def test_bootstrap_zero_resamples_raises_metric_error() -> None:
    with pytest.raises(MetricError):
        bootstrap(brier, RNG_CONF, RNG_LAB, n_resamples=0)


def test_interval_str() -> None:
    assert str(Interval(value=0.5, low=0.25, high=0.75, n_resamples=10)) == "0.500 [0.250, 0.750]"
