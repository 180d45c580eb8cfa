"""Lever test: does FineCE+ gain from the question-only score as an extra feature, and does a label-free θ help abort?

Two questions about the fusion lever, measured on the same dev/test records as ``benchmarks.fusion_fit``:

* **Question feature.** The question-only FineCE score is the best gate for retrieval; every later
  checkpoint of a run could carry it. This fits the fusion logistic regression (the states and
  weights of ``fusion_fit``, :func:`finece_guard.backends.fusion.fit_standardised_logistic`) with and
  without ``logit(question score)`` and reports full-answer and p(1) AUROC on test, the paired difference,
  and early abort at p(1) with θ chosen on dev. The runtime does not carry the feature: it is kept
  only if this says it is worth the plumbing.
* **Label-free θ.** The early-abort θ chosen on dev rests on the few dev answers that are correct
  *and* reach p(1) (5% of them may be lost: often less than one answer). A calibrated score allows
  a θ without labels: the largest θ whose *expected* share of correct answers lost,
  Σ_{p<θ} p / Σ p, is ≤ 5%. It is computed on the dev predictions and on the (unlabelled) test
  predictions, and applied to test.

    .venv/bin/python -m benchmarks.fusion_question_feature --dev DEV.jsonl[.gz] --test TEST.jsonl[.gz] \\
        --strategy periodic:32 --label default-dev354

Writes benchmarks/results/fusion_question_feature_<label>.json and .md.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.common import finish, stamp
from benchmarks.fusion_fit import (
    Predict,
    _columns,
    _cross_fit,
    _metrics,
    _p1_tokens,
    _paired,
    abort_at,
    early_abort,
    training_rows,
)
from finece_guard.backends.fusion import _logit, fit_standardised_logistic
from finece_guard.evaluation.records import AnswerRecord, read_records


def with_question(r: AnswerRecord, feats: Sequence[float], question: bool) -> list[float]:
    """A state's fusion features, plus the logit of its record's question-only score if ``question``."""
    return [*feats, _logit(r.question_score)] if question else list(feats)


def fit(records: Sequence[AnswerRecord], question: bool) -> Predict:
    """The FineCE+ fit of ``fusion_fit`` (same states and weights), with or without the question feature."""
    rows, labels, weights = training_rows(records, lambda r, feats: with_question(r, feats, question))
    model = fit_standardised_logistic(rows, labels, weights=weights)
    return lambda r, feats: model.predict(with_question(r, feats, question))


def label_free_theta(values: Sequence[float], budget: float = 0.05) -> float:
    """The largest θ whose expected share of correct answers lost (Σ_{p<θ} p / Σ p) is ≤ ``budget``."""
    v = sorted(x for x in values if not math.isnan(x))
    total, spent, theta = sum(v), 0.0, 0.0
    for i, x in enumerate(v):
        spent += x
        if spent / total > budget:
            break
        theta = (x + v[i + 1]) / 2 if i + 1 < len(v) else x + 1e-9
    return theta


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, required=True)
    ap.add_argument("--test", type=Path, required=True)
    ap.add_argument("--strategy", default="periodic:32")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--label", required=True)
    args = ap.parse_args(argv)
    dev, test = read_records(args.dev), read_records(args.test)
    labels = [r.correct for r in test]
    at_dev, at_test = _p1_tokens(dev, args.strategy), _p1_tokens(test, args.strategy)
    counts = {
        part: {
            "p1_answers": sum(a is not None for a in at),
            "correct": sum(r.correct for r, a in zip(recs, at, strict=True) if a),
        }
        for part, recs, at in (("dev", dev, at_dev), ("test", test, at_test))
    }
    result: dict[str, Any] = {**stamp(), "dev": str(args.dev), "test": str(args.test), "strategy": args.strategy,
                              "p1_counts": counts, "variants": {}}  # fmt: skip
    full_cols: dict[str, list[float]] = {}
    md = [f"## FineCE+ with the question-only score as a feature; label-free early-abort θ: {args.label}", "",
          f"{result['machine']}; {result['date']}. Fit on {len(dev)} dev answers (`{args.dev}`), measured on "
          f"{len(test)} test answers (`{args.test}`). p(1): first partial checkpoint of `{args.strategy}`: "
          f"{counts['dev']['p1_answers']} dev answers reach it ({counts['dev']['correct']} correct), "
          f"{counts['test']['p1_answers']} test answers ({counts['test']['correct']} correct).", "",
          "| FineCE+ features | full AUROC | p(1) AUROC | abort, θ from dev: θ / correct lost / tokens saved "
          "| label-free θ on dev | label-free θ on test (no labels) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for question in (False, True):
        name = "+ question score" if question else "shipped (7 features)"
        cols = _columns(test, fit(dev, question), args.strategy)
        full, p1 = cols["full"]["FineCE+ (fused)"], cols["p1"]["FineCE+ (fused)"]
        full_cols[name] = full
        dev_fit = _cross_fit(dev, lambda recs, q=question: fit(recs, q))
        p1_dev = _columns(dev, dev_fit, args.strategy)["p1"]["FineCE+ (fused)"]
        theta_dev = early_abort(p1_dev, dev, at_dev)["theta"]
        aborts = {
            "theta_from_dev": abort_at(p1, test, at_test, theta_dev) if theta_dev is not None else None,
            "label_free_dev": abort_at(p1, test, at_test, label_free_theta(p1_dev)),
            "label_free_test": abort_at(p1, test, at_test, label_free_theta(p1)),
        }
        m_full, m_p1 = _metrics(full, labels, args.bootstrap), _metrics(p1, labels, args.bootstrap)
        result["variants"][name] = {"full": m_full, "p1": m_p1, "early_abort": aborts}

        def cell(a: dict[str, Any] | None) -> str:
            return "n/a" if a is None else f"{a['theta']:.3f} / {a['correct_lost']:.1%} / {a['wrong_tokens_saved']:.1%}"

        md.append(f"| {name} | {m_full['auroc'][0]:.3f} [{m_full['auroc'][1]:.3f}, {m_full['auroc'][2]:.3f}] "
                  f"| {m_p1['auroc'][0]:.3f} [{m_p1['auroc'][1]:.3f}, {m_p1['auroc'][2]:.3f}] "
                  f"| {cell(aborts['theta_from_dev'])} | {cell(aborts['label_free_dev'])} "
                  f"| {cell(aborts['label_free_test'])} |")  # fmt: skip
    diff = _paired(full_cols["+ question score"], full_cols["shipped (7 features)"], labels, args.bootstrap)
    result["full_auroc_difference"] = diff
    if diff is not None:
        md += ["", f"Full-answer AUROC, + question score − shipped: {diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}] "
               "(paired bootstrap)."]  # fmt: skip
    finish(f"fusion_question_feature_{args.label}", result, md)


if __name__ == "__main__":
    main()
