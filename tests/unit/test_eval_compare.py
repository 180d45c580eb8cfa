"""Unit tests for re-scoring evaluated answers with a reference adapter (evaluation.compare)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import numpy as np
import pytest

from finece_guard.evaluation.compare import (
    comparison_section,
    paired_difference,
    rescore_records,
    state_requests,
    with_scores,
)
from finece_guard.evaluation.markdown import render_markdown
from finece_guard.evaluation.records import AnswerRecord, StateScore, StrategyTrace, read_records
from finece_guard.evaluation.report import build_report
from finece_guard.metrics import auroc_unchecked
from finece_guard.runtime.bci import refine
from finece_guard.testing import KeywordScorer
from finece_guard.types import CheckpointKind


def record(i: int, correct: bool, task: str = "arc_easy") -> AnswerRecord:
    tokens = ("The", " answer", " is", " B", ".\n\n", "Because", " yes", ".")
    states = (
        StateScore("question", 0, 0.5, 0.1, 0.9),
        StateScore("partial", 5, 0.5, 0.1, 0.9),
        StateScore("partial", 7, 0.5, 0.1, 0.9),
        StateScore("final", 8, 0.5, 0.1, 0.9),
    )
    strategies = {
        "paragraph": StrategyTrace((0, 5, 8), ("question only", "paragraph", "full answer"), (0.5,) * 3, (0.5,) * 3),
        "periodic:2": StrategyTrace((0, 5, 7, 8), ("q", "p", "p", "f"), (0.5,) * 4, (0.5,) * 4),
    }
    return AnswerRecord(
        key=f"{task}:{i}", task=task, record_id=str(i), partition="test", question=f"Q{i}?",
        answer="".join(tokens), correct=correct, final="B", n_tokens=8, finish_reason="stop", tokens=tokens,
        token_logprobs=(-0.1,) * 8, states=states, strategies=strategies, baselines={"mean_token_prob": 0.7},
    )  # fmt: skip


def test_state_requests_rebuild_each_state_from_the_tokens() -> None:
    reqs = state_requests(record(0, True))
    assert reqs == [
        ("Q0?", None, CheckpointKind.QUESTION),
        ("Q0?", "The answer is B.\n\n", CheckpointKind.PARTIAL),
        ("Q0?", "The answer is B.\n\nBecause yes", CheckpointKind.PARTIAL),
        ("Q0?", "The answer is B.\n\nBecause yes.", CheckpointKind.FINAL),
    ]


def test_with_scores_recomputes_every_trace_and_keeps_answer_and_baselines() -> None:
    rec = record(0, True)
    new = with_scores(rec, [(0.1, 0, 1), (0.2, 0, 1), (0.3, 0, 1), (0.9, 0, 1)], alpha=0.5, window=2)
    assert new.strategies["paragraph"].raw == (0.1, 0.2, 0.9)
    assert new.strategies["periodic:2"].raw == (0.1, 0.2, 0.3, 0.9)
    assert new.strategies["paragraph"].bci == tuple(refine([0.1, 0.2, 0.9], alpha=0.5, window=2))
    assert (new.full_score, new.question_score) == (0.9, 0.1)
    assert (new.answer, new.correct, new.baselines) == (rec.answer, rec.correct, rec.baselines)
    with pytest.raises(ValueError, match="3 scores for 4 states"):
        with_scores(rec, [(0.1, 0, 1)] * 3, alpha=0.5, window=2)


def test_paired_difference_is_the_metric_gap_and_its_interval_covers_it() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.5).astype(int)
    good = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    noise = rng.random(200)
    d = paired_difference("auroc", good.tolist(), noise.tolist(), y.tolist(), n_resamples=300, seed=0)
    y_f = y.astype(float)
    assert d["value"] == pytest.approx(auroc_unchecked(good, y_f) - auroc_unchecked(noise, y_f))
    assert d["low"] <= d["value"] <= d["high"]
    assert d["low"] > 0  # a real signal against noise: the interval excludes 0
    same = paired_difference("auroc", good.tolist(), good.tolist(), y.tolist(), n_resamples=100, seed=0)
    assert same["value"] == same["low"] == same["high"] == 0.0
    one_class = paired_difference("auroc", [0.1, 0.2], [0.3, 0.4], [1, 1], n_resamples=10, seed=0)
    assert one_class["value"] is None and "both" in one_class["error"]


def test_rescore_journals_records_resumes_and_lists_failures(tmp_path: Path) -> None:
    records = [record(i, i % 2 == 0) for i in range(6)]

    def rule(question: str, answer: str | None, kind: CheckpointKind) -> float:
        if question == "Q5?":
            return -1.0  # readout failure: listed, not written
        return 0.8 if kind is CheckpointKind.FINAL else 0.3

    out = tmp_path / "records-test.rescored-untrained.jsonl"
    scorer = KeywordScorer(rule)
    run = asyncio.run(rescore_records(records, out, scorer=scorer, alpha=0.5, window=2, meta={"a": 1}))
    assert (run.evaluated, run.done_before, [k for k, _ in run.failed]) == (5, 0, ["arc_easy:5"])
    assert all("ScoreReadoutError" in e for _, e in run.failed)
    got = read_records(out)
    assert [r.full_score for r in got] == [0.8] * 5
    n_calls = len(scorer.calls)
    again = asyncio.run(rescore_records(records, out, scorer=scorer, alpha=0.5, window=2, meta={"a": 1}))
    assert again.done_before == 5 and len(scorer.calls) == n_calls + 4  # only the failed record again
    with pytest.raises(Exception, match="other settings"):
        asyncio.run(rescore_records(records, out, scorer=scorer, alpha=0.5, window=2, meta={"a": 2}))


def test_comparison_section_pairs_by_key_and_renders() -> None:
    rng = random.Random(0)
    this, ref = [], []
    for i in range(60):
        task = "arc_easy" if i % 2 else "sciq"
        correct = rng.random() < 0.5
        r = record(i, correct, task)
        good = min(1.0, max(0.0, rng.gauss(0.7 if correct else 0.3, 0.15)))
        this.append(with_scores(r, [(good, 0, 1)] * 4, alpha=0.5, window=2))
        ref.append(with_scores(r, [(rng.random(), 0, 1)] * 4, alpha=0.5, window=2))
    comp = comparison_section(this, ref[:50], reference_label="untrained", strategy="paragraph", n_resamples=200,
                              seed=0)  # fmt: skip
    assert comp["n_compared"] == 50 and set(comp["groups"]) == {"arc_easy", "sciq", "all"}
    full = comp["groups"]["all"]["positions"]["full"]
    assert full["difference"]["auroc"]["value"] == pytest.approx(
        full["this"]["auroc"]["value"] - full["reference"]["auroc"]["value"]
    )
    assert full["difference"]["auroc"]["low"] > 0
    report = build_report(this, comparison=comp, n_resamples=50)
    md = render_markdown(report)
    assert "This adapter vs a reference adapter" in md and "ΔAUROC" in md
    assert md.count("| full answer |") == 3  # one row per group
