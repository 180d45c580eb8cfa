"""Early abort with and without look-ahead BCI confirmation (w in {2, 4}, d in {1, 2}), and what it costs.

Reads the records of a ``finece-guard eval`` run (real greedy answers, FineCE scores at every
checkpoint) and, against the same server, runs the confirmation the runtime would run when
``AbortBelow(θ, confirm=LookAhead(w, d))`` is about to act at an answer's first partial
checkpoint: ``w`` continuations of ``d`` paragraphs sampled on that prefix in one request
(``n=w``), each step scored, integrated with eq. 5 (:func:`finece_guard.runtime.bci.integrate_paths`).
One request with ``n=4`` and two paragraphs per record serves all four settings: w=2 takes the first
two continuations, d=1 the first paragraph of each; the generated tokens of each subset are
counted from the server's per-token logprobs, so the cost is exact per setting.

Replay, per threshold θ (quantiles of the first-checkpoint scores): *no confirmation* aborts when the
raw score is below θ; *confirmed* aborts when the raw score is below θ **and** the look-ahead value
is too. Reported: wrong answers aborted, their tokens saved, correct answers lost, and the
confirmation's extra tokens / requests / seconds (spent only where the raw score was below θ).

    .venv/bin/python -m benchmarks.early_abort_lookahead --records runs/bench/eval/records-test.jsonl \
        --base-url http://127.0.0.1:8011/v1

Writes benchmarks/results/early_abort_lookahead.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import finish, stamp
from finece_guard.backends.http import OpenAIHTTP
from finece_guard.backends.openai_generator import question_messages
from finece_guard.backends.openai_scorer import OpenAICompatScorer
from finece_guard.config import DEFAULT_GENERATOR
from finece_guard.evaluation.harness import AnswerRecord, read_records
from finece_guard.runtime.bci import integrate_paths
from finece_guard.types import CheckpointKind

SETTINGS: tuple[tuple[int, int], ...] = ((2, 1), (2, 2), (4, 1), (4, 2))
QUANTILES: tuple[float, ...] = (0.1, 0.2, 0.3, 0.5)
MAX_TOKENS_PER_STEP = 48


def _paragraph_steps(tokens: list[str], depth: int) -> list[tuple[str, int]]:
    """Cumulative (text, token count) at each of the first ``depth`` paragraph ends of a continuation."""
    steps: list[tuple[str, int]] = []
    text = ""
    for i, tok in enumerate(tokens):
        text += tok
        if "\n" in tok and text.strip() and len(steps) < depth:
            steps.append((text, i + 1))
    if len(steps) < depth and text.strip() and (not steps or steps[-1][0] != text):
        steps.append((text, len(tokens)))
    return steps[:depth]


async def confirm_one(
    http: OpenAIHTTP, scorer: OpenAICompatScorer, record: AnswerRecord, strategy: str, seed: int
) -> dict[str, Any] | None:
    trace = record.strategies[strategy]
    if trace.n_partial < 1:
        return None
    n = trace.n_tokens[1]
    prefix = "".join(record.tokens[:n])
    t0 = time.perf_counter()
    payload = {
        "model": DEFAULT_GENERATOR, "n": 4, "max_tokens": MAX_TOKENS_PER_STEP * 2, "temperature": 0.8, "top_p": 0.95,
        "seed": seed, "logprobs": True, "top_logprobs": 0,
        "messages": [*question_messages(record.question), {"role": "assistant", "content": prefix}],
        "continue_final_message": True, "add_generation_prompt": False,
    }  # fmt: skip
    body = await http.post_json("/chat/completions", payload)
    t_sample = time.perf_counter() - t0
    conts = [[str(c.get("token", "")) for c in ((ch.get("logprobs") or {}).get("content") or [])]
             for ch in body["choices"]]  # fmt: skip
    steps = [_paragraph_steps(toks, 2) for toks in conts]
    jobs = [(record.question, prefix + text, CheckpointKind.PARTIAL) for path in steps for text, _ in path]
    t1 = time.perf_counter()
    scores = await scorer.ascore_many(jobs)  # raises on a failed score: the benchmark does not guess
    t_score = (time.perf_counter() - t1) / max(1, len(jobs))
    it = iter(scores)
    scored = [[next(it).value for _ in path] for path in steps]  # type: ignore[union-attr]
    raw = trace.raw[1]
    out: dict[str, Any] = {"raw": raw, "n_tokens": n, "total": trace.n_tokens[-1], "correct": record.correct}
    for w, d in SETTINGS:
        paths = [p[:d] for p in scored[:w] if p]
        tokens = sum(path[min(d, len(path)) - 1][1] for path in steps[:w] if path)
        n_scores = sum(min(d, len(p)) for p in scored[:w])
        out[f"w{w}d{d}"] = {
            "value": integrate_paths(raw, paths, alpha=0.5), "tokens": tokens, "requests": 1 + n_scores,
            "seconds": t_sample * (tokens / max(1, sum(len(c) for c in conts))) + t_score * n_scores,
        }  # fmt: skip
    return out


def replay(rows: list[dict[str, Any]], thresholds: list[float]) -> list[dict[str, Any]]:
    wrong_tokens = sum(r["total"] for r in rows if not r["correct"]) or 1
    n_wrong = sum(not r["correct"] for r in rows) or 1
    n_right = sum(bool(r["correct"]) for r in rows) or 1
    table = []
    for theta in thresholds:
        for name in ["none", *(f"w{w}d{d}" for w, d in SETTINGS)]:
            aborted = [r for r in rows if r["raw"] < theta and (name == "none" or r[name]["value"] < theta)]
            asked = [r for r in rows if r["raw"] < theta]  # a confirmation runs wherever the raw score says abort
            keys = ("tokens", "requests", "seconds")
            cost = {k: sum(r[name][k] for r in asked) if name != "none" else 0 for k in keys}
            table.append({
                "threshold": theta, "confirm": name, "aborted": len(aborted),
                "wrong_aborted_share": sum(not r["correct"] for r in aborted) / n_wrong,
                "tokens_saved_share_of_wrong": sum(r["total"] - r["n_tokens"] for r in aborted if not r["correct"])
                / wrong_tokens,
                "correct_lost_share": sum(bool(r["correct"]) for r in aborted) / n_right,
                "extra_tokens": cost["tokens"], "extra_requests": cost["requests"],
                "extra_seconds": round(float(cost["seconds"]), 2),
            })  # fmt: skip
    return table


async def run(paths: list[Path], base_url: str, strategy: str, concurrency: int) -> dict[str, Any]:
    records = [r for p in paths for r in read_records(p)]
    if not records:
        raise SystemExit(f"no eval records in {', '.join(map(str, paths))}; run `finece-guard eval` first")
    http = OpenAIHTTP(base_url, timeout_s=300, max_concurrency=concurrency)
    scorer = OpenAICompatScorer(base_url, timeout_s=300)
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int, r: AnswerRecord) -> dict[str, Any] | None:
        async with sem:
            return await confirm_one(http, scorer, r, strategy, seed=i)

    t0 = time.perf_counter()
    found = await asyncio.gather(*(one(i, r) for i, r in enumerate(records)))
    rows = [r for r in found if r is not None]
    raws = np.array([r["raw"] for r in rows])
    thresholds = sorted({round(float(q), 3) for q in np.quantile(raws, QUANTILES)})
    return {
        "strategy": strategy, "n_answers": len(rows), "n_wrong": sum(not r["correct"] for r in rows),
        "seconds": time.perf_counter() - t0, "thresholds": thresholds, "table": replay(rows, thresholds), "rows": rows,
        "records": [str(p) for p in paths],
    }  # fmt: skip


def markdown(result: dict[str, Any], header: list[str]) -> list[str]:
    lines = [*header, "", f"{result['n_answers']} answers ({result['n_wrong']} wrong), first `{result['strategy']}` "
             "checkpoint; θ at quantiles of its raw scores. *confirm*: none, or look-ahead w continuations × d "
             "paragraphs (abort only if the eq. 5 value is below θ too); extra cost is what the confirmations "
             "spent (they run wherever the raw score is below θ).", "",
             "| θ | confirm | aborted | wrong aborted | wrong tokens saved | correct lost | extra tokens | "
             "extra requests | extra s |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for row in result["table"]:
        lines.append(
            f"| {row['threshold']:.3f} | {row['confirm']} | {row['aborted']} | {row['wrong_aborted_share']:.0%} | "
            f"{row['tokens_saved_share_of_wrong']:.0%} | {row['correct_lost_share']:.0%} | {row['extra_tokens']} | "
            f"{row['extra_requests']} | {row['extra_seconds']:.1f} |"
        )
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=Path, nargs="+", required=True)
    ap.add_argument("--base-url", default="http://127.0.0.1:8011/v1")
    ap.add_argument("--strategy", default="entropy:1.5")
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    result = {**stamp(args.base_url), **asyncio.run(run(args.records, args.base_url, args.strategy, args.concurrency))}
    finish("early_abort_lookahead", result, markdown(result, [f"# Early abort with look-ahead ({result['date']})", "",
                                                             str(result["machine"])]))  # fmt: skip


if __name__ == "__main__":
    main()
