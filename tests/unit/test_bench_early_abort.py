"""The early-abort benchmark's replay arithmetic (benchmarks/early_abort.py) on hand-made records."""

from __future__ import annotations

import pytest

from benchmarks.early_abort import strategy_curve
from finece_guard.evaluation.harness import AnswerRecord, StateScore, StrategyTrace


def rec(i: int, correct: bool, first: float, at: int, total: int) -> AnswerRecord:
    trace = StrategyTrace((0, at, total), ("q", "p", "f"), (0.5, first, 0.5), (0.5, first, 0.5))
    return AnswerRecord(
        key=f"t:{i}", task="t", record_id=str(i), partition="test", question="q", answer="a", correct=correct,
        final=None, n_tokens=total, finish_reason="stop", tokens=(), token_logprobs=(),
        states=(StateScore("question", 0, 0.5, 0, 1), StateScore("final", total, 0.5, 0, 1)),
        strategies={"paragraph": trace}, baselines={},
    )  # fmt: skip


def test_threshold_rows_count_saved_tokens_and_lost_correct_answers() -> None:
    records = [
        rec(0, False, 0.1, 10, 100),  # wrong, aborted at θ >= 0.2: saves 90
        rec(1, False, 0.35, 20, 50),  # wrong, aborted at θ >= 0.4: saves 30
        rec(2, True, 0.42, 5, 50),  # correct, lost at θ >= 0.45
        rec(3, True, 0.9, 5, 50),  # never aborted below 0.7
    ]
    rows = {r["threshold"]: r for r in strategy_curve(records, "paragraph", (0.2, 0.4, 0.45, 0.7))}
    total, wrong = 250, 150
    assert rows[0.2]["aborted"] == 1 and rows[0.2]["tokens_saved_share_of_all"] == pytest.approx(90 / total)
    assert rows[0.4]["tokens_saved_share_of_wrong"] == pytest.approx(120 / wrong)
    assert rows[0.4]["wrong_aborted_share"] == 1.0 and rows[0.4]["correct_lost_share"] == 0.0
    assert rows[0.45]["correct_lost_share"] == 0.5 and rows[0.45]["aborted"] == 3
    assert rows[0.7]["tokens_saved_share_of_all"] == pytest.approx(120 / total)  # correct answers save nothing


def test_thresholds_follow_the_score_distribution() -> None:
    from benchmarks.early_abort import thresholds_for

    records = [rec(i, i % 2 == 0, 0.2 + 0.001 * i, 5, 50) for i in range(100)]
    ths = thresholds_for(records, "paragraph")
    assert ths[0] == pytest.approx(0.205, abs=1e-3) and 0.5 in ths and ths == sorted(ths)
