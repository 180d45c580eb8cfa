"""Scorer throughput: checkpoints scored per second at concurrency 1 / 4 / 16, cold vs cached prefix.

Same server, one run. "Cold": every request is a (question, partial answer) state the server has
never seen, so vLLM computes the whole scorer prompt (only the shared instruction can come from
its prefix cache). "Cached": the very same requests sent again right after, so their prompts are
in the prefix cache (what happens when a guard re-scores a state, or when consecutive checkpoints
of one answer share the question and the earlier part of the answer). Cold and cached runs of
each concurrency level follow each other, so machine noise hits both alike.

    make bench   (or: .venv/bin/python -m benchmarks.scorer_throughput --base-url http://127.0.0.1:8011/v1)

Writes benchmarks/results/scorer_throughput.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from benchmarks.common import finish, stamp
from finece_guard import OpenAICompatScorer
from finece_guard.data.loaders import load_task
from finece_guard.types import CheckpointKind

LEVELS = (1, 4, 16)


async def _batch(
    scorer: OpenAICompatScorer, requests: list[tuple[str, str, CheckpointKind]], concurrency: int
) -> dict[str, float]:
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(req: tuple[str, str, CheckpointKind]) -> None:
        async with sem:
            t = time.perf_counter()
            await scorer.ascore(*req)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(r) for r in requests))
    wall = time.perf_counter() - t0
    return {"n": len(requests), "wall_s": wall, "scores_per_s": len(requests) / wall,
            "latency_mean_s": statistics.mean(latencies), "latency_p50_s": statistics.median(latencies)}  # fmt: skip


def _states(offset: int, n: int) -> list[tuple[str, str, CheckpointKind]]:
    """``n`` realistic partial states from SciQ test questions ``offset..offset+n`` (distinct prompts)."""
    records = load_task("sciq", partition="test")[offset : offset + n]
    if len(records) < n:
        raise SystemExit(f"SciQ test has too few questions for {n} states from {offset}; lower --n")
    return [
        (r.prompt(), f"The answer is {r.answers[0]}. This is because", CheckpointKind.PARTIAL) for r in records
    ]


async def run(base_url: str, n: int) -> dict[str, Any]:
    scorer = OpenAICompatScorer(base_url, max_concurrency=max(LEVELS), timeout_s=300.0)
    try:
        # warm-up: vLLM-CPU compiles kernels for new batch shapes after a start; not measured
        await _batch(scorer, _states(200, 2 * max(LEVELS)), max(LEVELS))
        rows: dict[str, dict[str, Any]] = {}
        offset = 0
        for level in LEVELS:
            reqs = _states(offset, n if level > 1 else max(8, n // 2))
            offset += len(reqs)
            cold = await _batch(scorer, reqs, level)
            cached = await _batch(scorer, reqs, level)
            rows[str(level)] = {"cold": cold, "cached": cached,
                                "cached_speedup": cached["scores_per_s"] / cold["scores_per_s"]}  # fmt: skip
        return {"concurrency": rows}
    finally:
        await scorer.aclose()


def markdown(result: dict[str, Any], header: list[str]) -> list[str]:
    lines = [*header, "", "| concurrency | cold scores/s | cached scores/s | cached / cold | cold p50 latency (s) | "
             "cached p50 latency (s) |", "|---|---|---|---|---|---|"]  # fmt: skip
    for level, r in result["concurrency"].items():
        c, h = r["cold"], r["cached"]
        lines.append(f"| {level} | {c['scores_per_s']:.2f} | {h['scores_per_s']:.2f} | {r['cached_speedup']:.2f} | "
                     f"{c['latency_p50_s']:.2f} | {h['latency_p50_s']:.2f} |")  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8011/v1")
    ap.add_argument("--n", type=int, default=32, help="requests per cell (half at concurrency 1)")
    args = ap.parse_args()
    result = {**stamp(args.base_url), "n": args.n, **asyncio.run(run(args.base_url, args.n))}
    head = [f"# Scorer throughput ({result['date']})", "", f"{result['machine']}; FineCE adapter `finece`, one "
            f"score = one 1-token request with top-20 logprobs; {args.n} requests per cell; cold then cached, "
            "same server, one run."]  # fmt: skip
    finish("scorer_throughput", result, markdown(result, head))


if __name__ == "__main__":
    main()
