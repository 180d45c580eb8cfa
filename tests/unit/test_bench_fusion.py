"""Early-abort arithmetic of benchmarks/fusion_fit.py: largest θ within the correct-answer loss bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from benchmarks.fusion_fit import early_abort


@dataclass
class _Rec:
    correct: bool
    n_tokens: int


def test_early_abort_saves_wrong_tokens_within_the_loss_bound() -> None:
    recs: list[Any] = [_Rec(True, 100)] * 20 + [_Rec(False, 100)] * 10
    values = [0.8] * 19 + [0.1] + [0.05] * 5 + [0.9] * 5  # one correct answer scores as low as the wrong ones
    at = [20] * 30  # p(1) after 20 tokens
    got = early_abort(values, recs, at, max_correct_lost=0.05)
    assert got["theta"] == pytest.approx(0.8) and got["correct_lost"] == pytest.approx(1 / 20)
    assert got["wrong_tokens_saved"] == pytest.approx(5 * 80 / 1000)
    strict = early_abort(values, recs, at, max_correct_lost=0.0)  # no correct answer may be lost
    assert strict["theta"] == pytest.approx(0.1) and strict["wrong_tokens_saved"] == pytest.approx(5 * 80 / 1000)


def test_a_section_counts_only_the_answers_where_the_position_exists() -> None:
    from benchmarks.fusion_fit import _section

    nan = float("nan")
    labels = [True, False, True, False, True, False] + [True] * 6
    values = [0.9, 0.2, 0.8, 0.3, 0.7, 0.1] + [nan] * 6  # p(1) exists for the first six answers only
    cols = {"FineCE (raw)": values, "FineCE+ (fused)": values, "min_token_prob": values}
    sec, lines = _section("pooled: p(1)", cols, labels, 20, ("min_token_prob",))
    assert sec["n"] == 6 and sec["accuracy"] == pytest.approx(0.5)
    assert sec["metrics"]["FineCE (raw)"]["n"] == 6
    assert lines[0] == "#### pooled: p(1) (n = 6 of 12 answers, accuracy 0.500)"


def test_a_dev_theta_is_applied_unchanged_to_other_answers() -> None:
    from benchmarks.fusion_fit import abort_at

    dev: list[Any] = [_Rec(True, 100)] * 10 + [_Rec(False, 100)] * 10
    dev_values = [0.6] * 10 + [0.2] * 10
    theta = early_abort(dev_values, dev, [20] * 20)["theta"]
    assert theta == pytest.approx(0.6)  # the largest θ that loses no correct dev answer
    test: list[Any] = [_Rec(True, 50)] * 4 + [_Rec(False, 50)] * 4
    test_values = [0.5, 0.7, 0.7, 0.7, 0.1, 0.1, 0.9, 0.9]  # one correct answer falls below the dev θ
    got = abort_at(test_values, test, [10] * 8, theta)
    assert got["correct_lost"] == pytest.approx(1 / 4)  # what the dev θ costs here, not the test-optimal θ
    assert got["wrong_tokens_saved"] == pytest.approx(2 * 40 / 200)
