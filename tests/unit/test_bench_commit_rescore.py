"""Unit tests for benchmarks/commit_rescore.py's statistics (the served part runs in benchmarks only)."""

from __future__ import annotations

import pytest

from benchmarks.commit_rescore import _auc, _paired, reuse_unchanged


def test_auc_reports_one_class_instead_of_raising() -> None:
    out = _auc([0.2, 0.9], [True, True], 50)
    assert out["auroc"] is None and "both" in out["error"] and out["n"] == 2


def test_auc_interval_brackets_the_point() -> None:
    conf = [0.1, 0.2, 0.3, 0.6, 0.7, 0.4, 0.8, 0.9]
    labels = [False, False, True, False, True, True, True, True]
    out = _auc(conf, labels, 200)
    assert out["low"] <= out["auroc"] <= out["high"] and out["auroc"] == pytest.approx(13 / 15)


def test_paired_difference_has_the_sign_of_the_better_scorer() -> None:
    labels = [i % 2 == 0 for i in range(40)]
    good = [0.9 if y else 0.1 for y in labels]
    noise = [(i * 7 % 10) / 10 for i in range(40)]
    out = _paired(good, noise, labels, 200)
    assert out["delta"] > 0.3 and out["low"] > 0
    assert _paired(noise, good, labels, 200)["delta"] == pytest.approx(-out["delta"])


def test_unchanged_answers_keep_their_free_score() -> None:
    assert reuse_unchanged([0.1, 0.2, 0.3, 0.4], [1, 3], [0.9, 0.8]) == [0.1, 0.9, 0.3, 0.8]
    assert reuse_unchanged([0.5], [], []) == [0.5]


def test_mismatched_rescores_are_refused() -> None:
    with pytest.raises(ValueError, match="2 changed answers but 1"):
        reuse_unchanged([0.1, 0.2], [0, 1], [0.3])
