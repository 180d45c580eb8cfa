"""Does FineCE's multiple-choice AUROC survive making every answer checkable?

Issue 11, lever 6. 13-22% of the default generator's multiple-choice answers name no option the
checker can read, and they are labelled wrong. An adapter can learn that shortcut ("no
'Answer: X' line -> wrong"), so part of its AUROC on these tasks may be formatting, not knowledge.
This benchmark takes evaluated records (their free greedy answers), completes each unreadable
multiple-choice answer with :func:`finece_guard.data.choice_commit.commit_answer` (the stage
``eval --commit-choices`` runs), re-scores the full answer, free and committed, with each served
adapter on one server, and reports per adapter: accuracy and unreadable share before / after,
full-answer AUROC on the free answers, on the committed answers, and on the answers that were
readable already (where the shortcut cannot help), beside mean token probability (its tokens do not
change; only the labels do), with bootstrap intervals and the paired FineCE − token-probability
difference on the committed answers.

    .venv/bin/python -m benchmarks.commit_rescore runs/x/records-dev.jsonl runs/x/records-test.jsonl \\
        --base-url http://127.0.0.1:8021/v1 --adapters finece,cand --label 2026-12-06

Writes benchmarks/results/commit_rescore_<label>.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import finish, stamp
from finece_guard.backends.openai_generator import OpenAICompatGenerator
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.data.checkers import is_correct
from finece_guard.data.choice_commit import commit_answer, needs_commit
from finece_guard.data.construction import TaskSpec
from finece_guard.data.records import AnswerKind, QARecord
from finece_guard.errors import MetricError
from finece_guard.evaluation.records import AnswerRecord, read_records
from finece_guard.metrics import auroc, auroc_unchecked, bootstrap, bootstrap_indices
from finece_guard.types import CheckpointKind


def _choice_records(paths: Sequence[Path]) -> list[tuple[AnswerRecord, QARecord]]:
    out: list[tuple[AnswerRecord, QARecord]] = []
    by_task: dict[tuple[str, str], dict[str, QARecord]] = {}
    for path in paths:
        for rec in read_records(path):
            key = (rec.task, rec.partition)
            if key not in by_task:
                by_task[key] = {r.id: r for r in TaskSpec.parse(rec.task).records(rec.partition)}
            qa = by_task[key][rec.record_id]
            if qa.kind is AnswerKind.CHOICE:
                out.append((rec, qa))
    return out


def _auc(conf: Sequence[float], labels: Sequence[bool], n_resamples: int) -> dict[str, Any]:
    try:
        point = auroc(conf, labels)
    except MetricError as exc:
        return {"auroc": None, "error": str(exc), "n": len(labels)}
    iv = bootstrap(auroc_unchecked, conf, labels, n_resamples=n_resamples, seed=0)
    return {"auroc": point, "low": iv.low, "high": iv.high, "n": len(labels)}


def _paired(a: Sequence[float], b: Sequence[float], y: Sequence[bool], n_resamples: int) -> dict[str, float]:
    ca, cb, yy = np.asarray(a, float), np.asarray(b, float), np.asarray(y, float)

    def diff(idx: np.ndarray[Any, np.dtype[np.intp]]) -> float:
        return auroc_unchecked(ca[idx], yy[idx]) - auroc_unchecked(cb[idx], yy[idx])

    low, high, _ = bootstrap_indices(diff, len(yy), n_resamples=n_resamples, seed=0)
    return {"delta": diff(np.arange(len(yy))), "low": low, "high": high}


async def _run(pairs: list[tuple[AnswerRecord, QARecord]], base_url: str, adapters: list[str], conc: int) -> Any:
    generator = OpenAICompatGenerator(base_url, model=DEFAULT_GENERATOR)
    gate = asyncio.Semaphore(conc)

    async def commit(rec: AnswerRecord, qa: QARecord) -> str:
        async with gate:
            return await commit_answer(qa, rec.question, rec.answer, generator)

    try:
        committed = list(await asyncio.gather(*(commit(r, q) for r, q in pairs)))
    finally:
        await generator.aclose()
    scores: dict[str, tuple[list[float], list[float]]] = {}
    for name in adapters:
        scorer = OpenAICompatScorer(base_url, model=name, timeout_s=300)
        try:
            free = [
                s.value
                for s in await scorer.ascore_many([(r.question, r.answer, CheckpointKind.FINAL) for r, _ in pairs])
            ]
            changed = [i for i, ((r, _), c) in enumerate(zip(pairs, committed, strict=True)) if c != r.answer]
            rescored = await scorer.ascore_many(
                [(pairs[i][0].question, committed[i], CheckpointKind.FINAL) for i in changed]
            )
        finally:
            await scorer.aclose()
        scores[name] = (free, reuse_unchanged(free, changed, [s.value for s in rescored]))
    return committed, scores


def reuse_unchanged(free: Sequence[float], changed: Sequence[int], rescored: Sequence[float]) -> list[float]:
    """Committed-answer scores: the free score wherever the stage left the answer as it was.

    Scoring the same text twice on a bf16 server differs by up to 0.022 (benchmarks/results/score_noise.md);
    re-scoring unchanged answers would put that noise in the "committed" column only.
    """
    if len(changed) != len(rescored):
        raise ValueError(f"{len(changed)} changed answers but {len(rescored)} new scores")
    done = list(free)
    for i, value in zip(changed, rescored, strict=True):
        done[i] = value
    return done


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("records", type=Path, nargs="+")
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--adapters", default="finece", help="comma-separated served adapter names")
    ap.add_argument("--label", required=True)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args(argv)
    adapters = [a.strip() for a in args.adapters.split(",") if a.strip()]
    pairs = _choice_records(args.records)
    committed, scores = asyncio.run(_run(pairs, args.base_url, adapters, args.concurrency))
    y_free = [r.correct for r, _ in pairs]
    y_done = [is_correct(q, c) for (_, q), c in zip(pairs, committed, strict=True)]
    readable = [not needs_commit(q, r.answer) for r, q in pairs]
    mtp = [float(r.baselines.get("mean_token_prob") or 0.0) for r, _ in pairs]
    n, nb = len(pairs), args.bootstrap
    tasks = sorted({r.task for r, _ in pairs})
    summary = {
        "n": n, "tasks": tasks, "unreadable_free": 1 - sum(readable) / n,
        "unreadable_committed": sum(needs_commit(q, c) for (_, q), c in zip(pairs, committed, strict=True)) / n,
        "accuracy_free": sum(y_free) / n, "accuracy_committed": sum(y_done) / n,
        "changed_label": sum(a != b for a, b in zip(y_free, y_done, strict=True)),
    }  # fmt: skip
    sub = [i for i in range(n) if readable[i]]
    rows: dict[str, dict[str, Any]] = {}
    for name, (free, done) in [*scores.items(), ("mean token prob", (mtp, mtp))]:
        rows[name] = {
            "free": _auc(free, y_free, nb),
            "committed": _auc(done, y_done, nb),
            "readable_only": _auc([free[i] for i in sub], [y_free[i] for i in sub], nb),
        }
        if name in scores:
            rows[name]["committed_minus_mtp"] = _paired(done, mtp, y_done, nb)
    result = {**stamp(args.base_url), "records": [str(p) for p in args.records], "summary": summary, "rows": rows}

    def fmt(a: dict[str, Any]) -> str:
        return "n/a" if a["auroc"] is None else f"{a['auroc']:.3f} [{a['low']:.3f}, {a['high']:.3f}] (n={a['n']})"

    md = [
        f"# Multiple-choice AUROC with every answer made checkable ({args.label})", "",
        f"{result['date']}, {result['machine']}; {n} multiple-choice answers ({', '.join(tasks)}) from "
        f"{', '.join(str(p) for p in args.records)}; each unreadable one completed by "
        "`finece_guard.data.commit_answer` (greedy, `structured_outputs` choice); full answers re-scored on one "
        "server.",
        "",
        f"- unreadable {summary['unreadable_free']:.1%} → {summary['unreadable_committed']:.1%}; accuracy "
        f"{summary['accuracy_free']:.3f} → {summary['accuracy_committed']:.3f} "
        f"({summary['changed_label']} labels changed)",
        "",
        "| scorer | AUROC, free answers | AUROC, committed answers | AUROC, answers readable already |",
        "|---|---|---|---|",
        *(f"| {k} | {fmt(v['free'])} | {fmt(v['committed'])} | {fmt(v['readable_only'])} |" for k, v in rows.items()),
        "",
        *(f"- {k} − mean token prob, committed answers (paired): {v['committed_minus_mtp']['delta']:+.3f} "
          f"[{v['committed_minus_mtp']['low']:+.3f}, {v['committed_minus_mtp']['high']:+.3f}]"
          for k, v in rows.items() if "committed_minus_mtp" in v),
    ]  # fmt: skip
    finish(f"commit_rescore_{args.label}", result, md)


if __name__ == "__main__":
    main()
