"""Early abort: tokens saved on answers that end wrong vs correct answers lost, as the threshold moves.

Reads the records of a ``finece-guard eval`` run (real greedy answers of the served model, each
scored by the FineCE adapter at every checkpoint), and for each checkpoint strategy replays the
policy "abort when the first checkpoint's raw score is below θ": an aborted answer stops at that
checkpoint, so every later token is saved; a correct answer aborted is lost. Offline replay over
one run's records, so every θ sees exactly the same answers and scores.

    make bench   (or: .venv/bin/python -m benchmarks.early_abort --records runs/eval/records-test.jsonl)

Writes benchmarks/results/early_abort.json and .md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import finish, stamp
from finece_guard.evaluation.harness import AnswerRecord, read_records
from finece_guard.evaluation.thresholds import abort_tradeoff

#: θ is set at these quantiles of each strategy's first-checkpoint scores (a fixed grid would miss
#: an adapter whose scores sit in a narrow band), plus 0.5 for reference
QUANTILES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7)


def thresholds_for(records: list[AnswerRecord], strategy: str) -> list[float]:
    scores = np.array([r.strategies[strategy].raw[1] for r in records])
    return sorted({*(round(float(q), 3) for q in np.quantile(scores, QUANTILES)), 0.5})


def strategy_curve(records: list[AnswerRecord], strategy: str, thresholds: Sequence[float]) -> list[dict[str, Any]]:
    traces = [r.strategies[strategy] for r in records]
    labels = [int(r.correct) for r in records]
    totals = [t.n_tokens[-1] for t in traces]
    curve = abort_tradeoff([t.raw[1] for t in traces], labels, totals, [t.n_tokens[1] for t in traces])
    wrong_tokens = sum(n for n, y in zip(totals, labels, strict=True) if not y) or 1
    rows = []
    for theta in thresholds:
        # aborted = score < θ: the same set as the first curve candidate at or above θ
        point = next((p for p in curve if p.threshold >= theta), curve[-1])
        rows.append({
            "threshold": theta, "aborted": point.n_aborted, "wrong_aborted_share": point.wrong_aborted_share,
            "tokens_saved_share_of_all": point.tokens_saved_share,
            "tokens_saved_share_of_wrong": point.tokens_saved / wrong_tokens,
            "correct_lost_share": point.correct_lost_share,
        })  # fmt: skip
    return rows


def run(paths: list[Path]) -> dict[str, Any]:
    records = [r for p in paths for r in read_records(p)]
    if not records:
        raise SystemExit(f"no eval records in {', '.join(map(str, paths))}; run `finece-guard eval` first")
    strategies = list(records[0].strategies)
    first_at = {s: sum(r.strategies[s].n_tokens[1] / max(1, r.n_tokens) for r in records) / len(records)
                for s in strategies}  # fmt: skip
    return {
        "records": [str(p) for p in paths], "n": len(records),
        "accuracy": sum(r.correct for r in records) / len(records),
        "tokens": sum(r.n_tokens for r in records),
        "first_checkpoint_share": first_at,
        "strategies": {s: strategy_curve(records, s, thresholds_for(records, s)) for s in strategies},
    }  # fmt: skip


def markdown(result: dict[str, Any], header: list[str]) -> list[str]:
    lines = list(header)
    for name, rows in result["strategies"].items():
        share = 100 * result["first_checkpoint_share"][name]
        lines += ["", f"### first {name} checkpoint (at {share:.0f}% of the answer on average; θ at quantiles "
                  f"{', '.join(f'{q:.2f}' for q in QUANTILES)} of its scores, and 0.5)", "",
                  "| abort below θ | answers aborted | wrong answers aborted | tokens saved (of all) | "
                  "tokens saved (of wrong answers') | correct answers lost |", "|---|---|---|---|---|---|"]  # fmt: skip
        for r in rows:
            lines.append(f"| {r['threshold']:.3f} | {r['aborted']} | {100 * r['wrong_aborted_share']:.0f}% | "
                         f"{100 * r['tokens_saved_share_of_all']:.1f}% | {100 * r['tokens_saved_share_of_wrong']:.1f}% "
                         f"| {100 * r['correct_lost_share']:.0f}% |")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=Path, nargs="+", required=True, help="records-<partition>.jsonl of an eval run")
    args = ap.parse_args()
    result = {**stamp(), **run(args.records)}
    head = [f"# Early abort ({result['date']})", "", f"{result['machine']}; replay over {result['n']} evaluated "
            f"answers ({', '.join(result['records'])}), accuracy {result['accuracy']:.3f}, {result['tokens']} answer "
            "tokens. An answer is aborted when its first checkpoint's raw FineCE score is below θ."]  # fmt: skip
    finish("early_abort", result, markdown(result, head))


if __name__ == "__main__":
    main()
