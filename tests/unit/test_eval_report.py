"""Unit tests for the evaluation report (finece_guard.evaluation.report) on synthetic records."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from finece_guard.backends.recalibration import IsotonicRecalibrator
from finece_guard.errors import MetricError
from finece_guard.evaluation.markdown import fmt_cell, render_markdown
from finece_guard.evaluation.records import BASELINES, AnswerRecord, StateScore, StrategyTrace
from finece_guard.evaluation.report import build_report, write_report
from finece_guard.evaluation.settings import EvalConfig
from finece_guard.evaluation.tables import (
    ALL,
    BASELINE_LABELS,
    FINECE_FULL,
    FINECE_QUESTION,
    FINECE_RECAL,
    POSITIONS,
    cell,
)
from finece_guard.metrics import auroc, auroc_unchecked, brier, brier_unchecked, ece, ece_unchecked
from finece_guard.runtime.bci import refine

STRATEGIES = ("paragraph", "periodic:32")
CONFIG = EvalConfig(strategies=STRATEGIES, sc_n=3)


def synthetic(task: str, n: int, seed: int) -> list[AnswerRecord]:
    """Answers whose FineCE scores carry signal: correct ones score higher on average."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        correct = rng.random() < 0.5
        total = rng.randint(20, 120)
        strategies = {}
        for name in STRATEGIES:
            n_partial = rng.randint(0, 3)
            cuts = sorted(rng.sample(range(1, total), n_partial))
            raw = tuple(min(1.0, max(0.0, rng.gauss(0.65 if correct else 0.35, 0.15))) for _ in range(n_partial + 2))
            bci = tuple(float(v) for v in refine(list(raw)) if v is not None)
            strategies[name] = StrategyTrace(
                (0, *cuts, total), ("question only", *["cut"] * n_partial, "full answer"), raw, bci
            )
        first = strategies[STRATEGIES[0]]
        states = (
            StateScore("question", 0, first.raw[0], 0.1, 0.9),
            StateScore("final", total, first.raw[-1], 0.1, 0.9),
        )
        baselines: dict[str, float | None] = {
            name: min(1.0, max(0.0, rng.gauss(0.6 if correct else 0.45, 0.2))) for name in BASELINES
        }
        if i == 0:
            baselines["verbalized"] = None  # unparseable reply: left out of its row only
        out.append(AnswerRecord(
            key=f"{task}:{task}/{i}", task=task, record_id=f"{task}/{i}", partition="test", question=f"q{i}",
            answer="a", correct=correct, final="A", n_tokens=total, finish_reason="stop" if i else "length",
            tokens=(), token_logprobs=(), states=states, strategies=strategies, baselines=baselines,
        ))  # fmt: skip
    return out


RECORDS = synthetic("arc_easy", 40, 1) + synthetic("sciq", 30, 2)


def test_metric_kernels_equal_reference_implementations() -> None:
    from sklearn.metrics import brier_score_loss, roc_auc_score

    def ece_by_bins(c: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:  # the textbook definition
        bins = np.minimum((c * n_bins).astype(int), n_bins - 1)
        return float(sum((bins == b).mean() * abs(c[bins == b].mean() - y[bins == b].mean())
                         for b in range(n_bins) if (bins == b).any()))  # fmt: skip

    rng = np.random.default_rng(0)
    for _ in range(20):
        c = np.round(rng.random(50), 1)  # many ties
        y = (rng.random(50) < c).astype(float)
        if y.min() == y.max():
            continue
        assert ece_unchecked(c, y) == ece(c, y) == pytest.approx(ece_by_bins(c, y), abs=1e-12)
        assert auroc_unchecked(c, y) == auroc(c, y) == pytest.approx(roc_auc_score(y, c), abs=1e-12)
        assert brier_unchecked(c, y) == brier(c, y) == pytest.approx(brier_score_loss(y, c), abs=1e-12)
    with pytest.raises(MetricError):
        auroc_unchecked(np.array([0.2, 0.4]), np.array([1.0, 1.0]))


def test_cell_intervals_and_undefined() -> None:
    c = cell("ece", [0.9, 0.8, 0.2, 0.1, 0.7, 0.3], [1, 1, 0, 0, 1, 0], n_resamples=200, seed=0)
    assert c["value"] is not None and c["low"] <= c["value"] <= c["high"] and c["n"] == 6
    one_class = cell("auroc", [0.9, 0.8], [1, 1], n_resamples=200, seed=0)
    assert one_class["value"] is None and "both correct and incorrect" in one_class["error"]
    assert fmt_cell(one_class) == "n/a"
    assert cell("brier", [], [], n_resamples=200, seed=0)["error"] == "no answers"


def test_table_shapes() -> None:
    recal = IsotonicRecalibrator().fit([r.full_score for r in RECORDS], [int(r.correct) for r in RECORDS])
    report = build_report(
        RECORDS, config=CONFIG, recalibrator=recal, recalibration_source={"path": "/x/recalibration.json"},
        n_resamples=200,
    )  # fmt: skip
    methods = [FINECE_QUESTION, FINECE_FULL, FINECE_RECAL, *(BASELINE_LABELS[b] for b in BASELINES)]
    # Table I: one group per task plus the pooled one; every method has ECE/AUROC/Brier with an interval
    assert list(report["table1"]) == ["arc_easy", "sciq", ALL]
    for group, n in (("arc_easy", 40), ("sciq", 30), (ALL, 70)):
        t1 = report["table1"][group]
        assert t1["n"] == n and t1["accuracy"]["low"] is not None
        assert list(t1["methods"]) == methods
        for method, row in t1["methods"].items():
            for metric in ("ece", "auroc", "brier"):
                assert row[metric]["value"] is not None, (group, method, metric)
                # percentile intervals of a biased statistic (ECE) may sit beside the point estimate
                assert row[metric]["low"] <= row[metric]["high"], (group, method, metric)
                assert row[metric]["high"] - row[metric]["low"] < 0.6, (group, method, metric)
            missing = (2 if group == ALL else 1) if method == "Verbalized" else 0  # each task's record 0
            assert row["n"] == n - missing
    # Table II: per group and strategy, question/p(1)/p(z-1)/full, raw and +BCI
    labels = [label + suffix for _, label in POSITIONS for suffix in ("", " +BCI")]
    for group in ("arc_easy", "sciq", ALL):
        assert list(report["table2"][group]) == list(STRATEGIES)
        for name in STRATEGIES:
            rows = report["table2"][group][name]
            assert list(rows) == labels
            assert all(rows[label]["ece"]["low"] is not None for label in labels)
    # BCI leaves the last checkpoint alone: full vs full +BCI identical
    rows = report["table2"]["arc_easy"]["paragraph"]
    assert rows["full"]["ece"]["value"] == rows["full +BCI"]["ece"]["value"]
    # Table IV: one row per group and strategy
    for group in ("arc_easy", "sciq", ALL):
        for name in STRATEGIES:
            row = report["table4"][group][name]
            assert set(row) >= {"ece_p1", "ece_p1_bci", "ece_avg", "ece_avg_bci", "token_ratio"}
            assert 0.0 < row["token_ratio"] <= 1.0
    # recalibration before/after, thresholds, warnings (small n, truncated answers)
    assert (
        report["recalibration"]["groups"][ALL]["after"]["ece"]["value"]
        < (report["recalibration"]["groups"][ALL]["before"]["ece"]["value"])
    )
    assert set(report["thresholds"]["accept"]) == {"raw", "recalibrated"}
    assert set(report["thresholds"]["abort"]) == set(STRATEGIES)
    assert report["run"]["truncated_answers"] == 2
    assert report["baseline_failures"]["verbalized"] == 2


def test_table_four_by_hand() -> None:
    recs = synthetic("arc_easy", 6, 3)
    report = build_report(recs, config=CONFIG, n_resamples=50)
    traces = [r.strategies["paragraph"] for r in recs]
    y = np.array([float(r.correct) for r in recs])
    row = report["table4"]["arc_easy"]["paragraph"]
    assert row["ece_p1"] == pytest.approx(ece([t.at("p1") for t in traces], y))
    pooled_c = [v for t in traces for v in t.raw[1:]]
    pooled_y = [int(r.correct) for r, t in zip(recs, traces, strict=True) for _ in t.raw[1:]]
    assert row["ece_avg"] == pytest.approx(ece(pooled_c, pooled_y))
    assert row["token_ratio"] == pytest.approx(np.mean([t.n_tokens[1] / t.n_tokens[-1] for t in traces]))
    assert list(report["table1"]) == ["arc_easy"]  # one task: no pooled group


def test_markdown_and_files(tmp_path: Path) -> None:
    info = {"adapter": {"path": "/adapters/finece", "trained": False, "note": "UNTRAINED"}, "server_url": "http://x/v1"}
    report = build_report(RECORDS, config=CONFIG, info=info, n_resamples=100)
    assert "UNTRAINED" in report["warnings"][0]
    files = write_report(report, RECORDS, tmp_path)
    names = {f.name for f in files}
    assert {"report.json", "report.md", "reliability.png", "accuracy-coverage.png"} <= names
    assert {"traces-paragraph.png", "traces-periodic-32.png", "traces-paragraph-bci.png"} <= names
    for f in files:
        assert f.is_file() and f.stat().st_size > 0
    assert json.loads((tmp_path / "report.json").read_text())["plots"] == report["plots"]
    md = (tmp_path / "report.md").read_text()
    for heading in ("## Table I", "## Table II", "## Table IV", "## Threshold suggestions", "### arc_easy, paragraph"):
        assert heading in md
    for method in (FINECE_FULL, "P(True)", "Self-consistency", "DeepConf lowest group"):
        assert f"| {method} |" in md
    assert "p(z-1) +BCI" in md and "http://x/v1" in md and "trained=False" in md
    assert md == render_markdown(json.loads((tmp_path / "report.json").read_text()))


def test_empty_records_refused() -> None:
    with pytest.raises(MetricError, match="no evaluated answers"):
        build_report([], config=CONFIG)


def _rec(i: int, p1: float, correct: bool, at: int, total: int) -> AnswerRecord:
    trace = StrategyTrace((0, at, total), ("question only", "cut", "full answer"), (0.5, p1, 0.5), (0.5, p1, 0.5))
    return AnswerRecord(
        key=f"t:t/{i}", task="t", record_id=f"t/{i}", partition="test", question="q", answer="a", correct=correct,
        final=None, n_tokens=total, finish_reason="stop", tokens=(), token_logprobs=(),
        states=(StateScore("question", 0, 0.5, 0, 1), StateScore("final", total, 0.5, 0, 1)),
        strategies={"paragraph": trace}, baselines=dict.fromkeys(BASELINES, 0.5),
    )  # fmt: skip


def test_abort_suggestions_by_hand() -> None:
    # 400 tokens in all; wrong answers at p1 = 0.1 (saves 90) and 0.3 (saves 50); correct at 0.2 and 0.9
    recs = [_rec(0, 0.1, False, 10, 100), _rec(1, 0.2, True, 10, 100), _rec(2, 0.3, False, 50, 100),
            _rec(3, 0.9, True, 10, 100)]  # fmt: skip
    th = build_report(recs, config=EvalConfig(strategies=("paragraph",)), n_resamples=20, max_correct_lost=0.0,
                      token_savings=0.3)["thresholds"]  # fmt: skip
    # losing no correct answer: abort below 0.2 -> only the first wrong answer, 90 of 400 tokens
    assert th["abort"]["paragraph"]["threshold"] == pytest.approx(0.2)
    assert th["abort"]["paragraph"]["tokens_saved_share"] == pytest.approx(90 / 400)
    # saving >= 30% needs θ above 0.3: both wrong answers (140 tokens) and one correct answer lost
    savings = th["abort_for_savings"]["paragraph"]
    assert savings["tokens_saved_share"] == pytest.approx(140 / 400) and savings["correct_lost_share"] == 0.5
    th = build_report(recs, config=EvalConfig(strategies=("paragraph",)), n_resamples=20, token_savings=0.5)[
        "thresholds"
    ]
    assert "the most is 35.0%" in th["abort_for_savings"]["paragraph"]["error"]


def test_table_one_reports_answers_without_a_committed_answer() -> None:
    """Lever 6 of issue 11: every group states how many answers no checker can read, beside accuracy."""
    records = [replace(r, final=None) if i % 4 == 0 else r for i, r in enumerate(RECORDS)]
    report = build_report(records, config=CONFIG, n_resamples=50)
    for group in ("arc_easy", "sciq", ALL):
        mine = [r for r in records if group in (ALL, r.task)]
        assert report["table1"][group]["no_final"] == pytest.approx(sum(r.final is None for r in mine) / len(mine))
    assert report["table1"][ALL]["no_final"] == pytest.approx(18 / 70)
    assert f"no committed answer {18 / 70:.1%})" in render_markdown(report)
