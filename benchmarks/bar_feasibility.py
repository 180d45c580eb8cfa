"""How good must a confidence score be to meet issue 11's early-abort and gating bars on our answers?

The two bars still unmet are decided by two things: how well the score ranks answers (its AUROC) and
what the answers leave to win (how many tokens come after the first checkpoint; how often the passage
fixes a wrong answer). This benchmark separates the two on the very answers the reports measure:

* **perfect score**: every wrong answer ranks below every right one. For early abort that aborts every
  wrong answer at its first checkpoint, so it saves everything a score can save; for gating it is the
  ceiling :func:`benchmarks.gating_curve.perfect_confidence_at` already reports.
* **a score of a given AUROC**: equal-variance binormal scores drawn for the real labels (right answers
  shifted by ``d = √2·Φ⁻¹(AUROC)``), many draws per AUROC. Early abort takes the best θ *on the same
  answers* (in-sample, so optimistic) with at most 5% of correct answers lost; gating retrieves for the
  lowest half. The result is the AUROC at which the mean draw reaches the bar.
* **observed**: the shipped adapter's first-checkpoint score and mean token probability of the same
  prefix (early abort, in-sample θ as above); every gate of the gating file (AUROC against the
  passage-less answer's label, gain at 50%).

    .venv/bin/python -m benchmarks.bar_feasibility \\
        [--records reports/issue-11-2026-12-03b/records-test.rescored-cand2.jsonl.gz] \\
        [--gating benchmarks/results/gating_curve_default-vs-cand5-2026-12-06.json]

Writes benchmarks/results/bar_feasibility.json and .md. Offline (no server), seconds.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.stats import norm

from benchmarks.common import finish, stamp
from benchmarks.fusion_fit import prefix_prob
from benchmarks.gating_curve import accuracy_at, perfect_confidence_at
from finece_guard.backends.fusion import FusionModel
from finece_guard.evaluation.records import AnswerRecord, read_records
from finece_guard.evaluation.thresholds import abort_tradeoff
from finece_guard.metrics import auroc

ROOT = Path(__file__).resolve().parent.parent
#: the shipped default's scores of the 250 test answers (2026-12-03; the second 2026-12-03 candidate)
RECORDS = ROOT / "reports/issue-11-2026-12-03b/records-test.rescored-cand2.jsonl.gz"
GATING = ROOT / "benchmarks/results/gating_curve_default-vs-cand5-2026-12-06.json"
#: the shipped FineCE+ (fit on dev, periodic:32), applied at the first checkpoint as the scorer would
FUSION = ROOT / "finece_guard/adapters_data/SmolLM2-135M-Instruct/finece_fusion.json"
#: issue 11's bars
ABORT_SAVED = 0.30
ABORT_MAX_LOST = 0.05
GATING_GAIN = 0.05
GRID: tuple[float, ...] = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.99)

Array = NDArray[np.float64]


def binormal_scores(labels: Array, target_auroc: float, rng: np.random.Generator) -> Array:
    """Scores of the given AUROC in expectation: N(0, 1), right answers (label 1) shifted by √2·Φ⁻¹(AUROC),
    mapped into (0, 1) by Φ (monotone, so the ranking and the AUROC stay)."""
    if not 0.5 <= target_auroc < 1.0:
        raise ValueError(f"target_auroc={target_auroc} must be in [0.5, 1)")
    shift = math.sqrt(2.0) * float(norm.ppf(target_auroc))
    return np.asarray(norm.cdf(rng.standard_normal(len(labels)) + shift * labels), dtype=np.float64)


def best_abort_saving(scores: Array, labels: Array, total: Sequence[int], at: Sequence[int]) -> float:
    """Largest share of the wrong answers' tokens saved by "abort below θ at the first checkpoint" with at most
    :data:`ABORT_MAX_LOST` of the correct answers lost, θ chosen on these very answers."""
    wrong_tokens = sum(n for n, y in zip(total, labels, strict=True) if not y)
    if not wrong_tokens:
        return 0.0
    curve = abort_tradeoff(scores, labels.astype(int), list(total), list(at))
    return max(p.tokens_saved / wrong_tokens for p in curve if p.correct_lost_share <= ABORT_MAX_LOST)


def perfect_abort_saving(labels: Array, total: Sequence[int], at: Sequence[int]) -> float:
    """Share of the wrong answers' tokens after their first checkpoint: what aborting every one of them saves."""
    wrong = [(n, a) for n, a, y in zip(total, at, labels, strict=True) if not y]
    return sum(n - a for n, a in wrong) / max(1, sum(n for n, _ in wrong))


def gating_gain(scores: Array, plain: Array, passage: Array) -> float:
    """Accuracy of retrieving for the lowest-scored half minus random gating's expected accuracy at 50%."""
    return accuracy_at(scores, plain, passage, 0.5) - float(plain.mean() + 0.5 * (passage.mean() - plain.mean()))


def sweep(fn: Any, labels: Array, draws: int, seed: int = 0) -> list[dict[str, float]]:
    """Mean, 10th and 90th percentile of ``fn(scores)`` over ``draws`` binormal draws per AUROC of :data:`GRID`."""
    rng = np.random.default_rng(seed)
    out = []
    for a in GRID:
        values = np.array([fn(binormal_scores(labels, a, rng)) for _ in range(draws)])
        out.append({"auroc": a, "mean": float(values.mean()), "p10": float(np.percentile(values, 10)),
                    "p90": float(np.percentile(values, 90))})  # fmt: skip
    return out


def auroc_needed(rows: Sequence[dict[str, float]], bar: float) -> float | None:
    """The smallest AUROC of the grid whose mean draw reaches ``bar`` (None: not even at the top of the grid)."""
    return next((r["auroc"] for r in rows if r["mean"] >= bar), None)


def early_abort(
    records: Sequence[AnswerRecord], strategy: str, draws: int, fusion: FusionModel | None = None
) -> dict[str, Any]:
    traces = [r.strategies[strategy] for r in records]
    labels = np.array([float(r.correct) for r in records])
    total = [t.n_tokens[-1] for t in traces]
    at = [t.n_tokens[1] for t in traces]
    fine_ce = np.array([t.raw[1] for t in traces])
    mean_prob = np.array([prefix_prob(r, n, "mean") for r, n in zip(records, at, strict=True)])
    observed = {
        "FineCE p(1)": fine_ce,
        "mean token prob (same prefix)": mean_prob,
    }
    if fusion is not None:
        observed["FineCE+ p(1)"] = np.array([
            fusion.fuse(t.raw[1], r.token_logprobs[:n], r.tokens[:n], final=n >= r.n_tokens)
            for r, t, n in zip(records, traces, at, strict=True)
        ])  # fmt: skip
    rows = sweep(lambda s: best_abort_saving(s, labels, total, at), labels, draws)
    return {
        "strategy": strategy, "n": len(records), "accuracy": float(labels.mean()),
        "perfect": perfect_abort_saving(labels, total, at),
        "observed": {k: {"auroc": auroc(v, labels), "saved": best_abort_saving(v, labels, total, at)}
                     for k, v in observed.items()},
        "sweep": rows, "auroc_needed": auroc_needed(rows, ABORT_SAVED),
    }  # fmt: skip


def gating(rows_in: Sequence[dict[str, Any]], draws: int) -> dict[str, Any]:
    plain = np.array([float(r["plain_correct"]) for r in rows_in])
    passage = np.array([float(r["passage_correct"]) for r in rows_in])
    random_half = float(plain.mean() + 0.5 * (passage.mean() - plain.mean()))
    gates = [k for k in rows_in[0] if k.startswith(("fine_ce", "min_token", "mean_token"))]
    observed = {}
    for g in gates:
        s = np.array([float(r[g]) for r in rows_in])
        observed[g] = {"auroc": auroc(s, plain), "gain": gating_gain(s, plain, passage)}
    rows = sweep(lambda s: gating_gain(s, plain, passage), plain, draws)
    return {
        "n": len(rows_in), "accuracy_without_passage": float(plain.mean()),
        "accuracy_with_passage": float(passage.mean()),
        "perfect": perfect_confidence_at(plain, passage, 0.5) - random_half,
        "observed": observed, "sweep": rows, "auroc_needed": auroc_needed(rows, GATING_GAIN),
    }  # fmt: skip


def run(records_path: Path, gating_path: Path, draws: int, fusion_path: Path | None = FUSION) -> dict[str, Any]:
    records = read_records(records_path)
    fusion = FusionModel.load(fusion_path) if fusion_path is not None else None
    gating_rows = json.loads(gating_path.read_text())["rows"]
    return {
        "records": str(records_path.relative_to(ROOT)) if records_path.is_relative_to(ROOT) else str(records_path),
        "gating_file": str(gating_path.relative_to(ROOT)) if gating_path.is_relative_to(ROOT) else str(gating_path),
        "draws": draws,
        "early_abort": {s: early_abort(records, s, draws, fusion) for s in records[0].strategies},
        "gating": gating(gating_rows, draws),
    }  # fmt: skip


def _needed(value: float | None) -> str:
    return "not reached at AUROC 0.99" if value is None else f"**{value:.2f}**"


def markdown(result: dict[str, Any]) -> list[str]:
    lines = [
        "# What score meets the early-abort and gating bars? (`benchmarks/bar_feasibility.py`)",
        "",
        f"{result['date']}, {result['machine']}. Offline; binormal scores of a given AUROC drawn for the real "
        f"labels, {result['draws']} draws per AUROC (mean [10th–90th percentile]); early-abort θ chosen on the "
        "same answers (optimistic).",
        "",
        f"## Early abort: ≥ {ABORT_SAVED:.0%} of the wrong answers' tokens saved, ≤ {ABORT_MAX_LOST:.0%} of correct "
        f"answers lost ({result['records']})",
        "",
    ]
    observed = list(next(iter(result["early_abort"].values()))["observed"])
    lines += [
        "| first checkpoint of | answers (accuracy) | perfect score saves | AUROC needed | "
        + " | ".join(f"{k}: AUROC / saves" for k in observed)
        + " |",
        "|---|---|---|---|" + "---|" * len(observed),
    ]
    for s, r in result["early_abort"].items():
        cells = " | ".join(f"{r['observed'][k]['auroc']:.3f} / {r['observed'][k]['saved']:.1%}" for k in observed)
        lines.append(
            f"| {s} | {r['n']} ({r['accuracy']:.3f}) | {r['perfect']:.1%} | {_needed(r['auroc_needed'])} | {cells} |"
        )
    lines += ["", "Tokens saved of wrong answers by a score of each AUROC:", "",
              "| AUROC | " + " | ".join(result["early_abort"]) + " |",
              "|---|" + "---|" * len(result["early_abort"])]  # fmt: skip
    for i, a in enumerate(GRID):
        cells = [result["early_abort"][s]["sweep"][i] for s in result["early_abort"]]
        lines.append(
            f"| {a:.2f} | " + " | ".join(f"{c['mean']:.1%} [{c['p10']:.1%}–{c['p90']:.1%}]" for c in cells) + " |"
        )
    g = result["gating"]
    lines += [
        "",
        f"## Gating: ≥ +{GATING_GAIN * 100:.0f} points over random gating at a 50% retrieval rate "
        f"({result['gating_file']})",
        "",
        f"{g['n']} questions, accuracy {g['accuracy_without_passage']:.3f} without the passage and "
        f"{g['accuracy_with_passage']:.3f} with it; a perfect score of the passage-less answer gains "
        f"**{100 * g['perfect']:+.1f}** points; AUROC needed for +{GATING_GAIN * 100:.0f}: "
        f"{_needed(g['auroc_needed'])}.",
        "",
        "| AUROC | gain over random at 50% |",
        "|---|---|",
    ]
    lines += [f"| {r['auroc']:.2f} | {100 * r['mean']:+.1f} [{100 * r['p10']:+.1f}, {100 * r['p90']:+.1f}] |"
              for r in g["sweep"]]  # fmt: skip
    lines += ["", "| observed gate | AUROC (passage-less label) | gain at 50% |", "|---|---|---|"]
    lines += [f"| {k} | {v['auroc']:.3f} | {100 * v['gain']:+.1f} |" for k, v in g["observed"].items()]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=Path, default=RECORDS, help="eval records (the early-abort answers)")
    ap.add_argument("--gating", type=Path, default=GATING, help="a gating_curve_*.json (the gating answers)")
    ap.add_argument("--draws", type=int, default=200)
    ap.add_argument("--label", default="", help="suffix of the result files")
    args = ap.parse_args(argv)
    result = {**stamp(), **run(args.records.resolve(), args.gating.resolve(), args.draws)}
    name = "bar_feasibility" + (f"_{args.label}" if args.label else "")
    finish(name, result, markdown(result))


if __name__ == "__main__":
    main()
