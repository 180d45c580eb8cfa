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
