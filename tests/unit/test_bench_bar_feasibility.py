"""Unit tests for the bar-feasibility benchmark: the pieces that turn an AUROC into tokens saved and points gained.

Each must be able to fail on a wrong formula: the binormal draw must hit its AUROC, a perfect score must save
exactly what is left after the first checkpoint, the 5%-lost rule must hold, and the needed AUROC is the first
grid point whose mean reaches the bar.
"""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bar_feasibility import (
    auroc_needed,
    best_abort_saving,
    binormal_scores,
    gating_gain,
    perfect_abort_saving,
)
from benchmarks.gating_curve import perfect_confidence_at
from finece_guard.metrics import auroc


@pytest.mark.parametrize("target", [0.6, 0.75, 0.9])
def test_binormal_scores_have_the_asked_auroc(target):
    labels = np.array([0.0, 1.0] * 5000)
    scores = binormal_scores(labels, target, np.random.default_rng(1))
    assert ((scores > 0) & (scores < 1)).all()
    assert auroc(scores, labels) == pytest.approx(target, abs=0.01)


def test_a_perfect_score_saves_all_that_is_left_after_the_first_checkpoint():
    labels = np.array([0.0, 0.0, 1.0, 1.0])
    total, at = [100, 40, 50, 60], [32, 32, 32, 32]
    assert perfect_abort_saving(labels, total, at) == pytest.approx((68 + 8) / 140)
    perfect = np.array([0.1, 0.2, 0.8, 0.9])
    assert best_abort_saving(perfect, labels, total, at) == pytest.approx((68 + 8) / 140)


def test_the_best_abort_never_loses_more_than_five_percent_of_correct_answers():
    # the lowest score is a correct answer: any abort loses 1 of 2 correct answers (50%) -> nothing saved
    labels = np.array([1.0, 0.0, 0.0, 1.0])
    scores = np.array([0.05, 0.1, 0.2, 0.9])
    assert best_abort_saving(scores, labels, [50, 100, 100, 50], [32, 32, 32, 32]) == 0.0


def test_gating_gain_of_a_perfect_ranking_is_the_perfect_ceiling():
    plain = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    passage = np.array([1.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    random_half = plain.mean() + 0.5 * (passage.mean() - plain.mean())
    ranked = plain + np.linspace(0, 0.1, len(plain))  # wrong ones lowest
    assert gating_gain(ranked, plain, passage) == pytest.approx(
        perfect_confidence_at(plain, passage, 0.5) - random_half
    )


def test_auroc_needed_is_the_first_grid_point_reaching_the_bar():
    rows = [{"auroc": 0.6, "mean": 0.1}, {"auroc": 0.7, "mean": 0.3}, {"auroc": 0.8, "mean": 0.29}]
    assert auroc_needed(rows, 0.3) == 0.7
    assert auroc_needed(rows, 0.5) is None
